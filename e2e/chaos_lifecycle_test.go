package e2e

// Chaos scenarios: the life of the cluster: a cold start, the notices AWS
// gives before it takes an instance away (spot interruption, Auto Scaling
// scale-in, rebalance recommendation), a handoff followed by a failure,
// every proxy down at once, a flapping proxy, and two EIPs losing two
// members.

import (
	"fmt"
	"strings"
	"time"
)

// Bounds shared by the scenarios below, from the default timings.
var (
	// proxyDeathBound bounds the client-visible downtime when a holder's
	// proxy dies: its health check falls after 3 failed checks (1 s, then
	// fast 200 ms intervals), it tells the coordinator (POST /notice),
	// which probes it, and takes the EIP over (a fresh probe of the
	// target, a disassociation, an association). See chaosBounds.
	proxyDeathBound = chaosBound("proxy-death")
	// noticeBound bounds how long a holder's EIP takes to leave after a
	// lifecycle notice is posted: the notice is read within one lifecycle
	// poll (5 s), the holder tells the coordinator, which hands the EIP
	// off (fresh probes of both ends, one association). See chaosBounds.
	noticeBound = chaosBound("notice")
)

func lifecycleScenarios() []chaosScenario {
	return []chaosScenario{
		{
			name: "five-cold-start", title: "Five daemons started at once on an unassociated EIP",
			instances: 5, cold: true, apiMax: 120,
			// Downtime here is the time from the start of the daemons to
			// the first association (the client has nowhere to go until
			// then): identity from IMDS, health up after rise 2 checks 1 s
			// apart, the member list, the coordinator's claim (rank delay)
			// and acceptance round, and one association. See chaosBounds.
			downtime: chaosBound("cold-start"),
			fault:    fiveColdStart,
		},
		{
			name: "spot-interruption", title: "Spot interruption notice on the holder",
			instances: 3, apiMax: 60,
			fault: spotInterruption,
		},
		{
			name: "asg-scale-in", title: "ASG scale-in of the holder (lifecycle hook)",
			instances: 3, asg: "chaos-asg", hook: "eipd-drain", apiMax: 60,
			setup: func(x *chaosRun) {
				for _, n := range x.c.nodes {
					n.startDaemon("--lifecycle-hook", x.sc.hook)
				}
			},
			fault: asgScaleIn,
		},
		{
			name: "rebalance-recommendation", title: "Rebalance recommendation on the holder (EIP stays)",
			instances: 3, maxMoves: -1, apiMax: 40,
			fault: rebalanceRecommendation,
		},
		{
			name: "handoff-then-new-holder-dies", title: "SIGTERM handoff, then the new holder's HAProxy dies",
			instances: 3, maxMoves: 2, downtime: proxyDeathBound, apiMax: 80,
			fault: handoffThenNewHolderDies,
		},
		{
			name: "all-haproxy-down-one-back", title: "All HAProxies down, then one back (downtime from its return)",
			instances: 3, apiMax: 80,
			// Counted from the moment a standby's HAProxy is started
			// again (the outage before is total by nature): HAProxy up,
			// its health rises after 2 checks 1 s apart, it tells the
			// coordinator, which probes it and takes the EIP over. See
			// chaosBounds.
			downtime: chaosBound("one-back"),
			fault:    allHAProxyDownOneBack,
		},
		{
			name: "health-flapping", title: "Holder's health flapping every 3 s for a minute",
			instances: 3, runtimeCheck: true, downtime: proxyDeathBound, apiMax: 150,
			fault: healthFlapping,
		},
		{
			name: "two-eips-two-lose-health", title: "Two EIPs on three members, then both holders lose health",
			instances: 3, eips: 2, privateIPs: 2, downtime: proxyDeathBound, apiMax: 80,
			fault: twoEIPsTwoLoseHealth,
		},
	}
}

// ---- helpers ----

// drainingReason is the "draining" field of n's /status ("" when it does
// not answer or is not draining).
func (n *node) drainingReason() string {
	s, err := n.status()
	if err != nil {
		return ""
	}
	return s.Draining
}

// instanceGoes does what happens to an instance after a planned handoff:
// the OS shuts down (SIGTERM to eipd, which holds nothing and exits at
// once), HAProxy goes, the instance is terminated.
func (x *chaosRun) instanceGoes(n *node) {
	x.Helper()
	n.eipd.Term()
	if !n.eipd.WaitExit(10 * time.Second) {
		x.Fatalf("eipd of %s, holding nothing, did not exit within 10 s of SIGTERM", n.id())
	}
	n.killHAProxy()
	x.c.instanceOp(n.id(), "terminate")
}

// extraClient starts a second client on EIP i, as the run's client is
// started (25 requests a second, a new connection each), and waits until
// it gets through.
func (x *chaosRun) extraClient(i int) *chaosClient {
	x.Helper()
	cl := startChaosClient(x.c, i)
	from := time.Now()
	waitFor(x, 10*time.Second, fmt.Sprintf("a client of EIP %d to get through", i), func() bool {
		return cl.okInARow(from) >= 10
	})
	return cl
}

// ---- scenarios ----

// fiveColdStart: five daemons start together on an EIP nobody holds:
// exactly one association, made by the coordinator (no claim is undone: no
// disassociation), and one holder; the client waits for it.
func fiveColdStart(x *chaosRun) {
	alloc := x.alloc()
	if a := x.c.address(alloc); a.InstanceID != "" || len(x.c.events()) != 0 {
		x.Fatalf("the EIP is not unassociated and untouched before the start: %+v", a)
	}
	x.fault()
	for _, n := range x.c.nodes {
		n.startDaemon()
	}
	for _, n := range x.c.nodes {
		n.waitUp()
	}
	h := x.c.heldBy(30*time.Second, alloc)[0]
	x.clientBack(15*time.Second, 25)
	// Every other daemon must have settled as a standby that follows one
	// coordinator.
	x.c.steady(alloc)
	ev := x.c.events()
	if len(ev) != 1 || ev[0].To != h.id() || !x.byDaemon(ev[0]) {
		x.Fatalf("want exactly one association (by a daemon, to %s) and nothing else, got:%s", h.id(), eventList(ev))
	}
	x.Logf("%s associated the EIP with %s %s after the daemons started", ev[0].Caller, h.id(), ev[0].Time.Sub(x.faultAt).Round(time.Millisecond))
}

// spotInterruption: AWS posts a spot interruption notice on the holder
// (two minutes before it takes the instance): the holder drains and the
// coordinator hands the EIP to a ready member before the instance goes.
// Planned: not one failed request, one move, counted as handoff-draining.
func spotInterruption(x *chaosRun) {
	h, alloc := x.holder, x.alloc()
	x.fault()
	x.c.instanceOp(h.id(), "spot-interruption")
	to := x.movedAway(h, noticeBound)
	move := x.onlyMove(h)
	if d := move.Time.Sub(x.faultAt); d > noticeBound {
		x.Fatalf("handoff %s after the notice, bound %s", d, noticeBound)
	}
	x.requireHandoff(h, move, "handoff-draining")
	// The notice really was read, and it is why the EIP moved.
	if n := h.metric("eipd_lifecycle_notices_total", map[string]string{"kind": "spot-interruption"}); n != 1 {
		x.Fatalf("%s counted %v spot interruption notices, want 1", h.id(), n)
	}
	waitFor(x, 5*time.Second, h.id()+" to report draining", func() bool { return h.drainingReason() == "handoff-draining" })
	x.failoverReason(to, alloc, "handoff-draining")
	x.clientBack(10*time.Second, 25)
	// Then the instance goes: nothing moves any more.
	x.instanceGoes(h)
}

// asgScaleIn: Auto Scaling scales in the holder: its target lifecycle state
// becomes Terminated (the instance is in Terminating:Wait on the
// termination hook). The holder drains, the coordinator hands the EIP off,
// then the holder completes the hook (CONTINUE) once it holds nothing; then
// the instance goes.
func asgScaleIn(x *chaosRun) {
	h, alloc := x.holder, x.alloc()
	x.fault()
	x.c.control("PUT", "/instances/"+h.id()+"/lifecycle-state", map[string]string{"state": "Terminated"}, nil)
	to := x.movedAway(h, noticeBound)
	move := x.onlyMove(h)
	x.requireHandoff(h, move, "handoff-draining")
	var act *lifecycleAction
	waitFor(x, noticeBound, "the holder's lifecycle action to be completed", func() bool {
		act = x.c.completedFor(h.id())
		return act != nil
	})
	if !act.Completed.After(move.Time) {
		x.Fatalf("the lifecycle hook was completed at %s, before the handoff at %s",
			act.Completed.Format("15:04:05.000"), move.Time.Format("15:04:05.000"))
	}
	if act.Result != "CONTINUE" || act.Caller != h.id() || act.Group != x.sc.asg || act.Hook != x.sc.hook {
		x.Fatalf("lifecycle action %+v, want CONTINUE by %s for %s/%s", *act, h.id(), x.sc.asg, x.sc.hook)
	}
	if n := h.metric("eipd_lifecycle_notices_total", map[string]string{"kind": "asg-terminating"}); n != 1 {
		x.Fatalf("%s counted %v asg-terminating notices, want 1", h.id(), n)
	}
	x.failoverReason(to, alloc, "handoff-draining")
	x.Logf("handoff %s after the scale-in, hook completed %s after the handoff",
		move.Time.Sub(x.faultAt).Round(time.Millisecond), act.Completed.Sub(move.Time).Round(time.Millisecond))
	x.clientBack(10*time.Second, 25)
	// Auto Scaling terminates the instance once the hook is complete.
	x.instanceGoes(h)
	if n := len(x.c.lifecycleActions()); n != 1 {
		x.Fatalf("%d lifecycle actions, want the holder's only", n)
	}
}

// rebalanceRecommendation: AWS recommends rebalancing the holder's spot
// capacity. That is an early signal, not a stop: by design eipd keeps the
// EIP where it is (a move costs clients a connection each, and the
// instance may run for hours) and only stops offering the instance as a
// target: /status says no_new_eips. So: the notice is read, counted and
// logged, the holder says it takes no new EIP, and the EIP stays with no
// failed request.
func rebalanceRecommendation(x *chaosRun) {
	h := x.holder
	x.fault()
	x.c.instanceOp(h.id(), "rebalance")
	// One lifecycle poll (5 s) to read it; margin for a loaded machine.
	waitFor(x, 10*time.Second, h.id()+" to count the rebalance recommendation", func() bool {
		return h.metric("eipd_lifecycle_notices_total", map[string]string{"kind": "rebalance"}) == 1
	})
	waitFor(x, 5*time.Second, h.id()+" to say it takes no new EIP", func() bool {
		s, err := h.status()
		return err == nil && s.NoNewEIPs
	})
	if !strings.Contains(h.logOf(0), "rebalance recommendation received") {
		x.Fatalf("%s did not log the rebalance recommendation:\n%s", h.id(), tail(h.eipd.LogPath, 20))
	}
	// It holds on: no handoff, and it is not draining its EIPs.
	x.stays(h, 2*dRenew, "after a rebalance recommendation")
	if r := h.drainingReason(); r != "" {
		x.Fatalf("%s reports draining %q after a rebalance recommendation, want none", h.id(), r)
	}
}

// handoffThenNewHolderDies: SIGTERM on the holder A hands the EIP to B
// (planned, no failed request); then B's HAProxy dies: the coordinator
// takes it to C. Two moves in all, one per fault; the EIP never goes back
// to A, whose eipd is stopped (its HAProxy still runs, and it must not be
// a target).
func handoffThenNewHolderDies(x *chaosRun) {
	a, alloc := x.holder, x.alloc()
	x.fault()
	a.eipd.Term()
	b := x.movedAway(a, 30*time.Second)
	x.requireHandoff(a, x.onlyMove(a), "handoff-shutdown")
	if !a.eipd.WaitExit(30 * time.Second) {
		x.Fatalf("%s's eipd did not exit within 30 s of SIGTERM", a.id())
	}
	x.clientBack(10*time.Second, 25)
	// Let the new holder settle before the second fault.
	x.quiet(dRenew)
	if _, failed, _ := x.cl.downtime(x.faultAt, time.Now()); failed > 0 {
		x.Fatalf("%d requests failed during the SIGTERM handoff (planned: want none)", failed)
	}
	killed := time.Now()
	b.killHAProxy()
	x.healthFalls(b, 10*time.Second)
	next := x.movedAway(b, 30*time.Second)
	m := assocsIn(x.c.events(), alloc, killed)
	if len(m) != 1 || m[0].To != next.id() || (m[0].From != b.id() && m[0].From != "") {
		x.Fatalf("want one move from %s to %s after its HAProxy died, got:%s", b.id(), next.id(), eventList(changesSince(x.c.events(), alloc, killed)))
	}
	if m[0].From == "" {
		x.requireFenced(b, m[0])
	}
	if d := m[0].Time.Sub(killed); d > proxyDeathBound {
		x.Fatalf("the second move came %s after the HAProxy died, bound %s", d.Round(time.Millisecond), proxyDeathBound)
	}
	x.clientBack(10*time.Second, 25)
	for _, e := range assocsIn(x.c.events(), alloc, x.faultAt) {
		if e.To == a.id() {
			x.Fatalf("the EIP went back to the stopped member %s:%s", a.id(), eventList(assocsIn(x.c.events(), alloc, x.faultAt)))
		}
	}
	x.Logf("SIGTERM handoff %s → %s, then %s → %s %s after its HAProxy died", a.id(), b.id(), b.id(), next.id(), m[0].Time.Sub(killed).Round(time.Millisecond))
}

// allHAProxyDownOneBack: every HAProxy dies (the standbys' first, so that
// the holder's does not fall while one of theirs still serves). Moving
// the EIP to an unhealthy member helps nobody, so it stays associated
// where it is and the coordinator says the holder's handoff is blocked;
// nothing moves. Then one standby's HAProxy comes back: the EIP moves
// there, once. The outage is total until then; the downtime is counted
// from that HAProxy's return.
func allHAProxyDownOneBack(x *chaosRun) {
	h, alloc := x.holder, x.alloc()
	logs := x.c.logMarks()
	x.fault()
	for _, n := range x.c.others(h) {
		n.killHAProxy()
	}
	for _, n := range x.c.others(h) {
		x.healthFalls(n, 10*time.Second)
	}
	h.killHAProxy()
	x.healthFalls(h, 10*time.Second)
	x.c.waitBlocked(x, alloc, logs, 15*time.Second)
	// No move and no disassociation while every member is down.
	x.staysOn(h, 2*dRenew, "every HAProxy down")
	if ch := changesSince(x.c.events(), alloc, x.faultAt); len(ch) > 0 {
		x.Fatalf("association changes while every member was down:%s", eventList(ch))
	}
	back := x.c.others(h)[0]
	x.measureFrom()
	back.restartHAProxy()
	to := x.movedAway(h, 30*time.Second)
	if to != back {
		x.Fatalf("the EIP went to %s, want %s (the only member with a proxy)", to.id(), back.id())
	}
	x.clientBack(x.sc.downtime+5*time.Second, 25)
	m := x.onlyMove(h)
	x.Logf("moved to %s %s after its HAProxy came back", back.id(), m.Time.Sub(x.downFrom).Round(time.Millisecond))
}

// healthFlapping: the holder's backend stops and starts every 3 s for a
// minute (runtime-API check: HAProxy reports the backend down, eipd's
// check falls after 3 failures). The first fall hands the EIP off; after
// that the flapping member was unhealthy within the last minute, so it is
// nobody's target: at most one move in the minute, never back to it.
func healthFlapping(x *chaosRun) {
	a, alloc := x.holder, x.alloc()
	ai := x.c.index(a)
	x.fault()
	const period = 3 * time.Second
	up := true
	toggles := 0
	for start := time.Now(); time.Since(start) < time.Minute; {
		if up {
			a.stopBackend()
		} else {
			a.startBackend()
		}
		up = !up
		toggles++
		time.Sleep(period)
	}
	if !up {
		a.startBackend()
	}
	end := time.Now()
	// The flapping really reached eipd's health (after hysteresis), more
	// than once: a check that never fell would prove nothing.
	falls, prev := 0, "up"
	for _, r := range x.s.between(x.faultAt, end) {
		if r.sts[ai] == nil {
			continue
		}
		if h := r.health(ai); h != prev {
			if h == "down" {
				falls++
			}
			prev = h
		}
	}
	if falls < 3 {
		x.Fatalf("%s's health fell %d times in the minute of flapping (%d toggles), want at least 3", a.id(), falls, toggles)
	}
	m := assocsIn(x.c.events(), alloc, x.faultAt)
	for _, e := range m {
		if e.To == a.id() {
			x.Fatalf("the EIP went back to the flapping member %s:%s", a.id(), eventList(m))
		}
	}
	if len(m) == 0 {
		x.Fatalf("the EIP never left the flapping holder %s", a.id())
	}
	x.clientBack(10*time.Second, 25)
	x.Logf("%d toggles, %s's health fell %d times; moves:%s", toggles, a.id(), falls, eventList(m))
}

// twoEIPsTwoLoseHealth: two EIPs on three members with two private IPs
// each, spread over two holders; both holders' HAProxies die: both EIPs go
// to the one healthy member, on its two different private IPs (EC2 allows
// one EIP per private IP: never one knocking the other off), each moved
// once, and the clients of both EIPs are served again within the bound.
func twoEIPsTwoLoseHealth(x *chaosRun) {
	a0, a1 := x.c.alloc(0), x.c.alloc(1)
	var h0, h1 *node
	waitFor(x, 30*time.Second, "the two EIPs to be held by two different members", func() bool {
		h0, h1 = x.c.node(x.c.holder(a0)), x.c.node(x.c.holder(a1))
		return h0 != nil && h1 != nil && h0 != h1 && h0.role(a0) == "holder" && h1.role(a1) == "holder"
	})
	var free *node
	for _, n := range x.c.nodes {
		if n != h0 && n != h1 {
			free = n
		}
	}
	cl1 := x.extraClient(1)
	x.fault()
	h0.killHAProxy()
	h1.killHAProxy()
	x.healthFalls(h0, 10*time.Second)
	x.healthFalls(h1, 10*time.Second)
	waitFor(x, 30*time.Second, "both EIPs on "+free.id()+" on different private IPs", func() bool {
		v0, v1 := x.c.address(a0), x.c.address(a1)
		return v0.InstanceID == free.id() && v1.InstanceID == free.id() && v0.PrivateIP != "" && v0.PrivateIP != v1.PrivateIP &&
			free.role(a0) == "holder" && free.role(a1) == "holder"
	})
	x.clientBack(10*time.Second, 25)
	waitFor(x, 10*time.Second, "25 requests in a row through EIP 1 to succeed", func() bool { return cl1.okInARow(x.faultAt) >= 25 })
	x.quiet(2 * dRenew)
	cl1.stop()
	ev := x.c.events()
	if n := countAction(ev, "displaced"); n > 0 {
		x.Fatalf("%d displaced events (an EIP knocked the other off its private IP):%s", n, eventList(ev))
	}
	for _, al := range []string{a0, a1} {
		if v := x.c.address(al); v.InstanceID != free.id() {
			x.Fatalf("%s left %s (now on %q)", al, free.id(), v.InstanceID)
		}
	}
	down, failed, total := cl1.downtime(x.faultAt.Add(-clientTimeout), time.Now())
	if down > x.sc.downtime {
		x.Fatalf("client of EIP 1: %.2fs of downtime after the fault, bound %s (%d of %d requests failed)", down.Seconds(), x.sc.downtime, failed, total)
	}
	x.Logf("both EIPs on %s (%s, %s); EIP 1's client: %.2fs down, %d of %d failed",
		free.id(), x.c.address(a0).PrivateIP, x.c.address(a1).PrivateIP, down.Seconds(), failed, total)
}
