package e2e

// Chaos scenarios: the holder's own failures (its daemon, its instance, a
// freeze), its links (to its peers, to the EC2 API), and an EC2 API that
// throttles or answers reads late.
//
// The holder does not coordinate (a coordinator hands the role to a member
// that holds nothing, a lease after its claim): its failures are judged by
// the coordinator, which makes every move. Where a scenario needs the
// coordinator to hold an EIP, it runs as many EIPs as members and watches
// the coordinator's (coordinatorsEIP).

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/eipd/eipd/internal/harness"
)

func holderScenarios() []chaosScenario {
	return []chaosScenario{
		{
			name: "eipd-killed", title: "Holder's eipd SIGKILLed while its HAProxy serves (EIP stays)",
			instances: 3, maxMoves: -1, apiMax: 80, // downtime 0: not one request may fail
			fault: faultEipdKilled,
		},
		{
			name: "instance-terminated", title: "Holder instance terminated",
			instances: 3, downtime: instanceGoneBound, apiMax: 60,
			fault: func(x *chaosRun) { faultInstanceGone(x, "terminate") },
		},
		{
			name: "instance-stopped", title: "Holder instance stopped",
			instances: 3, downtime: instanceGoneBound, apiMax: 60,
			fault: func(x *chaosRun) { faultInstanceGone(x, "stop") },
		},
		{
			name: "holder-hung", title: "Holder hung (SIGSTOP eipd and HAProxy), then thawed",
			instances: 3, downtime: hungBound, apiMax: 60,
			fault: faultHolderHung,
		},
		{
			name: "partition-from-peers", title: "Holder (coordinating) partitioned from its peers while it reaches the API (EIP stays)",
			// Instance 0 serves on the alternate HAProxy and status ports
			// (the EIP's traffic follows it there): its peers probe the
			// usual ports on its IP, where nothing answers, and it probes
			// theirs on its own, as if the network between them were cut.
			// It starts first: it coordinates and holds the EIP.
			instances: 3, maxMoves: -1, alt: func(i int) bool { return i == 0 }, apiMax: 200, readyAtSettle: 1,
			setup: setupAltHolder,
			fault: faultPartitionFromPeers,
		},
		{
			name: "api-cut-holder-serves", title: "Holder and coordinator cut from the EC2 API while the HAProxies serve (EIP stays)",
			instances: 3, maxMoves: -1, apiMax: 150,
			fault: faultAPICutHolderServes,
		},
		{
			name: "api-cut-haproxy-dies", title: "Coordinator holding an EIP cut from the EC2 API, then its HAProxy dies",
			// Three EIPs on three members: the coordinator holds one, the
			// client's. It can neither move it nor hear that it lost it:
			// design invariant 1 allows one renew interval of two daemons
			// calling themselves holder.
			instances: 3, eips: 3, privateIPs: 2, pick: coordinatorsEIP, overlap: dRenew,
			downtime: apiCutBound, apiMax: 150,
			fault: faultAPICutHAProxyDies,
		},
		{
			name: "throttling-bursts", title: "Throttling bursts (AWS bucket sizes) from another client, failover during one",
			instances: 3, downtime: throttleBound, apiMax: 200,
			// AWS throttles all the time: the buckets are on from the
			// start, so the daemons' own calls draw on them too.
			setup: func(x *chaosRun) { x.c.setFaults(map[string]any{"throttle": true}) },
			fault: faultThrottlingBursts,
		},
		{
			name: "read-lag-steady", title: "5 s read lag (DescribeAddresses/Instances) in steady state",
			instances: 3, maxMoves: -1, apiMax: 60,
			fault: faultReadLagSteady,
		},
		{
			name: "read-lag-handoff", title: "5 s read lag with a manual handoff (eipd handoff)",
			instances: 3, apiMax: 60, // planned: not one request may fail; one move
			fault: faultReadLagHandoff,
		},
		{
			name: "read-lag-unhealthy", title: "5 s read lag with an unhealthy holder (HAProxy killed, back while reads still show it the EIP)",
			// The takeover of haproxy-killed, with its bound: the
			// coordinator moves on its probes and the target's instance
			// metadata, and the move is a write, which sees no lag.
			instances: 3, downtime: proxyDeathBound, apiMax: 60,
			fault: faultReadLagUnhealthy,
		},
	}
}

// ---- eipd-killed ----

// faultEipdKilled: the holder's daemon dies (SIGKILL) while its HAProxy
// serves. The coordinator's probes of its proxy pass and only its eipd is
// silent: nobody takes the EIP, a dead daemon is not a dead proxy. The
// daemon restarted finds the EIP on its own ENI and the coordinator
// confirms it there again, with the same term (a restart is no move).
func faultEipdKilled(x *chaosRun) {
	h := x.holder
	term := x.term(x.alloc())
	x.fault()
	h.eipd.killWait(x)
	// The premise: the coordinator sees h's proxy up and its eipd silent.
	waitFor(x, dProbe+5*time.Second, "the coordinator to see the holder's eipd silent and its proxy up", func() bool {
		s, err := x.coord.status()
		m := s.member(h.id())
		return err == nil && m != nil && m.Probe == "up" && m.Health == ""
	})
	// A lease and a probe fall more: long past any judgement on it.
	x.staysOn(h, dLease+dSkew+dProbe, "the holder's eipd is dead but its HAProxy serves")
	h.startDaemon()
	h.waitUp()
	waitFor(x, 20*time.Second, "the restarted daemon to report holder again", func() bool { return h.role(x.alloc()) == "holder" })
	x.stays(h, dRenew, "after the restart")
	if got := x.term(x.alloc()); got != term {
		x.Fatalf("eipd:term went from %s to %s across a restart: a restart is not a change of holder", term, got)
	}
}

// ---- instance terminated or stopped ----

// instanceGoneBound: the coordinator sees the dead holder after its probe
// falls (3 × 1 s), lists the members (the holder is not running), and
// takes the EIP over. Measured (make chaos RUNS=3, docs/CHAOS.md): see
// chaosBounds.
var instanceGoneBound = chaosBound("instance-gone")

// faultInstanceGone: the holder's instance is terminated or stopped (op);
// its processes die with it. The coordinator takes the EIP over once.
func faultInstanceGone(x *chaosRun, op string) {
	h := x.holder
	x.fault()
	x.c.instanceOp(h.id(), op)
	h.eipd.killWait(x)
	h.killHAProxy()
	// The premise: EC2 says the instance is no longer running.
	var inst struct {
		State string `json:"state"`
	}
	x.c.control("GET", "/instances/"+h.id(), nil, &inst)
	if want := map[string]string{"stop": "stopped", "terminate": "terminated"}[op]; inst.State != want {
		x.Fatalf("%s is %q after %s, want %s", h.id(), inst.State, op, want)
	}
	to := x.movedAway(h, 30*time.Second)
	e := x.firstAssoc(h)
	if !x.byDaemon(e) || e.Caller == h.id() {
		x.Fatalf("the EIP went to %s by %q, want a takeover by the coordinator:%s", e.To, e.Caller, eventList(x.changes()))
	}
	if op == "stop" {
		// A stopped instance keeps its EIP on EC2: the coordinator must
		// have fenced (disassociated the association it read) first.
		x.requireFenced(h, e)
	}
	x.clientBack(30*time.Second, 25)
	x.failoverReason(to, x.alloc(), "takeover-"+map[string]string{"stop": "stale", "terminate": "unassociated"}[op])
}

// ---- holder hung ----

// hungBound: the coordinator's probe of the frozen holder falls (3 × 1 s),
// another member confirms the fall, and the coordinator takes the EIP
// over, fenced. See chaosBounds.
var hungBound = chaosBound("holder-hung")

// faultHolderHung: the holder's eipd and HAProxy freeze (SIGSTOP). The
// coordinator takes the EIP over once another member confirms it cannot
// reach it either; thawed, the old holder does not call itself holder
// again and ends a standby: no fight.
func faultHolderHung(x *chaosRun) { holderHung(x, nil) }

// holderHung is faultHolderHung; moved, when set, runs as soon as the
// takeover's association is seen.
func holderHung(x *chaosRun, moved func(from *node)) {
	h := x.holder
	x.fault()
	h.eipd.stop()
	h.haproxy.stop()
	// The premise: the coordinator sees the frozen member unreachable.
	waitFor(x, 2*dProbe+5*time.Second, "the coordinator to see the frozen holder down", func() bool {
		s, err := x.coord.status()
		m := s.member(h.id())
		return err == nil && m != nil && m.Probe == "down"
	})
	e := x.waitFirstAssoc(h, 40*time.Second)
	if moved != nil {
		moved(h)
	}
	x.requireFenced(h, e)
	to := x.movedAway(h, 20*time.Second)
	x.clientBack(30*time.Second, 25)
	x.failoverReason(to, x.alloc(), "takeover-stale")
	thawed := time.Now()
	h.haproxy.cont()
	h.eipd.cont()
	waitFor(x, 30*time.Second, "the thawed old holder to step down to standby", func() bool { return h.role(x.alloc()) == "standby" })
	if last := lastRole(x.s.between(thawed, time.Now()), x.c.index(h), x.alloc(), "holder"); !last.IsZero() {
		x.Fatalf("the thawed old holder reported holder at %s, %s after the thaw (its word was out of date)",
			last.Format("15:04:05.000"), last.Sub(thawed).Round(time.Millisecond))
	}
}

// ---- holder partitioned from its peers ----

// setupAltHolder starts instance 0 (on the alternate ports) alone until
// it coordinates and holds the EIP, then the others.
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

// faultPartitionFromPeers: no other member can reach the holder, which
// coordinates (nor can it reach them), but it renews the group lease
// through the API, and the others watch that lease there: nobody claims
// the coordinator role, nobody takes the EIP, for two lease durations.
func faultPartitionFromPeers(x *chaosRun) {
	h := x.holder
	if h != x.c.nodes[0] || x.coord != h {
		x.Fatalf("the holder is %s and %s coordinates, want instance 0 (the one its peers cannot reach) for both", h.id(), x.coord.id())
	}
	_, cs := x.c.coordinator(10 * time.Second)
	x.fault()
	others := x.c.others(h)
	// The partition is real: the coordinator's probes of the others fail.
	waitFor(x, 10*time.Second, "the coordinator to see every other member down", func() bool {
		s, err := h.status()
		if err != nil {
			return false
		}
		for _, n := range others {
			if m := s.member(n.id()); m == nil || m.Probe != "down" {
				return false
			}
		}
		return true
	})
	reads := map[string]int64{}
	st := x.c.stats()
	for _, n := range others {
		reads[n.id()] = st.ByCaller[n.id()]["DescribeAddresses"]
	}
	from := time.Now()
	maxAge := map[string]time.Duration{}
	during(x, 2*dLease+dRenew, "the holder partitioned from its peers", func() error {
		if err := x.onHolder(h)(); err != nil {
			return err
		}
		for _, n := range others {
			s, err := n.status()
			if err != nil {
				continue // a slow answer proves nothing either way
			}
			if s.Coordinator != h.id() || s.Epoch != cs.Epoch || s.acting() {
				return fmt.Errorf("%s follows %s epoch %d (acting %v), want %s epoch %d", n.id(), s.Coordinator, s.Epoch, s.acting(), h.id(), cs.Epoch)
			}
			if r, err := time.Parse(time.RFC3339Nano, s.LeaseRenewed); err == nil {
				maxAge[n.id()] = max(maxAge[n.id()], time.Since(r))
			}
		}
		return nil
	})
	// They judged a fresh lease they read from the API themselves: each
	// read the EIPs, and the lease stamp they report never aged past
	// lease + skew + one renew interval (a member that does not hear its
	// coordinator reads the lease at the renew interval).
	st = x.c.stats()
	seenMax := dLease + dSkew + dRenew
	for _, n := range others {
		got := st.ByCaller[n.id()]["DescribeAddresses"] - reads[n.id()]
		age, seen := maxAge[n.id()]
		x.Logf("%s: %d DescribeAddresses in %s, lease stamp seen up to %s old", n.id(), got, time.Since(from).Round(time.Second), age.Round(100*time.Millisecond))
		switch {
		case got < 2:
			x.Fatalf("%s read the EIPs %d times in %s while it could not reach the coordinator: it did not watch the lease", n.id(), got, time.Since(from).Round(time.Second))
		case !seen:
			x.Fatalf("%s never reported the lease's stamp (lease_renewed) in /status: nothing shows what it judged", n.id())
		case age > seenMax:
			x.Fatalf("%s saw the lease %s old while it could not reach the coordinator, want at most lease + skew + renew (%s)", n.id(), age, seenMax)
		}
	}
	if r := h.role(x.alloc()); r != "holder" {
		x.Fatalf("the partitioned holder reports %q, want holder (it reaches the API)", r)
	}
}

// ---- cut from the EC2 API ----

// faultAPICutHolderServes: the EC2 calls of the holder and of the
// coordinator hang (partition for their credentials) while every HAProxy
// serves. The holder makes no call anyway; the coordinator cannot renew,
// stops acting and gives the role up, and another member takes it over
// once its lease is stale: nobody moves the EIP, not one request fails.
// Healed, the old coordinator follows the new one.
func faultAPICutHolderServes(x *chaosRun) {
	h, co := x.holder, x.coord
	_, cs := x.c.coordinator(10 * time.Second)
	cut := partitioned(x.c.stats())
	x.fault()
	x.c.setInstanceFaults(h.id(), map[string]any{"partition": true})
	x.c.setInstanceFaults(co.id(), map[string]any{"partition": true})
	next, _ := x.newCoordinator(co, cs.Epoch, dLease+dSkew+20*time.Second)
	if next == h {
		x.Fatalf("the holder %s, cut from the API, took the coordinator role", h.id())
	}
	// The fault really happened: the old coordinator's calls were held up.
	if n := partitioned(x.c.stats()) - cut; n == 0 {
		x.Fatalf("no EC2 call was held up by the partition: the coordinator was not cut off")
	}
	x.staysOn(h, dLease, "the holder and the old coordinator cut from the EC2 API")
	x.c.clearInstanceFaults(h.id())
	x.c.clearInstanceFaults(co.id())
	x.stays(h, dRenew, "after the API came back")
	if now, _ := x.c.coordinator(10 * time.Second); now != next {
		x.Fatalf("the coordinator changed again after the heal: %s, want %s", now.id(), next.id())
	}
}

// apiCutBound: nobody can move the coordinator's own EIP before its lease
// is stale: lease + skew (11 s) after its last renewal, at most a renew
// interval before the cut; then the election (rank delay, a read, the
// claim, a probe round) and the fenced takeover. See chaosBounds.
var apiCutBound = chaosBound("api-cut-haproxy-dies")

// faultAPICutHAProxyDies: the coordinator, holding the client's EIP, is
// cut from the EC2 API, then its HAProxy dies: it can neither move the
// EIP nor hear that it lost it. Another member takes the role over once
// the lease is stale and the EIP over, fenced; the cut-off member stops
// calling itself holder within its trust window.
func faultAPICutHAProxyDies(x *chaosRun) {
	h := x.holder
	if h != x.coord {
		x.Fatalf("the holder %s of the client's EIP does not coordinate (%s does)", h.id(), x.coord.id())
	}
	hi := x.c.index(h)
	cut := partitioned(x.c.stats())
	x.fault()
	x.c.setInstanceFaults(h.id(), map[string]any{"partition": true})
	h.killHAProxy()
	e := x.waitFirstAssoc(h, 60*time.Second)
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
		x.Fatalf("no EC2 call of the cut-off coordinator was held up by the partition: it was not cut off")
	}
	healed := time.Now()
	x.c.clearInstanceFaults(h.id())
	h.restartHAProxy()
	waitFor(x, 30*time.Second, "the healed old holder to end as standby", func() bool { return h.role(x.alloc()) == "standby" })
	x.quiet(dRenew)
	for _, w := range x.c.tagHistory(x.alloc()) {
		if w.Caller == h.id() && w.Time.After(healed) {
			x.Fatalf("the old coordinator wrote the EIP's tags after its API came back: %s", w)
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
	inFailover := throttled(x.c.stats(), true) - throttled(atKill, true)
	x.Logf("the EIP left the dead proxy %s after it died; meanwhile EC2 answered RequestLimitExceeded %d times to the daemons (%s)",
		took.Round(time.Millisecond), inFailover, e)
	// The premise: the failover happened during a throttled burst, and
	// the daemons' own calls for it were throttled.
	if bursting := killed.Sub(op.start); bursting < burstOn+burstOff || bursting > 2*burstOn+burstOff {
		x.Fatalf("the premise failed: the HAProxy died %s after the bursts began, not during the second burst", bursting.Round(time.Millisecond))
	}
	if inFailover == 0 {
		x.Fatalf("the premise failed: EC2 throttled none of the daemons' calls between the HAProxy's death and the move")
	}
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

// burster is the other client's bursts, the first at start.
type burster struct {
	done  chan struct{}
	start time.Time
}

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
	b := &burster{done: make(chan struct{}), start: time.Now()}
	one := func(call func(context.Context) error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = call(ctx) // what EC2 answered is in its stats
	}
	start := b.start
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
// handoff` on the holder: one move, made by the coordinator, no failed
// request, and the EIP never goes back from a read that still shows it on
// the old holder.
func faultReadLagHandoff(x *chaosRun) {
	h := x.holder
	x.fault()
	x.c.setFaults(map[string]any{"describe_lag": lagChaos.String()})
	x.requireLag()
	x.handoffCLI(h)
	e := x.waitFirstAssoc(h, 10*time.Second)
	x.requireHandoff(h, e, "handoff-manual")
	x.movedAway(h, 30*time.Second)
	x.notBackOnOld(h, e)
}

// handoffCLI runs `eipd handoff` on n, as the operator does, and fails the
// run if it fails.
func (x *chaosRun) handoffCLI(n *node) {
	x.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := harness.Run(ctx, x.c.dir, harness.Env(x.c.dir), eipdBin, "handoff", "--control", n.controlAddr); err != nil {
		x.Fatalf("eipd handoff: %v\n%s", err, out)
	}
}

// faultReadLagUnhealthy: with reads 5 s late, the holder's HAProxy dies:
// the coordinator takes the EIP over once; the HAProxy is back at once,
// while reads still show the EIP on it (the premise), and the EIP never
// goes back.
func faultReadLagUnhealthy(x *chaosRun) {
	h := x.holder
	x.c.setFaults(map[string]any{"describe_lag": lagChaos.String()})
	x.requireLag()
	x.fault()
	h.killHAProxy()
	x.healthFalls(h, 10*time.Second)
	e := x.waitFirstAssoc(h, 30*time.Second)
	x.requireFenced(h, e)
	// Healthy again at once, within the lag: reads still show it the EIP.
	h.restartHAProxy()
	waitFor(x, lagChaos, h.id()+" to report its health up again", func() bool {
		s, err := h.status()
		return err == nil && s.Health == "up"
	})
	if on, err := x.operatorReadShows(); err != nil || on != h.id() || time.Since(e.Time) >= lagChaos {
		x.Fatalf("the premise failed: %s after the move a lagging read showed the EIP on %q (%v), want still on the old holder %s",
			time.Since(e.Time).Round(time.Millisecond), on, err, h.id())
	}
	x.movedAway(h, 30*time.Second)
	x.clientBack(30*time.Second, 25)
	x.notBackOnOld(h, e)
}

// letGoWithin bounds how long the old holder may still report holder after
// a move away from it landed: the coordinator tells it (POST /notice) as
// it moves the EIP, and its next probe of the coordinator (every probe
// interval, 1 s, timing out after 0.5 s) brings the word that the EIP is
// moving; half a second of margin for the sampler and a loaded machine.
const letGoWithin = 2 * time.Second

// notBackOnOld: after the move e away from h, h lets go of the EIP within
// letGoWithin and, for the lag + two renew intervals, never reports holder
// again, and no record names it again.
func (x *chaosRun) notBackOnOld(h *node, e simEvent) {
	x.Helper()
	x.quiet(lagChaos + 2*dRenew)
	i := x.c.index(h)
	rows := x.s.between(e.Time, time.Now())
	var letGo time.Time
	for _, r := range rows {
		if r.sts[i] != nil && r.role(i, x.alloc()) != "holder" {
			letGo = r.at
			break
		}
	}
	switch {
	case letGo.IsZero():
		x.Fatalf("the old holder %s never let go of the EIP after the move (no answer without holder since %s)", h.id(), e.Time.Format("15:04:05.000"))
	case letGo.Sub(e.Time) > letGoWithin:
		x.Fatalf("the old holder %s reported holder until %s, %s after the move, want at most %s",
			h.id(), letGo.Format("15:04:05.000"), letGo.Sub(e.Time).Round(time.Millisecond), letGoWithin)
	}
	if last := lastRole(x.s.between(letGo, time.Now()), i, x.alloc(), "holder"); !last.IsZero() {
		x.Fatalf("the old holder %s reported holder again after the move (at %s, %s after it; it had let go at %s)",
			h.id(), last.Format("15:04:05.000"), last.Sub(e.Time).Round(time.Millisecond), letGo.Format("15:04:05.000"))
	}
	for _, w := range x.c.tagHistory(x.alloc()) {
		if w.Time.After(e.Time) && w.Tags["eipd:holder"] == h.id() {
			x.Fatalf("a record names the old holder again after the move: %s", w)
		}
	}
	if got := x.c.holder(x.alloc()); got != e.To {
		x.Fatalf("the EIP left %s after the move (now on %q)", e.To, got)
	}
}

// requireLag proves the read lag is in force: a Describe read by the
// operator shows an older eipd:renewed than the emulator's true state
// (the coordinator renews every 3 s, so within 5 s of lag a newer stamp
// has always landed).
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

// partitioned counts the EC2 calls the emulator held up in a partition.
func partitioned(s simStats) int64 {
	var n int64
	for _, o := range s.ByOutcome {
		n += o["partitioned"]
	}
	return n
}
