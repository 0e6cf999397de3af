package leader

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// genTime returns zero sometimes, otherwise t0 plus an offset drawn from
// around the boundaries Decide cares about (renew interval, lease duration
// plus skew, standby poll), a few milliseconds either side of each.
func genTime(t *rapid.T, label string) time.Time {
	if rapid.IntRange(0, 9).Draw(t, label+"_zero") == 0 {
		return time.Time{}
	}
	tm := testTiming
	base := rapid.SampledFrom([]time.Duration{
		0, tm.ProbeInterval, tm.RenewInterval, tm.LeaseDuration, tm.LeaseDuration + tm.MaxClockSkew,
		tm.StandbyPoll, tm.RankStep, 2 * tm.RankStep, time.Hour,
	}).Draw(t, label+"_base")
	jitter := time.Duration(rapid.Int64Range(-3, 3).Draw(t, label+"_ms")) * time.Millisecond
	sign := rapid.SampledFrom([]time.Duration{-1, -1, -1, 1}).Draw(t, label+"_sign")
	return t0.Add(sign*base + jitter)
}

var (
	peers = []string{"i-a", "i-b", "i-c"}
	drain = []string{"", "", ReasonHandoffDraining, ReasonHandoffShutdown, ReasonHandoffManual}
)

func genObservation(t *rapid.T) Observation {
	o := Observation{
		Now:          t0,
		Self:         selfID,
		Priority:     rapid.IntRange(-2, 12).Draw(t, "priority"),
		Health:       rapid.SampledFrom([]health.Status{health.Unknown, health.Up, health.Up, health.Down}).Draw(t, "health"),
		Drain:        rapid.SampledFrom(drain).Draw(t, "drain"),
		ManualTarget: rapid.SampledFrom([]string{"", "", "i-a", "i-b", "i-self", "i-zz"}).Draw(t, "manual_target"),
	}
	a := eip.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10"}
	switch rapid.SampledFrom([]string{"none", "self", "self-other-ip", "other"}).Draw(t, "assoc") {
	case "self":
		a.AssociationID, a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = "eipassoc-s", "i-self", "eni-self", "10.0.0.1"
	case "self-other-ip":
		a.AssociationID, a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = "eipassoc-s2", "i-self", "eni-self", "10.0.0.77"
	case "other":
		p := rapid.SampledFrom(peers).Draw(t, "assoc_peer")
		a.AssociationID, a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = "eipassoc-"+p, p, "eni-"+p[2:], "10.0.9."+p[2:]
	}
	a.Lease = eip.Lease{
		Holder:  rapid.SampledFrom(append([]string{"", "i-self"}, peers...)).Draw(t, "lease_holder"),
		Term:    rapid.Int64Range(0, 6).Draw(t, "lease_term"),
		Renewed: genTime(t, "lease_renewed"),
	}
	if rapid.IntRange(0, 5).Draw(t, "lease_invalid") == 0 {
		a.Lease.Invalid = []string{eip.TagTerm}
	}
	if rapid.Bool().Draw(t, "lease_reason") {
		a.Lease.Reason, a.Lease.Decided = ReasonHandoffDraining, genTime(t, "lease_decided")
	}
	o.Address = a
	o.AddressAt = genTime(t, "address_at")
	o.ReadTriedAt = genTime(t, "read_tried_at")
	o.ReadError = rapid.IntRange(0, 3).Draw(t, "read_error") == 0

	o.Holding = rapid.Bool().Draw(t, "holding")
	o.Term = rapid.Int64Range(0, 6).Draw(t, "term")
	o.HolderSince = genTime(t, "holder_since")
	o.VerifiedAt = genTime(t, "verified_at")
	o.GapSince = genTime(t, "gap_since")
	o.IMDSLost = rapid.IntRange(0, 7).Draw(t, "imds_lost") == 0
	o.IMDSSeenAt = genTime(t, "imds_seen_at")
	o.LeaseStamp = a.Lease.Renewed
	if rapid.IntRange(0, 3).Draw(t, "stamp_from_peer") == 0 {
		o.LeaseStamp = genTime(t, "lease_stamp")
	}
	o.LeaseSeenAt = genTime(t, "lease_seen_at")
	o.MembersKnown = rapid.IntRange(0, 7).Draw(t, "members_unknown") != 0
	o.FreeSlot = rapid.SampledFrom([]string{"", "10.0.0.1", "10.0.0.1", "10.0.0.8"}).Draw(t, "free_slot")
	o.BestPriority = o.Priority + rapid.IntRange(0, 3).Draw(t, "prio_gap")
	o.DownRecently = rapid.IntRange(0, 3).Draw(t, "down_recently") == 0

	o.PeerDown = rapid.Bool().Draw(t, "peer_down")
	o.HolderStopped = rapid.IntRange(0, 5).Draw(t, "holder_stopped") == 0
	o.RankSince = genTime(t, "rank_since")

	o.MaxHold = rapid.IntRange(0, 3).Draw(t, "max_hold")
	o.RebalanceFirst = rapid.Bool().Draw(t, "rebalance_first")
	o.LastMove = genTime(t, "last_move")
	o.Held = rapid.IntRange(0, 4).Draw(t, "held")

	n := rapid.IntRange(0, 4).Draw(t, "targets")
	for i := range n {
		id := rapid.SampledFrom(append([]string{"i-self"}, peers...)).Draw(t, fmt.Sprintf("target_%d", i))
		o.Targets = append(o.Targets, target(id, rapid.IntRange(0, 3).Draw(t, fmt.Sprintf("target_held_%d", i))))
	}
	o.TargetsAt = genTime(t, "targets_at")

	// Claims need many conditions at once; arbitrary draws rarely meet
	// them all. Often push each condition towards a claim, each with a
	// chance to stay arbitrary, so the claim rules are tested at their
	// edges too.
	if rapid.Bool().Draw(t, "claimish") {
		favour := func(label string) bool { return rapid.IntRange(0, 7).Draw(t, label) != 0 }
		if favour("f_standby") {
			o.Holding = false
		}
		if favour("f_read") {
			o.ReadError = false
			o.AddressAt = t0.Add(-time.Duration(rapid.Int64Range(0, 50).Draw(t, "f_read_ms")) * time.Millisecond)
			o.MembersKnown = true
		}
		if favour("f_slot") {
			o.FreeSlot = "10.0.0.1"
		}
		if favour("f_health") {
			o.Health = health.Up
		}
		if favour("f_drain") {
			o.Drain = ""
		}
		if favour("f_peer") {
			o.PeerDown = true
		}
		if favour("f_rank") {
			o.RankSince = t0.Add(-time.Duration(rapid.Int64Range(0, int64(3*testTiming.RankStep/time.Millisecond)).Draw(t, "f_rank_ms")) * time.Millisecond)
		}
		if favour("f_assoc") && o.Address.NetworkInterfaceID == selfID.NetworkInterfaceID {
			o.Address.AssociationID, o.Address.InstanceID, o.Address.NetworkInterfaceID, o.Address.PrivateIP = "", "", "", ""
		}
	}
	return o
}

// TestDecideProperties checks the safety rules of docs/design.md over
// arbitrary observations, including impossible ones.
func TestDecideProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		o := genObservation(t)
		d := Decide(testTiming, o)
		stale, _ := Stale(testTiming, o)

		reclaim := d.Action == Claim && o.Holding
		if reclaim {
			// A holder re-associates only its own EIP that a dated read
			// shows unassociated, fenced like any claim.
			if o.Address.Associated() || !o.AddressAt.After(o.HolderSince) || o.ReadError ||
				o.Health != health.Up || o.Drain != "" || o.FreeSlot == "" {
				t.Fatalf("holder re-claim: associated %v, dated %v, read error %v, health %v, drain %q, slot %q",
					o.Address.Associated(), o.AddressAt.After(o.HolderSince), o.ReadError, o.Health, o.Drain, o.FreeSlot)
			}
			if want := max(o.Term, o.Address.Lease.Term) + 1; d.Lease.Term != want || d.Lease.Holder != o.Self.InstanceID {
				t.Fatalf("holder re-claim lease %+v, want term %d", d.Lease, want)
			}
		}
		if d.Action == Claim && !reclaim {
			switch {
			case o.Health != health.Up:
				t.Fatalf("claim with own health %v", o.Health)
			case o.Drain != "":
				t.Fatalf("claim while draining (%s)", o.Drain)
			case !stale:
				t.Fatalf("claim with a fresh lease")
			case !o.PeerDown:
				t.Fatalf("claim while the holder answers as healthy")
			case o.ReadError:
				t.Fatalf("claim while AWS state is unknown")
			case o.FreeSlot == "" || d.Slot != o.FreeSlot:
				t.Fatalf("claim onto slot %q with free slot %q", d.Slot, o.FreeSlot)
			case !o.MembersKnown:
				t.Fatalf("claim before the members (priorities) are known")
			}
			want := eip.Lease{Holder: o.Self.InstanceID, Term: o.Address.Lease.Term + 1}
			if d.Lease.Holder != want.Holder || d.Lease.Term != want.Term || !d.Lease.Renewed.Equal(o.Now) {
				t.Fatalf("claim lease %+v, want holder %s term %d renewed now", d.Lease, want.Holder, want.Term)
			}
			if d.Reason != ReasonTakeoverStale && d.Reason != ReasonTakeoverUnassociated {
				t.Fatalf("claim reason %q", d.Reason)
			}
			if (d.Reason == ReasonTakeoverUnassociated) != !o.Address.Associated() {
				t.Fatalf("claim reason %q for associated=%v", d.Reason, o.Address.Associated())
			}
		}

		// No preemption: another ENI's fresh lease is never taken.
		if !o.Holding && o.Address.Associated() && o.Address.NetworkInterfaceID != o.Self.NetworkInterfaceID && !stale {
			if d.Action == Claim || d.Action == Adopt {
				t.Fatalf("%v of an EIP held by %s under a fresh lease", d.Action, o.Address.InstanceID)
			}
		}

		// Actions belong to roles.
		holderOnly := []Action{Hold, Repair, SeekTargets, Handoff, StepDown}
		standbyOnly := []Action{Wait, Adopt}
		if o.Holding && slices.Contains(standbyOnly, d.Action) {
			t.Fatalf("holder decided %v", d.Action)
		}
		if !o.Holding && slices.Contains(holderOnly, d.Action) {
			t.Fatalf("standby decided %v", d.Action)
		}
		if d.Action == Adopt && !(o.Address.Associated() && o.Address.NetworkInterfaceID == o.Self.NetworkInterfaceID) {
			t.Fatalf("adopt of an EIP on %s", o.Address.NetworkInterfaceID)
		}

		if d.Action == Handoff {
			if d.Target == nil {
				t.Fatal("handoff without a target")
			}
			tg := d.Target.InstanceID
			if tg == o.Self.InstanceID {
				t.Fatal("handoff to self")
			}
			if !slices.ContainsFunc(o.Targets, func(x Target) bool { return x.InstanceID == tg }) {
				t.Fatalf("handoff to %s, not among the targets", tg)
			}
			if d.Reason == ReasonHandoffManual && o.ManualTarget != "" && tg != o.ManualTarget {
				t.Fatalf("manual handoff to %s, asked for %s", tg, o.ManualTarget)
			}
			if d.Reason == ReasonHandoffRebalance && (o.MaxHold == 0 || d.Target.Held+1 > o.MaxHold) {
				t.Fatalf("rebalance to %s holding %d with cap %d", tg, d.Target.Held, o.MaxHold)
			}
			if d.Reason == "" || d.Reason != leaveReason(o) {
				t.Fatalf("handoff reason %q, leave reason %q", d.Reason, leaveReason(o))
			}
			// A handoff has no fence: only what a fresh, successful read
			// shows on this ENI may be moved.
			imdsFresh := o.IMDSSeenAt.After(o.HolderSince) && o.Now.Sub(o.IMDSSeenAt) <= 2*testTiming.ProbeInterval
			readFresh := o.Now.Sub(o.AddressAt) < testTiming.RenewInterval
			if o.ReadError || !(readFresh || imdsFresh) || !ownsAssociation(o) {
				t.Fatalf("handoff without fresh evidence of the EIP here (read error %v, read age %s, metadata age %s, on %s)",
					o.ReadError, o.Now.Sub(o.AddressAt), o.Now.Sub(o.IMDSSeenAt), o.Address.NetworkInterfaceID)
			}
			if !o.AddressAt.After(o.HolderSince) && !imdsFresh {
				t.Fatal("handoff on a read from before this holding began, without metadata evidence")
			}
			if d.Lease.Holder != tg || d.Lease.Term != max(o.Term, o.Address.Lease.Term)+1 || d.Lease.Reason != d.Reason {
				t.Fatalf("handoff lease %+v to %s from term %d", d.Lease, tg, o.Term)
			}
			if d.Target.DownRecently && d.Reason == ReasonHandoffRebalance {
				t.Fatalf("rebalance onto %s, unhealthy within the last minute", tg)
			}
		}
		// §9.1/§9.2: nothing is written as holder, and no move is made,
		// without AWS confirming the holding since the last failure.
		confirmed := Verified(testTiming, o) && o.GapSince.IsZero()
		if o.Holding && !confirmed && (d.MayRenew || d.Action == Handoff || d.Action == Repair) {
			t.Fatalf("%v (may renew %v) by an unconfirmed holder (verified %v, gap since %v)", d.Action, d.MayRenew, Verified(testTiming, o), o.GapSince)
		}
		if d.MayRenew && !o.Holding {
			t.Fatal("a standby may renew")
		}
		if d.Action == Repair && (d.Lease.Holder != o.Self.InstanceID || d.Lease.Term < o.Term) {
			t.Fatalf("repair lease %+v with own term %d", d.Lease, o.Term)
		}
		if d.Action == Adopt {
			l := o.Address.Lease
			resume := l.Holder == o.Self.InstanceID && len(l.Invalid) == 0
			if d.Lease.Holder != o.Self.InstanceID || (resume && d.Lease.Term != l.Term) || (!resume && d.Lease.Term != l.Term+1) {
				t.Fatalf("adopt lease %+v from stored %+v", d.Lease, l)
			}
		}
		if d.Blocked && (!o.Holding || d.Action == Handoff) {
			t.Fatalf("blocked with action %v, holding %v", d.Action, o.Holding)
		}
		if d.Eligible && (o.Holding || o.ReadError || !stale || o.Health != health.Up || o.Drain != "" || !o.PeerDown || o.FreeSlot == "") {
			t.Fatal("eligible although a takeover condition fails")
		}
		if d.Why == "" {
			t.Fatalf("%v without Why", d.Action)
		}
		if again := Decide(testTiming, o); again.Action != d.Action || again.Why != d.Why {
			t.Fatalf("not deterministic: %v then %v", d.Action, again.Action)
		}
	})
}

// fenceEC2 is the part of EC2 the claim fence relies on: one EIP whose
// association IDs are never reused, DisassociateAddress by ID, and
// AssociateAddress with AllowReassociation=false.
type fenceEC2 struct {
	next    int
	assoc   string
	eni     string
	lease   eip.Lease
	history []fenceSnapshot // every state, oldest first
}

type fenceSnapshot struct {
	at    time.Time
	addr  eip.Address
	owner string // instance on the ENI, "" when unassociated
}

func (e *fenceEC2) snapshot(now time.Time, owner string) {
	a := eip.Address{AllocationID: "eipalloc-1", PublicIP: "203.0.113.10", AssociationID: e.assoc, Lease: e.lease}
	if e.assoc != "" {
		a.NetworkInterfaceID, a.InstanceID, a.PrivateIP = e.eni, owner, "10.0.2."+owner
	}
	e.history = append(e.history, fenceSnapshot{at: now, addr: a, owner: owner})
}

func (e *fenceEC2) disassociate(id string) error {
	if id != e.assoc {
		return eip.ErrStaleAssociation
	}
	e.assoc, e.eni = "", ""
	return nil
}

func (e *fenceEC2) associate(eni string) (string, error) {
	if e.assoc != "" {
		return "", eip.ErrAlreadyAssociated
	}
	e.next++
	e.assoc, e.eni = fmt.Sprintf("eipassoc-%d", e.next), eni
	return e.assoc, nil
}

type claimant struct {
	id       string
	stage    int // 0 observe, 1 disassociate, 2 associate, 3 write lease, 4 done
	observed eip.Address
	lease    eip.Lease
	assoc    string // the association this claimant created
	holding  bool
}

// TestClaimFenceProperty runs N claimants against one EIP. Each observes
// the EIP as it was at some earlier step (reads lag), asks Decide, and if
// told to claim runs the fence step by step, interleaved at random with
// the others. The association ID fence must keep them from all winning.
func TestClaimFenceProperty(t *testing.T) {
	tm := testTiming
	rapid.Check(t, func(t *rapid.T) {
		n := rapid.IntRange(2, 6).Draw(t, "claimants")
		now := t0
		ec2 := &fenceEC2{}
		owner := ""
		switch rapid.SampledFrom([]string{"unassociated", "dead-holder", "fresh-holder"}).Draw(t, "start") {
		case "dead-holder":
			ec2.next, ec2.assoc, ec2.eni, owner = 1, "eipassoc-1", "eni-dead", "dead"
			ec2.lease = eip.Lease{Holder: "i-dead", Term: 3, Renewed: now.Add(-time.Minute)}
		case "fresh-holder":
			ec2.next, ec2.assoc, ec2.eni, owner = 1, "eipassoc-1", "eni-dead", "dead"
			ec2.lease = eip.Lease{Holder: "i-dead", Term: 3, Renewed: now}
		}
		ec2.snapshot(now, owner)

		cs := make([]*claimant, n)
		for i := range cs {
			cs[i] = &claimant{id: fmt.Sprintf("i-%d", i)}
		}
		// Successful fences per observed (non-empty) association ID.
		wins := map[string]int{}

		for step := 0; step < 60; step++ {
			var active []*claimant
			for _, c := range cs {
				if c.stage < 4 {
					active = append(active, c)
				}
			}
			if len(active) == 0 {
				break
			}
			c := active[rapid.IntRange(0, len(active)-1).Draw(t, "who")]
			now = now.Add(time.Duration(rapid.Int64Range(0, int64(tm.LeaseDuration/2)).Draw(t, "elapse")))
			self := eip.Identity{InstanceID: c.id, NetworkInterfaceID: "eni-" + c.id, PrivateIP: "10.0.2." + c.id}
			switch c.stage {
			case 0:
				// Observe a state from history: the latest or an
				// older one (eventual consistency).
				back := rapid.IntRange(0, min(3, len(ec2.history)-1)).Draw(t, "lag")
				snap := ec2.history[len(ec2.history)-1-back]
				o := Observation{
					Now: now, Self: self, Health: health.Up, MembersKnown: true, FreeSlot: self.PrivateIP,
					Address: snap.addr, AddressAt: now, ReadTriedAt: now,
					LeaseStamp: snap.addr.Lease.Renewed, LeaseSeenAt: now,
					// The holder's probe fails unless it is one of the
					// claimants still holding (a live holder answers).
					PeerDown:  true,
					RankSince: now.Add(-time.Hour),
				}
				for _, other := range cs {
					if other.holding && snap.owner == other.id {
						o.PeerDown = rapid.Bool().Draw(t, "peer_down")
					}
				}
				d := Decide(tm, o)
				if d.Action != Claim {
					c.stage = 4
					continue
				}
				c.observed, c.lease = snap.addr, d.Lease
				c.stage = 1
				if !snap.addr.Associated() {
					c.stage = 2
				}
			case 1:
				if err := ec2.disassociate(c.observed.AssociationID); err != nil {
					c.stage = 4
					continue
				}
				ec2.snapshot(now, "")
				c.stage = 2
			case 2:
				assoc, err := ec2.associate(self.NetworkInterfaceID)
				if err != nil {
					c.stage = 4
					continue
				}
				c.assoc = assoc
				ec2.snapshot(now, c.id)
				c.stage = 3
			case 3:
				c.lease.Renewed = now
				ec2.lease = c.lease
				ec2.snapshot(now, ec2.history[len(ec2.history)-1].owner)
				c.holding = true
				if c.observed.Associated() {
					wins[c.observed.AssociationID]++
				}
				c.stage = 4
			}
		}

		current := 0
		seen := map[string]string{}
		for _, c := range cs {
			if c.assoc != "" {
				if prev, dup := seen[c.assoc]; dup {
					t.Fatalf("association %s created for %s and %s", c.assoc, prev, c.id)
				}
				seen[c.assoc] = c.id
			}
			if c.holding && c.assoc == ec2.assoc && ec2.eni == "eni-"+c.id {
				current++
			}
			if c.holding && c.lease.Term != c.observed.Lease.Term+1 {
				t.Fatalf("%s holds with term %d after observing %d", c.id, c.lease.Term, c.observed.Lease.Term)
			}
		}
		if current > 1 {
			t.Fatalf("%d claimants believe they hold the current association %s", current, ec2.assoc)
		}
		for id, w := range wins {
			if w > 1 {
				t.Fatalf("%d claims succeeded by fencing on %s", w, id)
			}
		}
	})
}
