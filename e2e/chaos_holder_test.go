package e2e

// Chaos scenarios: the holder's own failures (its daemon, its instance, a
// freeze), its links (to its peers, to the EC2 API), and an EC2 API that
// throttles or answers reads late.
//
// Bounds use the daemon's default timings (renew 3 s, lease 10 s, skew 1 s,
// health 1 s × fall 3, probe 1 s × fall 3); each says where it comes from.

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Bounds shared by several scenarios.
const (
	// dProbe is how long a standby takes to see a dead holder: probe
	// interval 1 s × fall 3.
	dProbe = 3 * time.Second
	// dTrust is how long a holder calls itself holder after its last
	// confirmation by AWS: lease − skew (design invariant 6).
	dTrust = dLease - dSkew
	// lagChaos is the read lag of the read-lag scenarios.
	lagChaos = 5 * time.Second
)

func init() {
	addChaos(
		chaosScenario{
			name: "eipd-killed", title: "Holder's eipd SIGKILLed while its HAProxy serves (EIP stays)",
			instances: 3, maxMoves: -1, // downtime 0: not one request may fail
			fault: faultEipdKilled,
		},
		chaosScenario{
			name: "instance-terminated", title: "Holder instance terminated",
			// The stopped/terminated-holder path: probe detection (3 s),
			// then a member listing and the claim; the benchmarks put its
			// p99 near 3 s. 8 s leaves room for a loaded 2-core machine.
			instances: 3, downtime: 8 * time.Second,
			fault: func(x *chaosRun) { faultInstanceGone(x, "terminate") },
		},
		chaosScenario{
			name: "instance-stopped", title: "Holder instance stopped",
			instances: 3, downtime: 8 * time.Second,
			fault: func(x *chaosRun) { faultInstanceGone(x, "stop") },
		},
		chaosScenario{
			name: "holder-hung", title: "Holder hung (SIGSTOP eipd and HAProxy), then thawed",
			// Takeover needs a stale lease: lease + skew (11 s) after the
			// last renewal, which is at most a renew interval before the
			// freeze; the probe has long fallen by then (3 s), and a
			// standby re-reads a stale-looking lease every renew interval
			// (up to 3 s more). 16 s covers that with a margin.
			instances: 3, downtime: 16 * time.Second,
			fault: faultHolderHung,
		},
		chaosScenario{
			name: "partition-from-peers", title: "Holder partitioned from its peers while it reaches the API (EIP stays)",
			// Instance 0 serves on the alternate HAProxy and status ports
			// (the EIP's traffic follows it there): its peers probe the
			// usual ports on its IP, where nothing answers, as if the
			// network between them were cut. It is made the holder.
			instances: 3, maxMoves: -1, alt: func(i int) bool { return i == 0 },
			setup: setupAltHolder,
			fault: faultPartitionFromPeers,
		},
		chaosScenario{
			name: "api-cut-holder-serves", title: "Holder cut from the EC2 API while its HAProxy serves (EIP stays)",
			instances: 3, maxMoves: -1,
			fault: faultAPICutHolderServes,
		},
		chaosScenario{
			name: "api-cut-haproxy-dies", title: "Holder cut from the EC2 API, then its HAProxy dies",
			// The only scenario where the old holder cannot hear that it
			// lost the EIP: design invariant 1 allows one renew interval
			// of two daemons calling themselves holder.
			instances: 3, overlap: dRenew,
			// Nobody can move the EIP before its lease is stale: lease +
			// skew (11 s) after the last renewal, at most a renew interval
			// before the cut; then a re-read (renew interval, 3 s) and the
			// fenced claim. 16 s covers it with a margin.
			downtime: 16 * time.Second,
			fault:    faultAPICutHAProxyDies,
		},
		chaosScenario{
			name: "throttling-bursts", title: "Throttling bursts (AWS bucket sizes) from another client, failover during one",
			instances: 3, downtime: throttleBound,
			// AWS throttles all the time: the buckets are on from the
			// start, so the daemons' own calls draw on them too.
			setup: func(x *chaosRun) { x.c.setFaults(map[string]any{"throttle": true}) },
			fault: faultThrottlingBursts,
		},
		chaosScenario{
			name: "read-lag-steady", title: "5 s read lag (DescribeAddresses/Instances) in steady state",
			instances: 3, maxMoves: -1,
			fault: faultReadLagSteady,
		},
		chaosScenario{
			name: "read-lag-handoff", title: "5 s read lag with a manual handoff (eipd handoff)",
			instances: 3, // planned: not one request may fail; one move
			fault:     faultReadLagHandoff,
		},
		chaosScenario{
			name: "read-lag-unhealthy", title: "5 s read lag with an unhealthy handoff (HAProxy killed)",
			// The handoff of haproxy-killed, with its bound (5 s): the
			// holder keeps its targets at hand and probes the chosen one
			// over the network, so no read is on the critical path and
			// the move itself is a write, which sees no lag.
			instances: 3, downtime: 5 * time.Second,
			fault: faultReadLagUnhealthy,
		},
	)
}

// ---- eipd-killed ----

// faultEipdKilled: the holder's daemon dies (SIGKILL) while its HAProxy
// serves. Its lease goes stale, but the standbys' probes of its HAProxy
// pass, so nobody takes the EIP: a dead daemon is not a dead proxy. The
// daemon restarted finds the EIP on its own ENI and resumes as holder with
// the stored term.
func faultEipdKilled(x *chaosRun) {
	h := x.holder
	term := x.leaseTag("eipd:term")
	x.fault()
	h.eipd.killWait(x)
	// Lease + skew (11 s) after the last renewal, plus the probe's fall
	// (3 s) and a second: every standby has had time to judge.
	stay := dLease + dSkew + dProbe + time.Second
	x.staysOn(h, stay, "the holder's eipd is dead but its HAProxy serves")
	// The fault really left the standbys a stale lease to judge.
	if age := time.Since(x.leaseRenewed()); age <= dLease+dSkew {
		x.Fatalf("the lease is only %s old %s after the holder's eipd died: someone renewed it (want older than lease + skew, %s)",
			age.Round(time.Millisecond), stay, dLease+dSkew)
	}
	for _, n := range x.c.others(h) {
		if p := n.peerProbe(x.alloc()); p != "up" {
			x.Fatalf("%s's probe of the holder's HAProxy is %q, want up (the proxy serves)", n.id(), p)
		}
	}
	h.startDaemon()
	h.waitUp()
	waitFor(x, 20*time.Second, "the restarted daemon to resume as holder", func() bool { return h.role(x.alloc()) == "holder" })
	restarted := time.Now()
	waitFor(x, 2*dRenew, "the restarted holder to renew the lease", func() bool {
		rs := renewals(x.c.tagHistory(x.alloc()))
		return len(rs) > 0 && rs[len(rs)-1].Caller == h.id() && rs[len(rs)-1].Time.After(restarted)
	})
	x.stays(h, dRenew, "after the restart")
	if got := x.leaseTag("eipd:term"); got != term {
		x.Fatalf("eipd:term went from %s to %s across a restart: a restart is not a change of holder", term, got)
	}
}

// ---- instance terminated or stopped ----

// faultInstanceGone: the holder's instance is terminated or stopped (op);
// its processes die with it. A standby takes over once.
func faultInstanceGone(x *chaosRun, op string) {
	h := x.holder
	x.fault()
	x.c.instanceOp(h.id(), op)
	h.eipd.killWait(x)
	h.killHAProxy()
	to := x.movedAway(h, 30*time.Second)
	e := x.firstAssoc(h)
	if e.Caller != e.To {
		x.Fatalf("the EIP went to %s by %q, want a takeover by the survivor itself:%s", e.To, e.Caller, eventList(x.changes()))
	}
	if op == "stop" {
		// A stopped instance keeps its EIP on EC2: the survivor must
		// have fenced (disassociated the association it saw) first.
		x.requireFenced(h, e)
	}
	x.clientBack(30*time.Second, 25)
	x.quiet(2 * dRenew)
	if got := x.c.holder(x.alloc()); got != to.id() {
		x.Fatalf("the EIP left %s after the takeover (now on %q)", to.id(), got)
	}
}

// ---- holder hung ----

// faultHolderHung: the holder's eipd and HAProxy freeze (SIGSTOP). A
// standby takes over once the lease is stale, never before; thawed, the
// old holder steps down without a fight.
func faultHolderHung(x *chaosRun) {
	h := x.holder
	x.fault()
	h.eipd.stop()
	h.haproxy.stop()
	e := x.waitFirstAssoc(h, 40*time.Second)
	took := e.Time.Sub(x.faultAt)
	// The lease was renewed at most a renew interval before the freeze:
	// a takeover earlier than lease + skew − renew (8 s; 1 s margin for
	// a renewal that landed late) would not have waited for it to expire.
	if earliest := dLease + dSkew - dRenew - time.Second; took < earliest {
		x.Fatalf("taken over by %s %s after the freeze, before the lease could have gone stale (%s)", e.To, took.Round(time.Millisecond), earliest)
	}
	if bound := 16 * time.Second; took > bound {
		x.Fatalf("taken over by %s %s after the freeze, want within lease + skew + probe + re-read + margin (%s)", e.To, took.Round(time.Millisecond), bound)
	}
	x.requireFenced(h, e)
	to := x.movedAway(h, 20*time.Second)
	x.clientBack(30*time.Second, 25)
	thawed := time.Now()
	h.haproxy.cont()
	h.eipd.cont()
	// Its trust ran out while frozen: it must not call itself holder
	// again, and it ends as a standby once it reads the API.
	waitFor(x, 30*time.Second, "the thawed old holder to step down to standby", func() bool { return h.role(x.alloc()) == "standby" })
	if last := lastRole(x.s.between(thawed, time.Now()), x.c.index(h), x.alloc(), "holder"); !last.IsZero() {
		x.Fatalf("the thawed old holder reported holder at %s, %s after the thaw (its trust had run out)",
			last.Format("15:04:05.000"), last.Sub(thawed).Round(time.Millisecond))
	}
	x.quiet(2 * dRenew)
	if got := x.c.holder(x.alloc()); got != to.id() {
		x.Fatalf("the EIP left %s after the thaw (now on %q)", to.id(), got)
	}
}

// ---- holder partitioned from its peers ----

// setupAltHolder starts instance 0 (on the alternate ports) alone until
// it holds the EIP, then the others.
func setupAltHolder(x *chaosRun) {
	h := x.c.nodes[0]
	h.startDaemon()
	h.waitUp()
	waitFor(x, 30*time.Second, "instance 0 (alternate ports) to hold the EIP", func() bool {
		return x.c.holder(x.alloc()) == h.id() && h.role(x.alloc()) == "holder"
	})
	for _, n := range x.c.others(h) {
		n.startDaemon()
	}
	for _, n := range x.c.others(h) {
		n.waitUp()
	}
}

// faultPartitionFromPeers: no standby can reach the holder (its probes
// fail), but the holder renews through the API, and the standbys read
// that fresh lease: nobody takes the EIP, for two lease durations.
func faultPartitionFromPeers(x *chaosRun) {
	h := x.holder
	if h != x.c.nodes[0] {
		x.Fatalf("the holder is %s, want instance 0 (the one its peers cannot reach)", h.id())
	}
	x.fault()
	standbys := x.c.others(h)
	// The partition is real: every standby's probe of the holder fails.
	waitFor(x, 10*time.Second, "every standby to report its probe of the holder down (eipd_peer_probe_up 0)", func() bool {
		for _, n := range standbys {
			if n.metric("eipd_peer_probe_up", map[string]string{"allocation_id": x.alloc()}) != 0 {
				return false
			}
		}
		return true
	})
	reads := map[string]int64{}
	st := x.c.stats()
	for _, n := range standbys {
		reads[n.id()] = st.ByCaller[n.id()]["DescribeAddresses"]
	}
	from := time.Now()
	maxAge := map[string]float64{}
	during(x, 2*dLease+dRenew, "the holder partitioned from its peers", func() error {
		if err := x.onHolder(h)(); err != nil {
			return err
		}
		for _, n := range standbys {
			v, err := n.standbyView(x.alloc())
			if err != nil {
				continue // a slow answer proves nothing either way
			}
			if v.PeerProbe != "down" {
				return fmt.Errorf("%s's probe of the holder is %q, want down (the partition)", n.id(), v.PeerProbe)
			}
			if v.HolderConfirmed {
				return fmt.Errorf("%s says the holder confirmed its lease over the network, which the partition forbids", n.id())
			}
			if v.LeaseAgeSeconds != nil {
				maxAge[n.id()] = max(maxAge[n.id()], *v.LeaseAgeSeconds)
			}
		}
		return nil
	})
	// They judged a fresh lease they read from the API themselves: each
	// read the address, and the lease age it saw never outgrew lease +
	// skew + one renew interval (it re-reads a lease that looks stale at
	// the renew interval, design invariant 6): every read found the lease
	// renewed. A standby that stopped reading, or read a stale lease,
	// would see it age past that.
	st = x.c.stats()
	seenMax := dLease + dSkew + dRenew
	for _, n := range standbys {
		got := st.ByCaller[n.id()]["DescribeAddresses"] - reads[n.id()]
		age, seen := maxAge[n.id()]
		x.Logf("%s: %d DescribeAddresses in %s, lease age seen up to %.1fs", n.id(), got, time.Since(from).Round(time.Second), age)
		switch {
		case got < 2:
			x.Fatalf("%s read the address %d times in %s while it could not reach the holder: it did not watch the lease", n.id(), got, time.Since(from).Round(time.Second))
		case !seen:
			x.Fatalf("%s never reported a lease age in /status: nothing shows what it judged", n.id())
		case age > seenMax.Seconds():
			x.Fatalf("%s saw the lease %.1fs old while it could not reach the holder, want at most lease + skew + renew (%s): it did not read a fresh lease", n.id(), age, seenMax)
		}
	}
	if r := h.role(x.alloc()); r != "holder" {
		x.Fatalf("the partitioned holder reports %q, want holder (it reaches the API)", r)
	}
}

// standbyView is the part of a standby's /status about one EIP.
type standbyView struct {
	PeerProbe       string   `json:"peer_probe"`
	HolderConfirmed bool     `json:"holder_confirmed"`
	LeaseAgeSeconds *float64 `json:"lease_age_seconds"`
}

func (n *node) standbyView(alloc string) (standbyView, error) {
	var s struct {
		EIPs []struct {
			AllocationID string `json:"allocation_id"`
			standbyView
		} `json:"eips"`
	}
	if err := doJSON("GET", fmt.Sprintf("http://%s:%d/status", n.inst.PrivateIP, n.statusPort), nil, &s); err != nil {
		return standbyView{}, err
	}
	for _, e := range s.EIPs {
		if e.AllocationID == alloc {
			return e.standbyView, nil
		}
	}
	return standbyView{}, fmt.Errorf("%s does not list %s", n.id(), alloc)
}

// ---- holder cut from the EC2 API ----

// faultAPICutHolderServes: the holder's EC2 calls hang (partition for its
// credentials) while its HAProxy serves. The lease goes stale, but the
// holder answers its peers' probes: nobody moves the EIP. Healed, the
// holder renews again.
func faultAPICutHolderServes(x *chaosRun) {
	h := x.holder
	x.fault()
	x.c.setInstanceFaults(h.id(), map[string]any{"partition": true})
	stale := dLease + dSkew
	during(x, stale+dProbe+time.Second, "the holder cut from the EC2 API while its HAProxy serves", x.onHolder(h))
	// The fault really happened: the lease in EC2 went stale, and the
	// holder's calls were really held up.
	if age := time.Since(x.leaseRenewed()); age <= stale {
		x.Fatalf("the lease is only %s old after the holder was cut from the API: it still renewed (want older than %s)", age.Round(time.Millisecond), stale)
	}
	if n := x.c.stats().ByOutcome["CreateTags"]["partitioned"]; n == 0 {
		x.Fatalf("no CreateTags was held up by the partition: the holder never tried to renew while cut off")
	}
	for _, n := range x.c.others(h) {
		if p := n.peerProbe(x.alloc()); p != "up" {
			x.Fatalf("%s's probe of the holder is %q, want up (its HAProxy serves)", n.id(), p)
		}
	}
	// A standby reads a stale-looking lease every renew interval: give it
	// two more rounds with the stale lease in front of it.
	during(x, 2*dRenew, "the holder cut from the EC2 API, lease stale", x.onHolder(h))
	healed := time.Now()
	x.c.clearInstanceFaults(h.id())
	waitFor(x, 3*dRenew+5*time.Second, "the healed holder to renew and call itself holder again", func() bool {
		rs := renewals(x.c.tagHistory(x.alloc()))
		return len(rs) > 0 && rs[len(rs)-1].Caller == h.id() && rs[len(rs)-1].Time.After(healed) && h.role(x.alloc()) == "holder"
	})
	x.stays(h, dRenew, "after the API came back")
}

// faultAPICutHAProxyDies: the holder is cut from the EC2 API, then its
// HAProxy dies: it can neither hand off nor hear that it lost the EIP. A
// standby takes over once the lease is stale, fencing (disassociating the
// association it saw, then associating); the cut-off holder stops calling
// itself holder within its trust window.
func faultAPICutHAProxyDies(x *chaosRun) {
	h := x.holder
	hi := x.c.index(h)
	cut := partitioned(x.c.stats())
	x.fault()
	x.c.setInstanceFaults(h.id(), map[string]any{"partition": true})
	h.killHAProxy()
	e := x.waitFirstAssoc(h, 40*time.Second)
	x.requireFenced(h, e)
	to := x.movedAway(h, 20*time.Second)
	x.clientBack(30*time.Second, 25)
	// Keep it cut off past its trust window, then judge its /status.
	if rest := time.Until(x.faultAt.Add(dTrust + 2*time.Second)); rest > 0 {
		time.Sleep(rest)
	}
	rows := x.s.between(x.faultAt, time.Now())
	// Its last confirmation was its last renewal, at or before the cut;
	// half a second covers a renewal in flight and the sampler's rounds.
	if last := lastRole(rows, hi, x.alloc(), "holder"); !last.IsZero() && last.Sub(x.faultAt) > dTrust+500*time.Millisecond {
		x.Fatalf("the cut-off holder reported holder %s after the cut, want at most its trust window (lease − skew, %s)",
			last.Sub(x.faultAt).Round(time.Millisecond), dTrust)
	}
	if r := h.role(x.alloc()); r == "holder" {
		x.Fatalf("the cut-off holder still reports holder %s after the cut", time.Since(x.faultAt).Round(time.Millisecond))
	}
	if n := partitioned(x.c.stats()) - cut; n == 0 {
		x.Fatalf("no EC2 call of the cut-off holder was held up by the partition: it was not cut off")
	}
	healed := time.Now()
	x.c.clearInstanceFaults(h.id())
	h.restartHAProxy()
	waitFor(x, 30*time.Second, "the healed old holder to end as standby", func() bool { return h.role(x.alloc()) == "standby" })
	x.quiet(dRenew)
	for _, w := range x.c.tagHistory(x.alloc()) {
		if w.Caller == h.id() && w.Time.After(healed) {
			x.Fatalf("the old holder wrote the lease after its API came back: %s", w)
		}
	}
	if got := x.c.holder(x.alloc()); got != to.id() {
		x.Fatalf("the EIP left %s after the heal (now on %q)", to.id(), got)
	}
}

// ---- throttling bursts ----

// The emulator's buckets are AWS's (ec2sim bucketFor; "Request token
// bucket sizes and refill rates",
// https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html):
// non-mutating actions 100 tokens, 20 a second; mutating actions
// (AssociateAddress, DisassociateAddress) 50, 5 a second; CreateTags 100,
// 10 a second; all shared by every caller of the account.
const (
	burstOn, burstOff = 4 * time.Second, 4 * time.Second
	bursts            = 3
	// throttleBound: the proxy's death is seen within 1.4 s (health
	// interval 1 s, then two fast intervals); the handoff's calls may be
	// answered RequestLimitExceeded until the burst ends (at most 4 s
	// later); eipd then waits out its own pause after a throttle, full
	// jitter under a ceiling that doubles with each throttle in a row (1,
	// 2, 4, 8 s, eip/limiter.go). Each eipd call is first retried by the
	// SDK (three attempts, its own backoff), so a 4 s burst leaves it a
	// few throttles in a row at most: 8 s of pause, and 2 s of margin.
	// (Measured: 1.5 to 3 s; the buckets are never quite dry, as on AWS.)
	throttleBound = 1400*time.Millisecond + burstOn + 8*time.Second + 2*time.Second
)

// faultThrottlingBursts: another client of the account (the operator's
// keys) drains the shared buckets of every action eipd uses, in bursts of
// 4 s every 8 s, three times. While healthy nothing moves; the holder's
// HAProxy dies as the second burst starts: the EIP still moves once, in
// bounded time; and EC2 really answered eipd RequestLimitExceeded.
func faultThrottlingBursts(x *chaosRun) {
	h := x.holder
	before := x.c.stats()
	x.fault()
	op := startBursts(x)
	during(x, burstOn+burstOff, "throttling bursts while every member is healthy", x.onHolder(h))
	killed := time.Now()
	atKill := x.c.stats()
	h.killHAProxy()
	e := x.waitFirstAssoc(h, 60*time.Second)
	took := e.Time.Sub(killed)
	x.Logf("the EIP left the dead proxy %s after it died; meanwhile EC2 answered RequestLimitExceeded %d times to the daemons (%s)",
		took.Round(time.Millisecond), throttled(x.c.stats(), true)-throttled(atKill, true), e)
	if took > throttleBound {
		x.Fatalf("the EIP left the dead proxy %s after it died, during a throttling burst; want within %s", took.Round(time.Millisecond), throttleBound)
	}
	to := x.movedAway(h, 30*time.Second)
	x.clientBack(30*time.Second, 25)
	op.wait()
	x.quiet(dRenew)
	if got := x.c.holder(x.alloc()); got != to.id() {
		x.Fatalf("the EIP left %s after the failover (now on %q)", to.id(), got)
	}
	// The throttling really hit: the operator's bursts drained the
	// buckets, and EC2 answered the daemons themselves RequestLimitExceeded
	// (eipd may not log it: the SDK retries a throttled call before eipd
	// sees its outcome).
	after := x.c.stats()
	toOp := after.ByCallerOutcome[""]["RequestLimitExceeded"] - before.ByCallerOutcome[""]["RequestLimitExceeded"]
	toEipd := throttled(after, true) - throttled(before, true)
	x.Logf("RequestLimitExceeded: %d to the operator, %d to the daemons", toOp, toEipd)
	if toOp == 0 {
		x.Fatalf("the operator's bursts were never throttled: the buckets were not drained")
	}
	if toEipd == 0 {
		x.Fatalf("EC2 answered RequestLimitExceeded %d times, all of them to the operator: eipd was never throttled", toOp)
	}
	x.logOverlaps()
}

// logOverlaps names the daemons of every sampling round since the fault
// in which two or more reported holder of the first EIP (the invariant
// check says only how long), for the lead's diagnosis.
func (x *chaosRun) logOverlaps() {
	for _, r := range x.s.between(x.faultAt, time.Now()) {
		if hs := r.holders(x.alloc()); len(hs) >= 2 {
			var ids []string
			for _, i := range hs {
				ids = append(ids, x.c.nodes[i].id())
			}
			x.Logf("%s: holders %s", r.at.Format("15:04:05.000"), strings.Join(ids, ", "))
		}
	}
}

// throttled counts the calls the emulator answered RequestLimitExceeded
// to the daemons (daemons true: callers that are instances) or to anyone.
func throttled(s simStats, daemons bool) int64 {
	var n int64
	for caller, o := range s.ByCallerOutcome {
		if !daemons || caller != "" {
			n += o["RequestLimitExceeded"]
		}
	}
	return n
}

// burster is the other client's bursts.
type burster struct{ done chan struct{} }

// startBursts runs the operator's bursts in the background, the first at
// once. Each burst, per action eipd uses, first spends a full bucket at
// once (10 calls in flight) and then calls faster than the bucket refills
// (twice for reads, four times for writes, eipd's failover path), so that
// it stays empty to the end of the burst; then it rests, and the buckets
// refill. Writes are DryRun: they draw on the same buckets as another
// client's writes and change nothing here.
func startBursts(x *chaosRun) *burster {
	cl := ec2.New(ec2.Options{
		Region:       x.c.info.Region,
		BaseEndpoint: aws.String(x.c.info.EC2Endpoint),
		Retryer:      aws.NopRetryer{}, // a hammering client: every call is one request
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIAOPERATOREXAMPLE", SecretAccessKey: "operator-secret", Source: "e2e"}, nil
		}),
	})
	alloc, ip := x.alloc(), x.c.info.EIPs[0].PublicIP
	group := []types.Filter{{Name: aws.String("tag:eipd:group"), Values: []string{x.c.info.Group}}}
	eni := x.c.nodes[0].inst.ENIID
	type action struct {
		capacity int
		// rate of calls once the bucket is empty: above the refill rate,
		// so that a token seldom waits long for the operator to take it.
		rate float64
		call func(context.Context) error
	}
	actions := []action{
		{100, 2 * 20, func(ctx context.Context) error {
			_, err := cl.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: group})
			return err
		}},
		{100, 2 * 20, func(ctx context.Context) error {
			_, err := cl.DescribeInstances(ctx, &ec2.DescribeInstancesInput{Filters: append(group,
				types.Filter{Name: aws.String("instance-state-name"), Values: []string{"running"}})})
			return err
		}},
		{100, 4 * 10, func(ctx context.Context) error {
			_, err := cl.CreateTags(ctx, &ec2.CreateTagsInput{DryRun: aws.Bool(true), Resources: []string{alloc},
				Tags: []types.Tag{{Key: aws.String("ops:audit"), Value: aws.String("1")}}})
			return err
		}},
		{50, 4 * 5, func(ctx context.Context) error {
			_, err := cl.AssociateAddress(ctx, &ec2.AssociateAddressInput{DryRun: aws.Bool(true), AllocationId: aws.String(alloc),
				NetworkInterfaceId: aws.String(eni), AllowReassociation: aws.Bool(true)})
			return err
		}},
		{50, 4 * 5, func(ctx context.Context) error {
			_, err := cl.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{DryRun: aws.Bool(true), PublicIp: aws.String(ip)})
			return err
		}},
	}
	b := &burster{done: make(chan struct{})}
	one := func(call func(context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = call(ctx) // what EC2 answered is in its stats
	}
	start := time.Now()
	go func() {
		defer close(b.done)
		for i := range bursts {
			at := start.Add(time.Duration(i) * (burstOn + burstOff))
			time.Sleep(time.Until(at))
			end := at.Add(burstOn)
			var wg sync.WaitGroup
			for _, a := range actions {
				wg.Go(func() {
					sem := make(chan struct{}, 10)
					var inner sync.WaitGroup
					fire := func() {
						sem <- struct{}{}
						inner.Go(func() {
							defer func() { <-sem }()
							one(a.call)
						})
					}
					for range a.capacity {
						fire()
					}
					tick := time.NewTicker(time.Duration(float64(time.Second) / a.rate))
					defer tick.Stop()
					for now := range tick.C {
						if now.After(end) {
							break
						}
						fire()
					}
					inner.Wait()
				})
			}
			wg.Wait()
		}
	}()
	x.Cleanup(func() { <-b.done })
	return b
}

// wait waits for the last burst to end.
func (b *burster) wait() { <-b.done }

// ---- read lag ----

// faultReadLagSteady: every Describe* answers from the state of 5 s ago
// (writes see the truth) for two lease durations: nothing moves.
func faultReadLagSteady(x *chaosRun) {
	h := x.holder
	x.fault()
	x.c.setFaults(map[string]any{"describe_lag": lagChaos.String()})
	x.requireLag()
	x.stays(h, 2*dLease, "5 s read lag in steady state")
}

// faultReadLagHandoff: with reads 5 s late, the operator runs `eipd
// handoff` on the holder: one move, no failed request, and the old holder
// never takes the EIP back from a read that still shows it there.
func faultReadLagHandoff(x *chaosRun) {
	h := x.holder
	x.fault()
	x.c.setFaults(map[string]any{"describe_lag": lagChaos.String()})
	x.requireLag()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, eipdBin, "handoff", "--control", h.controlAddr)
	cmd.Env = minimalEnv(x.c.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		x.Fatalf("eipd handoff: %v\n%s", err, out)
	}
	e := x.waitFirstAssoc(h, 10*time.Second)
	if e.From != h.id() || e.Caller != h.id() {
		x.Fatalf("want the handoff to be a move from %s made by it, got:%s", h.id(), eventList(x.changes()))
	}
	x.movedAway(h, 30*time.Second)
	x.notBackOnOld(h, e)
}

// faultReadLagUnhealthy: with reads 5 s late, the holder's HAProxy dies:
// it hands off once; its HAProxy back while reads still show the EIP on
// it, it never takes it back.
func faultReadLagUnhealthy(x *chaosRun) {
	h := x.holder
	x.c.setFaults(map[string]any{"describe_lag": lagChaos.String()})
	x.requireLag()
	x.fault()
	h.killHAProxy()
	e := x.waitFirstAssoc(h, 30*time.Second)
	// Healthy again at once, within the lag: its reads still show it the
	// EIP for a while.
	h.restartHAProxy()
	if back := time.Since(e.Time); back > lagChaos/2 {
		x.Logf("note: the old holder's HAProxy was back only %s after the move", back.Round(time.Millisecond))
	}
	x.movedAway(h, 30*time.Second)
	x.clientBack(30*time.Second, 25)
	x.notBackOnOld(h, e)
}

// notBackOnOld: for lag + two renew intervals after the move e away from
// h, h never reports holder and never writes itself back into the lease.
func (x *chaosRun) notBackOnOld(h *node, e simEvent) {
	x.Helper()
	x.quiet(lagChaos + 2*dRenew)
	if last := lastRole(x.s.between(e.Time.Add(overlapTolerance), time.Now()), x.c.index(h), x.alloc(), "holder"); !last.IsZero() {
		x.Fatalf("the old holder %s reported holder again after the move (at %s, %s after it)",
			h.id(), last.Format("15:04:05.000"), last.Sub(e.Time).Round(time.Millisecond))
	}
	for _, w := range x.c.tagHistory(x.alloc()) {
		if w.Time.After(e.Time) && w.Tags["eipd:holder"] == h.id() {
			x.Fatalf("the lease names the old holder again after the move: %s", w)
		}
	}
	if got := x.c.holder(x.alloc()); got != e.To {
		x.Fatalf("the EIP left %s after the move (now on %q)", e.To, got)
	}
}

// requireLag proves the read lag is in force: a Describe read by the
// operator shows an older eipd:renewed than the emulator's true state
// (the holder renews every 3 s, so within 5 s of lag a newer stamp has
// always landed).
func (x *chaosRun) requireLag() {
	x.Helper()
	cl := x.c.operatorEC2()
	var truth, seen string
	waitFor(x, 3*lagChaos, "a lagging read (an older eipd:renewed than the true one)", func() bool {
		truth = x.c.address(x.alloc()).Tags["eipd:renewed"]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, err := cl.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{x.alloc()}})
		if err != nil || len(out.Addresses) != 1 {
			return false
		}
		seen = ""
		for _, t := range out.Addresses[0].Tags {
			if aws.ToString(t.Key) == "eipd:renewed" {
				seen = aws.ToString(t.Value)
			}
		}
		ts, err1 := time.Parse(time.RFC3339Nano, truth)
		ss, err2 := time.Parse(time.RFC3339Nano, seen)
		return err1 == nil && err2 == nil && ss.Before(ts)
	})
}

// ---- helpers ----

// leaseTag is a tag of the first EIP as the emulator holds it.
func (x *chaosRun) leaseTag(key string) string { return x.c.address(x.alloc()).Tags[key] }

// leaseRenewed is the first EIP's eipd:renewed stamp in the emulator.
func (x *chaosRun) leaseRenewed() time.Time {
	x.Helper()
	v := x.leaseTag("eipd:renewed")
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		x.Fatalf("eipd:renewed of %s is %q: %v", x.alloc(), v, err)
	}
	return t
}

// onHolder is a during() condition: the first EIP is associated with n.
func (x *chaosRun) onHolder(n *node) func() error {
	return func() error {
		if h := x.c.holder(x.alloc()); h != n.id() {
			return fmt.Errorf("the EIP moved to %q:%s", h, eventList(x.changes()))
		}
		return nil
	}
}

// staysOn asserts that the first EIP stays associated with n for d,
// whatever n's daemon reports (it may be dead).
func (x *chaosRun) staysOn(n *node, d time.Duration, what string) {
	x.Helper()
	during(x, d, what, x.onHolder(n))
}

// changes are the first EIP's association changes since the fault.
func (x *chaosRun) changes() []simEvent { return changesSince(x.c.events(), x.alloc(), x.faultAt) }

// firstAssoc is the first association of the first EIP to an instance
// other than from since the fault.
func (x *chaosRun) firstAssoc(from *node) simEvent {
	x.Helper()
	e, ok := firstAssocAfter(x.c.events(), x.alloc(), from.id(), x.faultAt)
	if !ok {
		x.Fatalf("no association away from %s since the fault:%s", from.id(), eventList(x.changes()))
	}
	return e
}

// waitFirstAssoc waits for the first association away from `from` since
// the fault and returns it.
func (x *chaosRun) waitFirstAssoc(from *node, timeout time.Duration) simEvent {
	x.Helper()
	var e simEvent
	waitFor(x, timeout, "the EIP to be associated away from "+from.id(), func() bool {
		var ok bool
		e, ok = firstAssocAfter(x.c.events(), x.alloc(), from.id(), x.faultAt)
		return ok
	})
	return e
}

// requireFenced asserts that the takeover e was fenced: the claimant
// first disassociated the association it saw on the old holder h (design
// §3), rather than associating over it.
func (x *chaosRun) requireFenced(h *node, e simEvent) {
	x.Helper()
	var prev *simEvent
	for _, c := range x.changes() {
		if c.Time.After(e.Time) || (c.Time.Equal(e.Time) && c.Action == e.Action && c.To == e.To) {
			break
		}
		prev = &c
	}
	if e.Caller != e.To || e.Action != "associate" || prev == nil || prev.Action != "disassociate" || prev.Caller != e.To || prev.From != h.id() {
		x.Fatalf("want a fenced takeover (the claimant disassociates %s's association, then associates), got:%s", h.id(), eventList(x.changes()))
	}
}

// partitioned counts the EC2 calls the emulator held up in a partition.
func partitioned(s simStats) int64 {
	var n int64
	for _, o := range s.ByOutcome {
		n += o["partitioned"]
	}
	return n
}

// peerProbe is n's view of the holder's probe for alloc ("up", "down",
// "" when unknown), from its /status.
func (n *node) peerProbe(alloc string) string {
	var s struct {
		EIPs []struct {
			AllocationID string `json:"allocation_id"`
			PeerProbe    string `json:"peer_probe"`
		} `json:"eips"`
	}
	if err := doJSON("GET", fmt.Sprintf("http://%s:%d/status", n.inst.PrivateIP, n.statusPort), nil, &s); err != nil {
		return ""
	}
	for _, e := range s.EIPs {
		if e.AllocationID == alloc {
			return strings.ToLower(e.PeerProbe)
		}
	}
	return ""
}
