package e2e

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eipd/eipd/internal/harness"
)

// Benchmarks run the daemons at their DEFAULT settings (no timing flags)
// and report figures with b.ReportMetric; they assert nothing about speed.
// Run with `make bench` (all of them, then docs/BENCHMARKS.md is written),
// or e.g. go test -run '^$' -bench FailoverHAProxyDeath -benchtime 1x ./e2e/
// Each benchmark does its own trials whatever b.N. Knobs (environment):
// E2E_TRIALS (failover trials, default 20), E2E_API_WINDOW (default 1m),
// E2E_IDLE_WINDOW (default 1m), E2E_BENCH_N100=1 (adds APICost/N=100).

var defaults = []string{}

func trials() int {
	if n, err := strconv.Atoi(os.Getenv("E2E_TRIALS")); err == nil && n > 0 {
		return n
	}
	return 20
}

// percentile is the nearest-rank percentile (with 20 trials p99 is the
// slowest trial).
func percentile(xs []float64, p float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func fmtList(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = strconv.FormatFloat(x, 'f', 2, 64)
	}
	return strings.Join(parts, " ")
}

// allReady waits until the coordinator's view of the group (its /status
// members) lists n members, each reachable by its probes and with its
// health up: every member is a target for a move.
func (c *cluster) allReady(n int) {
	c.t.Helper()
	waitFor(c.t, 60*time.Second, fmt.Sprintf("the coordinator to see %d members ready", n), func() bool {
		for _, nd := range c.nodes {
			if !nd.running() {
				continue
			}
			s, err := nd.status()
			if err != nil || !s.acting() {
				continue
			}
			ready := 0
			for _, m := range s.Members {
				if m.Probe == "up" && m.Health == "up" {
					ready++
				}
			}
			return ready == n
		}
		return false
	})
}

// failoverCase is one kind of fault for failoverBench.
type failoverCase struct {
	// spares: instances kept in reserve, for faults the holder does not
	// come back from (one per trial).
	spares int
	// faults are emulator faults for the whole run, set before the daemons
	// start (e.g. latency on every EC2 call).
	faults map[string]any
	// coordinator: fail the coordinator, each trial, while it holds an
	// EIP (as many EIPs as members, two private IPs each, so that every
	// member, the coordinator too, holds one); otherwise fail the holder
	// of the one EIP, which does not coordinate.
	coordinator bool
	// fail injects the fault into h; restore undoes it (or replaces h) so
	// that the next trial starts from a steady cluster of three.
	fail, restore func(c *cluster, h *node)
}

// liveMembers is the size of the failover benchmarks' cluster.
const liveMembers = 3

// failoverBench runs trials() trials of failoverTrials and reports them.
func failoverBench(b *testing.B, fc failoverCase) {
	n := trials()
	if fc.coordinator {
		// A trial waits for the coordinator to hold an EIP again, which
		// takes a rebalance a minute after the last one: fewer by default.
		n = min(n, coordinatorTrials())
	}
	ds, ages := failoverTrials(b, fc, n)
	b.Logf("trials (s): %s", fmtList(ds))
	b.Logf("lease age when the member failed (s): %s", fmtList(ages))
	b.ReportMetric(percentile(ds, 50), "p50-s")
	b.ReportMetric(percentile(ds, 99), "p99-s")
	b.ReportMetric(percentile(ds, 100), "max-s")
	b.ReportMetric(float64(len(ds)), "trials")
}

// coordinatorTrials is the default number of trials of the benchmarks
// that fail the coordinator (E2E_TRIALS lowers it).
func coordinatorTrials() int { return 10 }

// failoverTrials runs n trials of: steady state → fail the member → time
// until the emulator associates its EIP with another instance → restore.
// It returns each trial's time and the group lease's age at the failure.
func failoverTrials(tb testing.TB, fc failoverCase, n int) (ds, ages []float64) {
	o := clusterOpts{instances: liveMembers, spares: fc.spares, flags: defaults}
	if fc.coordinator {
		o.eips, o.privateIPs = liveMembers, 2
	}
	c := newCluster(tb, o)
	if fc.faults != nil {
		c.setFaults(fc.faults)
	}
	c.startAll()
	logLoad(tb, "at start")
	for i := 0; i < n; i++ {
		h, alloc := c.failoverTarget(fc.coordinator)
		// Fail at a uniformly random point of the renew interval (3 s by
		// default) after a renewal of the group lease, as a real failure
		// would: it matters when the coordinator itself fails.
		c.freshRenewal(alloc)
		time.Sleep(rand.N(dRenew))
		mark := c.mark()
		renewed, _ := time.Parse(time.RFC3339Nano, c.address(alloc).Tags["eipd:renewed"])
		t0 := time.Now()
		fc.fail(c, h)
		ages = append(ages, t0.Sub(renewed).Seconds())
		waitFor(tb, 120*time.Second, "the EIP to move off the failed member", func() bool { return len(c.assocsSince(mark, alloc)) > 0 })
		e := c.assocsSince(mark, alloc)[0]
		if e.To == h.id() {
			tb.Fatalf("trial %d: associated back to the failed member:%s", i, c.eventsSince(mark))
		}
		ds = append(ds, e.Time.Sub(t0).Seconds())
		fc.restore(c, h)
	}
	logLoad(tb, "at end")
	return ds, ages
}

// failoverTarget waits for a steady cluster with every member ready and
// returns the member a trial fails and the EIP it holds: the coordinator
// and its EIP (coordinator), or the holder of the first EIP, which does
// not coordinate.
func (c *cluster) failoverTarget(coordinator bool) (*node, string) {
	c.t.Helper()
	live := 0
	for _, n := range c.nodes {
		if n.running() {
			live++
		}
	}
	if !coordinator {
		alloc := c.alloc(0)
		c.steady(alloc)
		c.allReady(live)
		c.roleHandedOver()
		h := c.steady(alloc)
		if co, _ := c.coordinator(30 * time.Second); co == h {
			c.t.Fatalf("the holder %s coordinates", h.id())
		}
		return h, alloc
	}
	var co *node
	var alloc string
	waitFor(c.t, 3*time.Minute, "the coordinator to hold an EIP, every member ready", func() bool {
		n, s, ok := c.tryCoordinator()
		if !ok {
			return false
		}
		ready := 0
		for _, m := range s.Members {
			if m.Probe == "up" && m.Health == "up" {
				ready++
			}
		}
		for i := range c.info.EIPs {
			if e := s.eip(c.alloc(i)); e != nil && e.Holder == n.id() && ready == live {
				co, alloc = n, c.alloc(i)
				return n.role(alloc) == "holder"
			}
		}
		return false
	})
	return co, alloc
}

// freshRenewal waits until the group lease on alloc is renewed (its stamp
// changes).
func (c *cluster) freshRenewal(alloc string) {
	c.t.Helper()
	was := c.address(alloc).Tags["eipd:renewed"]
	waitFor(c.t, 3*dRenew, "a renewal of the group lease", func() bool { return c.address(alloc).Tags["eipd:renewed"] != was })
}

// logLoad logs the machine's load average: the benchmarks share it.
func logLoad(tb testing.TB, when string) {
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		tb.Logf("load average %s: %s", when, strings.Join(strings.Fields(string(l))[:3], " "))
	}
}

func killHAProxy(_ *cluster, h *node)    { h.killHAProxy() }
func restartHAProxy(_ *cluster, h *node) { h.restartHAProxy() }

// powerOff is what a stopped or terminated instance does to the processes
// on it: they die at once, without a handoff.
func powerOff(h *node) {
	h.eipd.killWait(h.c.t)
	h.haproxy.killWait(h.c.t)
}

func freeze(_ *cluster, h *node) {
	h.eipd.stop()
	h.haproxy.stop()
}

func thaw(_ *cluster, h *node) {
	h.eipd.cont()
	h.haproxy.cont()
}

func stopInstance(c *cluster, h *node) {
	powerOff(h)
	c.instanceOp(h.id(), "stop")
}

func startInstance(c *cluster, h *node) {
	c.instanceOp(h.id(), "start")
	h.restartHAProxy()
	h.startDaemon()
	h.waitUp()
}

// BenchmarkFailoverHAProxyDeath: the HAProxy of the holder, which does
// not coordinate, is killed; time until the EIP is associated with a
// healthy instance (the coordinator's fenced takeover).
func BenchmarkFailoverHAProxyDeath(b *testing.B) {
	failoverBench(b, failoverCase{fail: killHAProxy, restore: restartHAProxy})
}

// BenchmarkFailoverHAProxyDeathCoordinator: the HAProxy of the
// coordinator is killed while it holds an EIP; time until it has moved
// that EIP off itself.
func BenchmarkFailoverHAProxyDeathCoordinator(b *testing.B) {
	failoverBench(b, failoverCase{coordinator: true, fail: killHAProxy, restore: restartHAProxy})
}

// BenchmarkFailoverHAProxyDeathSlowAPI: the same on a slow day or from a
// far region: the emulator adds 300 ms to every EC2 call.
func BenchmarkFailoverHAProxyDeathSlowAPI(b *testing.B) {
	failoverBench(b, failoverCase{faults: map[string]any{"latency": "300ms"}, fail: killHAProxy, restore: restartHAProxy})
}

// BenchmarkFailoverInstanceDeath: the holder instance hangs (its eipd and
// HAProxy are SIGSTOPped: no answers, but the instance is still running);
// the holder does not coordinate. Time until the coordinator has taken the
// EIP over (its probes fall, another member confirms). The hang is thawed
// between trials.
func BenchmarkFailoverInstanceDeath(b *testing.B) {
	failoverBench(b, failoverCase{fail: freeze, restore: thaw})
}

// BenchmarkFailoverHungCoordinator: the coordinator hangs (SIGSTOP) while
// it holds an EIP; time until another member has taken the coordinator
// role (its lease stale) and that EIP over.
func BenchmarkFailoverHungCoordinator(b *testing.B) {
	failoverBench(b, failoverCase{coordinator: true, fail: freeze, restore: thaw})
}

// BenchmarkFailoverInstanceStopped: the holder instance is stopped through
// the emulator's control API (it keeps the EIP, as on AWS) and its
// processes die with it; time until the coordinator has taken the EIP
// over. Between trials the instance is started again with a fresh HAProxy
// and daemon, which join as a standby.
func BenchmarkFailoverInstanceStopped(b *testing.B) {
	failoverBench(b, failoverCase{fail: stopInstance, restore: startInstance})
}

// BenchmarkFailoverInstanceTerminated: the holder instance is terminated
// through the emulator's control API (the EIP is disassociated with its
// ENI) and its processes die with it; time until the EIP is associated
// with a survivor. A terminated instance cannot come back, so each trial
// brings in one of the spare instances as the third member.
func BenchmarkFailoverInstanceTerminated(b *testing.B) {
	failoverBench(b, failoverCase{spares: trials(), fail: func(c *cluster, h *node) {
		powerOff(h)
		c.instanceOp(h.id(), "terminate")
	}, restore: func(c *cluster, _ *node) {
		n := c.spare()
		if n == nil {
			c.t.Fatal("no spare instance left")
		}
		n.activate()
	}})
}

// Regression guard of make check: a few trials of the two failovers with
// documented targets (docs/BENCHMARKS.md: HAProxy death p99 ≤ 1.5 s, a
// stopped holder p99 ≤ 5 s), failing above twice the target.
const (
	guardTrials       = 3
	guardHAProxyDeath = 2 * 1500 * time.Millisecond
	guardStopped      = 2 * 5 * time.Second
)

// TestFailoverGuard runs guardTrials of BenchmarkFailoverHAProxyDeath and
// of BenchmarkFailoverInstanceStopped and fails when the slowest is above
// twice its target: a failover that got slower fails make check, not only
// a benchmark nobody reads.
func TestFailoverGuard(t *testing.T) {
	needHAProxy(t)
	for _, g := range []struct {
		name  string
		fc    failoverCase
		bound time.Duration
	}{
		{"haproxy-death", failoverCase{fail: killHAProxy, restore: restartHAProxy}, guardHAProxyDeath},
		{"instance-stopped", failoverCase{fail: stopInstance, restore: startInstance}, guardStopped},
	} {
		t.Run(g.name, func(t *testing.T) {
			ds, _ := failoverTrials(t, g.fc, guardTrials)
			t.Logf("trials (s): %s", fmtList(ds))
			if worst := percentile(ds, 100); worst > g.bound.Seconds() {
				t.Errorf("the slowest of %d failovers took %.2f s, more than twice the target (%s): trials %s",
					len(ds), worst, g.bound, fmtList(ds))
			}
		})
	}
}

// apiWindow is how long the API benchmarks count calls.
func apiWindow() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("E2E_API_WINDOW")); err == nil && d > 0 {
		return d
	}
	return time.Minute
}

// apiCost counts the emulator's calls over the window once the cluster is
// steady for every EIP and no EIP has moved for settle, and reports them.
func apiCost(b *testing.B, c *cluster, label string) {
	var allocs []string
	for i := range c.info.EIPs {
		allocs = append(allocs, c.alloc(i))
	}
	for _, a := range allocs {
		c.steady(a)
	}
	// Settle: start-up reads, the first election, the coordinator's role
	// handed on, and the spreading of several EIPs are not steady state. Wait until nothing has moved for
	// settle (at most 3 minutes).
	const settle = 15 * time.Second
	quietSince, seen := time.Now(), len(c.events())
	waitFor(b, 3*time.Minute, "no EIP moving for "+settle.String(), func() bool {
		if n := len(c.events()); n != seen {
			quietSince, seen = time.Now(), n
		}
		return time.Since(quietSince) >= settle
	})
	window := apiWindow()
	co, cs := c.coordinator(30 * time.Second)
	mark := c.mark()
	s0 := c.stats()
	time.Sleep(window)
	s1 := c.stats()
	for _, a := range allocs {
		if m := c.assocsSince(mark, a); len(m) > 0 {
			b.Fatalf("an EIP moved during the measurement:%s", c.eventsSince(mark))
		}
	}
	if co2, cs2 := c.coordinator(30 * time.Second); co2 != co || cs2.Epoch != cs.Epoch {
		b.Fatalf("the coordinator changed during the measurement: %s (epoch %d), then %s (epoch %d)", co.id(), cs.Epoch, co2.id(), cs2.Epoch)
	}
	// Only the coordinator calls EC2 in steady state (issue 19).
	var others int64
	for caller, byAction := range s1.ByCaller {
		if caller == "" || caller == co.id() {
			continue
		}
		for a, n := range byAction {
			others += n - s0.ByCaller[caller][a]
		}
	}
	perMin := func(d int64) float64 { return float64(d) / window.Minutes() }
	mut := int64(0)
	var parts []string
	actions := make([]string, 0, len(s1.ByAction))
	for a := range s1.ByAction {
		actions = append(actions, a)
	}
	sort.Strings(actions)
	for _, a := range actions {
		d := s1.ByAction[a] - s0.ByAction[a]
		if d == 0 {
			continue
		}
		parts = append(parts, fmt.Sprintf("%s=%.1f/min", a, perMin(d)))
		switch a {
		case "AssociateAddress", "DisassociateAddress", "CreateTags", "DeleteTags":
			mut += d
		}
	}
	b.Logf("%s over %s: %s", label, window, strings.Join(parts, " "))
	b.ReportMetric(perMin(s1.Total-s0.Total), "calls/min")
	b.ReportMetric(perMin(mut), "mutating-calls/min")
	b.ReportMetric(perMin(others), "non-coordinator-calls/min")
}

// BenchmarkAPICost: steady-state EC2 calls per minute of a whole cluster,
// from the emulator's counters, over one minute after settling. N ≥ 10 use
// a plain TCP listener per instance as health target instead of HAProxy
// (the EC2 calls do not depend on it; the 2-core machine does).
func BenchmarkAPICost(b *testing.B) {
	sizes := []int{3, 10, 30}
	if os.Getenv("E2E_BENCH_N100") == "1" {
		sizes = append(sizes, 100)
	}
	for _, n := range sizes {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			c := newCluster(b, clusterOpts{instances: n, flags: defaults, tcpTarget: n >= 10})
			c.startAll()
			apiCost(b, c, fmt.Sprintf("N=%d", n))
		})
	}
}

// apiCostMembers and apiCostPrivateIPs shape BenchmarkAPICostEIPs: eight
// members with room for several EIPs each (an EIP needs a private IP of
// its own), so that where the EIPs go is the daemons' choice.
const (
	apiCostMembers    = 8
	apiCostPrivateIPs = 4
)

// BenchmarkAPICostEIPs: the same count with 1, 4 and 16 EIPs on eight
// members (TCP health targets): the cost of holding several EIPs. It also
// reports whether the first placement converged: every EIP held within
// 30 s of the last daemon's start, no move refused by EC2 since (two
// claimants of one EIP), and nothing moved in the measurement window.
func BenchmarkAPICostEIPs(b *testing.B) {
	for _, k := range []int{1, 4, 16} {
		b.Run(fmt.Sprintf("EIPs=%d", k), func(b *testing.B) {
			c := newCluster(b, clusterOpts{instances: apiCostMembers, eips: k, privateIPs: apiCostPrivateIPs,
				flags: defaults, tcpTarget: true})
			for _, n := range c.nodes {
				n.startDaemon()
			}
			last := time.Now()
			for _, n := range c.nodes {
				n.waitUp()
			}
			var allocs []string
			for i := range c.info.EIPs {
				allocs = append(allocs, c.alloc(i))
			}
			placed := time.Duration(-1)
			for time.Since(last) < convergeWithin {
				if c.allHeld(allocs) {
					placed = time.Since(last)
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			apiCost(b, c, fmt.Sprintf("EIPs=%d on %d members", k, apiCostMembers))
			refused := int64(0)
			st := c.stats()
			for _, a := range []string{"AssociateAddress", "DisassociateAddress"} {
				for outcome, n := range st.ByOutcome[a] {
					if outcome != "ok" {
						refused += n
					}
				}
			}
			converged := placed >= 0 && refused == 0 // apiCost failed the run if anything moved in its window
			b.Logf("EIPs=%d: every EIP held %s after the last start (-1: not within %s); %d moves refused by EC2", k, placed.Round(100*time.Millisecond), convergeWithin, refused)
			conv := 0.0
			if converged {
				conv = 1
			}
			b.ReportMetric(conv, "converged")
			b.ReportMetric(placed.Seconds(), "placed-s")
		})
	}
}

// convergeWithin is how soon after the last start the first placement must
// hold every EIP for BenchmarkAPICostEIPs to call it converged.
const convergeWithin = 30 * time.Second

// allHeld: every alloc is associated with a member whose daemon reports
// holder.
func (c *cluster) allHeld(allocs []string) bool {
	for _, a := range allocs {
		h := c.node(c.holder(a))
		if h == nil || h.role(a) != "holder" {
			return false
		}
	}
	return true
}

// procCPU is utime+stime of pid in seconds (USER_HZ is 100 on Linux).
func procCPU(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	ut, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime/stime", pid)
	}
	return (ut + st) / 100, nil
}

// procRSS is VmRSS of pid in MiB.
func procRSS(pid int) (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			kb, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// idleWindow is how long BenchmarkIdle samples the daemons.
func idleWindow() time.Duration {
	if d, err := time.ParseDuration(os.Getenv("E2E_IDLE_WINDOW")); err == nil && d > 0 {
		return d
	}
	return time.Minute
}

// healthcheckRSS runs `eipd healthcheck` against n's status listener, as a
// container runtime does, and returns the peak resident memory (MiB) of
// each run. GNU time reports it: the rusage Go gets for its own child is
// useless here, because Go starts children with vfork and Linux then
// credits the child with the (large) peak of this test process.
func healthcheckRSS(b *testing.B, n *node, runs int) []float64 {
	const timeBin = "/usr/bin/time"
	if _, err := os.Stat(timeBin); err != nil {
		b.Fatalf("measuring eipd healthcheck needs GNU time (Debian package time): %v", err)
	}
	var out []float64
	for range runs {
		cmd := exec.Command(timeBin, "-f", "maxrss-kib=%M", eipdBin, "healthcheck",
			"--listen", fmt.Sprintf("%s:%d", n.inst.PrivateIP, n.statusPort))
		cmd.Env = harness.Env(n.c.dir)
		msg, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("eipd healthcheck: %v\n%s", err, msg)
		}
		_, v, ok := strings.Cut(string(msg), "maxrss-kib=")
		kib, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if !ok || err != nil {
			b.Fatalf("no peak RSS in the output of %s: %q", timeBin, msg)
		}
		out = append(out, kib/1024)
	}
	return out
}

// BenchmarkIdle: resident memory and CPU of the holder's daemon, a
// standby's and the coordinator's (three members, one EIP: three
// different daemons) over one minute of steady state, defaults;
// and the peak resident memory of `eipd healthcheck` (median of 11 runs).
func BenchmarkIdle(b *testing.B) {
	c := newCluster(b, clusterOpts{instances: 3, flags: defaults})
	alloc := c.alloc(0)
	c.startAll()
	c.steady(alloc)
	c.roleHandedOver()
	h := c.steady(alloc)
	co, cs := c.coordinator(30 * time.Second)
	var sb *node
	for _, n := range c.nodes {
		if n != h && n != co {
			sb = n
		}
	}
	if co == h || sb == nil {
		b.Fatalf("want a holder, a coordinator and a standby, three members: holder %s, coordinator %s", h.id(), co.id())
	}
	time.Sleep(10 * time.Second)
	logLoad(b, "at start")
	type m struct{ cpu0, rssMax float64 }
	pids := []int{h.eipd.Pid(), sb.eipd.Pid(), co.eipd.Pid()}
	ms := make([]m, len(pids))
	for i, p := range pids {
		cpu, err := procCPU(p)
		if err != nil {
			b.Fatal(err)
		}
		ms[i].cpu0 = cpu
	}
	start := time.Now()
	for time.Since(start) < idleWindow() {
		time.Sleep(time.Second)
		for i, p := range pids {
			r, err := procRSS(p)
			if err != nil {
				b.Fatal(err)
			}
			ms[i].rssMax = max(ms[i].rssMax, r)
		}
	}
	el := time.Since(start).Seconds()
	cpu := make([]float64, len(pids))
	for i, p := range pids {
		c1, err := procCPU(p)
		if err != nil {
			b.Fatal(err)
		}
		cpu[i] = 100 * (c1 - ms[i].cpu0) / el
	}
	logLoad(b, "at end")
	if h.role(alloc) != "holder" {
		b.Fatalf("the holder changed during the measurement")
	}
	if co2, cs2 := c.coordinator(10 * time.Second); co2 != co || cs2.Epoch != cs.Epoch {
		b.Fatalf("the coordinator changed during the measurement")
	}
	hc := healthcheckRSS(b, h, 11)
	b.Logf("eipd healthcheck peak RSS (MiB): %s", fmtList(hc))
	b.ReportMetric(ms[0].rssMax, "rss-MiB")
	b.ReportMetric(cpu[0], "cpu-%")
	b.ReportMetric(ms[1].rssMax, "standby-rss-MiB")
	b.ReportMetric(cpu[1], "standby-cpu-%")
	b.ReportMetric(ms[2].rssMax, "coordinator-rss-MiB")
	b.ReportMetric(cpu[2], "coordinator-cpu-%")
	b.ReportMetric(percentile(hc, 50), "healthcheck-rss-MiB")
}
