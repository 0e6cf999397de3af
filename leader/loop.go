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

// Cloud is what the loop needs from AWS; *eip.Client satisfies it.
type Cloud interface {
	Addresses(ctx context.Context, allocationIDs []string) ([]eip.Address, error)
	GroupAddresses(ctx context.Context) ([]eip.Address, error)
	Members(ctx context.Context) ([]eip.Instance, error)
	Renew(ctx context.Context, allocationIDs []string, holder string, at time.Time) error
	WriteLease(ctx context.Context, allocationID string, lease eip.Lease) error
	Claim(ctx context.Context, observed eip.Address, self eip.Identity, privateIP string, lease eip.Lease) (string, error)
	Handoff(ctx context.Context, addr eip.Address, target eip.Instance, privateIP string, lease eip.Lease) (string, error)
	SetState(ctx context.Context, instanceID, state string) error
}

// Metadata is what the loop needs from instance metadata; *eip.Metadata
// satisfies it.
type Metadata interface {
	Notices(ctx context.Context) ([]eip.Notice, error)
	// Associations lists the public IPs on this instance's primary ENI
	// and the private IP each is on: a free, local and current signal
	// that an EIP arrived or left, and of which private IPs are taken.
	Associations(ctx context.Context) ([]eip.ENIAssociation, error)
}

// Health is the own health check after rise/fall; *health.Monitor
// satisfies it.
type Health interface {
	Status() health.Status
	Changed() <-chan struct{}
}

// Prober tells whether a peer is reachable as healthy, and what its eipd
// said about itself; *health.PeerProber satisfies it.
type Prober interface {
	Check(ctx context.Context, ip string) (health.PeerReport, error)
}

// Observer receives what the loop decides and sees (metrics implements it).
type Observer interface {
	SetHolder(allocationID string, holder bool)
	SetLease(allocationID string, term int64, age time.Duration)
	SetPeerProbeUp(allocationID string, up bool)
	// ForgetPeerProbe: this instance no longer probes anyone for the EIP
	// (it holds it, or the EIP is unassociated).
	ForgetPeerProbe(allocationID string)
	SetHandoffBlocked(allocationID string, blocked bool)
	SetNoFreePrivateIP(allocationID string, blocked bool)
	Failover(allocationID, reason string, d time.Duration)
	Forgotten(allocationID string)
	LifecycleNotice(kind string)
	Reconciled(t time.Time)
}

// Config configures the loop.
type Config struct {
	Timing
	// AllocationIDs to manage; empty = every EIP tagged with the group.
	AllocationIDs []string
	ProbeFall     int
	ProbeTimeout  time.Duration
	LifecyclePoll time.Duration
	StopTimeout   time.Duration
	// CallTimeout bounds each AWS call made from the loop.
	CallTimeout time.Duration
	// Tick is how often the loop reconsiders when nothing happens.
	Tick time.Duration
	// Now is the clock; nil = time.Now. Durations between its readings
	// must follow the monotonic clock (§9.7), as time.Now's do.
	Now func() time.Time
	// DryRun: Cloud changes nothing (it sends DryRun=true), so a claim or
	// handoff must not change this instance's role; each would-be move is
	// logged once per HolderPoll instead of retried every tick.
	DryRun bool
}

// Loop runs the election for this instance. One goroutine (Run) owns the
// per-EIP state; the renewer and the metadata watcher run beside it and
// talk to it only through the renewer's shared record and a channel.
type Loop struct {
	cfg     Config
	self    eip.Identity
	cloud   Cloud
	meta    Metadata
	health  Health
	prober  Prober
	obs     Observer
	log     hclog.Logger
	started time.Time

	// Loop-goroutine state.
	eips        map[string]*eipState
	forgotten   map[string]bool
	readTriedAt time.Time
	readError   bool
	members     []eip.Instance
	membersAt   time.Time
	membersNow  bool
	priority    int
	drain       string
	manual      *handoffRequest
	notices     map[eip.NoticeKind]bool
	stateTag    string
	stateTagAt  time.Time
	// stateDeniedUntil: IAM refused the last state tag write.
	stateDeniedUntil time.Time
	refreshNow       bool
	own              ownHealth
	passFailed       bool      // an AWS call of this pass failed
	passStart        time.Time // when this pass began

	requests chan *handoffRequest
	renewer  renewer
	// holding mirrors "holds at least one EIP" for the metadata watcher,
	// which then watches the ENI's public IPs every probe interval.
	holding atomic.Bool

	mu     sync.Mutex
	status snapshot
	// seen is the metadata watcher's last successful read of this
	// instance's public IPs: Status judges a holder by it at once, even
	// while the loop is stuck in a slow EC2 call.
	seen ipsSeen
	// leaving: EIPs this instance is handing off right now. The handoff's
	// AssociateAddress may land long before its lease write returns
	// (throttled, slow): from the moment it starts, /status stops calling
	// this instance their holder, until the next snapshot says how it
	// ended.
	leaving map[string]bool
	// seenRefresh: one on-demand metadata read at a time (StatusFresh).
	seenRefresh sync.Mutex

	lastReconcile atomic.Int64 // unix nanos
}

type ipsSeen struct {
	at     time.Time
	assocs []eip.ENIAssociation
}

func (s ipsSeen) publicIPs() []string { return eip.PublicIPsOf(s.assocs) }

type handoffRequest struct {
	to    string
	reply chan error
}

// ownHealth remembers the own check's history for §9.4: how long it has
// been up, and when it was last down.
type ownHealth struct {
	last    health.Status
	upSince time.Time
	downAt  time.Time
}

func (h *ownHealth) observe(s health.Status, now time.Time) {
	if s == health.Up && h.last != health.Up {
		h.upSince = now
	}
	if s == health.Down {
		h.downAt = now
	}
	h.last = s
}

func (h *ownHealth) downRecently(now time.Time) bool {
	return !h.downAt.IsZero() && now.Sub(h.downAt) < recentDown
}

// New returns a loop for the instance self.
func New(cfg Config, self eip.Identity, cloud Cloud, meta Metadata, h Health, prober Prober, obs Observer, logger hclog.Logger) *Loop {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	// Validation in main keeps these positive; defaults keep a zero value
	// from reaching time.NewTicker, which panics on it.
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = time.Second
	}
	if cfg.RenewInterval <= 0 {
		cfg.RenewInterval = 3 * time.Second
	}
	if cfg.LifecyclePoll <= 0 {
		cfg.LifecyclePoll = 5 * time.Second
	}
	if cfg.Tick <= 0 {
		// A standby waiting for a lease to run out notices it at the next
		// tick. Measured: 250 ms → 0.32 % idle CPU, 100 ms → 0.68 %; 200 ms
		// keeps the wait short without the cost.
		cfg.Tick = min(cfg.ProbeInterval, 200*time.Millisecond)
	}
	if cfg.RankStep <= 0 {
		// Long enough to order claimants over an API round trip (~100 ms
		// in a region), short enough not to weigh on the takeover time.
		cfg.RankStep = 200 * time.Millisecond
	}
	if cfg.TargetRetry <= 0 {
		cfg.TargetRetry = cfg.RenewInterval
	}
	if cfg.TargetsKeep == 0 {
		// One DescribeInstances per holder per 30 s buys a handoff with
		// a single EC2 call on its critical path.
		cfg.TargetsKeep = 30 * time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	l := &Loop{
		cfg: cfg, self: self, cloud: cloud, meta: meta, health: h, prober: prober, obs: obs,
		log: logger, started: cfg.Now(), eips: map[string]*eipState{}, forgotten: map[string]bool{},
		notices: map[eip.NoticeKind]bool{}, requests: make(chan *handoffRequest),
		renewer: newRenewer(),
	}
	for _, id := range cfg.AllocationIDs {
		l.track(id)
	}
	l.publish()
	return l
}

// LastReconcile is when the loop last completed a pass; zero before the
// first. The systemd watchdog is fed only while it advances.
func (l *Loop) LastReconcile() time.Time {
	n := l.lastReconcile.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Run runs the loop until ctx ends, then hands off whatever this instance
// holds (within StopTimeout) and returns. It returns nil after a clean stop.
func (l *Loop) Run(ctx context.Context) error {
	every := l.cfg.Tick
	tick := time.NewTicker(every)
	defer tick.Stop()
	probe := time.NewTicker(l.cfg.ProbeInterval)
	defer probe.Stop()

	// Instance metadata is polled on its own goroutine: an unreachable
	// IMDS costs timeouts that must not stall the election. Renewals run
	// on their own goroutine too, so a slow read never delays them (§9.9);
	// they outlive ctx until the shutdown handoff is done.
	metaCh := make(chan metadataReport)
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopBG()
	if l.meta != nil {
		wg.Go(func() { l.watchMetadata(bg, metaCh) })
	}
	wg.Go(func() { l.runRenewer(bg) })

	for {
		l.reconcile(ctx)
		if d := l.tickInterval(); d != every {
			every = d
			tick.Reset(every)
		}
		select {
		case <-ctx.Done():
			return l.shutdown()
		case <-tick.C:
		case <-l.renewer.failed:
			// A renewal failed: take it in now (syncRenewals), so that
			// the lease is not renewed again before a read (§9.2).
		case <-l.health.Changed():
			// React at once: a fallen check starts the handoff now,
			// not at the next tick.
		case <-probe.C:
			l.probePeers(ctx)
		case r := <-metaCh:
			l.applyMetadata(r)
		case req := <-l.requests:
			l.startManual(ctx, req)
		}
	}
}

func (l *Loop) track(id string) *eipState {
	st, ok := l.eips[id]
	if !ok {
		st = &eipState{addr: eip.Address{AllocationID: id}, peer: health.NewHysteresis(1, max(1, l.cfg.ProbeFall))}
		l.eips[id] = st
	}
	return st
}

func (l *Loop) holdingAny() bool {
	for _, st := range l.eips {
		if st.holding {
			return true
		}
	}
	return false
}

func (l *Loop) heldIDs() []string {
	var ids []string
	for id, st := range l.eips {
		if st.holding {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func (l *Loop) sortedIDs() []string {
	ids := make([]string, 0, len(l.eips))
	for id := range l.eips {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (l *Loop) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.cfg.CallTimeout)
}

// reconcile is one pass: decide for every EIP, gather what a decision asks
// for (a fresh read, handoff targets) and decide again, then act.
func (l *Loop) reconcile(ctx context.Context) {
	now := l.cfg.Now()
	l.own.observe(l.health.Status(), now)
	l.passFailed, l.passStart = false, now
	l.syncRenewals()
	if l.refreshNow || len(l.eips) == 0 {
		l.refreshNow = false
		l.readAddresses(ctx)
	}
	ids := l.sortedIDs()
	// A decision may ask for a fresh read or for handoff targets; the loop
	// gets it and decides again. Each is fetched at most once a pass, so
	// three rounds always suffice.
	readDone, sought := false, map[string]bool{}
	for round := 0; round < 3; round++ {
		wantRead, again := false, false
		for _, id := range ids {
			if ctx.Err() != nil && l.drain != ReasonHandoffShutdown {
				return
			}
			st, ok := l.eips[id]
			if !ok {
				continue // forgotten by the read
			}
			d := Decide(l.cfg.Timing, l.observe(st))
			st.why, st.mayRenew = d.Why, d.MayRenew && st.holding
			st.steady = st.holding && d.Action == Hold && d.MayRenew && !d.Blocked
			l.setNoFreeSlot(st, d.NoFreeSlot || (d.Blocked && st.slotsFull))
			switch {
			case d.Action == Refresh:
				if !readDone {
					wantRead, again = true, true
				}
			case d.Action == SeekTargets:
				if !sought[id] {
					sought[id], again = true, true
					l.seekTargets(ctx, st)
				}
			default:
				l.act(ctx, st, d)
			}
		}
		if wantRead {
			l.readAddresses(ctx)
			readDone = true
		}
		if !again {
			break
		}
	}
	l.planRenewals()
	// The state tag is written after the moves: a handoff on a fallen
	// check must not wait for it (it only informs other members' choices).
	l.writeStateTag(ctx)
	if l.manual != nil {
		l.checkManual()
	}
	done := l.cfg.Now()
	l.lastReconcile.Store(done.UnixNano())
	if l.obs != nil && !l.readError && !l.readTriedAt.IsZero() && !l.passFailed {
		// A successful reconcile: AWS state known and every call of the
		// pass went through.
		l.obs.Reconciled(done)
	}
	l.publish()
}

// currentTargets re-ranks the targets found for st with what this pass
// has done since: an EIP just handed to one of them counts, so two EIPs
// leaving at once spread over the members.
func (l *Loop) currentTargets(st *eipState) []Target {
	if len(st.targets) == 0 {
		return nil
	}
	held := map[string]int{}
	for _, s := range l.eips {
		if s.addr.Associated() && s.addr.InstanceID != "" {
			held[s.addr.InstanceID]++
		}
	}
	ts := slices.Clone(st.targets)
	for i := range ts {
		ts[i].Held = held[ts[i].InstanceID]
	}
	RankTargets(ts)
	return ts
}

// rebalanceFirst is the held EIP a daemon moved longest ago (then the
// lowest allocation ID), or nil.
func (l *Loop) rebalanceFirst() *eipState {
	var first *eipState
	for _, id := range l.sortedIDs() {
		st := l.eips[id]
		if st.holding && (first == nil || st.movedByDaemonAt.Before(first.movedByDaemonAt)) {
			first = st
		}
	}
	return first
}

func (l *Loop) setNoFreeSlot(st *eipState, blocked bool) {
	if st.noFreeSlot == blocked {
		return
	}
	st.noFreeSlot = blocked
	if blocked {
		l.log.Warn("no free private IP for the EIP; it stays where it is (give proxies secondary private IPs, see docs/install.md)",
			"allocation_id", st.addr.AllocationID, "why", st.why)
	}
	if l.obs != nil {
		l.obs.SetNoFreePrivateIP(st.addr.AllocationID, blocked)
	}
}

func (l *Loop) observe(st *eipState) Observation {
	held := 0
	for _, s := range l.eips {
		if s.holding {
			held++
		}
	}
	now := l.cfg.Now()
	o := Observation{
		Now: now, Self: l.self, Priority: l.priority, BestPriority: l.bestPriority(), MembersKnown: !l.membersAt.IsZero(),
		Health: l.health.Status(), DownRecently: l.own.downRecently(now), Drain: l.drain,
		Address: st.addr, AddressAt: st.readAt, ReadTriedAt: l.readTriedAt, ReadError: l.readError,
		LeaseStamp: st.stamp, LeaseSeenAt: st.stampSeenAt,
		Holding: st.holding, Term: st.term, HolderSince: st.holderSince,
		VerifiedAt: st.verifiedAt, GapSince: st.gapSince, IMDSLost: st.imdsLost, IMDSSeenAt: st.imdsSeenAt,
		RankSince: st.rankSince, Held: held, MaxHold: l.maxHold(), RebalanceFirst: l.rebalanceFirst() == st, LastMove: st.movedByDaemonAt,
		Targets: l.currentTargets(st), TargetsAt: st.targetsAt,
	}
	if !st.readAt.After(st.movedAt) {
		// §9.5: a read started before our own last move of this EIP
		// says nothing about the state after it.
		o.AddressAt = time.Time{}
		if st.holding {
			o.AddressAt = st.holderSince
		}
	}
	if l.manual != nil {
		o.ManualTarget = l.manual.to
	}
	o.FreeSlot = l.freeSlot(l.selfInstance(), st.addr.AllocationID)
	if !st.holding {
		o.PeerDown = !st.addr.Associated() || st.peer.Status() == health.Down
		o.HolderStopped = l.holderStopped(st)
		o.PeerProbed = st.peerIP == "" || st.peerAt.After(st.readAt)
		// A report stands in for a poll when it is about the IP the EIP
		// points at now (watchPeer clears it when that changes) and came
		// within one standby poll; a failed probe clears it.
		if r := st.peerReport; r.Answered && st.peerIP != "" && now.Sub(st.peerAt) < l.cfg.StandbyPoll {
			o.HolderConfirmed = r.Holds(st.addr.AllocationID) && r.Health == health.Up.String()
			o.HolderDenies = st.peerDenies()
			o.HolderHandingOff = o.HolderDenies && r.HandingOff[st.addr.AllocationID]
			o.HolderLetGoAt = st.peerLetGoAt
		}
	}
	return o
}

// tickInterval is how long the loop waits when nothing happens. While this
// instance holds every EIP it manages and only keeps them (a plain Hold,
// renewals allowed, nothing sought, not draining), nothing it waits for is
// finer than a probe interval: its own health and handoff requests wake it
// at once, instance metadata and the probe round every probe interval, a
// failed renewal at once (runRenewer), renewals run on their own timer, and
// its reads and target searches are due every few seconds. Then the tick is
// the probe interval (at most half a renew interval); otherwise, and on a
// standby, which watches leases and rank delays, it is cfg.Tick. A holder
// pass at 200 ms instead of 1 s was a fifth of its idle CPU (BenchmarkIdle).
func (l *Loop) tickInterval() time.Duration {
	slow := min(l.cfg.ProbeInterval, l.cfg.RenewInterval/2)
	if slow <= l.cfg.Tick || len(l.eips) == 0 || l.drain != "" || l.manual != nil ||
		l.refreshNow || l.membersNow || l.passFailed || l.readError {
		return l.cfg.Tick
	}
	for _, st := range l.eips {
		if !st.steady {
			return l.cfg.Tick
		}
	}
	return slow
}
