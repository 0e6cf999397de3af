package leader

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// Loop runs the protocol for this member. One goroutine owns all state;
// every AWS call, probe and instance metadata read runs off it (op) and
// hands its result back to it, so a slow call never delays another
// decision: a renewal never waits behind a read, a move never behind a
// probe (§9).
type Loop struct {
	cfg    Config
	self   eip.Identity
	cloud  Cloud
	meta   Metadata
	health Health
	prober Prober
	obs    Observer
	log    hclog.Logger
	exec   executor
	t0     time.Time // monotonic readings are t0 + Mono()

	// What this member knows of each EIP.
	eips      map[string]*eipState
	forgotten map[string]bool
	// The last read of the EIPs, and the member list.
	read    callState
	members []eip.Instance
	list    callState
	// listAt: a member list is wanted at or after this time (zero: none).
	listAt time.Time
	// blockedSince: since when an EIP must move and no member can take it
	// (zero: none); the lists asked for meanwhile back off from it.
	blockedSince time.Time
	// readAgainAt, when set: a read ignored because, shortly after this
	// coordinator's move, it did not show the association the move made
	// (it may lag); the EIPs are read again once that no longer holds, not
	// a whole address poll later (§3: the operator may have undone the
	// move at once).
	readAgainAt time.Time
	// joining: instances that notices named and no member list showed yet,
	// with when the first notice came (coordinator).
	joining map[string]time.Time
	// listedAt: when a member list last showed each member running.
	listedAt map[string]time.Time

	// Own condition.
	own       ownHealth
	drain     string
	handoffTo string
	manual    *handoffRequest
	noticed   map[eip.NoticeKind]bool
	eni       eniView
	eniCall   callState
	notices   callState

	// Coordination.
	lease      LeaseSeen
	follow     follow
	peers      map[string]*peer
	rankSince  time.Time
	claiming   bool
	claimDoubt *claimDoubt
	// claimFailedAt: the start of the last claim that failed (Elect).
	claimFailedAt time.Time
	// idleSince: the coordinator this member follows has answered without
	// saying it acts since then (zero: it acts, or does not answer).
	idleSince time.Time
	// idleTroubled: its /status said its AWS calls are in trouble.
	idleTroubled bool
	// unfitUntil: IAM refused this member's writes (monotonic); it does
	// not claim the coordinator role before then. troubledAt: its last
	// call was throttled or failed.
	unfitUntil time.Time
	troubledAt time.Time
	troubleWhy string
	// handedTo: the member this one last handed the coordinator role to,
	// and when; if it never took it, it is not handed the role again for
	// deniedPause.
	handedTo  string
	handedAt  time.Time
	heartbeat callState
	notify    callState
	co        *coordinator
	stopping  bool
	stopBy    time.Time

	requests chan *handoffRequest
	inbox    chan inboxItem
	results  chan func()

	mu   sync.Mutex
	snap snapshot
	// seen is the last read of this instance's ENI from instance metadata,
	// shared with StatusFresh (HTTP goroutines).
	seen        ipsSeen
	seenRefresh sync.Mutex
	// accepted is the coordinator this member takes, shared with the
	// /status handler that sees a coordinator's probe (Accept); heard is
	// when (monotonic, unix nanos of l.now) that coordinator last probed.
	accepted atomic.Pointer[follow]
	heard    atomic.Int64
	// knownEpoch is the highest epoch this member has seen in EC2's tags
	// (or followed): a coordinator's probe or a member's /status may claim
	// at most epochSlack beyond it (both are unauthenticated).
	knownEpoch atomic.Int64
	coordIPs   sync.Map // instance ID → private IP, as coordinators' probes gave them
	// asked: instance ID → when (monotonic, unix nanos) that member last
	// asked for this daemon's /status (HeardFrom).
	asked  sync.Map
	askedN atomic.Int64 // entries in asked and coordIPs

	lastPass atomic.Int64 // unix nanos of the last pass
	passedAt time.Time    // monotonic end of the last pass
}

// callState is one kind of call the loop makes: when the last attempt
// started, when the last success started, whether one is under way, and
// whether another is wanted as soon as possible.
type callState struct {
	at, triedAt time.Time
	inFlight    bool
	failed      bool
	wanted      bool
}

func (c *callState) due(now time.Time, every time.Duration) bool {
	if c.inFlight {
		return false
	}
	if c.wanted {
		return true
	}
	last := c.at
	if c.triedAt.After(last) {
		last = c.triedAt
	}
	return last.IsZero() || now.Sub(last) >= every
}

func (c *callState) start(now time.Time) {
	c.inFlight, c.wanted, c.triedAt = true, false, now
}

func (c *callState) done(started time.Time, ok bool) {
	c.inFlight, c.failed = false, !ok
	if ok && started.After(c.at) {
		c.at = started
	}
}

// follow is the coordinator this member takes: the highest epoch it has
// seen, and at equal epochs the lowest instance ID, whether from the
// group lease it read or from a coordinator's probe (Accept). Every member
// applies the same order, so two members that claimed at once cannot both
// be followed.
type follow struct {
	ID    string
	Epoch int64
}

// precedes reports whether f comes before g (g should give way to f).
func (f follow) precedes(g follow) bool {
	if f.Epoch != g.Epoch {
		return f.Epoch > g.Epoch
	}
	if g.ID == "" {
		return f.ID != ""
	}
	return f.ID != "" && f.ID < g.ID
}

type inboxItem struct {
	notice string // instance ID of a member that pushed a notice
	accept *follow
}

type ipsSeen struct {
	at     time.Time // monotonic
	assocs []eip.ENIAssociation
}

// ownHealth remembers the own check's history (§4): how long it has been
// up, and when it was last down.
type ownHealth struct {
	last    health.Status
	upSince time.Time
	downAt  time.Time
}

func (h *ownHealth) observe(s health.Status, now time.Time) (changed bool) {
	if s == health.Up && h.last != health.Up {
		h.upSince = now
	}
	if s == health.Down {
		h.downAt = now
	}
	changed = s != h.last
	h.last = s
	return changed
}

func (h *ownHealth) downRecently(now time.Time) bool {
	return !h.downAt.IsZero() && now.Sub(h.downAt) < recentDown
}

// New returns a loop for the instance self.
func New(cfg Config, self eip.Identity, cloud Cloud, meta Metadata, h Health, prober Prober, obs Observer, logger hclog.Logger) *Loop {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Mono == nil {
		start := time.Now()
		cfg.Mono = func() time.Duration { return time.Since(start) }
	}
	// Validation in main keeps these positive; defaults keep a zero value
	// from reaching a ticker, which panics on it.
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ProbeInterval, time.Second)
	def(&cfg.RenewInterval, 3*time.Second)
	def(&cfg.LeaseDuration, 10*time.Second)
	def(&cfg.AddressPoll, 5*time.Second)
	def(&cfg.MemberPoll, time.Minute)
	def(&cfg.LifecyclePoll, 5*time.Second)
	def(&cfg.CallTimeout, 5*time.Second)
	def(&cfg.ProbeTimeout, 500*time.Millisecond)
	// Long enough to order claimants over an API round trip (~100 ms in
	// a region), short enough not to weigh on a takeover.
	def(&cfg.RankStep, 200*time.Millisecond)
	// A member waiting for a deadline notices it at the next tick; 200 ms
	// keeps the wait short without the idle CPU of a faster tick.
	def(&cfg.Tick, min(cfg.ProbeInterval, 200*time.Millisecond))
	if cfg.ProbeFall <= 0 {
		cfg.ProbeFall = 3
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	l := &Loop{
		cfg: cfg, self: self, cloud: cloud, meta: meta, health: h, prober: prober, obs: obs, log: logger,
		t0:   time.Unix(1<<31, 0), // any fixed base: monotonic readings are only compared with each other
		eips: map[string]*eipState{}, forgotten: map[string]bool{}, joining: map[string]time.Time{}, listedAt: map[string]time.Time{}, noticed: map[eip.NoticeKind]bool{},
		peers: map[string]*peer{}, requests: make(chan *handoffRequest), inbox: make(chan inboxItem, 64),
		results: make(chan func(), 64),
	}
	l.exec = &goExecutor{l: l, ctx: context.Background(), wg: &sync.WaitGroup{}}
	for _, id := range cfg.AllocationIDs {
		l.track(id)
	}
	l.publish()
	return l
}

// now is the monotonic clock as a time.Time (only ever compared with other
// readings of it); wall is the wall clock, for stamps.
func (l *Loop) now() time.Time  { return l.t0.Add(l.cfg.Mono()) }
func (l *Loop) wall() time.Time { return l.cfg.Now() }

// leaseStamp is the wall clock as eipd:renewed keeps it (milliseconds,
// eip.RenewedLayout): a lease this member writes must equal the copy a
// read gives back, or a claim whose answer was lost never counts as landed
// and a read of a stamp already seen counts as a renewal (§7).
func (l *Loop) leaseStamp() time.Time { return l.wall().UTC().Truncate(time.Millisecond) }

// LastReconcile is when the loop last completed a pass (wall clock); zero
// before the first. The systemd watchdog is fed only while it advances.
func (l *Loop) LastReconcile() time.Time {
	n := l.lastPass.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Run runs the loop until ctx ends, then hands off whatever this instance
// holds (within StopTimeout) and returns. It returns nil after a clean stop.
func (l *Loop) Run(ctx context.Context) error {
	// Calls outlive ctx: the handoff on stop needs them. They end with bg.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	ex := &goExecutor{l: l, ctx: bg, wg: &sync.WaitGroup{}}
	l.exec = ex
	defer ex.wait()
	defer stopBG()

	tick := time.NewTicker(l.cfg.Tick)
	defer tick.Stop()
	done := ctx.Done()
	for {
		l.pass()
		if l.stopping && l.finished() {
			return nil
		}
		select {
		case <-done:
			done = nil // stop once: the handoff goes on under StopTimeout
			l.beginStop()
		case <-tick.C:
		case apply := <-l.results:
			apply()
		case <-l.health.Changed():
			// React at once: a fallen check tells the coordinator now.
		case it := <-l.inbox:
			l.receive(it)
		case req := <-l.requests:
			l.startManual(req)
		}
	}
}

// executor runs one operation off the loop goroutine and hands its result
// back to it. Production runs each on its own goroutine; the model test
// runs them in simulated time.
type executor interface {
	start(o op)
}

// op is one call. run makes it under ctx (bounded by the op's timeout
// and, for a coordinator's calls, its deadline) and returns what to do
// with the result on the loop goroutine.
type op struct {
	name     string
	timeout  time.Duration
	deadline time.Time // monotonic; zero: none beyond timeout
	// mutates: the call changes AWS state (the model may apply it late).
	mutates bool
	run     func(ctx context.Context) func()
}

type goExecutor struct {
	l   *Loop
	ctx context.Context
	wg  *sync.WaitGroup
}

func (e *goExecutor) start(o op) {
	ctx := e.ctx
	timeout := o.timeout
	if timeout <= 0 {
		timeout = e.l.cfg.CallTimeout
	}
	if !o.deadline.IsZero() {
		timeout = min(timeout, o.deadline.Sub(e.l.now()))
	}
	e.wg.Go(func() {
		cctx, cancel := context.WithTimeout(ctx, max(timeout, 0))
		apply := o.run(cctx)
		cancel()
		select {
		case e.l.results <- apply:
		case <-ctx.Done():
		}
	})
}

func (e *goExecutor) wait() { e.wg.Wait() }

// pass is one look at everything: take in what changed, decide, start the
// calls the decisions ask for, publish the view.
func (l *Loop) pass() {
	now := l.now()
	if !l.passedAt.IsZero() && now.Sub(l.passedAt) > l.cfg.ProbeInterval+l.cfg.Tick {
		// The process was stopped or starved: a word taken before may be
		// out of date (the coordinator may have moved an EIP off this
		// member meanwhile), so none stands until the coordinator is
		// heard again.
		l.log.Warn("the loop did not run for a while; not trusting the coordinator's last word until it is heard again",
			"stalled", now.Sub(l.passedAt).String())
		for _, st := range l.eips {
			if st.wordUntil.After(now) {
				st.wordUntil = now
			}
		}
	}
	defer func() { l.passedAt = l.now() }()
	if a := l.accepted.Load(); a != nil && a.precedes(l.follow) {
		l.followBetter(*a, "a coordinator's probe")
	}
	l.mu.Lock()
	seen := l.seen
	l.mu.Unlock()
	if seen.at.After(l.eni.at) {
		l.seeENI(seen.at, seen.assocs)
	}
	if l.own.observe(l.health.Status(), now) {
		l.wantNotify("own health is " + l.health.Status().String())
	}
	l.pollMetadata(now)
	l.elect(now)
	l.writeHeartbeat(now)
	if l.co != nil {
		l.coordinate(now)
	} else {
		l.probeCoordinator(now)
	}
	l.sendNotify(now)
	if l.manual != nil {
		l.checkManual()
	}
	l.publish()
	l.lastPass.Store(l.wall().UnixNano())
	if l.obs != nil && l.reconciled(now) {
		l.obs.Reconciled(l.wall())
	}
}

// reconciled: this pass knew AWS state: as coordinator, its last read
// succeeded; otherwise a coordinator confirms it acts.
func (l *Loop) reconciled(now time.Time) bool {
	if l.co != nil {
		return l.co.accepted && !l.read.at.IsZero() && !l.read.failed
	}
	p := l.peers[l.follow.ID]
	return p != nil && p.status != nil && p.status.IsCoordinator && p.status.ValidForSeconds > 0 &&
		now.Before(p.at.Add(seconds(p.status.ValidForSeconds)))
}

// inboxWaiting reports whether an HTTP handler left something for the loop.
func (l *Loop) inboxWaiting() bool { return len(l.inbox) > 0 }

// takeInbox applies what the HTTP handlers passed to the loop (Run does it
// as items arrive; the model test drives the loop without Run).
func (l *Loop) takeInbox() {
	for {
		select {
		case it := <-l.inbox:
			l.receive(it)
		default:
			return
		}
	}
}

func (l *Loop) track(id string) *eipState {
	st, ok := l.eips[id]
	if !ok {
		st = &eipState{addr: eip.Address{AllocationID: id}}
		l.eips[id] = st
	}
	return st
}

func (l *Loop) sortedIDs() []string {
	ids := make([]string, 0, len(l.eips))
	for id := range l.eips {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (l *Loop) member(id string) *eip.Instance {
	if id == "" {
		return nil
	}
	for i := range l.members {
		if l.members[i].InstanceID == id {
			return &l.members[i]
		}
	}
	return nil
}

// memberByENI is the running member whose primary ENI is eni.
func (l *Loop) memberByENI(eni string) *eip.Instance {
	for i := range l.members {
		if eni != "" && l.members[i].NetworkInterfaceID == eni {
			return &l.members[i]
		}
	}
	return nil
}
