package ec2sim

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// attemptRT counts the HTTP attempts the SDK makes and lets a test act
// between a failed attempt and the retry (after runs before the failed
// attempt's error reaches the SDK's retryer).
type attemptRT struct {
	next  http.RoundTripper
	after func(n int, err error)

	mu sync.Mutex
	n  int
}

func (a *attemptRT) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := a.next.RoundTrip(r)
	a.mu.Lock()
	a.n++
	n := a.n
	a.mu.Unlock()
	if a.after != nil {
		a.after(n, err)
	}
	return resp, err
}

func (a *attemptRT) attempts() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.n
}

// withSDKRetries gives a test client the standard retryer (what eipd
// uses) with maxAttempts attempts and short backoffs, counting attempts.
func withSDKRetries(maxAttempts int, rt *attemptRT) func(*ec2.Options) {
	return func(o *ec2.Options) {
		o.RetryMaxAttempts = 0
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = maxAttempts
			so.MaxBackoff = 20 * time.Millisecond
		})
		rt.next = simBodyRT{awshttp.NewBuildableClient().GetTransport()}
		o.HTTPClient = &http.Client{Transport: rt}
	}
}

// TestFaultLostAnswerResetRetried: the call takes effect, the connection
// is reset, and the pinned SDK's standard retryer retries it (a
// RequestSendError is a connection error). The retry of an
// AssociateAddress with AllowReassociation=false finds the EIP where the
// first attempt put it, which AWS documents as no conflict ("fails if
// the Elastic IP address is already associated with another resource"),
// so the caller sees success with the association the first attempt made.
func TestFaultLostAnswerResetRetried(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	i1, alloc := info.Instances[0].InstanceID, info.EIPs[0].AllocationID
	rt := &attemptRT{}
	c := simInstanceClient(t, s, i1, withSDKRetries(3, rt))
	s.SetFaults(Faults{LostAnswers: &LostAnswers{Action: "AssociateAddress", Count: 1}})

	out, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1),
		AllowReassociation: aws.Bool(false)})
	simOK(t, err)
	if rt.attempts() != 2 {
		t.Fatalf("%d attempts, want 2: the reset attempt and its retry", rt.attempts())
	}
	v, _ := s.Address(alloc)
	if v.InstanceID != i1 || v.AssociationID != aws.ToString(out.AssociationId) {
		t.Fatalf("true state %+v, answer %s", v, aws.ToString(out.AssociationId))
	}
	if ev := s.Events(); len(ev) != 1 || ev[0].Action != "associate" || ev[0].Caller != i1 {
		t.Fatalf("events %+v: the first attempt associated, the retry changed nothing", ev)
	}
	if o := s.Stats().ByOutcome["AssociateAddress"]; o["lost"] != 1 || o["ok"] != 1 {
		t.Fatalf("outcomes %v, want one lost answer and one ok", o)
	}
	if f := s.Faults(); f.LostAnswers == nil || f.LostAnswers.Count != 0 {
		t.Fatalf("faults now %+v: the count is consumed", f.LostAnswers)
	}
	// The count is spent: the next call is answered.
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1)})
	simOK(t, err)
	if rt.attempts() != 3 {
		t.Fatalf("%d attempts after a call with no fault left, want 3", rt.attempts())
	}
}

// TestFaultLostAnswerRetryFindsItTaken: the first attempt won, its
// answer was lost, and someone moved the EIP before the SDK's retry; the
// caller gets Resource.AlreadyAssociated although its call took effect.
func TestFaultLostAnswerRetryFindsItTaken(t *testing.T) {
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	i1, i2, alloc := info.Instances[0].InstanceID, info.Instances[1].InstanceID, info.EIPs[0].AllocationID
	rt := &attemptRT{after: func(n int, err error) {
		if n == 1 && err != nil {
			if err := s.Associate(alloc, i2); err != nil {
				t.Errorf("operator move between the attempts: %v", err)
			}
		}
	}}
	c := simInstanceClient(t, s, i1, withSDKRetries(3, rt))
	s.SetFaults(Faults{LostAnswers: &LostAnswers{Action: "AssociateAddress", Count: 1}})
	_, err := c.AssociateAddress(context.Background(), &ec2.AssociateAddressInput{AllocationId: aws.String(alloc),
		InstanceId: aws.String(i1), AllowReassociation: aws.Bool(false)})
	simWantCode(t, err, "Resource.AlreadyAssociated")
	var got []string
	for _, e := range s.Events() {
		got = append(got, e.Action+" to "+e.To+" by "+e.Caller)
	}
	if want := []string{"associate to " + i1 + " by " + i1, "move to " + i2 + " by "}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events %v, want %v", got, want)
	}
}

// TestFaultLostAnswerResetWithoutRetries: a caller that does not retry
// sees a connection error (which the SDK classes as retryable), yet its
// write landed.
func TestFaultLostAnswerResetWithoutRetries(t *testing.T) {
	s := simStart(t, Options{Instances: 1})
	info := s.Info()
	i1, alloc := info.Instances[0].InstanceID, info.EIPs[0].AllocationID
	rt := &attemptRT{}
	c := simInstanceClient(t, s, i1, withSDKRetries(1, rt))
	simOK(t, s.SetInstanceFaults(i1, Faults{LostAnswers: &LostAnswers{Ratio: 1}}))
	_, err := c.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{alloc},
		Tags: []types.Tag{{Key: aws.String("eipd:holder"), Value: aws.String(i1)}}})
	var send *smithyhttp.RequestSendError
	if err == nil || !errors.As(err, &send) || simCode(err) != "non-API error: "+err.Error() {
		t.Fatalf("lost answer without retries: %v, want a transport error", err)
	}
	t.Logf("caller sees: %v", err)
	if (retry.RetryableConnectionError{}).IsErrorRetryable(err) != aws.TrueTernary {
		t.Fatalf("the pinned SDK does not class %v as a retryable connection error", err)
	}
	if v, _ := s.Address(alloc); v.Tags["eipd:holder"] != i1 {
		t.Fatalf("the write of a call whose answer was lost did not land: %+v", v.Tags)
	}
}

// TestFaultLostAnswerHang: mode hang keeps the caller waiting until it
// gives up. With the caller's context the SDK does not retry (a
// CanceledError); with an http.Client timeout it does. Either way the
// write landed when the request arrived.
func TestFaultLostAnswerHang(t *testing.T) {
	s := simStart(t, Options{Instances: 1})
	info := s.Info()
	i1, alloc := info.Instances[0].InstanceID, info.EIPs[0].AllocationID
	rt := &attemptRT{}
	c := simInstanceClient(t, s, i1, withSDKRetries(3, rt))
	s.SetFaults(Faults{LostAnswers: &LostAnswers{Action: "AssociateAddress", Count: 1, Mode: LostHang}})
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	start := time.Now()
	_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1)})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("hung call: %v, want the caller's deadline", err)
	}
	if time.Since(start) < 300*time.Millisecond || rt.attempts() != 1 {
		t.Fatalf("returned after %v with %d attempts: want no answer before the deadline, no retry", time.Since(start), rt.attempts())
	}
	if v, _ := s.Address(alloc); v.InstanceID != i1 {
		t.Fatalf("write of the hung call not applied: %+v", v)
	}

	// An http.Client timeout is a RequestSendError: retried.
	rt2 := &attemptRT{}
	c2 := simInstanceClient(t, s, i1, withSDKRetries(3, rt2), func(o *ec2.Options) {
		o.HTTPClient.(*http.Client).Timeout = 300 * time.Millisecond
	})
	s.SetFaults(Faults{LostAnswers: &LostAnswers{Action: "CreateTags", Count: 1, Mode: LostHang}})
	_, err = c2.CreateTags(context.Background(), &ec2.CreateTagsInput{Resources: []string{alloc},
		Tags: []types.Tag{{Key: aws.String("eipd:term"), Value: aws.String("7")}}})
	simOK(t, err)
	if rt2.attempts() != 2 {
		t.Fatalf("%d attempts, want 2: the client timeout is retried", rt2.attempts())
	}
	if h := s.TagHistory(alloc); len(h) != 2 {
		t.Fatalf("tag history %+v: both attempts landed", h)
	}
}

// TestFaultLostAnswersSelect: no action means every action; only calls
// that took effect lose their answer (errors and DryRun are answered);
// the caller's own rule is consumed before the global one.
func TestFaultLostAnswersSelect(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	i1, i2, alloc := info.Instances[0].InstanceID, info.Instances[1].InstanceID, info.EIPs[0].AllocationID
	c1 := simInstanceClient(t, s, i1)
	c2 := simInstanceClient(t, s, i2)
	lostCall := func(err error) bool {
		var send *smithyhttp.RequestSendError
		return errors.As(err, &send)
	}

	s.SetFaults(Faults{LostAnswers: &LostAnswers{Ratio: 1}})
	_, err := c1.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	if !lostCall(err) {
		t.Fatalf("DescribeAddresses with ratio 1: %v", err)
	}
	_, err = c1.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
	if !lostCall(err) {
		t.Fatalf("DescribeInstances with ratio 1: %v", err)
	}
	_, err = c1.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{"eipalloc-0000000000000dead"}})
	simWantCode(t, err, "InvalidAllocationID.NotFound")
	_, err = c1.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1), DryRun: aws.Bool(true)})
	simWantCode(t, err, "DryRunOperation")

	// Instance rule (count 1) first, then the global one (count 1).
	s.SetFaults(Faults{LostAnswers: &LostAnswers{Action: "DescribeTags", Count: 1}})
	simOK(t, s.SetInstanceFaults(i1, Faults{LostAnswers: &LostAnswers{Action: "DescribeTags", Count: 1}}))
	describe := func(c *ec2.Client) error {
		_, err := c.DescribeTags(ctx, &ec2.DescribeTagsInput{})
		return err
	}
	if err := describe(c1); !lostCall(err) {
		t.Fatalf("first DescribeTags by %s: %v", i1, err)
	}
	if f, _ := s.InstanceFaults(i1); f.LostAnswers.Count != 0 || s.Faults().LostAnswers.Count != 1 {
		t.Fatalf("instance count %d, global %d: the instance's rule goes first", f.LostAnswers.Count, s.Faults().LostAnswers.Count)
	}
	if err := describe(c2); !lostCall(err) {
		t.Fatalf("DescribeTags by %s (global rule): %v", i2, err)
	}
	simOK(t, describe(c1))
	simOK(t, describe(c2))
	if n := s.Stats().ByOutcome["DescribeTags"]["lost"]; n != 2 {
		t.Fatalf("%d lost DescribeTags answers, want 2", n)
	}
}
