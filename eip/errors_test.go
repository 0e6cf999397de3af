package eip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
)

var allSentinels = []error{
	ErrAlreadyAssociated, ErrStaleAssociation, ErrThrottled, ErrUnauthorized,
	ErrNotFound, ErrInvalidState, ErrUnavailable, ErrInvalidRequest, ErrDryRun,
}

// assertKind checks err is classified as want and as no other sentinel.
func assertKind(t *testing.T, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("error %q: want %v", err, want)
	}
	for _, s := range allSentinels {
		if s != want && errors.Is(err, s) {
			t.Fatalf("error %q: also matches %v", err, s)
		}
	}
}

var codeTable = []struct {
	code   string
	status int
	want   error
}{
	{"Resource.AlreadyAssociated", 400, ErrAlreadyAssociated},
	{"InvalidAssociationID.NotFound", 400, ErrStaleAssociation},
	{"RequestLimitExceeded", 503, ErrThrottled},
	{"Throttling", 400, ErrThrottled},
	{"UnauthorizedOperation", 403, ErrUnauthorized},
	{"AuthFailure", 401, ErrUnauthorized},
	{"Blocked", 403, ErrUnauthorized},
	{"InvalidAllocationID.NotFound", 400, ErrNotFound},
	{"InvalidInstanceID.NotFound", 400, ErrNotFound},
	{"InvalidAddress.NotFound", 400, ErrNotFound},
	{"InvalidNetworkInterfaceID.NotFound", 400, ErrNotFound},
	{"IncorrectInstanceState", 400, ErrInvalidState},
	{"InvalidInstanceID", 400, ErrInvalidState},
	{"DryRunOperation", 412, ErrDryRun},
	{"InternalError", 500, ErrUnavailable},
	{"Unavailable", 503, ErrUnavailable},
	{"ServiceUnavailable", 503, ErrUnavailable},
	{"InvalidParameterValue", 400, ErrInvalidRequest},
	{"InvalidInstanceID.Malformed", 400, ErrInvalidRequest},
	{"MissingParameter", 400, ErrInvalidRequest},
	{"InvalidParameterCombination", 400, ErrInvalidRequest},
	{"InvalidID", 400, ErrInvalidRequest},
}

func TestClassifyGenericAPIError(t *testing.T) {
	for _, tc := range codeTable {
		t.Run(tc.code, func(t *testing.T) {
			orig := apiErr(tc.code)
			err := Classify(fmt.Errorf("wrapped: %w", orig))
			assertKind(t, err, tc.want)
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tc.code {
				t.Fatalf("original API error lost from chain: %v", err)
			}
			if !errors.Is(err, orig) {
				t.Fatalf("errors.Is(original) false: %v", err)
			}
		})
	}
}

func TestClassifyMisc(t *testing.T) {
	if Classify(nil) != nil {
		t.Fatal("Classify(nil) != nil")
	}
	once := Classify(apiErr("RequestLimitExceeded"))
	if twice := Classify(once); twice != once {
		t.Fatalf("reclassified: %v", twice)
	}
	assertKind(t, Classify(context.DeadlineExceeded), ErrUnavailable)
	assertKind(t, Classify(fmt.Errorf("x: %w", &net.OpError{Op: "dial", Err: errors.New("refused")})), ErrUnavailable)
	assertKind(t, Classify(errors.New("failed to get rate limit token, retry quota exceeded, 0 available, 5 requested")), ErrThrottled)
	assertKind(t, Classify(errors.Join(apiErr("InternalError"), ratelimit.QuotaExceededError{Requested: 5})), ErrThrottled)
	assertKind(t, Classify(&smithy.GenericAPIError{Code: "Weird", Fault: smithy.FaultServer}), ErrUnavailable)

	// The unauthorized message names the action to grant and the policy.
	op := &smithy.OperationError{ServiceID: "EC2", OperationName: "AssociateAddress", Err: apiErr("UnauthorizedOperation")}
	err := Classify(op)
	assertKind(t, err, ErrUnauthorized)
	for _, want := range []string{"ec2:AssociateAddress", PolicyPath} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("unauthorized message %q lacks %q", err, want)
		}
	}
	if err := classify(OpCreateTags, apiErr("UnauthorizedOperation")); !strings.Contains(err.Error(), "ec2:CreateTags") {
		t.Errorf("unauthorized message %q lacks ec2:CreateTags", err)
	}
}

func TestOutcome(t *testing.T) {
	cases := map[error]string{
		nil:                  OutcomeSuccess,
		ErrDryRun:            OutcomeDryRun,
		ErrThrottled:         OutcomeThrottled,
		ErrUnauthorized:      OutcomeUnauthorized,
		ErrAlreadyAssociated: OutcomeConflict,
		ErrStaleAssociation:  OutcomeConflict,
		ErrNotFound:          OutcomeNotFound,
		ErrInvalidState:      OutcomeClientError,
		ErrInvalidRequest:    OutcomeClientError,
		ErrUnavailable:       OutcomeServerError,
	}
	for err, want := range cases {
		if got := Outcome(err); got != want {
			t.Errorf("Outcome(%v) = %s, want %s", err, got, want)
		}
	}
	seen := map[string]bool{}
	for _, o := range Outcomes {
		seen[o] = true
	}
	for _, o := range cases {
		if !seen[o] {
			t.Errorf("outcome %s missing from Outcomes", o)
		}
	}
}

// errorServer answers every EC2 request with an AWS-shaped error body.
func errorServer(t *testing.T, status int, code string) (*httptest.Server, *int) {
	t.Helper()
	hits := new(int)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*hits++
		w.Header().Set("Content-Type", "text/xml;charset=UTF-8")
		w.Header().Set("Date", time.Now().UTC().Format(http.TimeFormat))
		w.WriteHeader(status)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>%s</Code><Message>%s happened</Message></Error></Errors><RequestID>ea966190-f9aa-478e-9ede-example</RequestID></Response>`, code, code)
	}))
	t.Cleanup(srv.Close)
	return srv, hits
}

// realEC2 is a real SDK client aimed at a loopback test server, with two
// attempts and millisecond backoff so retried errors stay fast.
func realEC2(t *testing.T, url string, opts ...func(*retry.StandardOptions)) *ec2.Client {
	t.Helper()
	c := ec2.New(ec2.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(url),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", Source: "test"}, nil
		}),
		Retryer: retry.AddWithMaxBackoffDelay(retry.AddWithMaxAttempts(retry.NewStandard(opts...), 2), 5*time.Millisecond),
	})
	t.Cleanup(func() {
		if hc, ok := c.Options().HTTPClient.(interface{ CloseIdleConnections() }); ok {
			hc.CloseIdleConnections()
		}
	})
	return c
}

func TestClassifyRealSDKErrors(t *testing.T) {
	for _, tc := range codeTable {
		t.Run(tc.code, func(t *testing.T) {
			srv, hits := errorServer(t, tc.status, tc.code)
			c := New(Config{Group: "g"}, realEC2(t, srv.URL), nil, nil)
			_, err := c.Addresses(context.Background(), []string{"eipalloc-0123456789abcdef0"})
			assertKind(t, err, tc.want)
			var ae smithy.APIError
			if !errors.As(err, &ae) || ae.ErrorCode() != tc.code {
				t.Fatalf("API error code not in chain: %v", err)
			}
			if !strings.Contains(err.Error(), "eipalloc-0123456789abcdef0") {
				t.Errorf("error %q does not name the allocation", err)
			}
			if tc.status >= 500 && *hits != 2 {
				t.Errorf("%d: want 2 attempts (retried), got %d", tc.status, *hits)
			}
		})
	}
}

func TestClassifyRealSDKRetryQuota(t *testing.T) {
	srv, _ := errorServer(t, 500, "InternalError")
	// A retry quota smaller than one retry's cost: the SDK gives up with
	// "failed to get rate limit token".
	c := New(Config{}, realEC2(t, srv.URL, func(o *retry.StandardOptions) {
		o.RateLimiter = ratelimit.NewTokenRateLimit(1)
	}), nil, nil)
	_, err := c.Addresses(context.Background(), []string{"eipalloc-1"})
	assertKind(t, err, ErrThrottled)
	if !strings.Contains(err.Error(), "rate limit token") {
		t.Errorf("error %q: expected the SDK's quota message", err)
	}
}

func TestClassifyRealSDKNonXML5xx(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(502)
		fmt.Fprint(w, "<html><body>Bad Gateway</body></html>")
	}))
	t.Cleanup(srv.Close)
	c := New(Config{}, realEC2(t, srv.URL), nil, nil)
	_, err := c.Addresses(context.Background(), []string{"eipalloc-1"})
	assertKind(t, err, ErrUnavailable)
}

func TestClassifyRealSDKConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	c := New(Config{}, realEC2(t, url), nil, nil)
	_, err = c.GroupAddresses(context.Background())
	assertKind(t, err, ErrUnavailable)
}

func TestClassifyRealSDKTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	c := New(Config{}, realEC2(t, srv.URL), nil, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.GroupAddresses(ctx)
	assertKind(t, err, ErrUnavailable)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline not in chain: %v", err)
	}
}
