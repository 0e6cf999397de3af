package e2e

// The chaos suite (`make chaos`): production-shaped fault scenarios. Every
// instance runs a real HAProxy on its private IP (monitor-uri, stats socket,
// a backend to a small app server on the same IP) and `eipd run` at its
// default timings with its own instance metadata and no credentials; a
// client goes through the EIP 25 times a second, a new connection each
// time. Each scenario injects one fault (or one sequence of faults) and is
// judged on:
//   - what a client saw: the longest run of failed requests after the fault
//     (client-visible downtime) within the scenario's bound, and no failed
//     request at all for planned moves;
//   - the safety invariants of docs/design.md, from the emulator's
//     association and tag histories and every daemon's /status sampled each
//     100 ms (checkInvariants);
//   - the scenario's own assertions.
//
// TestChaos runs the scenarios one after another (they measure time, so
// they do not share the two cores with each other) and writes one line per
// run starting with "chaos " and, at the end of the binary, the closing line
// "chaos: N passed, M failed". With CHAOS_RESULTS set, every run is appended
// to that file as one JSON object (tools/chaosreport turns them into
// docs/CHAOS.md).

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

// chaosScenario is one fault of the suite.
type chaosScenario struct {
	name  string // kebab-case, matched by SCENARIO
	title string // what the report's table says
	// instances, eips, privateIPs: the cluster (eips defaults to 1).
	instances, eips, privateIPs int
	// alt marks instances that serve on the alternate HAProxy and status
	// ports (clusterOpts.alt): their peers' probes miss them. Optional.
	alt func(i int) bool
	// runtimeCheck: eipd checks HAProxy through its runtime API
	// (haproxy://ip:port?backend=be) instead of its monitor-uri.
	runtimeCheck bool
	// asg and hook: every instance is in the emulator's Auto Scaling group
	// asg, with the termination lifecycle hook hook (clusterOpts.asg,
	// hook); the scenario's setup starts the daemons with
	// --lifecycle-hook.
	asg, hook string
	// downtime bounds the client-visible downtime after the fault; zero
	// means a planned move: not one request may fail.
	downtime time.Duration
	// maxMoves bounds the associations of each EIP after the fault (no
	// ping-pong: one per fault); a negative value means none at all.
	maxMoves int
	// overlap is how long two daemons may report holder of one EIP at the
	// same time; zero means overlapTolerance. Only scenarios that cut the
	// old holder from the API may allow up to one renew interval (design
	// invariant 1).
	overlap time.Duration
	// dangling allows an EIP to stay unassociated longer than a lease
	// (released by hand, or no member ready).
	dangling bool
	// cold: the fault happens at start (setup starts the daemons, or not);
	// the run does not wait for a settled holder before the fault.
	cold bool
	// apiMax is the most EC2 calls the members' daemons may make from the
	// fault to the end of the run (the emulator counts them by caller):
	// every scenario sets one, about twice the most measured, so that a
	// retry storm or a poll gone wild fails the run.
	apiMax int64
	// pick chooses, once the cluster is settled, which EIP the client goes
	// through and the invariants focus on (x.alloc()); nil: the first.
	pick func(x *chaosRun) int
	// danglingMax is how long an EIP may stay unassociated after the fault
	// (invariant 3); zero means one lease. Only scenarios that take away
	// the coordinator itself while an EIP needs it may allow longer: the
	// design bounds that by the election (docs/design.md).
	danglingMax time.Duration
	// readyAtSettle: how many members the coordinator sees ready before the
	// fault (some may be cut off from it by the scenario); 0: all.
	readyAtSettle int
	// autoAssignPublicIP: the instances get auto-assigned public IPv4
	// addresses (eipd sim --auto-assign-public-ip).
	autoAssignPublicIP bool
	// setup runs after the cluster's processes exist and before any
	// daemon starts: environment, extra flags, or starting the daemons
	// itself (cold scenarios). Optional.
	setup func(x *chaosRun)
	// fault injects the fault (calling x.fault() at the moment it
	// happens), waits for the outcome and makes the scenario's own
	// assertions (x.Fatalf and friends).
	fault func(x *chaosRun)
}

// chaosBounds are the client-visible downtimes the failing scenarios
// allow: twice the slowest run measured on the coordinator design (make
// chaos RUNS=2, docs/CHAOS.md at 34e77ef: every scenario that shares the
// bound, 2 runs each), rounded up to the half second, and never under 2 s
// (below that a loaded machine's scheduling is most of the figure). The
// slowest run is given with each. Where a bound is kept tighter than twice,
// the wait is mostly a fixed timer of the scenario, which says so.
var chaosBounds = map[string]time.Duration{
	"proxy-death":          3 * time.Second,         // 1.40 s, handoff-then-new-holder-dies (10 scenarios)
	"instance-gone":        5500 * time.Millisecond, // 2.72 s, instance-stopped (3 scenarios)
	"holder-hung":          7500 * time.Millisecond, // 3.52 s, imds-lag-holder-hung (2 scenarios)
	"api-cut-haproxy-dies": 20 * time.Second,        // 10.32 s (1.94×)
	"notice":               10 * time.Second,        // not a downtime: notice → handoff; planned moves fail no request
	"cold-start":           3500 * time.Millisecond, // 1.72 s, five-cold-start (2 scenarios)
	"one-back":             4500 * time.Millisecond, // 2.04 s
	"disassociated":        2 * time.Second,         // 0.56 s (the 2 s floor)
	"mid-move":             25 * time.Second,        // 12.52 s (2.0×)
	"public-ip-back":       15 * time.Second,        // 12.08 s (1.24×: most of it is the election waiting for a stale lease, lease + skew = 11 s)
	"coordinator-gone":     5500 * time.Millisecond, // 2.60 s
}

// chaosBound is the bound named name; it panics at init when there is none.
func chaosBound(name string) time.Duration {
	d, ok := chaosBounds[name]
	if !ok {
		panic("no chaos bound named " + name)
	}
	return d
}

// secondMoveWatch is how long every run goes on after its outcome, every
// invariant still judged: an address poll (the coordinator's next read of
// the EIPs, which might show it something to act on) and a lease duration
// (for anything judged on a stale view to run out).
const secondMoveWatch = dAddressPoll + dLease

// overlapTolerance is the sampler's own blur: two daemons answer one
// sampling round at slightly different moments, so a clean handoff can show
// both as holder in one round.
const overlapTolerance = 250 * time.Millisecond

// chaosScenarios is the suite, in the order it runs: the scenarios of
// the files chaos_*_test.go, the older ones first (the report keeps this
// order).
var chaosScenarios = slices.Concat(faultScenarios(), holderScenarios(), lifecycleScenarios(), operatorScenarios(),
	coordinatorScenarios(), metadataScenarios(), publicIPScenarios())

// chaosRun is one run of one scenario.
type chaosRun struct {
	*testing.T
	sc      *chaosScenario
	c       *cluster
	s       *sampler
	cl      *chaosClient
	started time.Time // the client's first request
	faultAt time.Time // x.fault(); zero until then
	ended   time.Time
	// holder of the client's EIP when the fault began, and the
	// coordinator then (nil for cold runs).
	holder *node
	coord  *node
	// statsAtFlt: the emulator's counters at the fault.
	statsAtFlt simStats
	// focus is the index of the EIP the client goes through (pick).
	focus    int
	apiAtFlt int64
	firstErr string
	// downFrom, when set (x.measureFrom), is where the client's downtime
	// and failed requests start to count instead of faultAt: for faults
	// whose outage is total by nature until a repair the scenario makes.
	// The invariants and the request rate still count from the fault.
	downFrom time.Time
	// released are the EIPs the scenario released: gone from EC2, so
	// never "dangling" (invariant 3 does not apply to them).
	released map[string]bool
}

// Errorf and Fatalf keep the first failure message for the result (the
// testing package does not give it back).
func (x *chaosRun) Errorf(format string, args ...any) {
	x.Helper()
	x.keep(format, args...)
	x.T.Errorf(format, args...)
}

func (x *chaosRun) Fatalf(format string, args ...any) {
	x.Helper()
	x.keep(format, args...)
	x.T.Fatalf(format, args...)
}

func (x *chaosRun) keep(format string, args ...any) {
	if x.firstErr == "" {
		x.firstErr, _, _ = strings.Cut(fmt.Sprintf(format, args...), "\n")
	}
}

// alloc is the EIP the client uses (the first, unless the scenario picked
// another).
func (x *chaosRun) alloc() string { return x.c.alloc(x.focus) }

// daemonCalls counts the EC2 calls the members' daemons made so far (not
// the operator's: some scenarios drain the throttling buckets by hand).
func (x *chaosRun) daemonCalls() int64 {
	st := x.c.stats()
	var n int64
	for _, nd := range x.c.nodes {
		for _, c := range st.ByCaller[nd.id()] {
			n += c
		}
	}
	return n
}

// fault marks the moment the fault is injected: everything after it is
// judged.
func (x *chaosRun) fault() {
	x.Helper()
	if !x.faultAt.IsZero() {
		x.Fatalf("fault() called twice")
	}
	x.statsAtFlt = x.c.stats()
	x.apiAtFlt = x.daemonCalls()
	x.faultAt = time.Now()
}

// measureFrom marks the moment from which the client's downtime counts
// (see chaosRun.downFrom); after fault(), at most once.
func (x *chaosRun) measureFrom() {
	x.Helper()
	if x.faultAt.IsZero() || !x.downFrom.IsZero() {
		x.Fatalf("measureFrom() must come once, after fault()")
	}
	x.downFrom = time.Now()
}

// clientBack waits until the client has had n requests in a row succeed
// after the fault.
func (x *chaosRun) clientBack(timeout time.Duration, n int) {
	x.Helper()
	waitFor(x, timeout, fmt.Sprintf("%d requests in a row through the EIP to succeed", n), func() bool {
		return x.cl.okInARow(x.faultAt) >= n
	})
}

// ---- results ----

var chaosTally struct {
	sync.Mutex
	passed, failed int
	runs           map[string]int
}

// chaosResult is one line of CHAOS_RESULTS (the input of
// tools/chaosreport).
type chaosResult struct {
	Scenario       string         `json:"scenario"`
	Title          string         `json:"title"`
	Run            int            `json:"run"`
	Passed         bool           `json:"passed"`
	Error          string         `json:"error,omitempty"`
	Check          string         `json:"check"`
	Started        time.Time      `json:"started"`
	FaultAt        time.Time      `json:"fault_at"`
	Ended          time.Time      `json:"ended"`
	DowntimeS      float64        `json:"downtime_s"`
	DowntimeBoundS float64        `json:"downtime_bound_s"`
	Requests       int            `json:"requests"`
	FailedRequests int            `json:"failed_requests"`
	Moves          int            `json:"moves"`
	APICalls       int64          `json:"api_calls"`
	APICallsBound  int64          `json:"api_calls_bound"`
	Timeline       *chaosTimeline `json:"timeline,omitempty"`
}

type chaosTimeline struct {
	Start    time.Time           `json:"start"`
	BucketMS int                 `json:"bucket_ms"`
	ClientOK []float64           `json:"client_ok"`
	Holder   []string            `json:"holder"`
	Roles    map[string][]string `json:"roles"`
}

const timelineBucket = 250 * time.Millisecond

// TestChaos runs every scenario (SCENARIO filters with -run
// 'TestChaos/regexp'; RUNS repeats with -count).
func TestChaos(t *testing.T) {
	needHAProxy(t)
	seen := map[string]bool{}
	for i := range chaosScenarios {
		sc := &chaosScenarios[i]
		if seen[sc.name] {
			t.Fatalf("two chaos scenarios are named %q", sc.name)
		}
		seen[sc.name] = true
		if sc.apiMax <= 0 {
			t.Fatalf("chaos scenario %q sets no ceiling on the EC2 calls after its fault (apiMax)", sc.name)
		}
		t.Run(sc.name, func(t *testing.T) { runChaos(t, sc) })
	}
}

func runChaos(t *testing.T, sc *chaosScenario) {
	chaosTally.Lock()
	if chaosTally.runs == nil {
		chaosTally.runs = map[string]int{}
	}
	chaosTally.runs[sc.name]++
	runNo := chaosTally.runs[sc.name]
	chaosTally.Unlock()

	res := chaosResult{Scenario: sc.name, Title: sc.title, Run: runNo, Check: "http", DowntimeBoundS: sc.downtime.Seconds(),
		APICallsBound: sc.apiMax}
	if sc.runtimeCheck {
		res.Check = "runtime"
	}
	x := &chaosRun{T: t, sc: sc}
	// The result is written last, after every cleanup of the cluster (its
	// processes are gone by then), with the test's verdict.
	t.Cleanup(func() { finishChaos(t, x, &res) })

	eips := max(sc.eips, 1)
	x.c = newCluster(x, clusterOpts{instances: sc.instances, eips: eips, flags: defaults,
		privateIPs: sc.privateIPs, runtimeCheck: sc.runtimeCheck, asg: sc.asg, hook: sc.hook, alt: sc.alt,
		autoAssignPublicIP: sc.autoAssignPublicIP})
	x.s = startSampler(x.c)
	// A failed run keeps every process's log (the test's own temp dir goes
	// with it) where CHAOS_LOGS says; this runs before the processes go.
	t.Cleanup(func() {
		if dir := os.Getenv("CHAOS_LOGS"); dir != "" && t.Failed() {
			keepLogs(t, x.c.dir, filepath.Join(dir, fmt.Sprintf("%s-run%d", sc.name, runNo)))
		}
	})
	// A run that failed after its fault still reports what the client
	// saw until then; this runs before the cluster's processes go.
	t.Cleanup(func() {
		if x.ended.IsZero() && !x.faultAt.IsZero() && x.cl != nil {
			x.ended = time.Now()
			x.cl.stop()
			fillResult(x, &res)
		}
	})
	if sc.setup != nil {
		sc.setup(x)
	}
	if sc.cold {
		x.cl = startChaosClient(x.c, 0)
		x.started = time.Now()
		sc.fault(x)
	} else {
		if !x.anyDaemon() {
			x.c.startAll()
		}
		allocs := make([]string, eips)
		for i := range allocs {
			allocs[i] = x.c.alloc(i)
		}
		x.c.heldBy(60*time.Second, allocs...)
		if sc.readyAtSettle > 0 {
			x.c.settledWith(x.c.alloc(0), sc.readyAtSettle)
		} else {
			x.c.settled(x.c.alloc(0))
		}
		if sc.pick != nil {
			x.focus = sc.pick(x)
		}
		x.holder = x.c.steady(x.alloc())
		x.coord, _ = x.c.coordinator(30 * time.Second)
		x.cl = startChaosClient(x.c, x.focus)
		x.started = time.Now()
		// A client that cannot get through before the fault would make
		// every figure after it meaningless.
		waitFor(x, 10*time.Second, "the client to get through the EIP before the fault", func() bool {
			return x.cl.okInARow(x.started) >= 10
		})
		// A little steady state before the fault, for the timeline.
		time.Sleep(time.Second)
		sc.fault(x)
	}
	if x.faultAt.IsZero() {
		x.Fatalf("scenario %s never called fault()", sc.name)
	}
	// The outcome is in: watch for a second move (ping-pong) and a late
	// two-holder window for an address poll and a lease more (the
	// coordinator's next read, and a lease for a stale view to run out).
	x.quiet(secondMoveWatch)
	x.ended = time.Now()
	x.cl.stop()
	fillResult(x, &res)
	checkInvariants(x, &res)
}

// keepLogs copies the *.log files of from into to.
func keepLogs(t *testing.T, from, to string) {
	logs, _ := filepath.Glob(filepath.Join(from, "*.log"))
	if err := os.MkdirAll(to, 0o755); err != nil {
		t.Logf("keep the logs: %v", err)
		return
	}
	for _, f := range logs {
		b, err := os.ReadFile(f)
		if err == nil {
			err = os.WriteFile(filepath.Join(to, filepath.Base(f)), b, 0o644)
		}
		if err != nil {
			t.Logf("keep %s: %v", f, err)
		}
	}
	t.Logf("the processes' logs of this run are in %s", to)
}

// anyDaemon reports whether setup started a daemon itself.
func (x *chaosRun) anyDaemon() bool {
	for _, n := range x.c.nodes {
		if n.eipd != nil {
			return true
		}
	}
	return false
}

// fillResult computes the figures of a finished run.
func fillResult(x *chaosRun, res *chaosResult) {
	res.Started, res.FaultAt, res.Ended = x.started, x.faultAt, x.ended
	// A request sent up to its timeout before the fault can still be hit
	// by it (HAProxy killed while it was in flight): it counts too.
	down, failed, total := x.cl.downtime(x.faultAt.Add(-clientTimeout), x.ended)
	if !x.downFrom.IsZero() {
		// Only what follows the repair is judged (x.measureFrom); the
		// request rate still counts every request from the fault.
		down, failed, _ = x.cl.downtime(x.downFrom, x.ended)
	}
	res.DowntimeS, res.FailedRequests, res.Requests = down.Seconds(), failed, total
	ev := x.c.events()
	for i := range x.c.info.EIPs {
		if m := len(assocsIn(ev, x.c.alloc(i), x.faultAt)); m > res.Moves {
			res.Moves = m
		}
	}
	res.APICalls = x.daemonCalls() - x.apiAtFlt
	res.Timeline = x.timeline(ev)
}

// assocsIn are the associations of alloc (to any instance) at or after t.
func assocsIn(ev []simEvent, alloc string, t time.Time) []simEvent {
	var out []simEvent
	for _, e := range ev {
		if e.AllocationID == alloc && e.To != "" && !e.Time.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

// checkInvariants asserts the design's safety invariants over the run,
// from the fault on, for every EIP, and the client's bound.
func checkInvariants(x *chaosRun, res *chaosResult) {
	t, sc := x, x.sc
	ev := x.c.events()
	rows := x.s.requireSamples(x.T, x.faultAt, x.ended)
	allowed := sc.overlap
	if allowed == 0 {
		allowed = overlapTolerance
	}
	dangling := sc.danglingMax
	if dangling == 0 {
		dangling = dLease
	}
	for i := range x.c.info.EIPs {
		alloc := x.c.alloc(i)
		// 1. One holder, judged only where every running daemon answered
		// right after each association.
		x.c.requireJudged(t, rows, alloc, x.faultAt, x.ended)
		if d, at, _ := overlap(rows, alloc); d > allowed {
			t.Errorf("invariant 1 (one holder): two daemons reported holder of %s for %s from %s (allowed %s)",
				alloc, d, at.Format("15:04:05.000"), allowed)
		}
		// 2. Terms only grow.
		if drops := termDrops(x.c.tagHistory(alloc), repairLimit); len(drops) > 0 {
			t.Errorf("invariant 2 (terms only grow): the term of %s went down:\n  %s", alloc, strings.Join(drops, "\n  "))
		}
		// 3. Never dangling.
		if !sc.dangling && !x.released[alloc] {
			if u := unassociated(ev, alloc, x.faultAt, x.ended); u > dangling {
				t.Errorf("invariant 3 (never dangling): %s was unassociated for %s after the fault (at most %s):%s",
					alloc, u, dangling, eventList(changesSince(ev, alloc, x.faultAt)))
			}
		}
		// 4. No ping-pong.
		limit := sc.maxMoves
		if limit == 0 {
			limit = 1
		}
		if limit < 0 {
			limit = 0
		}
		if m := assocsIn(ev, alloc, x.faultAt); len(m) > limit {
			t.Errorf("invariant 4 (no ping-pong): %s moved %d times after the fault, at most %d:%s", alloc, len(m), limit, eventList(m))
		}
	}
	// What a client saw.
	if sc.downtime == 0 {
		if res.FailedRequests > 0 {
			t.Errorf("client: %d of %d requests failed during a planned move (want none); longest outage %.2fs",
				res.FailedRequests, res.Requests, res.DowntimeS)
		}
	} else if res.DowntimeS > sc.downtime.Seconds() {
		t.Errorf("client: %.2fs of client-visible downtime after the fault, bound %s (%d of %d requests failed)",
			res.DowntimeS, sc.downtime, res.FailedRequests, res.Requests)
	}
	// res.Requests counts from the fault (less the client timeout), not
	// from the client's start: a cold scenario may call fault() well after
	// the client started.
	if res.Requests < int(x.ended.Sub(x.faultAt).Seconds()*20) {
		t.Errorf("client: only %d requests in %s, want at least 20 a second", res.Requests, x.ended.Sub(x.faultAt).Round(time.Second))
	}
	// The API budget: no retry storm, no poll gone wild.
	if res.APICalls > sc.apiMax {
		t.Errorf("API: the daemons made %d EC2 calls from the fault to the end of the run, at most %d (%v)",
			res.APICalls, sc.apiMax, x.daemonCallsByAction())
	}
	// Nothing crashed: no daemon exited unless the harness stopped it,
	// and no log holds a Go crash or a data race (make chaos builds the
	// daemons with -race).
	for _, n := range x.c.nodes {
		for _, p := range n.daemons {
			if why := p.unexpectedExit(); why != "" {
				t.Errorf("nothing crashed: %s", why)
			}
		}
	}
	if bad := crashIn(x.c.dir); bad != "" {
		t.Errorf("nothing crashed: %s", bad)
	}
}

// daemonCallsByAction is what daemonCalls counts, by action, since the
// fault (for the message of a broken ceiling).
func (x *chaosRun) daemonCallsByAction() map[string]int64 {
	out := map[string]int64{}
	now := x.c.stats()
	for _, nd := range x.c.nodes {
		for a, c := range now.ByCaller[nd.id()] {
			if d := c - x.statsAtFlt.ByCaller[nd.id()][a]; d > 0 {
				out[a] += d
			}
		}
	}
	return out
}

var crashRE = regexp.MustCompile(`(?m)^(panic: |fatal error: |WARNING: DATA RACE)`)

// crashIn names the first eipd log in dir with a Go crash in it.
func crashIn(dir string) string {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "eipd-") || !strings.HasSuffix(e.Name(), ".log") {
			continue
		}
		b, err := os.ReadFile(dir + "/" + e.Name())
		if err != nil {
			continue
		}
		if loc := crashRE.FindIndex(b); loc != nil {
			end := min(len(b), loc[0]+300)
			return e.Name() + ": " + string(b[loc[0]:end])
		}
	}
	return ""
}

// finishChaos prints the run's line, appends its result and counts it.
func finishChaos(t *testing.T, x *chaosRun, res *chaosResult) {
	res.Passed = !t.Failed()
	res.Error = x.firstErr
	if !res.Passed && res.Error == "" {
		res.Error = "failed (see the test log)"
		if x.ended.IsZero() {
			res.Error = "failed before the run ended (see the test log)"
		}
	}
	chaosTally.Lock()
	if res.Passed {
		chaosTally.passed++
	} else {
		chaosTally.failed++
	}
	chaosTally.Unlock()
	verdict := "PASS"
	if !res.Passed {
		verdict = "FAIL"
	}
	fmt.Printf("chaos %-28s run %d: %s downtime %.2fs (bound %s) failed %d/%d moves %d api %d\n",
		res.Scenario, res.Run, verdict, res.DowntimeS, boundString(x.sc.downtime), res.FailedRequests, res.Requests, res.Moves, res.APICalls)
	if path := os.Getenv("CHAOS_RESULTS"); path != "" {
		if err := appendJSONLine(path, res); err != nil {
			t.Errorf("write the result to %s: %v", path, err)
		}
	}
}

func boundString(d time.Duration) string {
	if d == 0 {
		return "0 failed"
	}
	return d.String()
}

func appendJSONLine(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// chaosSummary is the closing line, when any scenario ran.
func chaosSummary() (string, bool) {
	chaosTally.Lock()
	defer chaosTally.Unlock()
	if chaosTally.passed+chaosTally.failed == 0 {
		return "", false
	}
	return fmt.Sprintf("chaos: %d passed, %d failed", chaosTally.passed, chaosTally.failed), true
}

// timeline buckets the run for the report's plot: client success rate,
// the first EIP's association, every daemon's role.
func (x *chaosRun) timeline(ev []simEvent) *chaosTimeline {
	alloc := x.alloc()
	n := int(x.ended.Sub(x.started)/timelineBucket) + 1
	tl := &chaosTimeline{Start: x.started, BucketMS: int(timelineBucket / time.Millisecond),
		ClientOK: make([]float64, n), Holder: make([]string, n), Roles: map[string][]string{}}
	ok, all := make([]int, n), make([]int, n)
	for _, r := range x.cl.results() {
		if i := int(r.at.Sub(x.started) / timelineBucket); i >= 0 && i < n {
			all[i]++
			if r.ok {
				ok[i]++
			}
		}
	}
	for i := range n {
		tl.ClientOK[i] = -1
		if all[i] > 0 {
			tl.ClientOK[i] = float64(ok[i]) / float64(all[i])
		}
	}
	for i := range n {
		end := x.started.Add(time.Duration(i+1) * timelineBucket)
		holder := ""
		for _, e := range ev {
			if e.AllocationID == alloc && e.Time.Before(end) {
				holder = e.To
			}
		}
		tl.Holder[i] = holder
	}
	rows := x.s.between(x.started, x.ended)
	for j, nd := range x.c.nodes {
		if nd.spare {
			continue
		}
		roles := make([]string, n)
		for _, r := range rows {
			if i := int(r.at.Sub(x.started) / timelineBucket); i >= 0 && i < n {
				roles[i] = r.role(j, alloc)
			}
		}
		tl.Roles[nd.id()] = roles
	}
	return tl
}

// ---- the client ----

// chaosClient sends a request through one EIP's forwarder every 40 ms (25
// a second), each on a new connection, and records every outcome.
type chaosClient struct {
	mu   sync.Mutex
	reqs []clientResult
	quit chan struct{}
	wg   sync.WaitGroup
	once sync.Once
}

type clientResult struct {
	at  time.Time // when the request was sent
	ok  bool
	who string // the instance that answered
}

const (
	clientInterval = 40 * time.Millisecond
	clientTimeout  = time.Second
)

func startChaosClient(c *cluster, eip int) *chaosClient {
	cl := &chaosClient{quit: make(chan struct{})}
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		tick := time.NewTicker(clientInterval)
		defer tick.Stop()
		for {
			select {
			case <-cl.quit:
				return
			case at := <-tick.C:
				cl.wg.Add(1)
				go func() {
					defer cl.wg.Done()
					who, err := c.viaEIPWithin(eip, clientTimeout)
					cl.mu.Lock()
					cl.reqs = append(cl.reqs, clientResult{at: at, ok: err == nil, who: who})
					cl.mu.Unlock()
				}()
			}
		}
	}()
	c.t.Cleanup(cl.stop)
	return cl
}

func (cl *chaosClient) stop() {
	cl.once.Do(func() { close(cl.quit) })
	cl.wg.Wait()
}

// results are the outcomes so far, in the order the requests were sent.
func (cl *chaosClient) results() []clientResult {
	cl.mu.Lock()
	out := append([]clientResult(nil), cl.reqs...)
	cl.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

// okInARow is how many of the latest requests sent after since succeeded
// in a row.
func (cl *chaosClient) okInARow(since time.Time) int {
	rs := cl.results()
	n := 0
	for i := len(rs) - 1; i >= 0 && !rs[i].at.Before(since); i-- {
		if !rs[i].ok {
			break
		}
		n++
	}
	return n
}

// downtime is the client-visible downtime of [from, to]: the longest run
// of failed requests, from the first failure of the run to the next
// success (or to); with the number of failed and of all requests sent in
// the window.
func (cl *chaosClient) downtime(from, to time.Time) (longest time.Duration, failed, total int) {
	return outage(cl.results(), from, to)
}

func outage(rs []clientResult, from, to time.Time) (longest time.Duration, failed, total int) {
	var runStart time.Time
	in := false
	for _, r := range rs {
		if r.at.Before(from) || r.at.After(to) {
			continue
		}
		total++
		if !r.ok {
			failed++
			if !in {
				runStart, in = r.at, true
			}
			continue
		}
		if in {
			longest = max(longest, r.at.Sub(runStart))
			in = false
		}
	}
	if in {
		longest = max(longest, to.Sub(runStart))
	}
	return longest, failed, total
}

// ---- scenario helpers ----

// movedAway waits until the first EIP is associated with another instance
// than from and that instance's daemon reports holder; it returns it.
func (x *chaosRun) movedAway(from *node, timeout time.Duration) *node {
	x.Helper()
	var to *node
	waitFor(x, timeout, "the EIP to move away from "+from.id()+" to a holder", func() bool {
		to = x.c.node(x.c.holder(x.alloc()))
		return to != nil && to != from && to.eipd != nil && !to.eipd.Exited() && to.role(x.alloc()) == "holder"
	})
	return to
}

// stays asserts that the first EIP does not move for d and that its
// holder keeps reporting holder at the end.
func (x *chaosRun) stays(on *node, d time.Duration, what string) {
	x.Helper()
	during(x, d, what, func() error {
		if h := x.c.holder(x.alloc()); h != on.id() {
			return fmt.Errorf("the EIP moved to %q", h)
		}
		return nil
	})
	if r := on.role(x.alloc()); r != "holder" {
		x.Fatalf("%s: %s reports %q, not holder", what, on.id(), r)
	}
}

// quiet lets the cluster run for d after the outcome, so that a second
// move (ping-pong) or a late two-holder window would be seen.
func (x *chaosRun) quiet(d time.Duration) { time.Sleep(d) }
