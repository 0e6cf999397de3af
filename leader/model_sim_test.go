package leader

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// The model test's simulation: real Loops (one per simulated instance)
// against the EC2 model, in simulated time. Every call a Loop makes (EC2,
// instance metadata, another member's /status) is an event: it reaches its
// peer after a network delay, takes effect then (or, for a late write,
// later), and its answer comes back after the call's latency, or never
// (the caller's deadline fires). So calls overlap: a renewal runs beside a
// move, two members' read→write passes interleave, a write lands after its
// caller gave up. Nothing reads the wall clock or starts a goroutine: a
// run is a pure function of its seed.

const (
	simTick  = 200 * time.Millisecond // a daemon's pass without events (Config.Tick)
	simCheck = 50 * time.Millisecond  // how often the invariants are checked
	// simMaxLag bounds EC2's read lag: reads are consistent within it.
	simMaxLag = 4 * time.Second
	// simMaxLate bounds how long after its answer (or its caller's
	// deadline) EC2 applies a late write: the protocol assumes less than
	// the allowed clock skew (docs/design.md, Assumptions).
	simMaxLate = 900 * time.Millisecond
	simGroup   = "model"
)

// simTiming is the daemon's default timing (eipd run -h).
var simTiming = Timing{
	RenewInterval: 3 * time.Second,
	LeaseDuration: 10 * time.Second,
	MaxClockSkew:  time.Second,
	AddressPoll:   5 * time.Second,
	MemberPoll:    time.Minute,
	ProbeInterval: time.Second,
	ProbeFall:     3,
	RankStep:      200 * time.Millisecond,
}

const (
	simCallTimeout  = 5 * time.Second
	simProbeTimeout = 500 * time.Millisecond
	simStopTimeout  = 20 * time.Second
)

var simEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// simConfig describes one simulated group.
type simConfig struct {
	Seed    uint64
	Daemons int  // 2–5 instances, each running eipd and a proxy
	EIPs    int  // 1–3 Elastic IPs tagged for the group
	Slots   int  // private IPs on each instance's primary ENI, 1–2
	ByGroup bool // daemons find the EIPs by group tag, not --allocation-id
	Faults  bool // inject random faults
}

func (c simConfig) String() string {
	by := "--allocation-id"
	if c.ByGroup {
		by = "group tag"
	}
	return fmt.Sprintf("seed %d: %d daemons, %d EIPs, %d private IPs each, EIPs by %s", c.Seed, c.Daemons, c.EIPs, c.Slots, by)
}

func randomSimConfig(seed uint64) simConfig {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	return simConfig{Seed: seed, Daemons: 2 + r.IntN(4), EIPs: 1 + r.IntN(3), Slots: 1 + r.IntN(2),
		ByGroup: r.IntN(2) == 0, Faults: true}
}

// sim is one simulated group.
type sim struct {
	cfg      simConfig
	rng      *rand.Rand
	now      time.Time // true time
	seq      int
	queue    simQueue
	world    *ec2Model
	daemons  []*simDaemon
	allocs   []string
	log      *simLog
	inv      *invariants
	released map[string]bool
	// EC2's read behaviour: reads come from up to readLag ago; mixed reads
	// take associations and tags from different moments.
	readLag time.Duration
	mixed   bool
	// cut are pairs of instances that cannot reach each other.
	cut map[[2]string]bool
	// faults counts the faults injected.
	faults int
}

type simEvent struct {
	at  time.Time
	seq int
	fn  func()
}

type simQueue []*simEvent

func (q simQueue) Len() int { return len(q) }
func (q simQueue) Less(i, j int) bool {
	if !q[i].at.Equal(q[j].at) {
		return q[i].at.Before(q[j].at)
	}
	return q[i].seq < q[j].seq
}
func (q simQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *simQueue) Push(x any)   { *q = append(*q, x.(*simEvent)) }
func (q *simQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// at runs fn at t (now, if t is past).
func (s *sim) at(t time.Time, fn func()) {
	if t.Before(s.now) {
		t = s.now
	}
	s.seq++
	heap.Push(&s.queue, &simEvent{at: t, seq: s.seq, fn: fn})
}

func (s *sim) after(d time.Duration, fn func()) { s.at(s.now.Add(d), fn) }

// run advances the simulation by d.
func (s *sim) run(d time.Duration) {
	end := s.now.Add(d)
	for s.queue.Len() > 0 && !s.queue[0].at.After(end) {
		e := heap.Pop(&s.queue).(*simEvent)
		s.now = e.at
		e.fn()
	}
	s.now = end
}

func (s *sim) elapsed() time.Duration { return s.now.Sub(simEpoch) }

// between is a uniformly random duration in [lo, hi].
func (s *sim) between(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(s.rng.Int64N(int64(hi-lo)+1))
}

// netDelay is one network hop on the instances' network (or to EC2).
func (s *sim) netDelay() time.Duration { return s.between(time.Millisecond, 15*time.Millisecond) }

func newSim(cfg simConfig) *sim {
	s := &sim{cfg: cfg, rng: rand.New(rand.NewPCG(cfg.Seed, 0xe1bd)), now: simEpoch, log: newSimLog(400),
		released: map[string]bool{}, cut: map[[2]string]bool{}}
	s.world = newEC2Model(func() time.Time { return s.now }, simMaxLag)
	for i := range cfg.Daemons {
		id := fmt.Sprintf("i-%017d", i+1)
		ips := []string{fmt.Sprintf("10.0.0.%d", i+11)}
		for k := 1; k < cfg.Slots; k++ {
			ips = append(ips, fmt.Sprintf("10.0.%d.%d", k, i+11))
		}
		eni := fmt.Sprintf("eni-%017d", i+1)
		s.world.addInstance(id, eni, ips, map[string]string{eip.TagGroup: simGroup})
		d := &simDaemon{s: s, id: id, ips: ips, state: "running", health: health.Unknown,
			ident: eip.Identity{InstanceID: id, Region: "us-east-1", AvailabilityZone: "us-east-1a", NetworkInterfaceID: eni, PrivateIP: ips[0]}}
		s.daemons = append(s.daemons, d)
	}
	for i := range cfg.EIPs {
		alloc := fmt.Sprintf("eipalloc-%017x", i+1)
		s.world.addAddress(alloc, fmt.Sprintf("198.51.100.%d", i+10), map[string]string{eip.TagGroup: simGroup})
		s.allocs = append(s.allocs, alloc)
	}
	s.world.setUp()
	s.inv = newInvariants(s)
	s.world.onChange = s.inv.onChange
	s.after(simCheck, s.check)
	return s
}

func (s *sim) check() {
	s.inv.afterStep()
	s.after(simCheck, s.check)
}

func (s *sim) daemon(id string) *simDaemon {
	for _, d := range s.daemons {
		if d.id == id {
			return d
		}
	}
	return nil
}

func (s *sim) daemonByIP(ip string) *simDaemon {
	for _, d := range s.daemons {
		if slices.Contains(d.ips, ip) {
			return d
		}
	}
	return nil
}

// event records what happened, for the trail of a failure.
func (s *sim) event(who, format string, args ...any) {
	s.log.add(fmt.Sprintf("%8.3fs %-21s %s", s.elapsed().Seconds(), who, fmt.Sprintf(format, args...)))
}

// fault records an injected fault.
func (s *sim) fault(who, format string, args ...any) {
	s.faults++
	if s.daemon(who) != nil {
		s.inv.faultAt[who] = s.now
	}
	s.event(who, "FAULT "+format, args...)
}

// reachable reports whether a and b can reach each other over the
// instances' network.
func (s *sim) reachable(a, b *simDaemon) bool {
	k := [2]string{a.id, b.id}
	if a.id > b.id {
		k = [2]string{b.id, a.id}
	}
	return !s.cut[k]
}

func (s *sim) setCut(a, b *simDaemon, on bool) {
	k := [2]string{a.id, b.id}
	if a.id > b.id {
		k = [2]string{b.id, a.id}
	}
	if on {
		s.cut[k] = true
	} else {
		delete(s.cut, k)
	}
}

// readState is what a DescribeAddresses or DescribeInstances arriving now
// sees: the world as it was up to readLag ago, associations and tags from
// different moments when reads are mixed.
func (s *sim) readState() *ec2State {
	st := s.world.asOf(s.now.Add(-s.between(0, s.readLag)))
	if s.mixed {
		return mixed(st, s.world.asOf(s.now.Add(-s.between(0, s.readLag))))
	}
	return st
}

// --- a daemon ---

// simDaemon is one instance: its EC2 identity, its proxy and its eipd.
type simDaemon struct {
	s     *sim
	id    string
	ident eip.Identity
	ips   []string
	loop  *Loop
	inc   int // incarnation of eipd: calls of an earlier one are dropped
	eipd  bool
	// startedAt: when this incarnation started (its monotonic origin).
	startedAt time.Time
	// state is the instance's EC2 state: running, stopped, terminated.
	state    string
	paused   bool // eipd is not scheduled (SIGSTOP)
	frozen   bool // the whole instance hangs: the proxy does not answer either
	proxyOff bool // the proxy is dead
	sick     bool // the proxy fails its checks (its backends are down)
	health   health.Status
	offset   time.Duration // its wall clock minus true time
	held     []func()      // answers that arrived while paused
	api      simAPI
	// Instance metadata: how far it trails the API, and whether it answers.
	imdsLag  time.Duration
	imdsDown bool
	// statusBlocked: its status port does not answer (a security group).
	statusBlocked bool
	spot          bool // a spot interruption notice is in its metadata
	// manual is a manual handoff request under way.
	manual *handoffRequest
	// liveSince: since when eipd runs unpaused.
	liveSince time.Time
	roles     map[string]string
}

// simAPI are the faults on one daemon's EC2 calls.
type simAPI struct {
	partition     bool    // calls hang until the caller gives up, with no effect
	errRatio      float64 // answered 5xx, no effect
	throttleRatio float64 // answered RequestLimitExceeded, no effect
	lostRatio     float64 // take effect, the answer never comes
	lateRatio     float64 // answered, take effect up to simMaxLate later
	latMin        time.Duration
	latMax        time.Duration
}

func (d *simDaemon) live() bool { return d.eipd && !d.paused && d.state == "running" }

// faulty: the instance fails or leaves now: its eipd is down or paused,
// its proxy fails, it is cut off, draining or stopping.
func (d *simDaemon) faulty() bool {
	return !d.live() || !d.proxyServes() || d.spot || d.statusBlocked || d.api.partition ||
		(d.loop != nil && (d.loop.stopping || d.loop.drain != ""))
}

// proxyServes reports whether the instance's proxy answers its checks.
func (d *simDaemon) proxyServes() bool {
	return d.state == "running" && !d.frozen && !d.proxyOff && !d.sick
}

// statusAnswers reports whether its eipd answers on /status.
func (d *simDaemon) statusAnswers() bool {
	return d.eipd && !d.paused && !d.frozen && d.state == "running" && !d.statusBlocked
}

// start starts eipd on the instance (a new incarnation).
func (s *sim) start(d *simDaemon) {
	if d.state != "running" || d.eipd {
		return
	}
	d.inc++
	d.eipd, d.paused, d.startedAt, d.held, d.manual, d.liveSince = true, false, s.now, nil, nil, s.now
	cfg := Config{Timing: simTiming, ProbeTimeout: simProbeTimeout, LifecyclePoll: 5 * time.Second,
		StopTimeout: simStopTimeout, CallTimeout: simCallTimeout, Tick: simTick,
		Now:  func() time.Time { return s.now.Add(d.offset) },
		Mono: func() time.Duration { return s.now.Sub(d.startedAt) },
	}
	if !s.cfg.ByGroup {
		cfg.AllocationIDs = slices.Clone(s.allocs)
	}
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Info, Output: simLogWriter{s: s, d: d}, DisableTime: true})
	d.loop = New(cfg, d.ident, simCloud{d}, simMeta{d}, simHealth{d}, simProber{d}, nil, logger)
	d.loop.exec = simExec{d: d, inc: d.inc}
	s.event(d.id, "eipd starts (incarnation %d)", d.inc)
	inc := d.inc
	s.after(s.between(0, simTick), func() { d.tick(inc) })
}

func (s *sim) startAll() {
	for _, d := range s.daemons {
		s.start(d)
		s.healthFollows(d)
	}
	if s.cfg.Faults {
		s.after(s.faultGap(), s.injectFault)
	}
}

// tick is the loop's pass without an event, every Tick.
func (d *simDaemon) tick(inc int) {
	if inc != d.inc || !d.eipd {
		return
	}
	d.pass()
	d.s.after(simTick, func() { d.tick(inc) })
}

// pass is one pass of the loop, as Run makes after every event.
func (d *simDaemon) pass() {
	if !d.live() {
		return
	}
	d.loop.takeInbox()
	d.loop.pass()
	d.noteRoles()
	if co := d.loop.co; co != nil && co.accepted {
		d.s.inv.actedAt = d.s.now // (sampling every simCheck could miss a short tenure)
	}
	if d.manual != nil {
		select {
		case err := <-d.manual.reply:
			d.s.event(d.id, "manual handoff ends: %v", err)
			d.manual = nil
		default:
		}
	}
	if d.loop.stopping && d.loop.finished() {
		d.s.event(d.id, "eipd exits after SIGTERM")
		d.exit()
	}
}

// exit ends eipd (its calls under way finish in EC2 but nobody hears them).
func (d *simDaemon) exit() {
	d.eipd = false
	d.held = nil
}

// deliver hands an answer to the incarnation that asked.
func (d *simDaemon) deliver(inc int, apply func()) {
	if inc != d.inc || !d.eipd {
		return
	}
	if d.paused {
		d.held = append(d.held, apply)
		return
	}
	apply()
	d.pass()
}

// noteRoles logs role changes, for the trail.
func (d *simDaemon) noteRoles() {
	st := d.loop.Status()
	if d.roles == nil {
		d.roles = map[string]string{}
	}
	for _, e := range st.EIPs {
		if d.roles[e.AllocationID] != e.Role {
			d.roles[e.AllocationID] = e.Role
			d.s.event(d.id, "role %s %s (%s)", short(e.AllocationID), e.Role, e.Why)
		}
	}
	co := "member"
	if st.IsCoordinator {
		co = "coordinator"
	}
	if d.roles["*"] != co {
		d.roles["*"] = co
		d.s.event(d.id, "%s (epoch %d)", co, st.Epoch)
	}
}

func short(alloc string) string {
	return "eip" + strings.TrimLeft(strings.TrimPrefix(alloc, "eipalloc-"), "0")
}

// --- the executor: calls in simulated time ---

// ticket is one call under way: when it reached its peer, until when the
// caller waits for the answer, and when the answer comes back.
type ticket struct {
	arrive, deadline, deliverAt time.Time
}

type ticketKey struct{}

func ticketOf(ctx context.Context) *ticket {
	tk, _ := ctx.Value(ticketKey{}).(*ticket)
	return tk
}

// answer sets when the answer of a call that takes lat comes back, and
// reports whether the caller gave up before (the answer is lost).
func (tk *ticket) answer(lat time.Duration) (lost bool) {
	if tk == nil {
		return false
	}
	tk.deliverAt = tk.arrive.Add(lat)
	if tk.deliverAt.After(tk.deadline) {
		tk.deliverAt = tk.deadline
		return true
	}
	return false
}

// hang: no answer; the caller gives up at its deadline.
func (tk *ticket) hang() {
	if tk != nil {
		tk.deliverAt = tk.deadline
	}
}

type simExec struct {
	d   *simDaemon
	inc int
}

func (e simExec) start(o op) {
	d, s := e.d, e.d.s
	timeout := o.timeout
	if timeout <= 0 {
		timeout = simCallTimeout
	}
	deadline := s.now.Add(timeout)
	if !o.deadline.IsZero() {
		// The op's deadline is on the daemon's monotonic clock.
		if t := d.startedAt.Add(o.deadline.Sub(d.loop.t0)); t.Before(deadline) {
			deadline = t
		}
	}
	s.after(s.netDelay(), func() {
		tk := &ticket{arrive: s.now, deadline: deadline, deliverAt: s.now.Add(s.netDelay())}
		if !tk.deliverAt.Before(deadline) {
			tk.deliverAt = deadline
		}
		apply := o.run(context.WithValue(context.Background(), ticketKey{}, tk))
		s.at(tk.deliverAt, func() { d.deliver(e.inc, apply) })
	})
}

// --- EC2 as one daemon reaches it ---

var (
	errModelNoAnswer = fmt.Errorf("%w: %w: %w", eip.ErrUnavailable, eip.ErrNoAnswer, context.DeadlineExceeded)
	errModelThrottle = fmt.Errorf("%w: RequestLimitExceeded", eip.ErrThrottled)
	errModel5xx      = fmt.Errorf("%w: 503 Unavailable", eip.ErrUnavailable)
)

// callMode is how a call that reaches EC2 goes.
type callMode int

const (
	modeNow  callMode = iota // takes effect now
	modeLost                 // takes effect now; the answer never comes
	modeLate                 // answered; takes effect later
)

// fate decides how a call of d goes: err != nil when it fails without
// effect (partition, throttling, a 5xx answer); otherwise mode, with the
// answer's time set on the ticket (for modeLost: never).
func (d *simDaemon) fate(ctx context.Context, write bool) (callMode, error) {
	tk := ticketOf(ctx)
	if tk == nil {
		return modeNow, nil
	}
	s, a := d.s, d.api
	if a.partition || d.state != "running" {
		tk.hang()
		return 0, errModelNoAnswer
	}
	r := s.rng.Float64()
	switch {
	case r < a.throttleRatio:
		tk.answer(s.netDelay())
		return 0, errModelThrottle
	case r < a.throttleRatio+a.errRatio:
		tk.answer(s.netDelay())
		return 0, errModel5xx
	}
	lat := s.netDelay() + s.between(a.latMin, a.latMax)
	r = s.rng.Float64()
	switch {
	case r < a.lostRatio:
		if s.rng.IntN(2) == 0 {
			tk.hang()
		} else {
			tk.answer(s.netDelay()) // connection reset
		}
		return modeLost, nil
	case write && r < a.lostRatio+a.lateRatio:
		if tk.answer(lat) {
			return modeLost, nil
		}
		return modeLate, nil
	}
	if tk.answer(lat) {
		return modeLost, nil
	}
	return modeNow, nil
}

// lateAt is when a late write takes effect.
func (d *simDaemon) lateAt(ctx context.Context) time.Time {
	tk := ticketOf(ctx)
	return tk.deliverAt.Add(d.s.between(time.Millisecond, simMaxLate))
}

type simCloud struct{ d *simDaemon }

// modelTrace (EIPD_MODEL_TRACE=1) adds every read and its result to the
// trail, to debug a seed.
var modelTrace = os.Getenv("EIPD_MODEL_TRACE") == "1"

func (c simCloud) Addresses(ctx context.Context, ids []string) ([]eip.Address, error) {
	mode, err := c.d.fate(ctx, false)
	if err != nil || mode == modeLost {
		return nil, orErr(err, errModelNoAnswer)
	}
	s := c.d.s
	as, err := s.readState().describeAddresses(ids, simGroup, true)
	if err != nil {
		return nil, classifyModel(err)
	}
	if modelTrace {
		var b strings.Builder
		for _, a := range as {
			fmt.Fprintf(&b, " %s@%s/%s", short(a.AllocationID), a.InstanceID, a.PrivateIP)
		}
		s.event(c.d.id, "read (trace):%s", b.String())
	}
	out := make([]eip.Address, 0, len(as))
	for _, a := range as {
		out = append(out, eip.Address{AllocationID: a.AllocationID, PublicIP: a.PublicIP, AssociationID: a.AssociationID,
			InstanceID: a.InstanceID, NetworkInterfaceID: a.NetworkInterfaceID, PrivateIP: a.PrivateIP, Group: a.Tags[eip.TagGroup],
			Lease: eip.ParseGroupLease(a.Tags), Record: eip.ParseRecord(a.Tags)})
	}
	return out, nil
}

func orErr(err, def error) error {
	if err != nil {
		return err
	}
	return def
}

func (c simCloud) Members(ctx context.Context) ([]eip.Instance, error) {
	mode, err := c.d.fate(ctx, false)
	if err != nil || mode == modeLost {
		return nil, orErr(err, errModelNoAnswer)
	}
	var out []eip.Instance
	for _, v := range c.d.s.readState().describeInstances(simGroup) {
		in := eip.Instance{InstanceID: v.InstanceID, State: v.State, NetworkInterfaceID: v.NetworkInterfaceID}
		for _, p := range v.PrivateIPs {
			in.PrivateIPs = append(in.PrivateIPs, eip.PrivateIP{Address: p.PrivateIP, Primary: p.Primary, PublicIP: p.PublicIP})
			if p.Primary {
				in.PrivateIP = p.PrivateIP
			}
		}
		if t, err := time.Parse(time.RFC3339Nano, v.Tags[eip.TagHeartbeat]); err == nil {
			in.Heartbeat = t
		}
		fmt.Sscan(v.Tags[eip.TagPriority], &in.Priority)
		out = append(out, in)
	}
	return out, nil
}

func (c simCloud) Associate(ctx context.Context, alloc, eni, privateIP string, reassociate bool) (string, error) {
	d, s := c.d, c.d.s
	mode, err := d.fate(ctx, true)
	if err != nil {
		return "", err
	}
	s.inv.moveCall(d, alloc, ticketOf(ctx))
	if mode == modeLate {
		// EC2 checks the call now, answers, and applies it later,
		// checking again: a late association that would now conflict
		// does not happen.
		cur := s.world.current()
		a := cur.addrs[alloc]
		if a == nil {
			return "", classifyModel(&ec2Error{codeAllocationNotFound, "no " + alloc})
		}
		if a.AssociationID != "" && !reassociate && !(a.NetworkInterfaceID == eni && a.PrivateIP == privateIP) {
			return "", classifyModel(&ec2Error{codeAlreadyAssociated, alloc + " is already associated"})
		}
		id := s.world.mintAssociation()
		s.at(d.lateAt(ctx), func() {
			_, err := s.world.associate(d.id, alloc, eni, privateIP, reassociate, id, true)
			s.event(d.id, "late AssociateAddress %s → %s/%s lands: %v", short(alloc), eni, privateIP, err)
		})
		return id, nil
	}
	id, err := s.world.associateAddress(d.id, alloc, eni, privateIP, reassociate)
	if mode == modeLost {
		return "", errModelNoAnswer
	}
	if err != nil {
		return "", classifyModel(err)
	}
	return id, nil
}

func (c simCloud) Disassociate(ctx context.Context, assoc string) error {
	d, s := c.d, c.d.s
	mode, err := d.fate(ctx, true)
	if err != nil {
		return err
	}
	for _, a := range s.world.current().addrs {
		if a.AssociationID == assoc {
			s.inv.moveCall(d, a.AllocationID, ticketOf(ctx))
		}
	}
	if mode == modeLate {
		found := false
		for _, a := range s.world.current().addrs {
			found = found || a.AssociationID == assoc
		}
		if !found {
			return classifyModel(&ec2Error{codeAssociationNotFound, assoc})
		}
		s.at(d.lateAt(ctx), func() { _ = s.world.disassociate(d.id, assoc, true) })
		return nil
	}
	err = s.world.disassociateAddress(d.id, assoc)
	if mode == modeLost {
		return errModelNoAnswer
	}
	if err != nil {
		return classifyModel(err)
	}
	return nil
}

func (c simCloud) tags(ctx context.Context, resources []string, tags map[string]string) error {
	d, s := c.d, c.d.s
	mode, err := d.fate(ctx, true)
	if err != nil {
		return err
	}
	if mode == modeLate {
		for _, r := range resources {
			_, isAddr := s.world.current().addrs[r]
			_, isInst := s.world.current().insts[r]
			if !isAddr && !isInst {
				return classifyModel(&ec2Error{codeAllocationNotFound, r})
			}
		}
		s.at(d.lateAt(ctx), func() { _ = s.world.tag(d.id, resources, tags, true, true) })
		return nil
	}
	err = s.world.tag(d.id, resources, tags, false, mode == modeNow)
	if mode == modeLost {
		return errModelNoAnswer
	}
	if err != nil {
		return classifyModel(err)
	}
	return nil
}

func landed(got, want eip.GroupLease) bool {
	return got.Coordinator == want.Coordinator && got.Epoch == want.Epoch && got.Renewed.Equal(want.Renewed)
}

func (c simCloud) WriteLease(ctx context.Context, ids []string, l eip.GroupLease) error {
	if l.Coordinator == c.d.id {
		c.d.s.inv.renewCall(c.d, ids)
	}
	before := c.d.s.world.current().addrs
	claim := c.d.loop != nil && c.d.loop.co == nil // not a renewal nor a hand-over
	err := c.tags(ctx, ids, l.Tags())
	if err == nil {
		c.d.s.inv.leaseWritten(c.d, l, ticketOf(ctx))
	} else if claim && errors.Is(err, errModelNoAnswer) && len(ids) > 0 && before[ids[0]] != nil &&
		landed(eip.ParseGroupLease(c.d.s.world.current().addrs[ids[0]].Tags), l) {
		// Its answer was lost but it landed: a claim (only a claim) a
		// later read shows counts from its start (design: electing, step
		// 6); a renewal whose answer was lost extends nothing.
		c.d.s.inv.leaseWritten(c.d, l, ticketOf(ctx))
	}
	return eip.GoneIn(err, ids)
}

func (c simCloud) WriteRecord(ctx context.Context, alloc string, r eip.Record) error {
	return c.tags(ctx, []string{alloc}, r.Tags())
}

func (c simCloud) Heartbeat(ctx context.Context, id string, at time.Time) error {
	return c.tags(ctx, []string{id}, map[string]string{eip.TagHeartbeat: at.UTC().Format(eip.RenewedLayout)})
}

// classifyModel wraps an EC2 model error with the eip sentinel its code
// maps to, as eip.Classify does for SDK errors.
func classifyModel(err error) error {
	var e *ec2Error
	if !errors.As(err, &e) {
		return fmt.Errorf("%w: %w", eip.ErrUnavailable, err)
	}
	kind := eip.ErrInvalidRequest
	switch {
	case e.Code == codeAlreadyAssociated:
		kind = eip.ErrAlreadyAssociated
	case e.Code == codeAssociationNotFound:
		kind = eip.ErrStaleAssociation
	case e.Code == codeThrottled:
		kind = eip.ErrThrottled
	case strings.HasSuffix(e.Code, ".NotFound"):
		kind = eip.ErrNotFound
	case e.Code == codeUnavailable, e.Code == codeTimeout:
		kind = eip.ErrUnavailable
	}
	return fmt.Errorf("%w: %w", kind, err)
}

// --- instance metadata, own health, other members ---

type simMeta struct{ d *simDaemon }

func (m simMeta) Notices(ctx context.Context) ([]eip.Notice, error) {
	if tk := ticketOf(ctx); tk != nil {
		tk.answer(time.Millisecond)
	}
	if m.d.spot {
		return []eip.Notice{{Kind: eip.NoticeSpotInterruption, Detail: "terminate"}}, nil
	}
	return nil, nil
}

// Associations are the public IPs on the instance's ENI as they were
// imdsLag ago.
func (m simMeta) Associations(ctx context.Context) ([]eip.ENIAssociation, error) {
	d := m.d
	if tk := ticketOf(ctx); tk != nil {
		tk.answer(time.Millisecond)
	}
	if d.imdsDown {
		return nil, fmt.Errorf("%w: timeout", eip.ErrIMDS)
	}
	st := d.s.world.asOf(d.s.now.Add(-d.imdsLag))
	var out []eip.ENIAssociation
	for _, id := range slices.Sorted(maps.Keys(st.addrs)) {
		if a := st.addrs[id]; a.NetworkInterfaceID == d.ident.NetworkInterfaceID && a.AssociationID != "" {
			out = append(out, eip.ENIAssociation{PublicIP: a.PublicIP, PrivateIP: a.PrivateIP})
		}
	}
	return out, nil
}

type simHealth struct{ d *simDaemon }

func (h simHealth) Status() health.Status    { return h.d.health }
func (h simHealth) Changed() <-chan struct{} { return nil }

// setProxy changes what the proxy's checks say; the own check follows
// after its rise (2 × 1 s) or fall (3 × 200 ms).
func (s *sim) healthFollows(d *simDaemon) {
	want := health.Up
	if !d.proxyServes() {
		want = health.Down
	}
	delay := 2 * time.Second
	if want == health.Down {
		delay = 600 * time.Millisecond
	}
	s.after(delay, func() {
		now := health.Up
		if !d.proxyServes() {
			now = health.Down
		}
		if now == want && d.health != want {
			d.health = want
			s.event(d.id, "own health %s", want)
			d.pass()
		}
	})
}

type simProber struct{ d *simDaemon }

// Check probes the member at ip as health.PeerProber does: its proxy and
// its eipd's /status.
func (p simProber) Check(ctx context.Context, ip string) (health.PeerReport, error) {
	d, s := p.d, p.d.s
	tk := ticketOf(ctx)
	t := s.daemonByIP(ip)
	if t == nil || !s.reachable(d, t) || t.state != "running" || t.frozen {
		tk.hang()
		return health.PeerReport{}, errors.New("probe " + ip + ": timeout")
	}
	tk.answer(s.netDelay())
	var r health.PeerReport
	if t.statusAnswers() {
		if id, epoch, ok := health.CoordinatorOf(ctx); ok {
			t.loop.AcceptAt(id, health.CoordinatorIP(ctx), epoch)
		}
		t.loop.HeardFrom(health.FromOf(ctx))
		var st Status
		if health.FreshStatusWanted(ctx) {
			st = t.loop.StatusFresh(context.Background())
		} else {
			st = t.loop.Status()
		}
		b, _ := json.Marshal(st)
		r = health.PeerReport{Answered: true, Status: b, Health: st.Health}
		if t.loop.inboxWaiting() {
			s.after(time.Millisecond, t.pass)
		}
	}
	switch {
	case !t.proxyServes():
		return r, errors.New("probe " + ip + ": proxy check failed")
	case r.Answered && r.Health == health.Down.String():
		return r, errors.New("probe " + ip + ": its eipd reports health down")
	}
	return r, nil
}

func (p simProber) CheckVia(ctx context.Context, via, id string) (health.ProbeAnswer, bool, error) {
	d, s := p.d, p.d.s
	tk := ticketOf(ctx)
	v, t := s.daemonByIP(via), s.daemon(id)
	a := health.ProbeAnswer{InstanceID: id}
	if v == nil || t == nil || !s.reachable(d, v) || !v.statusAnswers() {
		tk.hang()
		return a, false, errors.New("probe via " + via + ": timeout")
	}
	tk.answer(3 * s.netDelay())
	reach := s.reachable(v, t) && t.state == "running" && !t.frozen
	if reach && t.statusAnswers() {
		a.EIPDAnswered = true
		a.Holding = t.loop.Status().Holding()
	}
	a.Reachable = reach && t.proxyServes()
	if !a.Reachable {
		a.Error = via + " cannot reach " + id + " either"
	}
	return a, true, nil
}

func (p simProber) Notify(ctx context.Context, ip, from string) error {
	d, s := p.d, p.d.s
	tk := ticketOf(ctx)
	t := s.daemonByIP(ip)
	if t == nil || !s.reachable(d, t) || !t.statusAnswers() {
		tk.hang()
		return errors.New("notify " + ip + ": timeout")
	}
	tk.answer(s.netDelay())
	t.loop.Notice(from)
	s.after(time.Millisecond, t.pass)
	return nil
}

// --- the trail ---

// simLog keeps the last events of a run.
type simLog struct {
	lines []string
	max   int
}

func newSimLog(max int) *simLog { return &simLog{max: max} }

func (l *simLog) add(line string) {
	l.lines = append(l.lines, line)
	if len(l.lines) > 2*l.max {
		l.lines = slices.Clone(l.lines[len(l.lines)-l.max:])
	}
}

func (l *simLog) last(n int) []string {
	if n > len(l.lines) {
		n = len(l.lines)
	}
	return slices.Clone(l.lines[len(l.lines)-n:])
}

// simLogWriter puts a daemon's log lines (Info and above) in the trail.
type simLogWriter struct {
	s *sim
	d *simDaemon
}

func (w simLogWriter) Write(p []byte) (int, error) {
	w.s.event(w.d.id, "log %s", strings.TrimSpace(string(p)))
	return len(p), nil
}

var _ io.Writer = simLogWriter{}
