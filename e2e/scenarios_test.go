package e2e

import (
	"fmt"
	"testing"
	"time"
)

// Scenarios run one at a time (no t.Parallel): each starts several
// processes on a 2-core machine. Timings are fastFlags: a lease of 1 s
// (+100 ms skew), so "≥ 3 lease durations" is a few seconds.

// TestSteadyStateOneHolder: three daemons on an unassociated EIP elect one
// holder, with one association, and a client reaches it through the EIP.
func TestSteadyStateOneHolder(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	if m := c.assocsSince(0, alloc); len(m) != 1 {
		t.Fatalf("want exactly one association, got %d:%s", len(m), c.eventsSince(0))
	}
	waitFor(t, 10*time.Second, "a client through the EIP to reach the holder", func() bool {
		got, err := c.viaEIP(0)
		return err == nil && got == h.id()
	})
}

// TestHolderCheckFailsHandsOff: the holder's HAProxy dies → it hands the
// EIP to a ready standby: one move, to a healthy instance, and clients
// are served by the new holder.
func TestHolderCheckFailsHandsOff(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	mark := c.mark()
	h.killHAProxy()
	var to string
	waitFor(t, 20*time.Second, "the EIP to leave the unhealthy holder", func() bool {
		m := c.assocsSince(mark, alloc)
		if len(m) > 0 {
			to = m[0].To
			return true
		}
		return false
	})
	if to == h.id() || c.node(to) == nil {
		t.Fatalf("moved to %q, want a standby:%s", to, c.eventsSince(mark))
	}
	waitFor(t, 10*time.Second, "a client through the EIP to reach the new holder", func() bool {
		got, err := c.viaEIP(0)
		return err == nil && got == to
	})
	waitFor(t, 10*time.Second, "the new holder to report itself holder", func() bool { return c.node(to).role(alloc) == "holder" })
	time.Sleep(3 * fastLease)
	if m := c.assocsSince(mark, alloc); len(m) != 1 || m[0].From != h.id() || m[0].Action != "move" {
		t.Fatalf("want exactly one move (a handoff from %s), got:%s", h.id(), c.eventsSince(mark))
	}
}

// TestHolderTerminatedTakeover: the holder instance is terminated (the
// emulator disassociates its EIP; the test kills its processes) → a
// standby takes over.
func TestHolderTerminatedTakeover(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	mark := c.mark()
	c.instanceOp(h.id(), "terminate")
	h.eipd.killWait(t)
	h.killHAProxy()
	waitFor(t, 20*time.Second, "a standby to take the EIP over", func() bool { return len(c.assocsSince(mark, alloc)) > 0 })
	time.Sleep(3 * fastLease)
	m := c.assocsSince(mark, alloc)
	if len(m) != 1 || m[0].To == h.id() || m[0].Caller != m[0].To {
		t.Fatalf("want one takeover by a survivor, got:%s", c.eventsSince(mark))
	}
	if got := c.node(m[0].To).role(alloc); got != "holder" {
		t.Fatalf("new holder %s reports role %q", m[0].To, got)
	}
}

// TestHolderHungTakeover: the holder's eipd and HAProxy are frozen
// (SIGSTOP): no renewals, probes fail → takeover after lease expiry; when
// they thaw, the old holder steps down without a fight.
func TestHolderHungTakeover(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	mark := c.mark()
	frozen := time.Now()
	h.eipd.stop()
	h.haproxy.stop()
	waitFor(t, 20*time.Second, "a standby to take the EIP over", func() bool { return len(c.assocsSince(mark, alloc)) > 0 })
	m := c.assocsSince(mark, alloc)
	if m[0].To == h.id() || m[0].Caller != m[0].To {
		t.Fatalf("want a takeover by a survivor, got:%s", c.eventsSince(mark))
	}
	// The lease was fresh when the holder froze: no takeover before it ran out.
	if d := m[0].Time.Sub(frozen); d < fastLease-300*time.Millisecond-100*time.Millisecond {
		t.Fatalf("takeover %s after the freeze, before the lease (%s) could have expired:%s", d, fastLease, c.eventsSince(mark))
	}
	h.eipd.cont()
	h.haproxy.cont()
	waitFor(t, 15*time.Second, "the thawed old holder to step down", func() bool { return h.role(alloc) == "standby" })
	during(t, 3*fastLease, "after the thaw", func() error {
		if m := c.assocsSince(mark, alloc); len(m) != 1 {
			return fmt.Errorf("want exactly one move, got %d:%s", len(m), c.eventsSince(mark))
		}
		return nil
	})
}

// TestHolderPartitionedFromPeersNoMove: the standbys cannot reach the
// holder (their probes aim at ports the holder has nothing on) but the
// holder renews: no move over several lease durations.
func TestHolderPartitionedFromPeersNoMove(t *testing.T) {
	// Instance 0 uses the alternate HAProxy and status ports: the others
	// probe it on theirs, where nothing listens on its IP.
	c := newCluster(t, clusterOpts{instances: 3, alt: func(i int) bool { return i == 0 }})
	alloc := c.alloc(0)
	h := c.nodes[0]
	h.startDaemon()
	h.waitUp()
	waitFor(t, 20*time.Second, "instance 0 to hold the EIP", func() bool { return c.holder(alloc) == h.id() && h.role(alloc) == "holder" })
	for _, n := range c.others(h) {
		n.startDaemon()
		n.waitUp()
	}
	c.steady(alloc)
	mark := c.mark()
	// The standbys' probes of the holder must really fail, or this test
	// proves nothing.
	waitFor(t, 10*time.Second, "the standbys to see the holder unreachable", func() bool {
		for _, n := range c.others(h) {
			ss, err := n.scrape()
			if err != nil || metricSum(ss, "eipd_peer_probe_up", map[string]string{"allocation_id": alloc}) != 0 ||
				!hasSample(ss, "eipd_peer_probe_up", alloc) {
				return false
			}
		}
		return true
	})
	during(t, 5*fastLease, "holder partitioned from peers but renewing", c.noMoves(mark, alloc))
	if h.role(alloc) != "holder" {
		t.Fatalf("holder no longer reports holder")
	}
}

func hasSample(ss []sample, name, alloc string) bool {
	for _, s := range ss {
		if s.name == name && s.labels["allocation_id"] == alloc {
			return true
		}
	}
	return false
}

// TestHolderCutFromAPINoMove: the holder's EC2 calls hang (emulator
// partition for its credentials) but its HAProxy answers peers: no move.
func TestHolderCutFromAPINoMove(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	mark := c.mark()
	c.setInstanceFaults(h.id(), map[string]any{"partition": true})
	// The standbys must see the lease go stale, so they really decide
	// against a takeover because the holder answers.
	waitFor(t, 20*time.Second, "the lease to go stale in the emulator", func() bool {
		r, err := time.Parse(time.RFC3339Nano, c.address(alloc).Tags["eipd:renewed"])
		return err == nil && time.Since(r) > 3*fastLease
	})
	during(t, 5*fastLease, "holder cut from the EC2 API", c.noMoves(mark, alloc))
	c.clearInstanceFaults(h.id())
	during(t, 3*fastLease, "after the API partition healed", c.noMoves(mark, alloc))
	waitFor(t, 15*time.Second, "the holder to renew again", func() bool {
		r, err := time.Parse(time.RFC3339Nano, c.address(alloc).Tags["eipd:renewed"])
		return err == nil && time.Since(r) < 2*time.Second && h.role(alloc) == "holder"
	})
}

// TestThrottlingNoSpuriousMove: half of all EC2 calls are throttled for
// 20 s (the minute, scaled to the 1 s lease of these tests: 18
// leases): no move.
func TestThrottlingNoSpuriousMove(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	c.steady(alloc)
	mark := c.mark()
	before := c.stats()
	c.setFaults(map[string]any{"throttle_ratio": 0.5})
	during(t, 20*time.Second, "50% throttling", c.noMoves(mark, alloc))
	c.clearFaults()
	after := c.stats()
	if after.Total-before.Total < 20 {
		t.Fatalf("only %d EC2 calls during 20 s of throttling: the fault was not exercised", after.Total-before.Total)
	}
	during(t, 2*fastLease, "after throttling", c.noMoves(mark, alloc))
}

// TestDescribeLagNoFlap: Describe* answers 2 s behind writes: no move in
// steady state, and a forced failover moves the EIP exactly once.
func TestDescribeLagNoFlap(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	c.setFaults(map[string]any{"describe_lag": "2s"})
	mark := c.mark()
	during(t, 6*time.Second, "steady state with 2 s describe lag", c.noMoves(mark, alloc))
	h.killHAProxy()
	waitFor(t, 20*time.Second, "the EIP to leave the unhealthy holder", func() bool { return len(c.assocsSince(mark, alloc)) > 0 })
	to := c.assocsSince(mark, alloc)[0].To
	waitFor(t, 15*time.Second, "the new holder to report itself holder", func() bool { return c.node(to).role(alloc) == "holder" })
	during(t, 6*time.Second, "after the failover with 2 s describe lag", func() error {
		if m := c.assocsSince(mark, alloc); len(m) != 1 {
			return fmt.Errorf("want exactly one move, got %d:%s", len(m), c.eventsSince(mark))
		}
		return nil
	})
}

// TestFiveStartAtOnceOneAssociation: five daemons start together on an
// unassociated EIP: exactly one association.
func TestFiveStartAtOnceOneAssociation(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 5})
	alloc := c.alloc(0)
	for _, n := range c.nodes {
		n.startDaemon()
	}
	for _, n := range c.nodes {
		n.waitUp()
	}
	c.steady(alloc)
	time.Sleep(3 * fastLease)
	ev := c.events()
	assoc, other := 0, 0
	for _, e := range ev {
		if e.To != "" {
			assoc++
		} else {
			other++
		}
	}
	if assoc != 1 || other != 0 {
		t.Fatalf("want exactly one association event and nothing else, got:%s", c.eventsSince(0))
	}
}

// TestHolderRestartNoMove: the holder's daemon is killed and started
// again: it resumes as holder, the EIP does not move.
func TestHolderRestartNoMove(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	s, _ := h.status()
	mark := c.mark()
	h.eipd.killWait(t)
	h.startDaemon()
	h.waitUp()
	waitFor(t, 15*time.Second, "the restarted daemon to resume as holder", func() bool { return h.role(alloc) == "holder" })
	during(t, 3*fastLease, "after the holder restarted", c.noMoves(mark, alloc))
	s2, _ := h.status()
	if len(s.EIPs) == 1 && len(s2.EIPs) == 1 && s2.EIPs[0].Term != s.EIPs[0].Term {
		t.Fatalf("term changed across a restart: %d → %d (a restart is not a change of holder)", s.EIPs[0].Term, s2.EIPs[0].Term)
	}
}

// TestMovedByHandAdopted: an operator associates the EIP to a standby by
// hand: that instance adopts it, the old holder steps down, no fight.
func TestMovedByHandAdopted(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	to := c.others(h)[0]
	mark := c.mark()
	if err := doJSON("POST", c.info.ControlEndpoint+"/addresses/"+alloc+"/associate", map[string]string{"instance_id": to.id()}, nil); err != nil {
		t.Fatalf("associate by hand: %v", err)
	}
	waitFor(t, 15*time.Second, "the instance it was moved to to adopt it", func() bool { return to.role(alloc) == "holder" })
	waitFor(t, 15*time.Second, "the old holder to step down", func() bool { return h.role(alloc) == "standby" })
	during(t, 4*fastLease, "after the move by hand", c.onlyMoveTo(mark, alloc, to.id(), "the operator's"))
}

// TestAllUnhealthyStaysThenMoves: every HAProxy dies → the EIP stays put;
// one standby recovers → the EIP moves there.
func TestAllUnhealthyStaysThenMoves(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	mark := c.mark()
	for _, n := range c.nodes {
		n.killHAProxy()
	}
	waitFor(t, 15*time.Second, "the holder to report its handoff blocked", func() bool {
		s, err := h.status()
		return err == nil && len(s.EIPs) == 1 && s.EIPs[0].HandoffBlocked
	})
	during(t, 5*fastLease, "every instance unhealthy", c.noMoves(mark, alloc))
	r := c.others(h)[0]
	r.restartHAProxy()
	waitFor(t, 20*time.Second, "the EIP to move to the recovered standby", func() bool { return len(c.assocsSince(mark, alloc)) > 0 })
	waitFor(t, 15*time.Second, "the recovered standby to report itself holder", func() bool { return r.role(alloc) == "holder" })
	during(t, 3*fastLease, "after the recovery", c.onlyMoveTo(mark, alloc, r.id(), "the recovered standby"))
}

// TestTwoEIPsSpread: two EIPs over three instances end on two different
// instances and stay there.
func TestTwoEIPsSpread(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3, eips: 2})
	c.startAll()
	a, b := c.alloc(0), c.alloc(1)
	waitFor(t, 30*time.Second, "the two EIPs held by two different instances", func() bool {
		ha, hb := c.holder(a), c.holder(b)
		return ha != "" && hb != "" && ha != hb && c.node(ha).role(a) == "holder" && c.node(hb).role(b) == "holder"
	})
	mark := c.mark()
	during(t, 4*fastLease, "two EIPs spread", func() error {
		if ha, hb := c.holder(a), c.holder(b); ha == hb {
			return fmt.Errorf("one instance %s holds both", ha)
		}
		if err := c.noMoves(mark, a)(); err != nil {
			return err
		}
		return c.noMoves(mark, b)()
	})
}

// TestSIGTERMHandsOffBeforeExit: SIGTERM to the holder → it hands off to
// a ready standby, then exits 0 within --stop-timeout; one move, made
// before the process ended.
func TestSIGTERMHandsOffBeforeExit(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	h := c.steady(alloc)
	mark := c.mark()
	sent := time.Now()
	h.eipd.term()
	// --stop-timeout is 5 s; the margin is for a slow machine.
	if !h.eipd.waitExit(20 * time.Second) {
		t.Fatalf("holder did not exit after SIGTERM")
	}
	if h.eipd.err != nil {
		t.Fatalf("holder exited with %v after SIGTERM, want 0", h.eipd.err)
	}
	m := c.assocsSince(mark, alloc)
	if len(m) != 1 || m[0].From != h.id() || m[0].Action != "move" {
		t.Fatalf("want exactly one handoff before exit, got:%s", c.eventsSince(mark))
	}
	if m[0].Time.After(h.eipd.exitAt) {
		t.Fatalf("the move (%s) came after the exit (%s)", m[0].Time, h.eipd.exitAt)
	}
	t.Logf("handoff %s after SIGTERM, exit %s after SIGTERM", m[0].Time.Sub(sent), h.eipd.exitAt.Sub(sent))
	waitFor(t, 10*time.Second, "the target to report itself holder", func() bool { return c.node(m[0].To).role(alloc) == "holder" })
	during(t, 3*fastLease, "after the shutdown handoff", func() error {
		if m := c.assocsSince(mark, alloc); len(m) != 1 {
			return fmt.Errorf("want exactly one move, got:%s", c.eventsSince(mark))
		}
		return nil
	})
}
