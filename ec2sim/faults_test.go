package ec2sim

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

func TestFaultsJSON(t *testing.T) {
	var f Faults
	in := `{"throttle":true,"throttle_ratio":0.5,"latency":"100ms","error_ratio":0.1,"describe_lag":"2s","partition":true,"deny":["AssociateAddress"]}`
	simOK(t, json.Unmarshal([]byte(in), &f))
	want := Faults{Throttle: true, ThrottleRatio: 0.5, Latency: 100 * time.Millisecond, ErrorRatio: 0.1,
		DescribeLag: 2 * time.Second, Partition: true, Deny: []string{"AssociateAddress"}}
	if f.Throttle != want.Throttle || f.ThrottleRatio != want.ThrottleRatio || f.Latency != want.Latency ||
		f.ErrorRatio != want.ErrorRatio || f.DescribeLag != want.DescribeLag || !f.Partition || len(f.Deny) != 1 {
		t.Fatalf("parsed %+v", f)
	}
	b, err := json.Marshal(f)
	simOK(t, err)
	if !strings.Contains(string(b), `"latency":"100ms"`) || !strings.Contains(string(b), `"describe_lag":"2s"`) {
		t.Fatalf("marshal = %s", b)
	}
	for _, bad := range []string{`{"error_ratio":2}`, `{"latency":"soon"}`, `{"nope":true}`, `{"latency":"-1s"}`} {
		if err := json.Unmarshal([]byte(bad), &f); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

func TestFaultDeny(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	alloc, i1, i2 := info.EIPs[0].AllocationID, info.Instances[0].InstanceID, info.Instances[1].InstanceID
	simOK(t, s.SetInstanceFaults(i1, Faults{Deny: []string{"AssociateAddress"}}))
	c1 := simInstanceClient(t, s, i1)
	_, err := c1.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1)})
	simWantCode(t, err, "UnauthorizedOperation")
	if !strings.Contains(err.Error(), "assumed-role/"+simRoleName+"/"+i1) || !strings.Contains(err.Error(), "ec2:AssociateAddress") {
		t.Fatalf("message: %v", err)
	}
	_, err = c1.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1), DryRun: aws.Bool(true)})
	simWantCode(t, err, "UnauthorizedOperation")
	_, err = c1.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	simOK(t, err)
	_, err = simInstanceClient(t, s, i2).AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i2)})
	simOK(t, err)
	s.ClearFaults()
	_, err = c1.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1)})
	simOK(t, err)
	if st := s.Stats(); st.ByOutcome["AssociateAddress"]["UnauthorizedOperation"] != 2 {
		t.Fatalf("stats = %+v", st.ByOutcome)
	}
}

func TestFaultPartition(t *testing.T) {
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	i1, i2 := info.Instances[0].InstanceID, info.Instances[1].InstanceID
	simOK(t, s.SetInstanceFaults(i1, Faults{Partition: true}))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := simInstanceClient(t, s, i1).DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("partitioned call: %v", err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Fatal("partitioned call returned before the client gave up")
	}
	_, err = simInstanceClient(t, s, i2).DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{})
	simOK(t, err)

	// A call hanging without a deadline is released by Close.
	done := make(chan error, 1)
	hung := simInstanceClient(t, s, i1)
	go func() {
		_, err := hung.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{})
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().ByOutcome["DescribeAddresses"]["partitioned"] < 2 {
		if time.Now().After(deadline) {
			t.Fatal("second partitioned call never arrived")
		}
		time.Sleep(10 * time.Millisecond)
	}
	simOK(t, s.Close())
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("partitioned call succeeded")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not release a partitioned call")
	}
}

func TestFaultDescribeLag(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	alloc, i1 := info.EIPs[0].AllocationID, info.Instances[0].InstanceID
	c := simClient(t, s, "AKIDOPERATOR")
	s.SetFaults(Faults{DescribeLag: time.Second})
	_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1)})
	simOK(t, err)
	start := time.Now()
	if v, _ := s.Address(alloc); v.InstanceID != i1 {
		t.Fatalf("true state not updated: %+v", v)
	}
	if a := simAddr(t, c, alloc); a.InstanceId != nil {
		t.Fatalf("lagged read already shows the association: %+v", a)
	}
	// A second write is validated against the true state, not the lag.
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(info.Instances[1].InstanceID), AllowReassociation: aws.Bool(false)})
	simWantCode(t, err, "Resource.AlreadyAssociated")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if a := simAddr(t, c, alloc); aws.ToString(a.InstanceId) == i1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("lagged read never caught up")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Fatalf("association visible after %v, lag is 1s", el)
	}
	s.ClearFaults()
	simOK(t, s.Associate(alloc, info.Instances[1].InstanceID))
	if a := simAddr(t, c, alloc); aws.ToString(a.InstanceId) != info.Instances[1].InstanceID {
		t.Fatalf("no lag after ClearFaults: %+v", a)
	}
}

func TestFaultThrottleBuckets(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2})
	c := simClient(t, s, "AKIDOPERATOR")
	s.SetFaults(Faults{Throttle: true})
	ok, throttled := 0, 0
	for i := 0; i < 1000 && throttled == 0; i++ {
		_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		switch simCode(err) {
		case "":
			ok++
		case "RequestLimitExceeded":
			throttled++
		default:
			t.Fatalf("call %d: %v", i, err)
		}
	}
	// Unfiltered, unpaginated DescribeInstances has a 50-token bucket.
	if throttled == 0 || ok < 50 {
		t.Fatalf("ok=%d throttled=%d", ok, throttled)
	}
	// A filtered call uses another bucket, as does another action.
	_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: []types.Filter{{Name: aws.String("instance-state-name"), Values: []string{"running"}}}})
	simOK(t, err)
	_, err = c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
	simOK(t, err)
	// The bucket refills (10/s).
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
		if err == nil {
			break
		}
		simWantCode(t, err, "RequestLimitExceeded")
		if time.Now().After(deadline) {
			t.Fatal("bucket never refilled")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if st := s.Stats(); st.ByOutcome["DescribeInstances"]["RequestLimitExceeded"] < 1 {
		t.Fatalf("stats = %+v", st.ByOutcome)
	}
}

func TestFaultRetryerBacksOff(t *testing.T) {
	s := simStart(t, Options{Instances: 1})
	c := simClient(t, s, "AKIDOPERATOR", func(o *ec2.Options) {
		o.RetryMaxAttempts = 0
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 3
			so.MaxBackoff = 20 * time.Millisecond
		})
	})
	s.SetFaults(Faults{ThrottleRatio: 1})
	_, err := c.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{})
	simWantCode(t, err, "RequestLimitExceeded")
	if n := s.Stats().ByOutcome["DescribeAddresses"]["RequestLimitExceeded"]; n != 3 {
		t.Fatalf("server saw %d throttled attempts, want 3 (the SDK retries throttling)", n)
	}
	s.SetFaults(Faults{ErrorRatio: 1})
	_, err = c.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{})
	if code := simCode(err); code != "InternalError" && code != "Unavailable" {
		t.Fatalf("error ratio 1: %v", err)
	}
	out := s.Stats().ByOutcome["DescribeAddresses"]
	if out["InternalError"]+out["Unavailable"] != 3 {
		t.Fatalf("server errors retried %d times, want 3 attempts: %v", out["InternalError"]+out["Unavailable"], out)
	}
}

func TestFaultLatency(t *testing.T) {
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	c := simInstanceClient(t, s, info.Instances[0].InstanceID)
	simOK(t, s.SetInstanceFaults(info.Instances[0].InstanceID, Faults{Latency: 200 * time.Millisecond}))
	start := time.Now()
	_, err := c.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{})
	simOK(t, err)
	if el := time.Since(start); el < 200*time.Millisecond {
		t.Fatalf("call took %v with 200ms latency", el)
	}
	if err := s.SetInstanceFaults("i-0123456789abcdef0", Faults{}); err == nil {
		t.Fatal("faults for an unknown instance accepted")
	}
}

// TestFaultLatencyAppliesWritesFirst: latency delays the answer, not the
// action: a client that gives up before the answer still had its writes
// applied, at the time its request arrived.
func TestFaultLatencyAppliesWritesFirst(t *testing.T) {
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	i1, alloc := info.Instances[0].InstanceID, info.EIPs[0].AllocationID
	c := simInstanceClient(t, s, i1)
	const lat = time.Second
	simOK(t, s.SetInstanceFaults(i1, Faults{Latency: lat}))

	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc},
		Tags: []types.Tag{{Key: aws.String("eipd:renewed"), Value: aws.String("2026-01-01T00:00:00.000Z")}}})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient CreateTags: %v, want the client's deadline", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	_, err = c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1)})
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("impatient AssociateAddress: %v, want the client's deadline", err)
	}
	if el := time.Since(start); el >= lat {
		t.Fatalf("the client's deadline took %v: the test cannot tell apply-then-wait from wait-then-apply", el)
	}
	// Both writes landed although neither caller got an answer.
	v, _ := s.Address(alloc)
	if v.Tags["eipd:renewed"] != "2026-01-01T00:00:00.000Z" || v.InstanceID != i1 {
		t.Fatalf("writes of timed-out calls not applied: %+v", v)
	}
	h := s.TagHistory(alloc)
	if len(h) != 1 || h[0].Time.Sub(start) >= lat {
		t.Fatalf("tag history %+v: the write must land when the request arrives, not after the latency", h)
	}
	if ev := s.Events(); len(ev) != 1 || ev[0].Caller != i1 || ev[0].Time.Sub(start) >= lat {
		t.Fatalf("events %+v", ev)
	}
	// A patient caller gets its answer after the latency; errors wait too.
	start = time.Now()
	_, err = c.DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{AllocationIds: []string{"eipalloc-0000000000000dead"}})
	simWantCode(t, err, "InvalidAllocationID.NotFound")
	if el := time.Since(start); el < lat {
		t.Fatalf("error answered after %v with %v latency", el, lat)
	}
}

// perCallerCalls makes one call of every EC2 action the simulator serves.
func perCallerCalls(s *Sim, alloc, inst string) map[string]func(ctx context.Context, c *ec2.Client) error {
	tag := []types.Tag{{Key: aws.String("eipd:term"), Value: aws.String("1")}}
	return map[string]func(ctx context.Context, c *ec2.Client) error{
		"DescribeAddresses": func(ctx context.Context, c *ec2.Client) error {
			_, err := c.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{})
			return err
		},
		"DescribeInstances": func(ctx context.Context, c *ec2.Client) error {
			_, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{})
			return err
		},
		"DescribeInstanceStatus": func(ctx context.Context, c *ec2.Client) error {
			_, err := c.DescribeInstanceStatus(ctx, &ec2.DescribeInstanceStatusInput{})
			return err
		},
		"DescribeTags": func(ctx context.Context, c *ec2.Client) error {
			_, err := c.DescribeTags(ctx, &ec2.DescribeTagsInput{})
			return err
		},
		"CreateTags": func(ctx context.Context, c *ec2.Client) error {
			_, err := c.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc}, Tags: tag})
			return err
		},
		"DeleteTags": func(ctx context.Context, c *ec2.Client) error {
			_, err := c.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{alloc}, Tags: tag})
			return err
		},
		"AssociateAddress": func(ctx context.Context, c *ec2.Client) error {
			_, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(inst)})
			return err
		},
		"DisassociateAddress": func(ctx context.Context, c *ec2.Client) error {
			v, _ := s.Address(alloc)
			id := v.AssociationID
			if id == "" {
				id = "eipassoc-0000000000000dead"
			}
			_, err := c.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(id)})
			return err
		},
		"AllocateAddress": func(ctx context.Context, c *ec2.Client) error {
			_, err := c.AllocateAddress(ctx, &ec2.AllocateAddressInput{Domain: types.DomainTypeVpc})
			return err
		},
		"ReleaseAddress": func(ctx context.Context, c *ec2.Client) error {
			_, err := c.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String("eipalloc-0000000000000dead")})
			return err
		},
	}
}

// TestFaultsPerCallerEveryAction: per-instance error_ratio and partition
// hit every action of that instance's calls, and nobody else's.
func TestFaultsPerCallerEveryAction(t *testing.T) {
	s := simStart(t, Options{Instances: 2, EIPs: 1})
	info := s.Info()
	i1, i2, alloc := info.Instances[0].InstanceID, info.Instances[1].InstanceID, info.EIPs[0].AllocationID
	c1, c2 := simInstanceClient(t, s, i1), simInstanceClient(t, s, i2)
	calls := perCallerCalls(s, alloc, i2)
	if len(calls) != len(ec2Actions()) {
		t.Fatalf("%d actions covered, the simulator serves %d", len(calls), len(ec2Actions()))
	}
	server := func(err error) bool { c := simCode(err); return c == "InternalError" || c == "Unavailable" }

	names := slices.Sorted(maps.Keys(calls))
	simOK(t, s.SetInstanceFaults(i1, Faults{ErrorRatio: 1}))
	for _, name := range names {
		call := calls[name]
		if err := call(context.Background(), c1); !server(err) {
			t.Errorf("%s by %s with error_ratio 1: %v, want a server error", name, i1, err)
		}
		if err := call(context.Background(), c2); server(err) {
			t.Errorf("%s by %s (no faults): %v", name, i2, err)
		}
	}
	var landed []string
	for _, e := range s.Events() {
		landed = append(landed, e.Action+" by "+e.Caller)
	}
	if want := []string{"associate by " + i2, "disassociate by " + i2}; !slices.Equal(landed, want) {
		t.Fatalf("events %v, want %v: only the unfaulted caller's writes land", landed, want)
	}

	simOK(t, s.SetInstanceFaults(i1, Faults{Partition: true}))
	before := s.Stats()
	for _, name := range names {
		call := calls[name]
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		err := call(ctx, c1)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s by a partitioned %s: %v, want no answer", name, i1, err)
		}
		if n := s.Stats().ByOutcome[name]["partitioned"] - before.ByOutcome[name]["partitioned"]; n != 1 {
			t.Errorf("%s: %d partitioned calls counted, want 1", name, n)
		}
		if err := call(context.Background(), c2); server(err) || errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s by %s (no faults) during %s's partition: %v", name, i2, i1, err)
		}
	}
	// Nothing the partitioned caller sent was applied.
	for _, e := range s.Events() {
		if e.Caller == i1 {
			t.Errorf("a partitioned caller's write landed: %+v", e)
		}
	}
	for _, w := range s.TagHistory("") {
		if w.Caller == i1 {
			t.Errorf("a partitioned caller's tag write landed: %+v", w)
		}
	}
}

// TestFaultDescribeLagPerCaller: one instance reads the past, the others
// the present, for every Describe action.
func TestFaultDescribeLagPerCaller(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2, EIPs: 1})
	info := s.Info()
	i1, i2, alloc := info.Instances[0].InstanceID, info.Instances[1].InstanceID, info.EIPs[0].AllocationID
	c1, c2 := simInstanceClient(t, s, i1), simInstanceClient(t, s, i2)
	simOK(t, s.SetInstanceFaults(i1, Faults{DescribeLag: 2 * time.Second}))
	simOK(t, s.Associate(alloc, i2))
	_, err := c2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc}, Tags: []types.Tag{{Key: aws.String("eipd:holder"), Value: aws.String(i2)}}})
	simOK(t, err)
	view := func(c *ec2.Client) (assoc, eniAssoc, tag string) {
		a := simAddr(t, c, alloc)
		assoc = aws.ToString(a.InstanceId)
		out, err := c.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{i2}})
		simOK(t, err)
		eniAssoc = aws.ToString(out.Reservations[0].Instances[0].PublicIpAddress)
		tags, err := c.DescribeTags(ctx, &ec2.DescribeTagsInput{Filters: []types.Filter{{Name: aws.String("key"), Values: []string{"eipd:holder"}}}})
		simOK(t, err)
		if len(tags.Tags) > 0 {
			tag = aws.ToString(tags.Tags[0].Value)
		}
		return
	}
	if a, e, tg := view(c1); a != "" || e != "" || tg != "" {
		t.Fatalf("lagged caller sees the present: address %q, instance public IP %q, tag %q", a, e, tg)
	}
	if a, e, tg := view(c2); a != i2 || e != info.EIPs[0].PublicIP || tg != i2 {
		t.Fatalf("unlagged caller sees the past: address %q, instance public IP %q, tag %q", a, e, tg)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if a, e, tg := view(c1); a == i2 && e != "" && tg == i2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lagged caller never caught up")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestFaultsJSONNewFields: the JSON forms parse, round-trip and
// are validated; unknown fields stay errors, also inside lost_answers.
func TestFaultsJSONNewFields(t *testing.T) {
	in := `{"imds_lag":"5s","lost_answers":{"action":"AssociateAddress","count":1},"late_writes":"2s",` +
		`"mixed_reads":true,"public_ip_release":"3m","egress_needs_public_ip":true}`
	var f Faults
	simOK(t, json.Unmarshal([]byte(in), &f))
	want := Faults{IMDSLag: 5 * time.Second, LostAnswers: &LostAnswers{Action: "AssociateAddress", Count: 1},
		LateWrites: 2 * time.Second, MixedReads: true, PublicIPRelease: 3 * time.Minute, EgressNeedsPublicIP: true}
	if f.IMDSLag != want.IMDSLag || f.LostAnswers == nil || *f.LostAnswers != *want.LostAnswers || f.LateWrites != want.LateWrites ||
		!f.MixedReads || f.PublicIPRelease != want.PublicIPRelease || !f.EgressNeedsPublicIP {
		t.Fatalf("parsed %+v (lost_answers %+v)", f, f.LostAnswers)
	}
	b, err := json.Marshal(f)
	simOK(t, err)
	var back Faults
	simOK(t, json.Unmarshal(b, &back))
	if back.IMDSLag != f.IMDSLag || *back.LostAnswers != *f.LostAnswers || back.PublicIPRelease != f.PublicIPRelease {
		t.Fatalf("round trip %s → %+v", b, back)
	}
	for _, ok := range []string{
		`{"lost_answers":{"ratio":0.1}}`,
		`{"lost_answers":{"action":"CreateTags","count":2,"mode":"hang"}}`,
		`{"lost_answers":{"count":0}}`, // an exhausted rule, as GET /faults shows it
	} {
		simOK(t, json.Unmarshal([]byte(ok), &f))
	}
	for _, bad := range []string{
		`{"lost_answers":{"action":"AssociateAddress"}}`,
		`{"lost_answers":{"count":1,"ratio":0.5}}`,
		`{"lost_answers":{"count":-1}}`,
		`{"lost_answers":{"ratio":1.5}}`,
		`{"lost_answers":{"count":1,"mode":"drop"}}`,
		`{"lost_answers":{"count":1,"action":"AssociateAdress"}}`,
		`{"lost_answers":{"count":1,"typo":true}}`,
		`{"imds_lag":"-1s"}`, `{"late_writes":"soon"}`, `{"public_ip_release":"-3m"}`,
	} {
		if err := json.Unmarshal([]byte(bad), &f); err == nil {
			t.Errorf("%s accepted", bad)
		}
	}
}

// TestFaultsCombineNewFields: per-instance faults with global ones, as
// docs/ec2sim.md says.
func TestFaultsCombineNewFields(t *testing.T) {
	g := Faults{IMDSLag: time.Second, LateWrites: 3 * time.Second, PublicIPRelease: time.Minute}
	i := Faults{IMDSLag: 2 * time.Second, LateWrites: time.Second, MixedReads: true, EgressNeedsPublicIP: true,
		LostAnswers: &LostAnswers{Count: 1}}
	c := combine(g, i)
	if c.IMDSLag != 2*time.Second || c.LateWrites != 3*time.Second || c.PublicIPRelease != time.Minute ||
		!c.MixedReads || !c.EgressNeedsPublicIP || c.LostAnswers != nil {
		t.Fatalf("combine = %+v", c)
	}
}

// TestControlAPINewFaults: the new faults over the control API, in the
// issue's JSON forms; GET shows a lost_answers count as it is consumed,
// per instance too.
func TestControlAPINewFaults(t *testing.T) {
	s := simStart(t, Options{Instances: 2, AutoAssignPublicIP: true})
	info := s.Info()
	id := info.Instances[0].InstanceID
	do := func(method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, info.ControlEndpoint+path, strings.NewReader(body))
		simOK(t, err)
		resp, err := http.DefaultClient.Do(req)
		simOK(t, err)
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	steps := []struct {
		method, path, body string
		status             int
		contains           string
	}{
		{"PUT", "/faults", `{"imds_lag":"5s","lost_answers":{"action":"DescribeAddresses","count":2},"late_writes":"2s","mixed_reads":true,"public_ip_release":"3m"}`,
			200, `"lost_answers":{"action":"DescribeAddresses","count":2}`},
		{"PUT", "/faults", `{"lost_answers":{"ratio":0.1}}`, 200, `"lost_answers":{"ratio":0.1}`},
		{"PUT", "/faults", `{"lost_answers":{"action":"DescribeAddresses"}}`, 400, `want \"count\" or \"ratio\"`},
		{"PUT", "/faults", `{"lost_answers":{"count":1,"mode":"sometimes"}}`, 400, `"error"`},
		{"PUT", "/faults", `{"imds_lag":"5s","lost_answers":{"action":"DescribeAddresses","count":2},"late_writes":"2s","mixed_reads":true,"public_ip_release":"3m"}`,
			200, `"imds_lag":"5s"`},
		{"PUT", "/instances/" + id + "/faults", `{"egress_needs_public_ip":true,"lost_answers":{"count":1,"mode":"hang"}}`, 200, `"egress_needs_public_ip":true`},
		{"GET", "/instances/" + id + "/faults", "", 200, `"lost_answers":{"count":1,"mode":"hang"}`},
		{"GET", "/instances/i-00000000000000000/faults", "", 404, `"error"`},
		{"GET", "/instances/" + id, "", 200, `"public_ip":"198.18.`},
		{"GET", "/instances/i-00000000000000000", "", 404, `"error"`},
	}
	for _, st := range steps {
		code, body := do(st.method, st.path, st.body)
		if code != st.status || !strings.Contains(body, st.contains) {
			t.Fatalf("%s %s %s: %d %s (want %d containing %s)", st.method, st.path, st.body, code, body, st.status, st.contains)
		}
	}
	// The operator's DescribeAddresses consumes the global count.
	_, err := simClient(t, s, "AKIDOPERATOR").DescribeAddresses(context.Background(), &ec2.DescribeAddressesInput{})
	if err == nil {
		t.Fatal("a lost answer arrived")
	}
	if code, body := do("GET", "/faults", ""); code != 200 || !strings.Contains(body, `"lost_answers":{"action":"DescribeAddresses","count":1}`) {
		t.Fatalf("GET /faults after one lost answer: %d %s", code, body)
	}
	if code, body := do("DELETE", "/faults", ""); code != 200 || !strings.Contains(body, "cleared") {
		t.Fatalf("DELETE /faults: %d %s", code, body)
	}
	if code, body := do("GET", "/instances/"+id+"/faults", ""); code != 200 || strings.TrimSpace(body) != "{}" {
		t.Fatalf("instance faults after DELETE /faults: %d %s", code, body)
	}
}
