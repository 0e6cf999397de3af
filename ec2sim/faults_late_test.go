package ec2sim

import (
	"context"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// lateLag is long enough that a check made right after an answer runs
// before the write lands, on any machine.
const lateLag = 2 * time.Second

// waitFor polls cond for up to 10 s plus lateLag.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10*time.Second + lateLag)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: never happened", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestFaultLateWrites: the answer is as usual, the write lands late_writes
// after it, and events and tag history say when it landed and that it
// was late.
func TestFaultLateWrites(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	i1, i2, alloc := info.Instances[0].InstanceID, info.Instances[1].InstanceID, info.EIPs[0].AllocationID
	c1 := simInstanceClient(t, s, i1)
	simOK(t, s.SetInstanceFaults(i1, Faults{LateWrites: lateLag}))

	_, err := c1.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc},
		Tags: []types.Tag{{Key: aws.String("eipd:holder"), Value: aws.String(i1)}}})
	simOK(t, err)
	out, err := c1.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(i1)})
	simOK(t, err)
	answered := time.Now()
	promised := aws.ToString(out.AssociationId)
	if v, _ := s.Address(alloc); v.InstanceID != "" || v.Tags["eipd:holder"] != "" || len(s.Events()) != 0 {
		t.Fatalf("writes landed with their answers: %+v, events %+v", v, s.Events())
	}
	// Another caller's writes are not late.
	_, err = simInstanceClient(t, s, i2).CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{i2},
		Tags: []types.Tag{{Key: aws.String("eipd:state"), Value: aws.String("standby")}}})
	simOK(t, err)
	if v, _ := s.Instance(i2); v.Tags["eipd:state"] != "standby" {
		t.Fatalf("an unfaulted caller's write is late: %+v", v.Tags)
	}

	waitFor(t, "the late association", func() bool { v, _ := s.Address(alloc); return v.InstanceID == i1 })
	if time.Since(answered) < lateLag-100*time.Millisecond {
		t.Fatalf("landed %v after the answer, late_writes is %v", time.Since(answered), lateLag)
	}
	v, _ := s.Address(alloc)
	if v.AssociationID != promised || v.Tags["eipd:holder"] != i1 {
		t.Fatalf("landed %+v, the answer promised %s", v, promised)
	}
	ev := s.Events()
	if len(ev) != 1 || !ev[0].Late || ev[0].AssociationID != promised || ev[0].Caller != i1 ||
		ev[0].Time.Sub(ev[0].AcceptedAt) < lateLag {
		t.Fatalf("events %+v: want one late associate landing %v after it was accepted", ev, lateLag)
	}
	h := s.TagHistory(alloc)
	if len(h) != 1 || !h[0].Late || h[0].Time.Sub(h[0].AcceptedAt) < lateLag || h[0].Caller != i1 {
		t.Fatalf("tag history %+v", h)
	}
	if h := s.TagHistory(i2); len(h) != 1 || h[0].Late || !h[0].AcceptedAt.IsZero() {
		t.Fatalf("an immediate write is marked late: %+v", h)
	}
}

// TestFaultLateWritesRace is sebdah/aws-ec2-assign-elastic-ip#24: two
// AssociateAddress calls with AllowReassociation=false are both answered
// 200 and only the first to land takes effect. Calls are validated
// against the true state when they arrive, so a pending write is not
// seen; a DisassociateAddress whose association ID is stale by the time
// it lands has no effect.
func TestFaultLateWritesRace(t *testing.T) {
	ctx := context.Background()
	s := simStart(t, Options{Instances: 2})
	info := s.Info()
	i1, i2, alloc := info.Instances[0].InstanceID, info.Instances[1].InstanceID, info.EIPs[0].AllocationID
	c1, c2 := simInstanceClient(t, s, i1), simInstanceClient(t, s, i2)
	s.SetFaults(Faults{LateWrites: lateLag})

	claim := func(c *ec2.Client, id string) string {
		out, err := c.AssociateAddress(ctx, &ec2.AssociateAddressInput{AllocationId: aws.String(alloc), InstanceId: aws.String(id),
			AllowReassociation: aws.Bool(false)})
		simOK(t, err)
		return aws.ToString(out.AssociationId)
	}
	id1, id2 := claim(c1, i1), claim(c2, i2)
	if id1 == id2 {
		t.Fatalf("both claims answered %s", id1)
	}
	// Not landed yet: the promised ID is not known to a call arriving now.
	_, err := c1.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(id1)})
	simWantCode(t, err, "InvalidAssociationID.NotFound")

	waitFor(t, "both claims landing", func() bool { return len(s.Events()) == 2 })
	v, _ := s.Address(alloc)
	ev := s.Events()
	if v.InstanceID != i1 || v.AssociationID != id1 {
		t.Fatalf("after the race %+v, want the first claim's %s on %s", v, id1, i1)
	}
	if ev[0].Action != "associate" || ev[1].Action != "late-dropped" || ev[1].Caller != i2 || ev[1].To != i2 ||
		ev[1].From != i1 || ev[1].AssociationID != id2 || !ev[1].Late {
		t.Fatalf("events %+v", ev)
	}
	_, err = c2.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(id2)})
	simWantCode(t, err, "InvalidAssociationID.NotFound")

	// A disassociation that lands after the EIP moved on has no effect.
	_, err = c1.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: aws.String(id1)})
	simOK(t, err)
	simOK(t, s.Associate(alloc, i2))
	waitFor(t, "the late disassociation", func() bool { return len(s.Events()) == 4 })
	ev = s.Events()
	if last := ev[3]; last.Action != "late-dropped" || last.AssociationID != id1 || last.Caller != i1 {
		t.Fatalf("events %+v", ev)
	}
	if v, _ := s.Address(alloc); v.InstanceID != i2 {
		t.Fatalf("a stale late disassociation took effect: %+v", v)
	}
}

// TestFaultLateWritesDroppedOnClose: Close does not wait for pending late
// writes, leaks no goroutine (goleak in TestMain) and applies nothing
// afterwards.
func TestFaultLateWritesDroppedOnClose(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := Start(ctx, Options{Instances: 1})
	simOK(t, err)
	info := s.Info()
	s.SetFaults(Faults{LateWrites: time.Hour})
	c := simClient(t, s, "AKIDOPERATOR")
	_, err = c.AssociateAddress(context.Background(), &ec2.AssociateAddressInput{AllocationId: aws.String(info.EIPs[0].AllocationID),
		InstanceId: aws.String(info.Instances[0].InstanceID)})
	simOK(t, err)
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		simOK(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close waited for a pending late write")
	}
	if v, _ := s.Address(info.EIPs[0].AllocationID); v.InstanceID != "" {
		t.Fatalf("a late write landed after Close: %+v", v)
	}
}

// TestFaultLateWritesSameTarget: an AssociateAddress that lands where the
// EIP already is (someone put it there meanwhile) still gives it the
// association ID its caller was answered.
func TestFaultLateWritesSameTarget(t *testing.T) {
	s := simStart(t, Options{Instances: 1})
	info := s.Info()
	i1, alloc := info.Instances[0].InstanceID, info.EIPs[0].AllocationID
	simOK(t, s.SetInstanceFaults(i1, Faults{LateWrites: 500 * time.Millisecond}))
	out, err := simInstanceClient(t, s, i1).AssociateAddress(context.Background(), &ec2.AssociateAddressInput{
		AllocationId: aws.String(alloc), InstanceId: aws.String(i1)})
	simOK(t, err)
	simOK(t, s.Associate(alloc, i1))
	waitFor(t, "the late association", func() bool { return len(s.Events()) == 2 })
	v, _ := s.Address(alloc)
	ev := s.Events()[1]
	if v.AssociationID != aws.ToString(out.AssociationId) || ev.Action != "move" || ev.From != i1 || ev.To != i1 || !ev.Late {
		t.Fatalf("state %+v, event %+v: want the answered ID %s", v, ev, aws.ToString(out.AssociationId))
	}
}

// TestFaultLateWritesAfterLostAnswer: the late_writes delay counts from
// when the caller gave up on an answer that never came.
func TestFaultLateWritesAfterLostAnswer(t *testing.T) {
	const late = 500 * time.Millisecond
	s := simStart(t, Options{Instances: 1})
	info := s.Info()
	i1, alloc := info.Instances[0].InstanceID, info.EIPs[0].AllocationID
	simOK(t, s.SetInstanceFaults(i1, Faults{LateWrites: late, LostAnswers: &LostAnswers{Action: "CreateTags", Count: 1, Mode: LostHang}}))
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	_, err := simInstanceClient(t, s, i1).CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc},
		Tags: []types.Tag{{Key: aws.String("eipd:term"), Value: aws.String("3")}}})
	cancel()
	gaveUp := time.Now()
	if err == nil {
		t.Fatal("a lost answer arrived")
	}
	waitFor(t, "the late tag", func() bool { return len(s.TagHistory(alloc)) == 1 })
	h := s.TagHistory(alloc)[0]
	if !h.Late || h.Time.Before(gaveUp.Add(late-50*time.Millisecond)) {
		t.Fatalf("tag write %+v: want it %v after the caller gave up at %v", h, late, gaveUp)
	}
}
