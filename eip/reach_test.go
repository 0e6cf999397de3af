package eip

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-hclog"
)

// reachObserver is a fakeObserver that also hears reachability.
type reachObserver struct {
	fakeObserver
	mu     sync.Mutex
	states []bool
}

func (o *reachObserver) SetAWSReachable(reachable bool, _ time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.states = append(o.states, reachable)
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// sendErr is what the SDK returns when the request got no answer: the
// net/http error inside.
func sendErr(inner error) error {
	return &smithy.OperationError{ServiceID: "EC2", OperationName: "DescribeAddresses",
		Err: &url.Error{Op: "Post", URL: "https://ec2.eu-west-1.amazonaws.com/", Err: inner}}
}

// TestReachabilityFollowsAnswers: a call without an answer makes the API
// unreachable with its cause, logged once with the fix; any answer, an
// error included, makes it reachable again; a call the caller cancelled
// says nothing.
func TestReachabilityFollowsAnswers(t *testing.T) {
	var next error
	f := &fakeEC2{describeAddresses: func(*ec2.DescribeAddressesInput) (*ec2.DescribeAddressesOutput, error) {
		return &ec2.DescribeAddressesOutput{}, next
	}}
	logs := &syncBuf{}
	obs := &reachObserver{}
	c := New(Config{Group: "g1", Rate: 1000, Burst: 1000}, f, hclog.New(&hclog.LoggerOptions{Output: logs, Level: hclog.Debug}), obs)
	if r := c.Reachability(); r.Known {
		t.Fatalf("known before any call: %+v", r)
	}
	call := func(err error) Reachability {
		t.Helper()
		next = err
		_, _ = c.Addresses(context.Background(), nil)
		return c.Reachability()
	}

	r := call(nil)
	if !r.Known || !r.Reachable || r.LastAnswer.IsZero() || r.Cause != "" {
		t.Fatalf("after an answer: %+v", r)
	}
	answeredAt := r.LastAnswer

	dnsErr := sendErr(&net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Name: "ec2.eu-west-1.amazonaws.com", Err: "no such host", IsNotFound: true}})
	r = call(dnsErr)
	if r.Reachable || r.Cause != "cannot resolve ec2.eu-west-1.amazonaws.com (no such host)" || !r.LastAnswer.Equal(answeredAt) || r.Since.Before(answeredAt) {
		t.Fatalf("after a DNS failure: %+v", r)
	}
	down := r.Since
	r = call(sendErr(context.DeadlineExceeded))
	if r.Reachable || r.Cause != "no answer from ec2.eu-west-1.amazonaws.com (timed out)" || !r.Since.Equal(down) {
		t.Errorf("still unreachable, timed out: %+v (since must stay %s)", r, down)
	}
	if n := strings.Count(logs.String(), "the EC2 API does not answer"); n != 1 {
		t.Errorf("the transition is logged %d times, want once:\n%s", n, logs)
	}
	for _, want := range []string{"cause=\"cannot resolve ec2.eu-west-1.amazonaws.com (no such host)\"", "VPC interface endpoints", "docs/install.md"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, logs)
		}
	}

	// Cancelled by the caller: not sent to the end, says nothing.
	r = call(sendErr(context.Canceled))
	if r.Reachable || !r.Since.Equal(down) {
		t.Errorf("a cancelled call changed the state: %+v", r)
	}

	// A denial is an answer.
	r = call(&smithy.GenericAPIError{Code: "UnauthorizedOperation", Message: "no"})
	if !r.Reachable || r.Cause != "" || !r.LastAnswer.After(answeredAt) || r.Since.Before(down) {
		t.Errorf("after an API error: %+v", r)
	}
	if !strings.Contains(logs.String(), "the EC2 API answers again") {
		t.Errorf("recovery not logged:\n%s", logs)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if want := []bool{true, false, false, true}; len(obs.states) != len(want) || obs.states[0] != want[0] || obs.states[1] != want[1] || obs.states[3] != want[3] {
		t.Errorf("observer heard %v, want %v", obs.states, want)
	}
}

// TestReachabilityThroughTheSDK: the causes as the real SDK reports them,
// over loopback: a closed port refuses (the SDK's error names the address),
// a listener that never answers times out (the SDK drops the address on a
// deadline: the configured endpoint is named).
func TestReachabilityThroughTheSDK(t *testing.T) {
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closed.Addr().String()
	closed.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	defer func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range held {
			c.Close()
		}
	}()
	client := func(endpoint string) *Client {
		api := ec2.New(ec2.Options{
			Region: "eu-west-1", BaseEndpoint: aws.String(endpoint),
			Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
				return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret"}, nil
			}),
			Retryer: retry.AddWithMaxAttempts(retry.NewStandard(), 1),
		}, GuardRequestBody)
		return New(Config{Group: "g1", Rate: 1000, Burst: 1000, Endpoint: "ec2.example"}, api, nil, nil)
	}
	for _, c := range []struct {
		name, endpoint, want string
		timeout              time.Duration
	}{
		{"refused", "http://" + closedAddr, closedAddr + " refused the connection", 5 * time.Second},
		{"silent", "http://" + silent.Addr().String(), "no answer from ec2.example (timed out)", 300 * time.Millisecond},
	} {
		t.Run(c.name, func(t *testing.T) {
			cl := client(c.endpoint)
			ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
			defer cancel()
			_, err := cl.Addresses(ctx, nil)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("want ErrUnavailable, got %v", err)
			}
			if r := cl.Reachability(); !r.Known || r.Reachable || r.Cause != c.want {
				t.Errorf("reachability %+v, want cause %q (error %v)", r, c.want, err)
			}
		})
	}
}
