package asghook

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go"
	"go.uber.org/goleak"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/leader"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeASG struct {
	mu    sync.Mutex
	calls []autoscaling.CompleteLifecycleActionInput
	errs  []error // returned in order; nil after
}

func (f *fakeASG) CompleteLifecycleAction(_ context.Context, in *autoscaling.CompleteLifecycleActionInput, _ ...func(*autoscaling.Options)) (*autoscaling.CompleteLifecycleActionOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, *in)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return &autoscaling.CompleteLifecycleActionOutput{}, nil
}

type fakeEC2 struct {
	group string // "" = no tag
	err   error
	calls int
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	f.calls++
	if f.err != nil {
		return nil, f.err
	}
	tags := []types.Tag{{Key: aws.String("eipd:group"), Value: aws.String("web")}}
	if f.group != "" {
		tags = append(tags, types.Tag{Key: aws.String(GroupNameTag), Value: aws.String(f.group)})
	}
	return &ec2.DescribeInstancesOutput{Reservations: []types.Reservation{{Instances: []types.Instance{{InstanceId: aws.String(in.InstanceIds[0]), Tags: tags}}}}}, nil
}

type fakeNotices struct {
	kinds []eip.NoticeKind
	calls int
}

func (f *fakeNotices) Notices(context.Context) ([]eip.Notice, error) {
	f.calls++
	var ns []eip.Notice
	for _, k := range f.kinds {
		ns = append(ns, eip.Notice{Kind: k})
	}
	return ns, nil
}

type fakeLoop struct {
	mu sync.Mutex
	s  leader.Status
}

func (f *fakeLoop) Status() leader.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.s
}

func (f *fakeLoop) set(draining string, roles ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.s = leader.Status{InstanceID: "i-self", Draining: draining}
	for i, r := range roles {
		f.s.EIPs = append(f.s.EIPs, leader.EIPStatus{AllocationID: "eipalloc-" + string(rune('a'+i)), Role: r})
	}
}

type rig struct {
	now     time.Time
	asg     *fakeASG
	ec2     *fakeEC2
	notices *fakeNotices
	loop    *fakeLoop
	c       *Completer
}

func newRig() *rig {
	r := &rig{now: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), asg: &fakeASG{}, ec2: &fakeEC2{group: "web-asg"},
		notices: &fakeNotices{}, loop: &fakeLoop{}}
	r.c = New(Config{Hook: "eipd-drain", InstanceID: "i-self", Now: func() time.Time { return r.now }}, r.asg, r.ec2, r.notices, r.loop, nil)
	return r
}

// step advances the clock by d and takes one step.
func (r *rig) step(d time.Duration) bool {
	r.now = r.now.Add(d)
	return r.c.Step(context.Background())
}

func TestCompletesOnceAfterHandoff(t *testing.T) {
	r := newRig()
	r.loop.set("", leader.RoleHolder)
	for i := 0; i < 3; i++ {
		if r.step(time.Second) {
			t.Fatal("finished while not draining")
		}
	}
	if r.notices.calls != 0 || len(r.asg.calls) != 0 {
		t.Fatalf("not draining, yet notices read %d times, %d completions", r.notices.calls, len(r.asg.calls))
	}
	// The notice arrives: the loop drains while it still holds the EIP.
	r.notices.kinds = []eip.NoticeKind{eip.NoticeASGTerminating}
	r.loop.set(leader.ReasonHandoffDraining, leader.RoleHolder)
	for i := 0; i < 5; i++ {
		if r.step(time.Second) {
			t.Fatal("finished while holding")
		}
	}
	if len(r.asg.calls) != 0 {
		t.Fatalf("completed while holding an EIP: %+v", r.asg.calls)
	}
	// Unverified still counts as holding.
	r.loop.set(leader.ReasonHandoffDraining, leader.RoleUnverified)
	if r.step(time.Second) || len(r.asg.calls) != 0 {
		t.Fatal("completed while unverified")
	}
	// Handed off.
	r.loop.set(leader.ReasonHandoffDraining, leader.RoleDraining)
	if !r.step(time.Second) {
		t.Fatal("not finished after the handoff")
	}
	want := autoscaling.CompleteLifecycleActionInput{AutoScalingGroupName: aws.String("web-asg"), LifecycleHookName: aws.String("eipd-drain"),
		InstanceId: aws.String("i-self"), LifecycleActionResult: aws.String("CONTINUE")}
	if len(r.asg.calls) != 1 || *r.asg.calls[0].AutoScalingGroupName != *want.AutoScalingGroupName || *r.asg.calls[0].LifecycleHookName != *want.LifecycleHookName ||
		*r.asg.calls[0].InstanceId != *want.InstanceId || *r.asg.calls[0].LifecycleActionResult != "CONTINUE" {
		t.Fatalf("completions %+v", r.asg.calls)
	}
}

func TestOtherDrainsAreNotOurs(t *testing.T) {
	r := newRig()
	r.notices.kinds = []eip.NoticeKind{eip.NoticeSpotInterruption}
	r.loop.set(leader.ReasonHandoffDraining, leader.RoleDraining)
	for i := 0; i < 20; i++ {
		if r.step(time.Second) {
			t.Fatal("finished on a spot interruption")
		}
	}
	if len(r.asg.calls) != 0 {
		t.Fatalf("completed a hook for a spot interruption")
	}
	// Notices are read at most every NoticeEvery (5s), not every step.
	if r.notices.calls < 3 || r.notices.calls > 5 {
		t.Errorf("notices read %d times in 20s", r.notices.calls)
	}
	// A manual handoff is not a lifecycle drain at all.
	r2 := newRig()
	r2.notices.kinds = []eip.NoticeKind{eip.NoticeASGTerminating}
	r2.loop.set(leader.ReasonHandoffManual)
	if r2.step(time.Second) || r2.notices.calls != 0 {
		t.Error("reacted to a manual handoff")
	}
}

func TestDryRunDoesNotComplete(t *testing.T) {
	r := newRig()
	r.c.cfg.DryRun = true
	r.notices.kinds = []eip.NoticeKind{eip.NoticeASGTerminating}
	r.loop.set(leader.ReasonHandoffDraining)
	if !r.step(time.Second) || len(r.asg.calls) != 0 {
		t.Fatalf("dry run: finished=%v, %d completions", false, len(r.asg.calls))
	}
}

func TestNoGroupTagGivesUp(t *testing.T) {
	r := newRig()
	r.ec2.group = ""
	r.notices.kinds = []eip.NoticeKind{eip.NoticeASGTerminating}
	r.loop.set(leader.ReasonHandoffDraining)
	if !r.step(time.Second) {
		t.Fatal("kept trying without an Auto Scaling group")
	}
	if len(r.asg.calls) != 0 {
		t.Fatal("completed without a group")
	}
}

func TestRetriesThenStopsOnValidationError(t *testing.T) {
	r := newRig()
	r.notices.kinds = []eip.NoticeKind{eip.NoticeASGTerminating}
	r.loop.set(leader.ReasonHandoffDraining)
	denied := &smithy.GenericAPIError{Code: "AccessDenied", Message: "not authorized to perform: autoscaling:CompleteLifecycleAction"}
	r.asg.errs = []error{denied, denied}
	if r.step(time.Second) || len(r.asg.calls) != 1 {
		t.Fatalf("first try: %d calls", len(r.asg.calls))
	}
	// RetryEvery (5s) paces the retries.
	for i := 0; i < 4; i++ {
		r.step(time.Second)
	}
	if len(r.asg.calls) != 1 {
		t.Fatalf("retried before RetryEvery: %d calls", len(r.asg.calls))
	}
	r.step(time.Second)
	if len(r.asg.calls) != 2 {
		t.Fatalf("no retry after RetryEvery: %d calls", len(r.asg.calls))
	}
	r.asg.errs = []error{&smithy.GenericAPIError{Code: "ValidationError", Message: "No active Lifecycle Action found with instance ID i-self"}}
	if !r.step(5*time.Second) || len(r.asg.calls) != 3 {
		t.Fatalf("ValidationError should end it: %d calls", len(r.asg.calls))
	}
	if r.ec2.calls != 1 {
		t.Errorf("the group was read %d times, want once", r.ec2.calls)
	}
	// DescribeInstances failing is retried too.
	r2 := newRig()
	r2.ec2.err = errors.New("throttled")
	r2.notices.kinds = []eip.NoticeKind{eip.NoticeASGTerminating}
	r2.loop.set(leader.ReasonHandoffDraining)
	if r2.step(time.Second) || len(r2.asg.calls) != 0 {
		t.Fatal("completed without the group")
	}
	r2.ec2.err = nil
	if !r2.step(6*time.Second) || len(r2.asg.calls) != 1 {
		t.Fatalf("no completion once the group was readable: %d", len(r2.asg.calls))
	}
}

// TestRunEndsWithContext: Run returns when ctx ends, and after completing.
func TestRunEndsWithContext(t *testing.T) {
	loop := &fakeLoop{}
	loop.set("")
	c := New(Config{Hook: "h", InstanceID: "i-self", Every: 10 * time.Millisecond}, &fakeASG{}, &fakeEC2{group: "g"}, &fakeNotices{}, loop, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Run(ctx); err != nil {
		t.Fatal(err)
	}
	asg := &fakeASG{}
	loop.set(leader.ReasonHandoffDraining)
	c = New(Config{Hook: "h", InstanceID: "i-self", Every: 10 * time.Millisecond}, asg, &fakeEC2{group: "g"},
		&fakeNotices{kinds: []eip.NoticeKind{eip.NoticeASGTerminating}}, loop, nil)
	done := make(chan error, 1)
	go func() { done <- c.Run(context.Background()) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after completing")
	}
	if len(asg.calls) != 1 {
		t.Errorf("%d completions", len(asg.calls))
	}
}
