package e2e

// Chaos scenarios: failures of the coordinator itself, the one member that
// makes every move and every EC2 call (issue 19): frozen while it holds
// nothing, its proxy dead while it holds an EIP, killed in the middle of
// a move.

import (
	"time"
)

func coordinatorScenarios() []chaosScenario {
	return []chaosScenario{
		{
			name: "coordinator-hung", title: "Coordinator hung (SIGSTOP eipd and HAProxy) while it holds nothing, then thawed",
			// The EIP is on another member, whose proxy serves: not one
			// request may fail, and nothing moves.
			instances: 3, maxMoves: -1, apiMax: 80,
			fault: coordinatorHung,
		},
		{
			name: "coordinator-holder-haproxy-killed", title: "HAProxy killed on the coordinator while it holds an EIP",
			// Three EIPs on three members: the coordinator holds one, the
			// client's, and moves it off itself.
			instances: 3, eips: 3, privateIPs: 2, pick: coordinatorsEIP,
			downtime: proxyDeathBound, apiMax: 80,
			fault: func(x *chaosRun) {
				h := x.holder
				if h != x.coord {
					x.Fatalf("the client's EIP is on %s, which does not coordinate (%s does)", h.id(), x.coord.id())
				}
				x.fault()
				h.killHAProxy()
				to := x.unhealthyTakeover(h)
				if e := x.firstAssoc(h); e.Caller != h.id() {
					x.Fatalf("the EIP went to %s by %q, want the coordinator %s to move it off itself", to.id(), e.Caller, h.id())
				}
			},
		},
		{
			name: "coordinator-killed-mid-move", title: "Coordinator SIGKILLed between its disassociation and its association of a takeover",
			instances: 3, apiMax: 120,
			// The coordinator dies with the EIP unassociated, which only a
			// coordinator can mend: the design bounds that by the election
			// (the dead one's lease stamp unchanged for lease + skew, then
			// a claim) and a move, not by one lease.
			danglingMax: electionBound + 5*time.Second,
			downtime:    chaosBound("mid-move"),
			fault:       coordinatorKilledMidMove,
		},
	}
}

// coordinatorHung: the coordinator, which holds no EIP, freezes (its eipd
// and HAProxy SIGSTOPped). The others see its lease unchanged and one of
// them takes the role over within the election's bound; nothing moves and
// no request fails. Thawed, the old coordinator knows its lease ran out:
// it never acts again, and follows the new one.
func coordinatorHung(x *chaosRun) {
	co, h := x.coord, x.holder
	if co == h {
		x.Fatalf("the coordinator %s holds the client's EIP", co.id())
	}
	_, cs := x.c.coordinator(10 * time.Second)
	x.fault()
	co.eipd.stop()
	co.haproxy.stop()
	next, ns := x.newCoordinator(co, cs.Epoch, electionBound+10*time.Second)
	if took := time.Since(x.faultAt); took > electionBound {
		x.Fatalf("%s took the coordinator role %s after the coordinator froze, want within %s", next.id(), took.Round(time.Millisecond), electionBound)
	}
	x.Logf("%s coordinates (epoch %d) %s after %s froze", next.id(), ns.Epoch, time.Since(x.faultAt).Round(time.Millisecond), co.id())
	x.staysOn(h, dRenew, "a new coordinator")
	thawed := time.Now()
	co.haproxy.cont()
	co.eipd.cont()
	waitFor(x, 30*time.Second, "the thawed coordinator to follow the new one", func() bool {
		s, err := co.status()
		return err == nil && s.Coordinator == next.id() && s.Epoch == ns.Epoch && !s.acting()
	})
	i := x.c.index(co)
	for _, r := range x.s.between(thawed, time.Now()) {
		if s := r.sts[i]; s != nil && s.acting() {
			x.Fatalf("the thawed old coordinator said it acts at %s, %s after the thaw (its lease had run out)",
				r.at.Format("15:04:05.000"), r.at.Sub(thawed).Round(time.Millisecond))
		}
	}
	x.stays(h, 0, "after the thaw")
}

// coordinatorKilledMidMove: every EC2 call of the coordinator is answered
// 1.5 s late (under its renewals' timeout of 2.25 s), so that its fenced takeover of the holder's EIP (its proxy
// killed) leaves a gap between the disassociation and the association;
// the coordinator's eipd is SIGKILLed in that gap. The EIP stays
// unassociated until another member has taken the role over (its lease
// stale) and associates it, once, with a healthy member.
func coordinatorKilledMidMove(x *chaosRun) {
	co, h := x.coord, x.holder
	x.c.setInstanceFaults(co.id(), map[string]any{"latency": "1500ms"})
	time.Sleep(2 * dRenew) // its calls answered late, it still coordinates
	if now, _, ok := x.c.tryCoordinator(); !ok || now != co {
		x.Fatalf("the coordinator changed once its calls were slowed")
	}
	_, cs := x.c.coordinator(10 * time.Second)
	x.fault()
	h.killHAProxy()
	var dis simEvent
	waitFor(x, 20*time.Second, "the coordinator to disassociate the holder's EIP", func() bool {
		for _, e := range x.changes() {
			if e.Action == "disassociate" && e.Caller == co.id() {
				dis = e
				return true
			}
		}
		return false
	})
	co.eipd.killWait(x)
	killed := time.Now()
	// The premise: it died between the two calls of its move.
	for _, e := range x.changes() {
		if e.To != "" && !e.Time.After(killed) {
			x.Fatalf("the EIP was associated again before the coordinator died, the kill missed the gap:%s", eventList(x.changes()))
		}
	}
	x.Logf("the coordinator %s disassociated the EIP at %s and died %s later", co.id(), dis.Time.Format("15:04:05.000"), killed.Sub(dis.Time).Round(time.Millisecond))
	x.c.clearInstanceFaults(co.id())
	next, _ := x.newCoordinator(co, cs.Epoch, electionBound+10*time.Second)
	e := x.waitFirstAssoc(h, 30*time.Second)
	if e.Caller != next.id() || e.To == h.id() {
		x.Fatalf("want the new coordinator %s to associate the EIP with a healthy member, got:%s", next.id(), eventList(x.changes()))
	}
	to := x.movedAway(h, 20*time.Second)
	x.clientBack(30*time.Second, 25)
	x.failoverReason(to, x.alloc(), "takeover-unassociated")
	x.Logf("associated with %s by %s %s after the kill", to.id(), next.id(), e.Time.Sub(killed).Round(time.Millisecond))
}
