package leader

import (
	"errors"
	"testing"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// Regression tests for what the unit and property tests found in the
// production code, each as small as it gets; each failed before its fix.

// A rebalance is a handoff, and a handoff goes ahead only once the
// source's own eipd confirms, on a fresh probe, that its instance metadata
// lists the EIP (move.go, sourceConfirms). Plan nevertheless picks the EIP
// of a member whose eipd never answers (Silent) for a rebalance, as it
// does that of a member whose eipd stopped answering (a member that is
// neither fit, leaving nor unreachable: MemberView cannot tell it from one
// that answers but takes no new EIP). Every such move is abandoned at the
// fresh probe of the source, and Plan asks for it again at once
// (TestModelNoRebalanceChurn).
func TestPlanNoRebalanceOffSilentMember(t *testing.T) {
	a := member("i-a", false, "10.0.0.1", "10.0.1.1")
	a.Silent = true
	v := View{Now: unitNow, Quorum: true,
		Members: []MemberView{a, member("i-b", true, "10.0.0.2"), member("i-c", true, "10.0.0.3")},
		EIPs:    []EIPView{on("e1", "198.51.100.1", "i-a", "10.0.0.1"), on("e2", "198.51.100.2", "i-a", "10.0.1.1")}}
	carry(&v)
	if p := Plan(v); len(p.Moves) > 0 {
		t.Fatalf("a handoff off silent i-a, which cannot confirm it: %s", movesOf(p))
	}
}

// The consequence in the loop: three members, both EIPs on i-3 (moved
// there by hand), whose eipd then dies while its proxy serves (invariant
// 10: nothing may move off it, and nothing does). i-3 holds two EIPs,
// over ceil(2 EIPs / 2 fit members) = 1, and the coordinator starts a
// rebalance of one of them, abandons it at once because i-3 does not
// answer the fresh probe ("it did not answer a fresh probe"), avoids that
// target for a probe interval, and starts the same rebalance to the other
// member: about one attempt every 20 ms for as long as i-3's eipd is
// down, each with two Info log lines and fresh probes (instance metadata
// reads) of both members.
func TestModelNoRebalanceChurn(t *testing.T) {
	s := newSim(simConfig{Seed: 3, Daemons: 3, EIPs: 2, Slots: 2})
	s.startAll()
	s.run(90 * time.Second)
	var x *simDaemon
	for _, d := range s.daemons {
		if d.loop.co == nil {
			x = d
		}
	}
	for i, alloc := range s.allocs {
		if _, err := s.world.associateAddress("", alloc, x.ident.NetworkInterfaceID, x.ips[i], true); err != nil {
			t.Fatalf("hand move of %s to %s: %v", alloc, x.id, err)
		}
	}
	x.exit()
	moves := map[*move]bool{}
	for end := s.now.Add(3 * time.Minute); s.now.Before(end); s.run(simCheck) {
		for _, d := range s.daemons {
			if d.live() && d.loop.co != nil {
				for _, m := range d.loop.co.moves {
					moves[m] = true
				}
			}
		}
	}
	requireNoViolation(t, s)
	// At most one attempt a probe interval: 180 in 3 minutes.
	if limit := int(3 * time.Minute / simTiming.ProbeInterval); len(moves) > limit {
		t.Fatalf("%d moves started in 3 minutes (sampled every %v), more than one a probe interval (%d)", len(moves),
			simCheck, limit)
	}
}

// Note.NoFreeSlot (no_free_private_ip) says "fit members exist but none
// has a private IP free for it" (plan.go, design.md, operations.md: add
// secondary private IPs). It is also set when fit members have free
// private IPs but may not take the EIP: a manual handoff naming a member
// that is not fit (below), or the only such member being the one to avoid
// after an abandoned move.
func TestPlanNoFreeSlotOnlyWhenSlotsAreMissing(t *testing.T) {
	a := member("i-a", false, "10.0.0.1")
	a.Leaving, a.HandoffTo = ReasonHandoffManual, "i-c"
	v := View{Now: unitNow, Quorum: true,
		Members: []MemberView{a, member("i-b", true, "10.0.0.2"), member("i-c", false, "10.0.0.3")},
		EIPs:    []EIPView{on("e1", "198.51.100.1", "i-a", "10.0.0.1")}}
	carry(&v)
	if n := Plan(v).Notes["e1"]; n.NoFreeSlot {
		t.Fatalf("note %+v: no free private IP, though fit i-b has 10.0.0.2 free", n)
	}
}

// Invariant 6 says a coordinator acts only within lease − skew of the
// start of its last acknowledged lease write, and assumption 1 that late
// writes land within the skew after its deadline, so by lease after that
// start, before any member can judge the lease stale. Trust's window is
// max(renew interval, lease − skew), and eipd run accepts a skew above
// lease − renew interval (config.go checks lease ≥ 2 × renew and address
// poll < lease − skew only): then the window is the renew interval, past
// lease − skew, and a late write may land after lease.
func TestTrustNeverPastLeaseMinusSkew(t *testing.T) {
	// Accepted by Config.Validate: lease 6s ≥ 2 × 3s, address poll 1s < 6s − 4s.
	tm := Timing{RenewInterval: 3 * time.Second, LeaseDuration: 6 * time.Second, MaxClockSkew: 4 * time.Second,
		AddressPoll: time.Second, ProbeInterval: time.Second}
	if until, bound := Trust(tm, unitNow), unitNow.Add(tm.LeaseDuration-tm.MaxClockSkew); until.After(bound) {
		t.Fatalf("Trust(start) = start + %v, after start + lease − skew = start + %v", until.Sub(unitNow), bound.Sub(unitNow))
	}
}

// In a group of two, a member that already wrote heartbeats (it saw no
// coordinator) and was then cut off from a new coordinator was taken for
// down: the coordinator's first probe of it fell, the member list it read
// after that probe started (its claim's) already showed the heartbeat the
// member wrote just after, and two probe intervals later, before the next
// heartbeat (a renew interval after the last) could land, a list showing
// that same heartbeat counted as "no heartbeat since the fall" (model seed
// 2132, invariant 11). Now the list that decides starts two renew
// intervals after the one that gave the heartbeat it is compared with.
func TestHeartbeatComparedOverARenewal(t *testing.T) {
	l := New(Config{}, eip.Identity{InstanceID: "i-a", PrivateIP: "10.0.0.1"}, nil, nil, upHealth{}, nil, nil, nil)
	t0 := l.t0.Add(time.Minute)
	hb := time.Date(2026, 1, 1, 0, 2, 5, 401e6, time.UTC)
	list := func(at time.Time, hb time.Time) {
		l.onMembers(at, []eip.Instance{{InstanceID: "i-a", PrivateIP: "10.0.0.1"}, {InstanceID: "i-b", PrivateIP: "10.0.0.2", Heartbeat: hb}}, nil)
	}
	p := l.peer("i-b", "10.0.0.2")
	// Its probes fail from t0; the list started 440 ms after the probe
	// that falls shows the heartbeat written in between.
	for i := range l.cfg.ProbeFall - 1 {
		l.onProbe(p, t0.Add(time.Duration(i-2)*time.Second), false, health.PeerReport{}, errors.New("timeout"))
	}
	list(t0.Add(440*time.Millisecond), hb)
	l.onProbe(p, t0, false, health.PeerReport{}, errors.New("timeout"))
	if p.hist.Status() != health.Down || !p.downAt.Equal(t0) {
		t.Fatalf("the probe did not fall at t0: %v at %v", p.hist.Status(), p.downAt)
	}
	// Two probe intervals and a bit after the fall: the member's next
	// heartbeat is not due yet.
	list(t0.Add(2*time.Second+200*time.Millisecond), hb)
	if l.fallConfirmed(p, *l.member("i-b")) {
		t.Fatalf("the fall counts %v after the list that showed the last heartbeat, less than a renew interval and its write", 1760*time.Millisecond)
	}
	// Two renew intervals after that list, still the same heartbeat: down.
	list(t0.Add(440*time.Millisecond+2*l.cfg.RenewInterval), hb)
	if !l.fallConfirmed(p, *l.member("i-b")) {
		t.Fatalf("no heartbeat for two renew intervals and the fall does not count")
	}
	// A newer heartbeat by then: alive.
	list(t0.Add(440*time.Millisecond+2*l.cfg.RenewInterval), hb.Add(3*time.Second))
	if l.fallConfirmed(p, *l.member("i-b")) {
		t.Fatalf("a new heartbeat and the fall counts")
	}
}

type upHealth struct{}

func (upHealth) Status() health.Status    { return health.Up }
func (upHealth) Changed() <-chan struct{} { return nil }
