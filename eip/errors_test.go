package eip

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
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

// assertNoAnswer checks whether err says that no answer came at all
// (ErrNoAnswer: the call may have taken effect). It always comes with
// ErrUnavailable.
func assertNoAnswer(t *testing.T, err error, want bool) {
	t.Helper()
	if got := errors.Is(err, ErrNoAnswer); got != want {
		t.Fatalf("error %q: ErrNoAnswer %v, want %v", err, got, want)
	}
	if want && !errors.Is(err, ErrUnavailable) {
		t.Fatalf("error %q: ErrNoAnswer without ErrUnavailable", err)
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
			// An error code is an answer: the call failed.
			assertNoAnswer(t, err, false)
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
	assertNoAnswer(t, Classify(context.DeadlineExceeded), true)
	assertKind(t, Classify(fmt.Errorf("x: %w", &net.OpError{Op: "dial", Err: errors.New("refused")})), ErrUnavailable)
	assertNoAnswer(t, Classify(fmt.Errorf("x: %w", &net.OpError{Op: "dial", Err: errors.New("refused")})), false)
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

// TestClassifyNoAnswer: ErrNoAnswer (with ErrUnavailable) when no answer
// came at all, so the call may have taken effect: the client gave up, or
// the connection broke after the request went out. An answer, even a 5xx,
// and a connection that was never made are not: the call did not happen.
func TestClassifyNoAnswer(t *testing.T) {
	// What smithy-go's client handler returns when the request could not
	// be sent or its answer not read: a ResponseError around a made-up
	// response with status code 0.
	sendFailed := func(err error) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: 0}},
			Err: &smithyhttp.RequestSendError{Err: err}}
	}
	answered := func(status int) error {
		return &smithyhttp.ResponseError{Response: &smithyhttp.Response{Response: &http.Response{StatusCode: status}},
			Err: errors.New("deserialization failed")}
	}
	reset := &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	for _, c := range []struct {
		name     string
		err      error
		kind     error
		noAnswer bool
	}{
		{"deadline", context.DeadlineExceeded, ErrUnavailable, true},
		{"cancelled", fmt.Errorf("op: %w", context.Canceled), ErrUnavailable, true},
		{"smithy cancelled", &smithy.CanceledError{Err: context.DeadlineExceeded}, ErrUnavailable, true},
		{"connection reset", reset, ErrUnavailable, true},
		{"connection reset, as text", errors.New("read tcp 10.0.0.5:43210->52.46.1.2:443: read: connection reset by peer"), ErrUnavailable, true},
		{"closed without an answer", fmt.Errorf("Post \"https://ec2\": %w", io.EOF), ErrUnavailable, true},
		{"cut short", fmt.Errorf("read body: %w", io.ErrUnexpectedEOF), ErrUnavailable, true},
		{"reset, wrapped by the SDK", sendFailed(reset), ErrUnavailable, true},
		{"deadline, wrapped by the SDK", sendFailed(context.DeadlineExceeded), ErrUnavailable, true},
		{"refused, wrapped by the SDK", sendFailed(refused), ErrUnavailable, false},
		{"refused", refused, ErrUnavailable, false},
		{"DNS failure", &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "ec2.example"}}, ErrUnavailable, false},
		{"503 answer", answered(503), ErrUnavailable, false},
		{"500 API error", apiErr("InternalError"), ErrUnavailable, false},
		{"server fault API error", &smithy.GenericAPIError{Code: "Weird", Fault: smithy.FaultServer}, ErrUnavailable, false},
		{"throttled", apiErr("RequestLimitExceeded"), ErrThrottled, false},
		{"conflict", apiErr("Resource.AlreadyAssociated"), ErrAlreadyAssociated, false},
		{"403 answer", answered(403), ErrUnauthorized, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := Classify(c.err)
			assertKind(t, err, c.kind)
			assertNoAnswer(t, err, c.noAnswer)
			if !errors.Is(err, c.err) {
				t.Errorf("original error lost from the chain: %v", err)
			}
		})
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
			assertNoAnswer(t, err, false)
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
	assertNoAnswer(t, err, false) // a 502 is an answer: the call failed
}

func TestClassifyRealSDKConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close()
	c := New(Config{}, realEC2(t, url), nil, nil)
	_, err = c.Addresses(context.Background(), nil)
	assertKind(t, err, ErrUnavailable)
	assertNoAnswer(t, err, false) // never sent
}

// TestClassifyRealSDKConnectionReset: the server reads the request and
// resets the connection, or closes it, without answering: the call may
// have taken effect (ErrNoAnswer), through the real SDK's wrapping.
func TestClassifyRealSDKConnectionReset(t *testing.T) {
	for _, reset := range []bool{true, false} {
		name := "closed"
		if reset {
			name = "reset"
		}
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					conn, err := ln.Accept()
					if err != nil {
						return
					}
					_, _ = http.ReadRequest(bufio.NewReader(conn)) // the request arrived
					if reset {
						_ = conn.(*net.TCPConn).SetLinger(0) // close with RST
					}
					conn.Close()
				}
			}()
			t.Cleanup(func() {
				ln.Close()
				<-done
			})
			c := New(Config{}, realEC2(t, "http://"+ln.Addr().String()), nil, nil)
			_, err = c.Associate(context.Background(), "eipalloc-1", "eni-1", "10.0.0.5", false)
			assertKind(t, err, ErrUnavailable)
			assertNoAnswer(t, err, true)
		})
	}
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
	_, err := c.Addresses(ctx, nil)
	assertKind(t, err, ErrUnavailable)
	assertNoAnswer(t, err, true)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("deadline not in chain: %v", err)
	}
}
