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
	// An unhealthy holder serves nothing: its EIP is taken over, fenced
	// (the coordinator disassociates the association it read, then
	// associates): one association, after one disassociation from h.
	if err := c.oneMoveFrom(mark, alloc, h.id()); err != nil {
		t.Fatal(err)
	}
}

// oneMoveFrom checks that alloc changed hands exactly once since mark,
// away from `from`, made by a daemon: one association to another
// instance, either a move straight from `from` (a handoff) or preceded by
// one disassociation of `from` (a fenced takeover).
func (c *cluster) oneMoveFrom(mark int, alloc, from string) error {
	var ch []simEvent
	for _, e := range c.events()[mark:] {
		if e.AllocationID == alloc && isAssocChange(e) {
			ch = append(ch, e)
		}
	}
	switch {
	case len(ch) == 1 && ch[0].Action == "move" && ch[0].From == from && ch[0].To != from && ch[0].Caller != "":
		return nil
	case len(ch) == 2 && ch[0].Action == "disassociate" && ch[0].From == from && ch[1].Action == "associate" &&
		ch[1].To != from && ch[1].To != "" && ch[0].Caller != "" && ch[1].Caller == ch[0].Caller:
		return nil
	}
	return fmt.Errorf("want exactly one move away from %s made by a daemon (a handoff, or a fenced takeover), got:%s", from, c.eventsSince(mark))
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
	if len(m) != 1 || m[0].To == h.id() || m[0].Caller == "" || m[0].Caller == h.id() {
		t.Fatalf("want one takeover made by a surviving coordinator, got:%s", c.eventsSince(mark))
	}
	if got := c.node(m[0].To).role(alloc); got != "holder" {
		t.Fatalf("new holder %s reports role %q", m[0].To, got)
	}
}

// TestHolderHungTakeover: the holder's eipd and HAProxy are frozen
// (SIGSTOP): the coordinator's probes of it fail, another member confirms
// it, and its EIP is taken over; never two daemons reporting holder, and
// when they thaw the old holder does not call itself holder again and
// there is no fight.
func TestHolderHungTakeover(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	smp := startSampler(c)
	c.startAll()
	h := c.steady(alloc)
	mark := c.mark()
	frozen := time.Now()
	h.eipd.stop()
	h.haproxy.stop()
	waitFor(t, 20*time.Second, "a standby to take the EIP over", func() bool { return len(c.assocsSince(mark, alloc)) > 0 })
	m := c.assocsSince(mark, alloc)
	if m[0].To == h.id() || m[0].Caller == "" || m[0].Caller == h.id() {
		t.Fatalf("want a takeover made by a surviving coordinator, got:%s", c.eventsSince(mark))
	}
	to := c.node(m[0].To)
	waitFor(t, 15*time.Second, "the new holder to report holder", func() bool { return to.role(alloc) == "holder" })
	thawed := time.Now()
	h.eipd.cont()
	h.haproxy.cont()
	waitFor(t, 15*time.Second, "the thawed old holder to step down", func() bool { return h.role(alloc) == "standby" })
	during(t, 3*fastLease, "after the thaw", func() error {
		if m := c.assocsSince(mark, alloc); len(m) != 1 {
			return fmt.Errorf("want exactly one move, got %d:%s", len(m), c.eventsSince(mark))
		}
		return nil
	})
	end := time.Now()
	rows := smp.requireSamples(t, frozen, end)
	if d, at, _ := overlap(rows, alloc); d > 0 {
		t.Errorf("two daemons reported holder for %s from %s", d, at.Format("15:04:05.000"))
	}
	if last := lastRole(smp.between(thawed, end), c.index(h), alloc, "holder"); !last.IsZero() {
		t.Errorf("the thawed old holder reported holder at %s, %s after the thaw", last.Format("15:04:05.000"), last.Sub(thawed))
	}
	t.Logf("taken over by %s %s after the freeze", to.id(), m[0].Time.Sub(frozen).Round(time.Millisecond))
}

// TestHolderPartitionedFromPeersNoMove: the standbys and the holder cannot
// reach each other (their probes aim at ports the holder has nothing on),
// but the holder, which started first and coordinates, renews the group
// lease: the others see it fresh in the API and claim nothing; no move over
// several lease durations.
func TestHolderPartitionedFromPeersNoMove(t *testing.T) {
	// Instance 0 uses the alternate HAProxy and status ports: the others
	// probe it on theirs, where nothing listens on its IP, and it probes
	// them on its own.
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
	_, cs := c.coordinator(10 * time.Second)
	mark := c.mark()
	// The partition must be real, or this test proves nothing: the
	// holder's probes of the others fail.
	waitFor(t, 10*time.Second, "the coordinator to see the others unreachable", func() bool {
		s, err := h.status()
		if err != nil || !s.acting() {
			return false
		}
		for _, n := range c.others(h) {
			if m := s.member(n.id()); m == nil || m.Probe != "down" {
				return false
			}
		}
		return true
	})
	reads := c.stats()
	during(t, 5*fastLease, "holder partitioned from peers but renewing", func() error {
		if err := c.noMoves(mark, alloc)(); err != nil {
			return err
		}
		for _, n := range c.others(h) {
			s, err := n.status()
			if err != nil {
				continue
			}
			if s.Coordinator != h.id() || s.Epoch != cs.Epoch {
				return fmt.Errorf("%s follows %s epoch %d, want %s epoch %d", n.id(), s.Coordinator, s.Epoch, h.id(), cs.Epoch)
			}
		}
		return nil
	})
	// They watched the lease in the API: each read it more than once.
	after := c.stats()
	for _, n := range c.others(h) {
		if d := after.ByCaller[n.id()]["DescribeAddresses"] - reads.ByCaller[n.id()]["DescribeAddresses"]; d < 2 {
			t.Errorf("%s read the EIPs %d times in %s while it could not reach the coordinator: it did not watch the lease", n.id(), d, 5*fastLease)
		}
	}
	if h.role(alloc) != "holder" {
		t.Fatalf("holder no longer reports holder")
	}
}

// TestHolderCutFromAPINoMove: a member's EC2 calls hang (emulator
// partition for its credentials) while every HAProxy serves: no move. Cut
// off, the holder (which makes no EC2 call) changes nothing; cut off, the
// coordinator stops acting once its lease is not confirmed, and another
// member takes the role over, still moving nothing.
func TestHolderCutFromAPINoMove(t *testing.T) {
	for _, who := range []string{"holder", "coordinator"} {
		t.Run(who, func(t *testing.T) {
			c := newCluster(t, clusterOpts{instances: 3})
			alloc := c.alloc(0)
			c.startAll()
			h := c.steady(alloc)
			c.roleHandedOver()
			co, cs := c.coordinator(10 * time.Second)
			cut := h
			if who == "coordinator" {
				cut = co
			}
			mark := c.mark()
			before := c.stats()
			c.setInstanceFaults(cut.id(), map[string]any{"partition": true})
			if who == "coordinator" {
				waitFor(t, 20*time.Second, "another member to coordinate", func() bool {
					n, s, ok := c.tryCoordinator()
					return ok && n != co && s.Epoch > cs.Epoch
				})
				if n := partitioned(c.stats()) - partitioned(before); n == 0 {
					t.Fatalf("no call of the cut-off coordinator was held up: it was not cut off")
				}
			}
			during(t, 5*fastLease, who+" cut from the EC2 API", c.noMoves(mark, alloc))
			c.clearInstanceFaults(cut.id())
			during(t, 3*fastLease, "after the API partition healed", c.noMoves(mark, alloc))
			waitFor(t, 15*time.Second, "the lease to be renewed and the holder to report holder", func() bool {
				r, err := time.Parse(time.RFC3339Nano, c.address(alloc).Tags["eipd:renewed"])
				return err == nil && time.Since(r) < 2*time.Second && h.role(alloc) == "holder"
			})
		})
	}
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
		t.Fatalf("term changed across a restart: %s → %s (a restart is not a change of holder)", s.EIPs[0].Term, s2.EIPs[0].Term)
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
	c.allReady(3)
	mark, logs := c.mark(), c.logMarks()
	// The standbys' proxies first, until their health is down: the
	// holder's falling first would rightly move the EIP to one of them.
	for _, n := range c.others(h) {
		n.killHAProxy()
	}
	waitFor(t, 10*time.Second, "the standbys' health to go down", func() bool {
		for _, n := range c.others(h) {
			if s, err := n.status(); err != nil || s.Health != "down" {
				return false
			}
		}
		return true
	})
	h.killHAProxy()
	c.waitBlocked(t, alloc, logs, 15*time.Second)
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
	h.eipd.Term()
	// --stop-timeout is 5 s; the margin is for a slow machine.
	if !h.eipd.WaitExit(20 * time.Second) {
		t.Fatalf("holder did not exit after SIGTERM")
	}
	if h.eipd.Err != nil {
		t.Fatalf("holder exited with %v after SIGTERM, want 0", h.eipd.Err)
	}
	m := c.assocsSince(mark, alloc)
	if len(m) != 1 || m[0].From != h.id() || m[0].Action != "move" {
		t.Fatalf("want exactly one handoff before exit, got:%s", c.eventsSince(mark))
	}
	if m[0].Time.After(h.eipd.ExitAt) {
		t.Fatalf("the move (%s) came after the exit (%s)", m[0].Time, h.eipd.ExitAt)
	}
	t.Logf("handoff %s after SIGTERM, exit %s after SIGTERM", m[0].Time.Sub(sent), h.eipd.ExitAt.Sub(sent))
	waitFor(t, 10*time.Second, "the target to report itself holder", func() bool { return c.node(m[0].To).role(alloc) == "holder" })
	during(t, 3*fastLease, "after the shutdown handoff", func() error {
		if m := c.assocsSince(mark, alloc); len(m) != 1 {
			return fmt.Errorf("want exactly one move, got:%s", c.eventsSince(mark))
		}
		return nil
	})
}
