package leader

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// The model-based test's simulation driver: real Loops (one per simulated
// instance) stepped in discrete simulated time against the EC2 model, with
// faults injected at random from a seed or by a scenario, and the
// invariants (model_invariants_test.go) checked after every step.
//
// Nothing here reads the wall clock or starts a goroutine: each Loop gets
// the simulated clock through Config.Now and is driven through reconcile,
// probePeers and applyMetadata, never Run. The Loop probes peers on
// goroutines of its own, which only read the simulation while the driver
// waits for them, so a run is a pure function of its seed.

const (
	simStep   = 100 * time.Millisecond
	simMaxLag = 5 * time.Second
	simGroup  = "model"
	// simMeanFaultGap is the mean time between random faults.
	simMeanFaultGap = 12 * time.Second
)

// simTiming is the daemon's default timing (docs/design.md (Defaults), `eipd run -h`).
var simTiming = Timing{
	RenewInterval: 3 * time.Second,
	LeaseDuration: 10 * time.Second,
	MaxClockSkew:  time.Second,
	HolderPoll:    10 * time.Second,
	StandbyPoll:   60 * time.Second,
	ProbeInterval: time.Second,
	RankStep:      200 * time.Millisecond,
}

var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// simConfig describes one simulated cluster.
type simConfig struct {
	Seed    uint64
	Daemons int  // 2–4 instances, each running eipd and a proxy
	EIPs    int  // 1–3 Elastic IPs tagged for the group
	Slots   int  // private IPs on each instance's primary ENI, 1–2
	ByGroup bool // daemons find the EIPs by group tag, not --allocation-id
	// Faults: inject random faults (else only what the scenario does).
	Faults bool
}

func (c simConfig) String() string {
	by := "--allocation-id"
	if c.ByGroup {
		by = "group tag"
	}
	return fmt.Sprintf("seed %d: %d daemons, %d EIPs, %d private IPs each, EIPs by %s", c.Seed, c.Daemons, c.EIPs, c.Slots, by)
}

// randomSimConfig draws a cluster shape from the seed.
func randomSimConfig(seed uint64) simConfig {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	return simConfig{Seed: seed, Daemons: 2 + r.IntN(3), EIPs: 1 + r.IntN(3), Slots: 1 + r.IntN(2),
		ByGroup: r.IntN(2) == 0, Faults: true}
}

// sim is one simulated cluster.
type sim struct {
	cfg     simConfig
	rng     *rand.Rand
	now     time.Time // true time
	steps   int
	world   *ec2Model
	daemons []*simDaemon
	allocs  []string // every EIP the run started with
	log     *simLog
	inv     *invariants
	timers  []simTimer
	// faults counts injected faults; the invariants compare it between moves.
	faults int
	// released lists the EIPs released by hand.
	released map[string]bool
}

type simTimer struct {
	at time.Time
	do func()
}

// simDaemon is one instance: its EC2 identity, its proxy and its eipd.
type simDaemon struct {
	s     *sim
	id    string
	ident eip.Identity
	ips   []string // private IPs of its primary ENI, primary first
	conn  *ec2Conn
	loop  *Loop // nil until started

	started    bool          // eipd runs (false before start and while the instance is stopped)
	stopped    bool          // the instance is stopped: eipd and proxy gone
	paused     bool          // eipd is not scheduled (SIGSTOP, a stuck VM)
	stopBy     time.Time     // eipd got SIGTERM: it hands off until then, then exits
	frozen     bool          // while paused, the proxy does not answer either
	proxyOff   bool          // the proxy is dead, eipd lives
	sick       bool          // own health check fails (a flap)
	notice     bool          // a lifecycle notice was announced
	noticeSeen bool          // eipd's metadata poll has delivered it
	offset     time.Duration // own clock minus true time

	lastHealth                             health.Status
	lastLog                                string // for simLogWriter
	logRepeats                             int
	nextTick, nextProbe, nextMeta, nextIPs time.Time
	// every is the period of the Run loop's ticker (Loop.tickInterval).
	every time.Duration
	roles map[string]string // last published role per EIP, for the event log
}

func newSim(cfg simConfig) *sim {
	s := &sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0xe1bd)), now: simEpoch, log: newSimLog(400), released: map[string]bool{}}
	s.world = newEC2Model(func() time.Time { return s.now }, simMaxLag)
	s.inv = newInvariants(s)
	s.world.onChange = s.inv.onChange
	for i := range cfg.EIPs {
		alloc := fmt.Sprintf("eipalloc-%d", i+1)
		s.allocs = append(s.allocs, alloc)
		s.world.addAddress(alloc, fmt.Sprintf("203.0.113.%d", i+1), map[string]string{eip.TagGroup: simGroup})
	}
	for i := range cfg.Daemons {
		name := string(rune('a' + i))
		d := &simDaemon{s: s, id: "i-" + name, roles: map[string]string{}}
		for j := range cfg.Slots {
			d.ips = append(d.ips, fmt.Sprintf("10.0.%d.%d", i+1, 10+j))
		}
		d.ident = eip.Identity{InstanceID: d.id, Region: "eu-west-1", AvailabilityZone: "eu-west-1a",
			NetworkInterfaceID: "eni-" + name, PrivateIP: d.ips[0]}
		d.conn = &ec2Conn{s: s, caller: d.id}
		s.world.addInstance(d.id, d.ident.NetworkInterfaceID, d.ips, map[string]string{eip.TagGroup: simGroup})
		s.daemons = append(s.daemons, d)
	}
	return s
}

// elapsed is the true time since the start of the run.
func (s *sim) elapsed() time.Duration { return s.now.Sub(simEpoch) }

func (s *sim) daemon(id string) *simDaemon {
	for _, d := range s.daemons {
		if d.id == id {
			return d
		}
	}
	return nil
}

// daemonByIP finds the instance owning a private IP.
func (s *sim) daemonByIP(ip string) *simDaemon {
	for _, d := range s.daemons {
		if slices.Contains(d.ips, ip) {
			return d
		}
	}
	return nil
}

// event records something in the trail.
func (s *sim) event(who, format string, args ...any) {
	s.log.add(simEvent{at: s.elapsed(), who: who, what: fmt.Sprintf(format, args...)})
}

// fault records an injected fault: an event that also separates moves for
// invariant 4.
func (s *sim) fault(who, format string, args ...any) {
	s.faults++
	s.event(who, "FAULT "+format, args...)
}

func (s *sim) after(d time.Duration, do func()) {
	s.timers = append(s.timers, simTimer{at: s.now.Add(d), do: do})
}

// --- running ---

// step advances true time by one step: timers, random faults, every live
// daemon in a random order, then the invariants.
func (s *sim) step() {
	s.now = s.now.Add(simStep)
	s.steps++
	s.fireTimers()
	if s.cfg.Faults {
		s.maybeInjectFault()
	}
	for _, i := range s.rng.Perm(len(s.daemons)) {
		s.daemons[i].step()
	}
	for _, d := range s.daemons {
		d.logRoles()
	}
	s.inv.afterStep()
}

func (s *sim) fireTimers() {
	for {
		i := slices.IndexFunc(s.timers, func(t simTimer) bool { return !t.at.After(s.now) })
		if i < 0 {
			return
		}
		t := s.timers[i]
		s.timers = slices.Delete(s.timers, i, i+1)
		t.do()
	}
}

// run steps for d of true time.
func (s *sim) run(d time.Duration) {
	for end := s.now.Add(d); s.now.Before(end); {
		s.step()
	}
}

// runUntil steps until cond holds, for at most max; it reports whether
// cond held.
func (s *sim) runUntil(max time.Duration, cond func() bool) bool {
	for end := s.now.Add(max); s.now.Before(end); {
		if cond() {
			return true
		}
		s.step()
	}
	return cond()
}

func simConfigFor(d *simDaemon, allocs []string) Config {
	return Config{
		Timing: simTiming, AllocationIDs: allocs, ProbeFall: 3, ProbeTimeout: 500 * time.Millisecond,
		LifecyclePoll: 5 * time.Second, StopTimeout: 20 * time.Second, CallTimeout: 10 * time.Second,
		Tick: 200 * time.Millisecond, Now: d.clock,
	}
}

// clock is the daemon's own clock.
func (d *simDaemon) clock() time.Time { return d.s.now.Add(d.offset) }

// start runs a fresh eipd on the instance.
func (s *sim) start(d *simDaemon) {
	var allocs []string
	if !s.cfg.ByGroup {
		allocs = s.allocs
	}
	logger := hclog.New(&hclog.LoggerOptions{Name: d.id, Level: hclog.Info, Output: simLogWriter{d}, DisableTime: true})
	cloud := &modelCloud{api: d.conn, group: simGroup, now: d.clock}
	d.loop = New(simConfigFor(d, allocs), d.ident, cloud, simMeta{d}, simHealth{d}, simProber{s}, nil, logger)
	d.started, d.notice, d.noticeSeen, d.stopBy, d.roles = true, false, false, time.Time{}, map[string]string{}
	d.lastHealth = simHealth{d}.Status()
	// Each process starts at its own phase of the tick, probe and
	// metadata timers.
	d.nextTick = s.now.Add(time.Duration(s.rng.IntN(2)) * simStep)
	d.every = d.loop.cfg.Tick
	d.nextProbe = s.now.Add(time.Duration(s.rng.IntN(10)) * simStep)
	d.nextMeta = s.now.Add(time.Duration(s.rng.IntN(50)) * simStep)
	for _, w := range s.inv.released {
		// A new process learns of a release from its own reads.
		delete(w.reachable, d.id)
	}
	s.fault(d.id, "eipd starts")
}

// startAll starts every daemon, at random moments of the next few seconds
// when random (a cold start is not simultaneous), else now.
func (s *sim) startAll() {
	for _, d := range s.daemons {
		if s.cfg.Faults {
			s.after(time.Duration(s.rng.IntN(40))*simStep, func() { s.start(d) })
		} else {
			s.start(d)
		}
	}
}

// step runs what the daemon's Run loop would do in this step: a probe
// round, a metadata poll, and a reconcile pass after either of them, after
// a change of own health, or on its tick.
func (d *simDaemon) step() {
	if !d.started || d.stopped || d.paused {
		return
	}
	ctx, now := context.Background(), d.s.now
	if !d.stopBy.IsZero() {
		d.stepStopping(ctx)
		return
	}
	pass := !now.Before(d.nextTick)
	if pass {
		d.nextTick = now.Add(d.every)
	}
	if !now.Before(d.nextProbe) {
		d.nextProbe = now.Add(d.loop.cfg.ProbeInterval)
		d.loop.probePeers(ctx)
		pass = true
	}
	// The renewer runs on its own timer, beside the loop (§9.9); a failed
	// renewal wakes the loop.
	d.loop.renewIfDue(ctx)
	select {
	case <-d.loop.renewer.failed:
		pass = true
	default:
	}
	// The metadata watcher polls public IPs every probe interval while
	// holding, notices every lifecycle poll.
	metaDue := !now.Before(d.nextMeta)
	ipsDue := d.loop.holding.Load() && !now.Before(d.nextIPs)
	if metaDue || ipsDue {
		d.nextIPs = now.Add(d.loop.cfg.ProbeInterval)
		r := d.metadata()
		if metaDue {
			d.nextMeta = now.Add(d.loop.cfg.LifecyclePoll)
			if d.notice && !d.noticeSeen {
				// The fault reaches eipd only now: what it does about it
				// counts from here.
				d.noticeSeen = true
				d.s.fault(d.id, "IMDS poll shows the lifecycle notice")
			}
		} else {
			r.notices = nil
		}
		d.loop.applyMetadata(r)
		pass = true
	}
	if h := (simHealth{d}).Status(); h != d.lastHealth {
		d.lastHealth = h
		pass = true
	}
	if pass {
		d.loop.reconcile(ctx)
		// Run resets its ticker when the period changes.
		if e := d.loop.tickInterval(); e != d.every {
			d.every, d.nextTick = e, now.Add(e)
		}
	}
}

// stepStopping is one turn of Loop.shutdown: a reconcile pass on each
// tick while it holds an EIP and the stop timeout has not run out, then
// the process exits (the proxy keeps running).
func (d *simDaemon) stepStopping(ctx context.Context) {
	now := d.s.now
	if now.Before(d.nextTick) {
		return
	}
	d.nextTick = now.Add(d.loop.cfg.Tick)
	d.loop.renewIfDue(ctx)
	d.loop.reconcile(ctx)
	if d.loop.holdingAny() && now.Before(d.stopBy) {
		return
	}
	d.s.event(d.id, "eipd exits (still holding %v)", d.loop.heldIDs())
	d.started, d.stopBy = false, time.Time{}
}

// live reports whether the daemon runs and is scheduled.
func (d *simDaemon) live() bool { return d.started && !d.stopped && !d.paused }

// status is the daemon's published /status, or false when it does not run.
func (d *simDaemon) status() (Status, bool) {
	if d.loop == nil || !d.started || d.stopped {
		return Status{}, false
	}
	return d.loop.Status(), true
}

// roleOf is the daemon's published role for alloc, "" when not listed.
func (d *simDaemon) roleOf(alloc string) string {
	st, ok := d.status()
	if !ok {
		return ""
	}
	for _, e := range st.EIPs {
		if e.AllocationID == alloc {
			return e.Role
		}
	}
	return ""
}

func (d *simDaemon) logRoles() {
	st, ok := d.status()
	if !ok {
		return
	}
	seen := map[string]bool{}
	for _, e := range st.EIPs {
		seen[e.AllocationID] = true
		if prev := d.roles[e.AllocationID]; prev != e.Role {
			d.s.event(d.id, "role %s: %s -> %s (term %d, %s)", e.AllocationID, orNone(prev), e.Role, e.Term, e.Why)
			d.roles[e.AllocationID] = e.Role
		}
	}
	for _, alloc := range slices.Sorted(maps.Keys(d.roles)) {
		if !seen[alloc] {
			d.s.event(d.id, "forgets %s", alloc)
			delete(d.roles, alloc)
		}
	}
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// metadata is what IMDS would say: notices, and the public IPs on the
// instance's primary ENI, from the true world.
func (d *simDaemon) metadata() metadataReport {
	r := metadataReport{at: d.loop.cfg.Now(), ipsKnown: true}
	if d.notice {
		r.notices = []eip.Notice{{Kind: eip.NoticeSpotInterruption, Detail: "terminate"}}
	}
	for _, id := range slices.Sorted(maps.Keys(d.s.world.current().addrs)) {
		if a := d.s.world.current().addrs[id]; a.NetworkInterfaceID == d.ident.NetworkInterfaceID {
			r.assocs = append(r.assocs, eip.ENIAssociation{PublicIP: a.PublicIP, PrivateIP: a.PrivateIP})
		}
	}
	return r
}

// simMeta answers the loop's own metadata calls (the watcher's polls are
// driven by step through metadata()): the public IPs on the ENI, now.
type simMeta struct{ d *simDaemon }

func (m simMeta) Notices(context.Context) ([]eip.Notice, error) { return nil, nil }

func (m simMeta) Associations(context.Context) ([]eip.ENIAssociation, error) {
	return m.d.metadata().assocs, nil
}

// simHealth is the daemon's own check: down while its proxy is dead or its
// health flaps down.
type simHealth struct{ d *simDaemon }

func (h simHealth) Status() health.Status {
	if h.d.proxyOff || h.d.sick {
		return health.Down
	}
	return health.Up
}

// Changed never fires: the driver reconciles when the status changes.
func (simHealth) Changed() <-chan struct{} { return nil }

// simProber answers a peer probe as health.PeerProber would: the proxy
// check fails when the instance is stopped or its proxy dead or frozen;
// eipd's /status is silent while it is paused or not running; a /status
// that says health down fails the probe.
type simProber struct{ s *sim }

func (p simProber) Check(ctx context.Context, ip string) (health.PeerReport, error) {
	d := p.s.daemonByIP(ip)
	switch {
	case d == nil:
		return health.PeerReport{}, fmt.Errorf("probe peer %s: no route to host", ip)
	case d.stopped:
		return health.PeerReport{}, fmt.Errorf("probe peer %s: instance stopped", ip)
	case d.proxyOff && d.started && !d.paused:
		// The proxy check fails, but its eipd still answers /status.
		return reportFromStatus(d.loop.Status()), fmt.Errorf("probe peer %s: connection refused", ip)
	case d.proxyOff:
		return health.PeerReport{}, fmt.Errorf("probe peer %s: connection refused", ip)
	case d.paused && d.frozen:
		return health.PeerReport{}, fmt.Errorf("probe peer %s: timeout", ip)
	case d.paused || !d.started:
		return health.PeerReport{}, nil // the proxy serves; /status does not answer
	}
	st := d.loop.Status()
	if health.FreshStatusWanted(ctx) {
		st = d.loop.StatusFresh(ctx)
	}
	r := reportFromStatus(st)
	if st.Health == health.Down.String() {
		return r, fmt.Errorf("probe peer %s: its eipd reports health down", ip)
	}
	return r, nil
}

// --- one caller's connection to EC2, with its faults ---

// ec2Conn is one daemon's connection to the EC2 model. It injects that
// caller's faults: a partition (every call fails), calls failing or
// throttled at random (nothing applied), lost calls (a write applied but
// the caller gets an error) and read lag (reads answer from the world as
// it was up to lagMax ago).
type ec2Conn struct {
	s      *sim
	caller string

	partitioned                      bool
	failRate, loseRate, throttleRate float64
	lagMin, lagMax                   time.Duration
	// lastFailed: the last call this caller made failed to reach EC2 or
	// lost its answer (an injected fault, not an EC2 error).
	lastFailed bool
}

// impaired reports whether any API fault is on for this caller (read lag
// aside): it cannot count on reaching the API.
func (c *ec2Conn) impaired() bool {
	return c.partitioned || c.failRate > 0 || c.loseRate > 0 || c.throttleRate > 0
}

// cutOff reports whether the caller cannot reach the API now: partitioned,
// or its last call failed.
func (c *ec2Conn) cutOff() bool { return c.partitioned || c.lastFailed }

// fate decides before a call whether it fails before EC2 sees it (err), or,
// for a write, whether its answer is lost after EC2 applied it.
func (c *ec2Conn) fate(op string, write bool) (lost bool, err error) {
	switch {
	case c.partitioned:
		return false, &ec2Error{codeUnavailable, "dial tcp: i/o timeout (API partition)"}
	case c.throttleRate > 0 && c.s.rng.Float64() < c.throttleRate:
		c.s.fault(c.caller, "%s throttled", op)
		return false, &ec2Error{codeThrottled, "Request limit exceeded."}
	case c.failRate > 0 && c.s.rng.Float64() < c.failRate:
		c.s.fault(c.caller, "%s fails", op)
		return false, &ec2Error{codeUnavailable, "injected server error"}
	case write && c.loseRate > 0 && c.s.rng.Float64() < c.loseRate:
		c.s.fault(c.caller, "%s applied but its answer is lost", op)
		return true, nil
	}
	return false, nil
}

// done records the outcome the caller sees.
func (c *ec2Conn) done(err error) error {
	var e *ec2Error
	c.lastFailed = errors.As(err, &e) && (e.Code == codeUnavailable || e.Code == codeThrottled || e.Code == codeTimeout)
	return err
}

var errLostAnswer = &ec2Error{codeTimeout, "the request timed out (the answer was lost)"}

// view is the world this read sees.
func (c *ec2Conn) view() (*ec2State, time.Duration) {
	lag := c.lagMin
	if c.lagMax > c.lagMin {
		lag += time.Duration(c.s.rng.Int64N(int64(c.lagMax - c.lagMin)))
	}
	return c.s.world.asOf(c.s.now.Add(-lag)), lag
}

func (c *ec2Conn) describeAddresses(allocationIDs []string, group string, byFilter bool) ([]ec2Address, error) {
	if _, err := c.fate("DescribeAddresses", false); err != nil {
		return nil, c.done(err)
	}
	st, lag := c.view()
	as, err := st.describeAddresses(allocationIDs, group, byFilter)
	switch {
	case err != nil:
		c.s.event(c.caller, "DescribeAddresses: %v", err)
	case lag > 0:
		var seen []string
		for _, a := range as {
			seen = append(seen, fmt.Sprintf("%s@%s term %s", a.AllocationID, orNone(a.InstanceID), a.Tags[eip.TagTerm]))
		}
		c.s.event(c.caller, "DescribeAddresses as of %.1fs ago: %s", lag.Seconds(), strings.Join(seen, ", "))
	}
	return as, c.done(err)
}

func (c *ec2Conn) describeInstances(group string) ([]ec2InstanceView, error) {
	if _, err := c.fate("DescribeInstances", false); err != nil {
		return nil, c.done(err)
	}
	st, _ := c.view()
	return st.describeInstances(group), c.done(nil)
}

func (c *ec2Conn) associateAddress(alloc, eni, privateIP string, allowReassociation bool) (string, error) {
	lost, err := c.fate("AssociateAddress", true)
	if err != nil {
		return "", c.done(err)
	}
	assoc, err := c.s.world.associateAddress(c.caller, alloc, eni, privateIP, allowReassociation)
	c.s.event(c.caller, "AssociateAddress %s -> %s %s reassociate=%v: %s", alloc, eni, privateIP, allowReassociation, outcome(assoc, err, lost))
	c.s.inv.flush()
	if lost && err == nil {
		return "", c.done(errLostAnswer)
	}
	return assoc, c.done(err)
}

func (c *ec2Conn) disassociateAddress(associationID string) error {
	lost, err := c.fate("DisassociateAddress", true)
	if err != nil {
		return c.done(err)
	}
	err = c.s.world.disassociateAddress(c.caller, associationID)
	c.s.event(c.caller, "DisassociateAddress %s: %s", associationID, outcome("", err, lost))
	c.s.inv.flush()
	if lost && err == nil {
		return c.done(errLostAnswer)
	}
	return c.done(err)
}

func (c *ec2Conn) createTags(resources []string, tags map[string]string) error {
	lost, err := c.fate("CreateTags", true)
	if err != nil {
		return c.done(err)
	}
	err = c.s.world.createTags(c.caller, resources, tags)
	c.s.event(c.caller, "CreateTags %s %s: %s", strings.Join(resources, ","), fmtTags(tags), outcome("", err, lost))
	c.s.inv.tagsAttempted(c.caller, resources, err)
	c.s.inv.flush()
	if lost && err == nil {
		return c.done(errLostAnswer)
	}
	return c.done(err)
}

func outcome(assoc string, err error, lost bool) string {
	switch {
	case err != nil:
		return err.Error()
	case lost:
		return "applied, answer lost"
	case assoc != "":
		return "ok " + assoc
	}
	return "ok"
}

func fmtTags(tags map[string]string) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(tags)) {
		v := tags[k]
		if k == eip.TagRenewed || k == eip.TagDecided {
			if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
				v = fmt.Sprintf("%+.1fs", t.Sub(simEpoch).Seconds())
			}
		}
		parts = append(parts, strings.TrimPrefix(k, "eipd:")+"="+v)
	}
	return strings.Join(parts, " ")
}

// --- faults, as scenarios and the random injector apply them ---

func (s *sim) setPartition(d *simDaemon, on bool) {
	d.conn.partitioned = on
	s.fault(d.id, "API partition %s", onOff(on))
}

func (s *sim) setReadLag(d *simDaemon, min, max time.Duration) {
	d.conn.lagMin, d.conn.lagMax = min, max
	s.fault(d.id, "read lag %v..%v", min, max)
}

// setCallFaults sets the probability that a call fails, that a write's
// answer is lost, and that a call is throttled.
func (s *sim) setCallFaults(d *simDaemon, fail, lose, throttle float64) {
	d.conn.failRate, d.conn.loseRate, d.conn.throttleRate = fail, lose, throttle
	s.fault(d.id, "calls fail %.0f%%, lost %.0f%%, throttled %.0f%%", 100*fail, 100*lose, 100*throttle)
}

func (s *sim) setPaused(d *simDaemon, on, frozenProxy bool) {
	d.paused, d.frozen = on, on && frozenProxy
	if on {
		s.fault(d.id, "eipd paused (proxy frozen too: %v)", frozenProxy)
	} else {
		s.fault(d.id, "eipd resumed")
	}
}

func (s *sim) setClockOffset(d *simDaemon, off time.Duration) {
	d.offset = off
	s.fault(d.id, "clock offset %v", off)
}

func (s *sim) setSick(d *simDaemon, on bool) {
	d.sick = on
	s.fault(d.id, "own health check %s", map[bool]string{true: "fails", false: "passes"}[on])
}

func (s *sim) setProxyOff(d *simDaemon, on bool) {
	d.proxyOff = on
	s.fault(d.id, "proxy %s", map[bool]string{true: "dies", false: "restarts"}[on])
}

func (s *sim) handMove(alloc string, to *simDaemon, privateIP string) {
	s.fault("operator", "moves %s to %s %s by hand", alloc, to.id, privateIP)
	_, err := s.world.associateAddress("operator", alloc, to.ident.NetworkInterfaceID, privateIP, true)
	s.event("operator", "AssociateAddress: %s", outcome("", err, false))
	s.inv.flush()
}

func (s *sim) handDisassociate(alloc string) {
	s.fault("operator", "disassociates %s by hand", alloc)
	if a := s.world.current().addrs[alloc]; a != nil && a.AssociationID != "" {
		_ = s.world.disassociateAddress("operator", a.AssociationID)
	}
	s.inv.flush()
}

func (s *sim) handRelease(alloc string) {
	s.handDisassociate(alloc)
	s.fault("operator", "releases %s", alloc)
	if err := s.world.releaseAddress("operator", alloc); err == nil {
		s.released[alloc] = true
	}
	s.inv.flush()
}

// stopInstance stops the instance at once: eipd and proxy are gone, its
// EIPs stay associated to it.
func (s *sim) stopInstance(d *simDaemon) {
	s.fault(d.id, "instance stopped")
	_ = s.world.setInstanceState("operator", d.id, "stopped")
	d.stopped, d.started, d.paused, d.frozen, d.stopBy = true, false, false, false, time.Time{}
}

// startInstance starts it again, with a fresh eipd.
func (s *sim) startInstance(d *simDaemon) {
	s.fault(d.id, "instance started")
	_ = s.world.setInstanceState("operator", d.id, "running")
	d.stopped = false
	s.start(d)
}

// lifecycleNotice announces a spot interruption through IMDS.
func (s *sim) lifecycleNotice(d *simDaemon) {
	d.notice = true
	s.fault(d.id, "lifecycle notice: spot interruption")
}

// sigterm stops eipd as systemd does: Loop.shutdown's work, stepped by
// stepStopping (shutdown itself waits on a wall-clock ticker).
func (s *sim) sigterm(d *simDaemon) {
	s.fault(d.id, "eipd gets SIGTERM")
	l := d.loop
	if l.manual != nil {
		l.manual.reply <- errors.New("eipd is stopping")
		l.manual = nil
	}
	d.stopBy = s.now.Add(l.cfg.StopTimeout)
	l.drain = ReasonHandoffShutdown
	d.nextTick = s.now
}

// manualHandoff is `eipd handoff [--to to]` on d.
func (s *sim) manualHandoff(d *simDaemon, to string) {
	s.fault(d.id, "eipd handoff --to=%q", to)
	d.loop.startManual(context.Background(), &handoffRequest{to: to, reply: make(chan error, 1)})
	d.nextTick = s.now // the request wakes Run at once
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// --- the random fault injector ---

// simFaults are the random faults with their weights. Each applies one
// fault to one instance (or EIP) and plans its end.
var simFaults = []struct {
	name   string
	weight int
	apply  func(s *sim, d *simDaemon) bool // false: not applicable now
}{
	{"read lag", 3, func(s *sim, d *simDaemon) bool {
		if d.conn.lagMax > 0 {
			return false
		}
		s.setReadLag(d, 0, time.Duration(1+s.rng.IntN(5))*time.Second)
		s.after(s.randDur(5, 60), func() { s.setReadLag(d, 0, 0) })
		return true
	}},
	{"failing, lost or throttled calls", 5, func(s *sim, d *simDaemon) bool {
		if d.conn.failRate+d.conn.loseRate+d.conn.throttleRate > 0 {
			return false
		}
		switch s.rng.IntN(3) {
		case 0:
			s.setCallFaults(d, 0.3, 0, 0)
		case 1:
			s.setCallFaults(d, 0, 0.3, 0)
		default:
			s.setCallFaults(d, 0, 0, 0.5)
		}
		s.after(s.randDur(5, 30), func() { s.setCallFaults(d, 0, 0, 0) })
		return true
	}},
	{"API partition", 3, func(s *sim, d *simDaemon) bool {
		if d.conn.partitioned {
			return false
		}
		s.setPartition(d, true)
		s.after(s.randDur(3, 60), func() { s.setPartition(d, false) })
		return true
	}},
	{"pause", 2, func(s *sim, d *simDaemon) bool {
		if d.paused || !d.live() {
			return false
		}
		s.setPaused(d, true, s.rng.IntN(2) == 0)
		s.after(s.randDur(1, 30), func() {
			if d.paused {
				s.setPaused(d, false, false)
			}
		})
		return true
	}},
	{"clock offset", 2, func(s *sim, d *simDaemon) bool {
		// A running daemon measures its own durations on the monotonic
		// clock (Go's time.Now carries it), which the model's clocks
		// cannot: a wall-clock jump under a running daemon would be a
		// fault the real daemon does not have. Clocks are set while
		// eipd is not running, and are what it sees from its start.
		if d.started {
			return false
		}
		if s.rng.IntN(10) == 0 {
			s.setClockOffset(d, 10*time.Minute)
			return true
		}
		s.setClockOffset(d, time.Duration(s.rng.IntN(61)-30)*100*time.Millisecond)
		return true
	}},
	{"health flap", 3, func(s *sim, d *simDaemon) bool {
		if d.sick {
			return false
		}
		s.setSick(d, true)
		s.after(s.randDur(1, 15), func() { s.setSick(d, false) })
		return true
	}},
	{"proxy dies", 2, func(s *sim, d *simDaemon) bool {
		if d.proxyOff || d.stopped {
			return false
		}
		s.setProxyOff(d, true)
		s.after(s.randDur(5, 60), func() { s.setProxyOff(d, false) })
		return true
	}},
	{"EIP moved by hand", 1, func(s *sim, d *simDaemon) bool {
		alloc := s.randAlloc()
		if alloc == "" || d.stopped {
			return false
		}
		s.handMove(alloc, d, d.ips[s.rng.IntN(len(d.ips))])
		return true
	}},
	{"EIP disassociated by hand", 1, func(s *sim, d *simDaemon) bool {
		alloc := s.randAlloc()
		if alloc == "" || s.world.current().addrs[alloc].AssociationID == "" {
			return false
		}
		s.handDisassociate(alloc)
		return true
	}},
	{"EIP released by hand", 1, func(s *sim, d *simDaemon) bool {
		// At most one a run, and never the last EIP: the rest of the run
		// checks the others.
		if len(s.released) > 0 || len(s.allocs) < 2 || s.rng.IntN(3) > 0 {
			return false
		}
		s.handRelease(s.randAlloc())
		return true
	}},
	{"instance stopped", 1, func(s *sim, d *simDaemon) bool {
		if d.stopped || !d.started {
			return false
		}
		s.stopInstance(d)
		s.after(s.randDur(20, 120), func() { s.startInstance(d) })
		return true
	}},
	{"lifecycle notice", 1, func(s *sim, d *simDaemon) bool {
		if d.notice || !d.live() {
			return false
		}
		s.lifecycleNotice(d)
		s.after(s.randDur(30, 120), func() {
			if !d.stopped {
				s.stopInstance(d)
				s.after(s.randDur(30, 120), func() { s.startInstance(d) })
			}
		})
		return true
	}},
	{"eipd restarted", 1, func(s *sim, d *simDaemon) bool {
		if !d.live() || !d.stopBy.IsZero() {
			return false
		}
		s.sigterm(d)
		s.after(s.randDur(5, 60), func() {
			if !d.started && !d.stopped {
				s.start(d)
			}
		})
		return true
	}},
	{"manual handoff", 1, func(s *sim, d *simDaemon) bool {
		if !d.live() || !d.loop.holdingAny() || d.loop.manual != nil || d.loop.drain != "" {
			return false
		}
		to := ""
		if o := s.daemons[s.rng.IntN(len(s.daemons))]; o != d && s.rng.IntN(2) == 0 {
			to = o.id
		}
		s.manualHandoff(d, to)
		return true
	}},
}

// maybeInjectFault injects a random fault about once every
// simMeanFaultGap.
func (s *sim) maybeInjectFault() {
	if s.rng.Float64() >= float64(simStep)/float64(simMeanFaultGap) {
		return
	}
	total := 0
	for _, f := range simFaults {
		total += f.weight
	}
	n := s.rng.IntN(total)
	for _, f := range simFaults {
		if n < f.weight {
			f.apply(s, s.daemons[s.rng.IntN(len(s.daemons))])
			return
		}
		n -= f.weight
	}
}

// randDur is a random duration of lo..hi seconds, in steps.
func (s *sim) randDur(lo, hi int) time.Duration {
	return time.Duration(lo)*time.Second + time.Duration(s.rng.IntN((hi-lo)*10+1))*simStep
}

// randAlloc is a random EIP that still exists, or "".
func (s *sim) randAlloc() string {
	var live []string
	for _, a := range s.allocs {
		if !s.released[a] {
			live = append(live, a)
		}
	}
	if len(live) == 0 {
		return ""
	}
	return live[s.rng.IntN(len(live))]
}

// --- the trail of events ---

type simEvent struct {
	at   time.Duration
	who  string
	what string
}

func (e simEvent) String() string {
	return fmt.Sprintf("%8.1fs %-8s %s", e.at.Seconds(), e.who, e.what)
}

// simLog keeps the last events of a run.
type simLog struct {
	mu   sync.Mutex // loop logs may come from its probe goroutines
	ring []simEvent
	n    int
}

func newSimLog(size int) *simLog { return &simLog{ring: make([]simEvent, size)} }

func (l *simLog) add(e simEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ring[l.n%len(l.ring)] = e
	l.n++
}

// last returns the last n events, oldest first.
func (l *simLog) last(n int) []simEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	n = min(n, l.n, len(l.ring))
	out := make([]simEvent, 0, n)
	for i := l.n - n; i < l.n; i++ {
		out = append(out, l.ring[i%len(l.ring)])
	}
	return out
}

// simLogWriter puts a daemon's log lines in the trail.
type simLogWriter struct{ d *simDaemon }

// Write keeps a line said again and again (a renewal failing every second)
// once, and says how often it came when another line follows.
func (w simLogWriter) Write(p []byte) (int, error) {
	d := w.d
	line := strings.Replace(strings.TrimSpace(string(p)), " "+d.id+": ", " ", 1)
	if line == d.lastLog {
		d.logRepeats++
		return len(p), nil
	}
	if d.logRepeats > 0 {
		d.s.event(d.id, "log (the line above %d more times)", d.logRepeats)
	}
	d.lastLog, d.logRepeats = line, 0
	d.s.event(d.id, "log %s", line)
	return len(p), nil
}
