package leader

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// testTiming is docs/design.md (Defaults) plus the rank step: the table below reasons in
// these units.
var testTiming = Timing{
	RenewInterval: 3 * time.Second,
	LeaseDuration: 10 * time.Second,
	MaxClockSkew:  time.Second,
	HolderPoll:    10 * time.Second,
	StandbyPoll:   60 * time.Second,
	ProbeInterval: time.Second,
	RankStep:      300 * time.Millisecond,
	TargetRetry:   3 * time.Second,
}

var (
	t0     = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	selfID = eip.Identity{InstanceID: "i-self", Region: "eu-west-1", AvailabilityZone: "eu-west-1a",
		NetworkInterfaceID: "eni-self", PrivateIP: "10.0.0.1"}
)

func ago(d time.Duration) time.Time { return t0.Add(-d) }

func target(id string, held int) Target {
	return Target{Instance: eip.Instance{InstanceID: id, State: "running", NetworkInterfaceID: "eni-" + id[2:],
		PrivateIP: "10.0.1." + fmt.Sprint(len(id)), EIPDState: eip.StateReady}, Held: held, Slot: "10.0.1." + fmt.Sprint(len(id))}
}

// holderObs is a holder in good standing: lease renewed a second ago, read
// two seconds ago, holding for a minute.
func holderObs() Observation {
	return Observation{
		Now: t0, Self: selfID, Health: health.Up,
		Address: eip.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10", AssociationID: "eipassoc-1",
			InstanceID: "i-self", NetworkInterfaceID: "eni-self", PrivateIP: "10.0.0.1",
			Lease: eip.Lease{Holder: "i-self", Term: 5, Renewed: ago(time.Second)}},
		AddressAt: ago(2 * time.Second), ReadTriedAt: ago(2 * time.Second),
		Holding: true, Term: 5, HolderSince: ago(time.Minute),
		VerifiedAt: ago(time.Second),
		Held:       1, MembersKnown: true, FreeSlot: "10.0.0.1",
	}
}

// standbyObs is a standby watching a healthy holder i-a with a fresh lease.
func standbyObs() Observation {
	return Observation{
		Now: t0, Self: selfID, Health: health.Up,
		Address: eip.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10", AssociationID: "eipassoc-9",
			InstanceID: "i-a", NetworkInterfaceID: "eni-a", PrivateIP: "10.0.0.2",
			Lease: eip.Lease{Holder: "i-a", Term: 5, Renewed: ago(time.Second)}},
		AddressAt: ago(time.Second), ReadTriedAt: ago(time.Second),
		LeaseStamp: ago(time.Second), LeaseSeenAt: ago(time.Second),
		MembersKnown: true, FreeSlot: "10.0.0.1", PeerProbed: true,
	}
}

// claimReady is a standby that meets every takeover condition: expired
// lease, holder unreachable, own health up, rank delay long passed and a
// read after it.
func claimReady() Observation {
	o := standbyObs()
	o.Address.Lease.Renewed = ago(time.Minute)
	o.LeaseStamp = o.Address.Lease.Renewed
	o.PeerDown = true
	o.RankSince = ago(5 * time.Second)
	return o
}

type decideCase struct {
	name string
	o    Observation
	want Action
	// check, when set, looks at the rest of the decision.
	check func(t *testing.T, d Decision)
}

func runDecideCases(t *testing.T, cases []decideCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := Decide(testTiming, tc.o)
			if d.Action != tc.want {
				t.Fatalf("Decide = %v (%q), want %v", d.Action, d.Why, tc.want)
			}
			if d.Why == "" {
				t.Errorf("decision %v has no Why", d.Action)
			}
			if tc.check != nil {
				tc.check(t, d)
			}
		})
	}
}

func with(o Observation, f func(*Observation)) Observation {
	f(&o)
	return o
}

func wantLease(want eip.Lease) func(t *testing.T, d Decision) {
	return func(t *testing.T, d Decision) {
		t.Helper()
		g := d.Lease
		if g.Holder != want.Holder || g.Term != want.Term || !g.Renewed.Equal(want.Renewed) ||
			g.Reason != want.Reason || !g.Decided.Equal(want.Decided) {
			t.Errorf("lease = %+v, want %+v", g, want)
		}
	}
}

func mayRenew(want bool) func(t *testing.T, d Decision) {
	return func(t *testing.T, d Decision) {
		t.Helper()
		if d.MayRenew != want {
			t.Errorf("MayRenew = %v, want %v", d.MayRenew, want)
		}
	}
}

func TestDecideHolder(t *testing.T) {
	runDecideCases(t, []decideCase{
		{name: "confirmed holder holds and may renew", o: holderObs(), want: Hold, check: mayRenew(true)},
		{name: "holder poll due", o: with(holderObs(), func(o *Observation) {
			o.AddressAt, o.ReadTriedAt = ago(10*time.Second), ago(10*time.Second)
		}), want: Refresh, check: mayRenew(true)},
		{name: "holder poll after a failed read waits a renew interval", o: with(holderObs(), func(o *Observation) {
			o.AddressAt, o.ReadTriedAt, o.ReadError = ago(5*time.Second), ago(2*time.Second), true
		}), want: Hold},
		{name: "holder poll after a failed read retries after a renew interval", o: with(holderObs(), func(o *Observation) {
			o.AddressAt, o.ReadTriedAt, o.ReadError = ago(5*time.Second), ago(3*time.Second), true
		}), want: Refresh},
		{name: "later term of another holder steps down", o: with(holderObs(), func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 6, Renewed: ago(time.Second)}
		}), want: StepDown},
		{name: "later term in a read that predates the claim is ignored", o: with(holderObs(), func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 6, Renewed: ago(time.Second)}
			o.HolderSince = ago(time.Second)
		}), want: Hold},
		{name: "later term with a failed read is ignored", o: with(holderObs(), func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 6, Renewed: ago(time.Second)}
			o.ReadError = true
		}), want: Hold},
		{name: "moved away at our term steps down", o: with(holderObs(), func(o *Observation) {
			o.Address.AssociationID, o.Address.NetworkInterfaceID, o.Address.PrivateIP, o.Address.InstanceID =
				"eipassoc-2", "eni-a", "10.0.0.2", "i-a"
		}), want: StepDown, check: func(t *testing.T, d Decision) {
			if !strings.Contains(d.Why, "moved to i-a") {
				t.Errorf("why %q", d.Why)
			}
		}},
		{name: "disassociated under a fit holder: associate again, fenced, next term", o: with(holderObs(), func(o *Observation) {
			o.Address.AssociationID, o.Address.NetworkInterfaceID, o.Address.PrivateIP, o.Address.InstanceID = "", "", "", ""
		}), want: Claim, check: func(t *testing.T, d Decision) {
			wantLease(eip.Lease{Holder: "i-self", Term: 6, Renewed: t0, Reason: ReasonTakeoverUnassociated, Decided: t0})(t, d)
			if d.Slot != "10.0.0.1" {
				t.Errorf("slot %q", d.Slot)
			}
		}},
		{name: "disassociated under an unhealthy holder: step down, saying so", o: with(holderObs(), func(o *Observation) {
			o.Address.AssociationID, o.Address.NetworkInterfaceID, o.Address.PrivateIP, o.Address.InstanceID = "", "", "", ""
			o.Health = health.Down
		}), want: StepDown, check: func(t *testing.T, d Decision) {
			if !strings.Contains(d.Why, "disassociated") || strings.Contains(d.Why, "moved") {
				t.Errorf("why %q should say disassociated, not moved", d.Why)
			}
		}},
		{name: "on another private IP of our ENI is still ours", o: with(holderObs(), func(o *Observation) {
			o.Address.PrivateIP = "10.0.0.99"
		}), want: Hold},
		{name: "moved away with an older term, long settled, steps down", o: with(holderObs(), func(o *Observation) {
			o.Address.AssociationID, o.Address.NetworkInterfaceID, o.Address.InstanceID = "eipassoc-2", "eni-a", "i-a"
			o.Address.Lease.Term = 4
			o.HolderSince = ago(12*time.Second + time.Millisecond) // read just over LeaseDuration after the claim
		}), want: StepDown},
		{name: "lagged read showing the pre-claim state does not step down", o: with(holderObs(), func(o *Observation) {
			// We claimed 3s ago at term 5; the read 1s ago still shows
			// the old association and term 4 (Describe* lag).
			o.Address.AssociationID, o.Address.NetworkInterfaceID, o.Address.InstanceID = "eipassoc-0", "eni-a", "i-a"
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 4, Renewed: ago(20 * time.Second)}
			o.HolderSince, o.AddressAt, o.ReadTriedAt = ago(3*time.Second), ago(time.Second), ago(time.Second)
			o.VerifiedAt = ago(3 * time.Second)
		}), want: Hold, check: mayRenew(true)},
		{name: "lagged read exactly LeaseDuration after the claim is still trusted to lag", o: with(holderObs(), func(o *Observation) {
			o.Address.AssociationID, o.Address.NetworkInterfaceID, o.Address.InstanceID = "", "", ""
			o.Address.Lease.Term = 4
			o.HolderSince, o.AddressAt, o.ReadTriedAt = ago(11*time.Second), ago(time.Second), ago(time.Second)
		}), want: Hold},
		{name: "our association with another holder's name in the tags: repair", o: with(holderObs(), func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 5, Renewed: ago(time.Second)}
		}), want: Repair, check: func(t *testing.T, d Decision) {
			wantLease(eip.Lease{Holder: "i-self", Term: 5, Renewed: t0})(t, d)
			mayRenew(false)(t, d)
		}},
		{name: "our association with an older term in the tags: repair with ours", o: with(holderObs(), func(o *Observation) {
			o.Address.Lease.Term = 4
		}), want: Repair, check: wantLease(eip.Lease{Holder: "i-self", Term: 5, Renewed: t0})},
		{name: "metadata says the EIP left: no longer trusted, read", o: with(holderObs(), func(o *Observation) {
			o.IMDSLost = true
		}), want: Refresh, check: mayRenew(false)},
	})
}

func TestDecideHolderHandoff(t *testing.T) {
	targets := []Target{target("i-a", 0), target("i-b", 0)}
	seeking := func(f func(*Observation)) Observation {
		return with(holderObs(), f)
	}
	found := func(f func(*Observation)) Observation {
		return with(holderObs(), func(o *Observation) {
			o.Targets, o.TargetsAt = targets, ago(100*time.Millisecond)
			f(o)
		})
	}
	handoffTo := func(id, reason string) func(t *testing.T, d Decision) {
		return func(t *testing.T, d Decision) {
			t.Helper()
			if d.Target == nil || d.Target.InstanceID != id {
				t.Fatalf("target = %+v, want %s", d.Target, id)
			}
			if d.Reason != reason {
				t.Errorf("reason = %q, want %q", d.Reason, reason)
			}
			if d.Blocked {
				t.Error("a handoff with a target is not blocked")
			}
			wantLease(eip.Lease{Holder: id, Term: 6, Renewed: t0, Reason: reason, Decided: t0})(t, d)
		}
	}
	wantReason := func(reason string, blocked bool) func(t *testing.T, d Decision) {
		return func(t *testing.T, d Decision) {
			t.Helper()
			if d.Reason != reason && d.Action == SeekTargets {
				t.Errorf("reason = %q, want %q", d.Reason, reason)
			}
			if d.Blocked != blocked {
				t.Errorf("blocked = %v, want %v", d.Blocked, blocked)
			}
			if d.Target != nil {
				t.Errorf("unexpected target %+v", d.Target)
			}
		}
	}
	runDecideCases(t, []decideCase{
		{name: "health down hands off to the best target", o: found(func(o *Observation) { o.Health = health.Down }),
			want: Handoff, check: handoffTo("i-a", ReasonHandoffUnhealthy)},
		{name: "health unknown is not a reason to leave", o: found(func(o *Observation) { o.Health = health.Unknown }),
			want: Hold},
		{name: "draining hands off", o: found(func(o *Observation) { o.Drain = ReasonHandoffDraining }),
			want: Handoff, check: handoffTo("i-a", ReasonHandoffDraining)},
		{name: "shutdown hands off", o: found(func(o *Observation) { o.Drain = ReasonHandoffShutdown }),
			want: Handoff, check: handoffTo("i-a", ReasonHandoffShutdown)},
		{name: "drain reason wins over health down", o: found(func(o *Observation) {
			o.Drain, o.Health = ReasonHandoffShutdown, health.Down
		}), want: Handoff, check: handoffTo("i-a", ReasonHandoffShutdown)},
		{name: "self in the targets is skipped", o: found(func(o *Observation) {
			o.Drain = ReasonHandoffDraining
			o.Targets = []Target{target("i-self", 0), target("i-b", 0)}
		}), want: Handoff, check: handoffTo("i-b", ReasonHandoffDraining)},
		{name: "manual handoff to any", o: found(func(o *Observation) { o.Drain = ReasonHandoffManual }),
			want: Handoff, check: handoffTo("i-a", ReasonHandoffManual)},
		{name: "manual handoff to a named target", o: found(func(o *Observation) {
			o.Drain, o.ManualTarget = ReasonHandoffManual, "i-b"
		}), want: Handoff, check: handoffTo("i-b", ReasonHandoffManual)},
		{name: "manual handoff to a member that is not ready is blocked", o: found(func(o *Observation) {
			o.Drain, o.ManualTarget = ReasonHandoffManual, "i-c"
		}), want: Hold, check: wantReason("", true)},
		{name: "ManualTarget is ignored for other reasons", o: found(func(o *Observation) {
			o.Drain, o.ManualTarget = ReasonHandoffDraining, "i-b"
		}), want: Handoff, check: handoffTo("i-a", ReasonHandoffDraining)},
		{name: "rebalance moves to a member under the cap", o: found(func(o *Observation) {
			o.Held, o.MaxHold, o.RebalanceFirst = 2, 1, true
			o.LastMove = ago(2 * time.Minute)
			o.Targets = []Target{target("i-a", 1), target("i-b", 0)}
		}), want: Handoff, check: handoffTo("i-b", ReasonHandoffRebalance)},
		{name: "rebalance with every member at the cap keeps the EIP, not blocked", o: found(func(o *Observation) {
			o.Held, o.MaxHold, o.RebalanceFirst = 2, 1, true
			o.LastMove = ago(2 * time.Minute)
			o.Targets = []Target{target("i-a", 1), target("i-b", 1)}
		}), want: Hold, check: wantReason("", false)},
		{name: "at the cap is not a reason to leave", o: found(func(o *Observation) { o.Held, o.MaxHold = 1, 1 }),
			want: Hold},
		{name: "no target list yet seeks targets", o: seeking(func(o *Observation) { o.Health = health.Down }),
			want: SeekTargets, check: wantReason(ReasonHandoffUnhealthy, false)},
		{name: "old empty target list seeks again", o: seeking(func(o *Observation) {
			o.Drain, o.TargetsAt = ReasonHandoffDraining, ago(3*time.Second)
		}), want: SeekTargets, check: wantReason(ReasonHandoffDraining, false)},
		{name: "rebalance seeks targets too", o: seeking(func(o *Observation) { o.Held, o.MaxHold, o.RebalanceFirst, o.LastMove = 3, 2, true, ago(2*time.Minute) }),
			want: SeekTargets, check: wantReason(ReasonHandoffRebalance, false)},
		{name: "recent empty target list: blocked, holding", o: seeking(func(o *Observation) {
			o.Health, o.TargetsAt = health.Down, ago(time.Second)
		}), want: Hold, check: wantReason("", true)},
		{name: "recent empty target list: blocked, still renewing", o: seeking(func(o *Observation) {
			o.Health, o.TargetsAt = health.Down, ago(time.Second)
		}), want: Hold, check: func(t *testing.T, d Decision) {
			wantReason("", true)(t, d)
			mayRenew(true)(t, d)
			if !strings.Contains(d.Why, ReasonHandoffUnhealthy) {
				t.Errorf("why %q does not say why it wants to leave", d.Why)
			}
		}},
		{name: "step down wins over a handoff", o: found(func(o *Observation) {
			o.Health = health.Down
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 7, Renewed: ago(time.Second)}
		}), want: StepDown},
	})
}

func TestDecideStandby(t *testing.T) {
	onSelf := func(f func(*Observation)) Observation {
		return with(standbyObs(), func(o *Observation) {
			o.Address.AssociationID, o.Address.InstanceID, o.Address.NetworkInterfaceID, o.Address.PrivateIP =
				"eipassoc-3", "i-self", "eni-self", "10.0.0.1"
			f(o)
		})
	}
	noClaim := func(t *testing.T, d Decision) {
		t.Helper()
		if d.Eligible {
			t.Error("eligible although a takeover condition fails")
		}
	}
	decided := ago(2 * time.Second)
	runDecideCases(t, []decideCase{
		{name: "first read", o: with(standbyObs(), func(o *Observation) {
			o.AddressAt, o.ReadTriedAt = time.Time{}, time.Time{}
		}), want: Refresh},
		{name: "first read failed recently: wait", o: with(standbyObs(), func(o *Observation) {
			o.AddressAt, o.ReadTriedAt, o.ReadError = time.Time{}, ago(time.Second), true
		}), want: Wait},
		{name: "first read failed a renew interval ago: retry", o: with(standbyObs(), func(o *Observation) {
			o.AddressAt, o.ReadTriedAt, o.ReadError = time.Time{}, ago(3*time.Second), true
		}), want: Refresh},
		{name: "adopt resumes with the stored term", o: onSelf(func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-self", Term: 5, Renewed: ago(30 * time.Second),
				Reason: ReasonHandoffUnhealthy, Decided: decided}
		}), want: Adopt, check: wantLease(eip.Lease{Holder: "i-self", Term: 5, Renewed: t0,
			Reason: ReasonHandoffUnhealthy, Decided: decided})},
		{name: "adopt with the private IP empty in the read", o: onSelf(func(o *Observation) {
			o.Address.PrivateIP = ""
			o.Address.Lease = eip.Lease{Holder: "i-self", Term: 5}
		}), want: Adopt, check: wantLease(eip.Lease{Holder: "i-self", Term: 5, Renewed: t0})},
		{name: "adopt after a move by hand takes a new term", o: onSelf(func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 5, Renewed: ago(time.Second),
				Reason: ReasonTakeoverStale, Decided: decided}
		}), want: Adopt, check: wantLease(eip.Lease{Holder: "i-self", Term: 6, Renewed: t0})},
		{name: "moved here by hand: wait while the lease's holder still says it holds it", o: onSelf(func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 5, Renewed: ago(time.Second)}
			o.HolderConfirmed = true
		}), want: Wait},
		{name: "moved here by hand: wait until the lease's holder was probed after the read", o: onSelf(func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 5, Renewed: ago(time.Second)}
			o.PeerProbed = false
		}), want: Wait},
		{name: "on this instance, its lease's holder let go after the read: read the handoff's lease first", o: onSelf(func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 5, Renewed: ago(time.Second)}
			o.HolderDenies, o.HolderLetGoAt = true, o.AddressAt.Add(time.Millisecond)
		}), want: Refresh},
		{name: "on this instance, its lease's holder let go after the read, a read just tried (dropped as lagging): wait a probe interval", o: onSelf(func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 5, Renewed: ago(time.Second)}
			o.HolderDenies, o.HolderLetGoAt = true, o.AddressAt.Add(time.Millisecond)
			o.ReadTriedAt = ago(100 * time.Millisecond)
		}), want: Wait},
		{name: "on this instance, its lease's holder is handing it off: wait for its lease", o: onSelf(func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 5, Renewed: ago(time.Second)}
			o.HolderDenies, o.HolderHandingOff = true, true
		}), want: Wait},
		{name: "on this instance, its lease's holder handing it off but the lease stale: adopt", o: onSelf(func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 5, Renewed: ago(time.Minute)}
			o.LeaseStamp = o.Address.Lease.Renewed
			o.HolderDenies, o.HolderHandingOff = true, true
		}), want: Adopt},
		{name: "on this instance, its lease's holder had let go when the read started: adopt with a new term", o: onSelf(func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 5, Renewed: ago(time.Second)}
			o.HolderDenies, o.HolderLetGoAt = true, o.AddressAt.Add(-time.Millisecond)
		}), want: Adopt, check: wantLease(eip.Lease{Holder: "i-self", Term: 6, Renewed: t0})},
		{name: "moved here by hand, the old lease stale: adopt without waiting", o: onSelf(func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-a", Term: 5, Renewed: ago(time.Minute)}
			o.LeaseStamp = o.Address.Lease.Renewed
			o.HolderConfirmed, o.PeerProbed = true, false
		}), want: Adopt},
		{name: "adopt with invalid tags takes a new term", o: onSelf(func(o *Observation) {
			o.Address.Lease = eip.Lease{Holder: "i-self", Term: 0, Invalid: []string{eip.TagTerm}}
		}), want: Adopt, check: wantLease(eip.Lease{Holder: "i-self", Term: 1, Renewed: t0})},
		{name: "adopt even when unhealthy: the EIP is already here", o: onSelf(func(o *Observation) {
			o.Health = health.Down
		}), want: Adopt},
		{name: "adopt on a secondary private IP of our ENI", o: onSelf(func(o *Observation) {
			o.Address.PrivateIP = "10.0.0.50"
		}), want: Adopt},
		{name: "no claim before the member list (priorities) is known", o: with(claimReady(), func(o *Observation) {
			o.MembersKnown = false
		}), want: Wait, check: noClaim},
		{name: "stale but no free private IP here: stays put, says so", o: with(claimReady(), func(o *Observation) {
			o.FreeSlot = ""
		}), want: Wait, check: func(t *testing.T, d Decision) {
			noClaim(t, d)
			if !d.NoFreeSlot {
				t.Error("NoFreeSlot not set")
			}
		}},
		{name: "no adoption on a failed read", o: onSelf(func(o *Observation) {
			o.ReadError, o.ReadTriedAt = true, t0
		}), want: Wait},
		{name: "fresh lease waits", o: standbyObs(), want: Wait, check: noClaim},
		{name: "fresh lease, standby poll due", o: with(standbyObs(), func(o *Observation) {
			o.AddressAt, o.ReadTriedAt = ago(60*time.Second), ago(60*time.Second)
		}), want: Refresh, check: noClaim},
		{name: "fresh lease, holder unreachable: wait for the lease to run out", o: with(standbyObs(), func(o *Observation) {
			o.PeerDown = true
		}), want: Wait, check: noClaim},
		{name: "fresh lease, holder unreachable, lease runs out now: read", o: with(standbyObs(), func(o *Observation) {
			o.PeerDown = true
			o.Address.Lease.Renewed = ago(11 * time.Second) // exactly LeaseDuration+skew: not yet stale
			o.LeaseStamp = o.Address.Lease.Renewed
			o.AddressAt, o.ReadTriedAt = ago(time.Second), ago(time.Second)
		}), want: Refresh, check: noClaim},
		{name: "fresh lease, holder unreachable, lease runs out but just read", o: with(standbyObs(), func(o *Observation) {
			o.PeerDown = true
			o.Address.Lease.Renewed = ago(11 * time.Second)
			o.LeaseStamp = o.Address.Lease.Renewed
			o.AddressAt, o.ReadTriedAt = ago(500*time.Millisecond), ago(500*time.Millisecond)
		}), want: Wait, check: noClaim},
		{name: "read error with everything else ready: never claim", o: with(claimReady(), func(o *Observation) {
			o.ReadError, o.ReadTriedAt = true, ago(time.Second)
		}), want: Wait, check: noClaim},
		{name: "read error retried at a calm pace, still no claim", o: with(claimReady(), func(o *Observation) {
			o.ReadError, o.ReadTriedAt, o.AddressAt = true, ago(3*time.Second), ago(5*time.Second)
		}), want: Refresh, check: noClaim},
		{name: "stale but own health unknown", o: with(claimReady(), func(o *Observation) { o.Health = health.Unknown }),
			want: Wait, check: noClaim},
		{name: "stale but own health down", o: with(claimReady(), func(o *Observation) { o.Health = health.Down }),
			want: Wait, check: noClaim},
		{name: "stale but own health down: re-read at the renew interval until a fresh lease shows", o: with(claimReady(), func(o *Observation) {
			o.Health = health.Down
			o.AddressAt, o.ReadTriedAt = ago(3*time.Second), ago(3*time.Second)
		}), want: Refresh, check: noClaim},
		{name: "stale, the holder answers as healthy: re-read at the renew interval", o: with(claimReady(), func(o *Observation) {
			o.PeerDown = false
			o.AddressAt, o.ReadTriedAt = ago(3*time.Second), ago(3*time.Second)
		}), want: Refresh, check: noClaim},
		{name: "stale but draining", o: with(claimReady(), func(o *Observation) { o.Drain = ReasonHandoffDraining }),
			want: Wait, check: noClaim},
		{name: "stale but the holder answers as healthy (daemon dead, HAProxy serving)", o: with(claimReady(), func(o *Observation) {
			o.PeerDown = false
		}), want: Wait, check: noClaim},
		{name: "stale and already at MaxHold: claims all the same, after the others (never leave an EIP dangling)", o: with(claimReady(), func(o *Observation) {
			o.Held, o.MaxHold = 1, 1
		}), want: Claim, check: func(t *testing.T, d Decision) {
			base := claimReady()
			if RankDelay(testTiming, with(base, func(o *Observation) { o.Held = 1 })) <= RankDelay(testTiming, base) {
				t.Error("holding an EIP does not delay the claim")
			}
		}},
		{name: "stale under MaxHold claims", o: with(claimReady(), func(o *Observation) { o.Held, o.MaxHold = 1, 2 }),
			want: Claim},
		{name: "stale, just eligible: wait for the rank delay", o: with(claimReady(), func(o *Observation) {
			o.RankSince = time.Time{}
		}), want: Wait, check: func(t *testing.T, d Decision) {
			if !d.Eligible {
				t.Error("not eligible")
			}
		}},
		{name: "stale, rank delay not yet over", o: with(claimReady(), func(o *Observation) {
			o.RankSince = t0.Add(-RankDelay(testTiming, *o) + time.Millisecond)
			o.AddressAt = t0
		}), want: Wait, check: func(t *testing.T, d Decision) {
			if !d.Eligible {
				t.Error("not eligible")
			}
		}},
		{name: "stale, rank delay over but the read predates it: re-read", o: with(claimReady(), func(o *Observation) {
			o.RankSince = ago(2 * time.Second)
			o.AddressAt, o.ReadTriedAt = ago(1900*time.Millisecond), ago(1900*time.Millisecond)
		}), want: Refresh, check: func(t *testing.T, d Decision) {
			if !d.Eligible {
				t.Error("not eligible")
			}
		}},
		{name: "stale lease: claim with the next term", o: claimReady(), want: Claim, check: func(t *testing.T, d Decision) {
			if !d.Eligible || d.Reason != ReasonTakeoverStale {
				t.Errorf("eligible %v reason %q", d.Eligible, d.Reason)
			}
			wantLease(eip.Lease{Holder: "i-self", Term: 6, Renewed: t0, Reason: ReasonTakeoverStale, Decided: t0})(t, d)
		}},
		{name: "unassociated: claim as takeover-unassociated", o: with(claimReady(), func(o *Observation) {
			o.Address.AssociationID, o.Address.InstanceID, o.Address.NetworkInterfaceID, o.Address.PrivateIP = "", "", "", ""
			o.Address.Lease = eip.Lease{}
		}), want: Claim, check: func(t *testing.T, d Decision) {
			if d.Reason != ReasonTakeoverUnassociated {
				t.Errorf("reason %q", d.Reason)
			}
			wantLease(eip.Lease{Holder: "i-self", Term: 1, Renewed: t0, Reason: ReasonTakeoverUnassociated, Decided: t0})(t, d)
		}},
		{name: "claim goes to the free private IP", o: with(claimReady(), func(o *Observation) {
			o.FreeSlot = "10.0.0.8"
		}), want: Claim, check: func(t *testing.T, d Decision) {
			if d.Slot != "10.0.0.8" || d.Lease.From != "i-a" {
				t.Errorf("slot %q from %q", d.Slot, d.Lease.From)
			}
		}},
	})
}

func TestStale(t *testing.T) {
	lim := testTiming.LeaseDuration + testTiming.MaxClockSkew
	cases := []struct {
		name  string
		f     func(*Observation)
		stale bool
		why   string
	}{
		{"fresh", func(*Observation) {}, false, ""},
		{"renewed exactly at the limit", func(o *Observation) { o.Address.Lease.Renewed = t0.Add(-lim) }, false, ""},
		{"renewed in the future (clock skew)", func(o *Observation) { o.Address.Lease.Renewed = t0.Add(time.Second) }, false, ""},
		{"stamp in the future, unchanged for a lease by our clock", func(o *Observation) {
			o.Address.Lease.Renewed = t0.Add(10 * time.Minute)
			o.LeaseSeenAt = t0.Add(-lim - time.Millisecond)
		}, true, "by this instance's clock"},
		{"stamp unchanged exactly a lease by our clock", func(o *Observation) { o.LeaseSeenAt = t0.Add(-lim) }, false, ""},
		{"expired by a millisecond", func(o *Observation) { o.Address.Lease.Renewed = t0.Add(-lim - time.Millisecond) }, true, "expired"},
		{"unassociated", func(o *Observation) { o.Address.AssociationID = "" }, true, "not associated"},
		{"no holder", func(o *Observation) { o.Address.Lease.Holder = "" }, true, "no holder"},
		{"invalid tags", func(o *Observation) { o.Address.Lease.Invalid = []string{eip.TagRenewed} }, true, "do not parse"},
		{"no renewal", func(o *Observation) { o.Address.Lease.Renewed = time.Time{} }, true, "no renewal"},
		{"holder stopped", func(o *Observation) { o.HolderStopped = true }, true, "not running"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o := with(standbyObs(), tc.f)
			o.LeaseStamp = o.Address.Lease.Renewed
			stale, why := Stale(testTiming, o)
			if stale != tc.stale || !strings.Contains(why, tc.why) {
				t.Fatalf("Stale = %v, %q; want %v, %q", stale, why, tc.stale, tc.why)
			}
			// Every cause of staleness lets a fit standby claim, and a
			// fresh lease never does.
			o.PeerDown, o.RankSince = true, ago(5*time.Second)
			d := Decide(testTiming, o)
			if (d.Action == Claim) != tc.stale {
				t.Fatalf("Decide = %v (%s) with stale=%v", d.Action, d.Why, tc.stale)
			}
		})
	}
}

func TestRankDelay(t *testing.T) {
	tm := testTiming
	obs := func(inst, alloc string, term int64, prio int) Observation {
		o := claimReady()
		o.Self.InstanceID = inst
		o.Address.AllocationID = alloc
		o.Address.Lease.Term = term
		o.Priority = prio
		return o
	}
	t.Run("bounds and priority", func(t *testing.T) {
		best := func(o Observation, p int) Observation { o.BestPriority = p; return o }
		var sum0, sum10 time.Duration
		const n = 200
		for i := range n {
			id := fmt.Sprintf("i-%04d", i)
			d0 := RankDelay(tm, best(obs(id, "eipalloc-1", 3, 0), 10))
			d10 := RankDelay(tm, best(obs(id, "eipalloc-1", 3, 10), 10))
			same := RankDelay(tm, best(obs(id, "eipalloc-1", 3, 0), 0))
			// The best priority waits under a step; each level below
			// waits a step more, at most five.
			if d10 < 0 || d10 >= tm.RankStep || same != d10 {
				t.Fatalf("best-priority delay %v (all equal: %v) outside [0, 1) step", d10, same)
			}
			if d0 < 5*tm.RankStep || d0 >= 6*tm.RankStep {
				t.Fatalf("ten levels below the best: delay %v outside [5, 6) steps", d0)
			}
			if d1 := RankDelay(tm, best(obs(id, "eipalloc-1", 3, 9), 10)); d1 < tm.RankStep || d1 >= 2*tm.RankStep {
				t.Fatalf("one level below the best: delay %v outside [1, 2) steps", d1)
			}
			// Recently unhealthy members go last.
			down := best(obs(id, "eipalloc-1", 3, 10), 10)
			down.DownRecently = true
			if dd := RankDelay(tm, down); dd < 3*tm.RankStep || dd >= 4*tm.RankStep {
				t.Fatalf("recently unhealthy delay %v outside [3, 4) steps", dd)
			}
			sum0 += d0
			sum10 += d10
		}
		if sum10 >= sum0 {
			t.Fatalf("average delay: priority 10 %v, priority 0 %v", sum10/n, sum0/n)
		}
	})
	t.Run("deterministic", func(t *testing.T) {
		a := RankDelay(tm, obs("i-abc", "eipalloc-1", 7, 2))
		for range 10 {
			if b := RankDelay(tm, obs("i-abc", "eipalloc-1", 7, 2)); b != a {
				t.Fatalf("RankDelay changed: %v then %v", a, b)
			}
		}
		// Only the rank inputs matter, not the rest of the observation.
		o := obs("i-abc", "eipalloc-1", 7, 2)
		o.Now, o.Health, o.AddressAt = o.Now.Add(time.Hour), health.Down, time.Time{}
		if b := RankDelay(tm, o); b != a {
			t.Fatalf("RankDelay depends on unrelated fields: %v then %v", a, b)
		}
	})
	t.Run("allocation and term spread the same instance", func(t *testing.T) {
		differ := 0
		const n = 100
		for i := range n {
			id := fmt.Sprintf("i-%04d", i)
			if RankDelay(tm, obs(id, "eipalloc-1", 3, 0)) != RankDelay(tm, obs(id, "eipalloc-2", 3, 0)) {
				differ++
			}
		}
		if differ < n*8/10 {
			t.Fatalf("only %d of %d instances rank differently for two EIPs", differ, n)
		}
		differ = 0
		for term := range int64(n) {
			if RankDelay(tm, obs("i-x", "eipalloc-1", term, 0)) != RankDelay(tm, obs("i-x", "eipalloc-1", term+1, 0)) {
				differ++
			}
		}
		if differ < n*8/10 {
			t.Fatalf("only %d of %d terms change the delay", differ, n)
		}
	})
	t.Run("different instances rarely tie", func(t *testing.T) {
		seen := map[time.Duration]int{}
		for i := range 20 {
			seen[RankDelay(tm, obs(fmt.Sprintf("i-%04d", i), "eipalloc-1", 3, 0))]++
		}
		if len(seen) < 15 {
			t.Fatalf("20 instances share only %d distinct delays", len(seen))
		}
	})
}

func TestActionString(t *testing.T) {
	for a := Wait; a <= StepDown; a++ {
		if s := a.String(); s == "" || s == "unknown" {
			t.Errorf("Action(%d) has no name", a)
		}
	}
	if Action(99).String() != "unknown" {
		t.Error("out-of-range action has a name")
	}
}

// TestDecideHandoffOnlyWhatAFreshReadShowsHere: a handoff re-associates
// without a fence, so a holder hands off only an EIP that a fresh,
// successful read shows on its own ENI.
func TestDecideHandoffOnlyWhatAFreshReadShowsHere(t *testing.T) {
	leaving := func(f func(*Observation)) Observation {
		return with(holderObs(), func(o *Observation) {
			o.Health = health.Down
			o.Targets, o.TargetsAt = []Target{target("i-a", 0)}, ago(100*time.Millisecond)
			f(o)
		})
	}
	runDecideCases(t, []decideCase{
		{name: "fresh read showing the EIP here hands off", o: leaving(func(o *Observation) {}), want: Handoff},
		{name: "old read is refreshed first", o: leaving(func(o *Observation) {
			o.AddressAt, o.ReadTriedAt = ago(5*time.Second), ago(5*time.Second)
		}), want: Refresh},
		{name: "old read, but instance metadata listed the EIP here a moment ago: hand off without a read", o: leaving(func(o *Observation) {
			o.AddressAt, o.ReadTriedAt = ago(5*time.Second), ago(5*time.Second)
			o.IMDSSeenAt = ago(time.Second)
		}), want: Handoff},
		{name: "old read and old metadata: read first", o: leaving(func(o *Observation) {
			o.AddressAt, o.ReadTriedAt = ago(5*time.Second), ago(5*time.Second)
			o.IMDSSeenAt = ago(3 * time.Second)
		}), want: Refresh},
		{name: "failed read is retried, not acted on", o: leaving(func(o *Observation) {
			o.ReadError, o.ReadTriedAt = true, ago(2*time.Second)
		}), want: Refresh},
		{name: "failed read just now: keep holding, no handoff", o: leaving(func(o *Observation) {
			o.ReadError, o.ReadTriedAt = true, ago(100*time.Millisecond)
		}), want: Hold, check: func(t *testing.T, d Decision) {
			if !strings.Contains(d.Why, "cannot hand off") {
				t.Errorf("why %q should say it cannot hand off", d.Why)
			}
		}},
		{name: "lagged read showing the EIP elsewhere with an older term: no handoff", o: leaving(func(o *Observation) {
			o.HolderSince = ago(3 * time.Second)
			o.Address.AssociationID, o.Address.NetworkInterfaceID, o.Address.InstanceID = "eipassoc-old", "eni-a", "i-a"
			o.Address.Lease.Term = 4
		}), want: Hold},
	})
}

// TestDecideStandbyTrustsTheHolder: the holder's own /status stands in for
// the standby's API poll; a denial from the instance the EIP points at
// makes the standby read.
func TestDecideStandbyTrustsTheHolder(t *testing.T) {
	runDecideCases(t, []decideCase{
		{name: "poll due but the holder confirms: no read", o: with(standbyObs(), func(o *Observation) {
			o.AddressAt, o.ReadTriedAt = ago(2*time.Minute), ago(2*time.Minute)
			o.Address.Lease.Renewed = ago(2 * time.Minute) // our copy looks expired
			// but the holder's /status gave a fresh stamp.
			o.LeaseStamp, o.LeaseSeenAt = ago(time.Second), ago(time.Second)
			o.HolderConfirmed = true
		}), want: Wait},
		{name: "poll due and no confirmation: read", o: with(standbyObs(), func(o *Observation) {
			o.AddressAt, o.ReadTriedAt = ago(2*time.Minute), ago(2*time.Minute)
		}), want: Refresh},
		{name: "the instance the EIP points at denies holding it: read", o: with(standbyObs(), func(o *Observation) {
			o.AddressAt, o.ReadTriedAt = ago(5*time.Second), ago(5*time.Second)
			o.HolderDenies = true
		}), want: Refresh},
		{name: "denial just after a read: wait (paced)", o: with(standbyObs(), func(o *Observation) {
			o.HolderDenies = true
		}), want: Wait},
		{name: "confirmed holder but the probe has fallen: the claim path decides", o: with(claimReady(), func(o *Observation) {
			o.HolderConfirmed = true
		}), want: Claim},
	})
}

// TestDecideHolderReadsBeforeRenewingAfterAGap: a holder renews only while
// AWS has confirmed it since its last failure (§9.2), and stops calling
// itself holder when the confirmation is older than the trust window.
func TestDecideHolderReadsBeforeRenewingAfterAGap(t *testing.T) {
	runDecideCases(t, []decideCase{
		{name: "paused past a lease: read first, no renewal", o: with(holderObs(), func(o *Observation) {
			o.AddressAt, o.ReadTriedAt = ago(30*time.Second), ago(30*time.Second)
			o.VerifiedAt = ago(30 * time.Second)
		}), want: Refresh, check: mayRenew(false)},
		{name: "a read confirmed it just now: renew", o: with(holderObs(), func(o *Observation) {
			o.VerifiedAt = o.AddressAt
		}), want: Hold, check: mayRenew(true)},
		{name: "a renewal failed: no renewal until a read after it succeeds", o: with(holderObs(), func(o *Observation) {
			o.GapSince = ago(500 * time.Millisecond)
			o.AddressAt, o.ReadTriedAt = ago(600*time.Millisecond), ago(600*time.Millisecond)
		}), want: Hold, check: mayRenew(false)},
		{name: "a renewal failed a probe interval ago: read", o: with(holderObs(), func(o *Observation) {
			o.GapSince = ago(time.Second)
		}), want: Refresh, check: mayRenew(false)},
		{name: "reads failing: no renewal, reads paced", o: with(holderObs(), func(o *Observation) {
			o.AddressAt = ago(30 * time.Second)
			o.ReadTriedAt, o.ReadError = ago(time.Second), true
			o.GapSince = ago(20 * time.Second)
		}), want: Hold, check: mayRenew(false)},
		{name: "unhealthy but unconfirmed: no handoff without a confirming read", o: with(holderObs(), func(o *Observation) {
			o.Health = health.Down
			o.Targets, o.TargetsAt = []Target{target("i-a", 0)}, ago(100*time.Millisecond)
			o.VerifiedAt = ago(20 * time.Second)
			o.ReadTriedAt = ago(100 * time.Millisecond)
		}), want: Hold},
	})
}
