package leader

import (
	"context"
	"errors"
	"fmt"
	"math"
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
	Renew(ctx context.Context, allocationID string, lease eip.Lease) error
	Claim(ctx context.Context, observed eip.Address, self eip.Identity, lease eip.Lease) (string, error)
	Handoff(ctx context.Context, addr eip.Address, target eip.Instance, lease eip.Lease) (string, error)
	SetState(ctx context.Context, instanceID, state string) error
}

// Metadata is what the loop needs from instance metadata; *eip.Metadata
// satisfies it.
type Metadata interface {
	Notices(ctx context.Context) ([]eip.Notice, error)
	// PublicIPs lists the public IPs associated with this instance's
	// primary ENI: a free, local signal that an EIP was handed to us.
	PublicIPs(ctx context.Context) ([]string, error)
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
	SetHandoffBlocked(allocationID string, blocked bool)
	Failover(allocationID, reason string, d time.Duration)
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
	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// DryRun: Cloud changes nothing (it sends DryRun=true), so a claim or
	// handoff must not change this instance's role; each would-be move is
	// logged once per HolderPoll instead of retried every tick.
	DryRun bool
}

// Loop runs the election for this instance.
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
	readTriedAt time.Time
	readError   bool
	members     []eip.Instance
	membersAt   time.Time
	priority    int
	drain       string
	manual      *handoffRequest
	notices     map[eip.NoticeKind]bool
	stateTag    string
	stateTagAt  time.Time
	refreshNow  bool

	requests chan *handoffRequest

	mu     sync.Mutex
	status Status

	lastReconcile atomic.Int64 // unix nanos
}

type eipState struct {
	addr        eip.Address
	addrAt      time.Time
	holding     bool
	term        int64
	holderSince time.Time
	lastRenew   time.Time
	renewTried  time.Time
	peer        *health.Hysteresis
	peerIP      string
	peerChanged bool
	peerWasDown bool
	peerErr     error
	peerReport  health.PeerReport // from the last probe; zero when it failed
	peerAt      time.Time         // when that probe completed
	peerSilent  bool              // the holder's /status did not answer (logged once)
	rankSince   time.Time
	dryRunQuiet time.Time // dry run: no would-be move logged again before this
	targets     []Target
	targetsAt   time.Time
	blocked     bool
	why         string
	last        *FailoverRecord
	// prevInstance is the instance the EIP pointed at before the read
	// that showed it where it is now: the "from" of a handoff this
	// instance adopts (the lease names only the new holder).
	prevInstance string
}

type handoffRequest struct {
	to    string
	reply chan error
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
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = 10 * time.Second
	}
	l := &Loop{
		cfg: cfg, self: self, cloud: cloud, meta: meta, health: h, prober: prober, obs: obs,
		log: logger, started: cfg.Now(), eips: map[string]*eipState{},
		notices: map[eip.NoticeKind]bool{}, requests: make(chan *handoffRequest),
	}
	for _, id := range cfg.AllocationIDs {
		l.track(id)
	}
	l.publish()
	return l
}

func (l *Loop) track(id string) *eipState {
	st, ok := l.eips[id]
	if !ok {
		st = &eipState{addr: eip.Address{AllocationID: id}, peer: health.NewHysteresis(1, max(1, l.cfg.ProbeFall))}
		l.eips[id] = st
	}
	return st
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

// RequestHandoff asks the loop to move every EIP this instance holds to a
// ready member (to = "" for any, or one instance ID) and waits for the
// outcome or ctx.
func (l *Loop) RequestHandoff(ctx context.Context, to string) error {
	req := &handoffRequest{to: to, reply: make(chan error, 1)}
	select {
	case l.requests <- req:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-req.reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run runs the loop until ctx ends, then hands off whatever this instance
// holds (within StopTimeout) and returns. It returns nil after a clean stop.
func (l *Loop) Run(ctx context.Context) error {
	tick := time.NewTicker(l.cfg.Tick)
	defer tick.Stop()
	probe := time.NewTicker(l.cfg.ProbeInterval)
	defer probe.Stop()

	// Instance metadata is polled on its own goroutine: an unreachable
	// IMDS costs timeouts that must not stall the election.
	metaCh := make(chan metadataReport)
	mctx, stopMeta := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stopMeta()
	if l.meta != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.watchMetadata(mctx, metaCh)
		}()
	}

	for {
		l.reconcile(ctx)
		select {
		case <-ctx.Done():
			return l.shutdown()
		case <-tick.C:
		case <-l.health.Changed():
		case <-probe.C:
			l.probePeers(ctx)
		case r := <-metaCh:
			l.applyMetadata(r)
		case req := <-l.requests:
			l.startManual(req)
		}
	}
}

// shutdown hands off held EIPs under a fresh context: the parent is gone.
func (l *Loop) shutdown() error {
	if l.manual != nil {
		l.manual.reply <- errors.New("eipd is stopping")
		l.manual = nil
	}
	if !l.holdingAny() {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.cfg.StopTimeout)
	defer cancel()
	l.drain = ReasonHandoffShutdown
	l.log.Info("stopping: handing off held EIPs before exit", "stop_timeout", l.cfg.StopTimeout)
	tick := time.NewTicker(l.cfg.Tick)
	defer tick.Stop()
	for {
		l.reconcile(ctx)
		if !l.holdingAny() {
			l.log.Info("handoff done; exiting")
			return nil
		}
		select {
		case <-ctx.Done():
			l.log.Warn("stop timeout ran out before a handoff succeeded; exiting while holding", "held", l.heldIDs())
			return nil
		case <-tick.C:
		}
	}
}

func (l *Loop) startManual(req *handoffRequest) {
	if l.manual != nil {
		req.reply <- errors.New("a handoff is already in progress")
		return
	}
	if l.drain != "" {
		req.reply <- fmt.Errorf("already draining (%s)", l.drain)
		return
	}
	if !l.holdingAny() {
		req.reply <- errors.New("this instance holds no EIP")
		return
	}
	l.manual = req
	l.drain = ReasonHandoffManual
	for _, st := range l.eips {
		st.targetsAt = time.Time{}
	}
	l.log.Info("manual handoff requested", "to", req.to)
}

func (l *Loop) finishManual(err error) {
	if l.manual == nil {
		return
	}
	l.manual.reply <- err
	l.manual = nil
	if l.drain == ReasonHandoffManual {
		l.drain = ""
	}
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

func (l *Loop) callCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, l.cfg.CallTimeout)
}

// reconcile is one pass: decide for every EIP, gather what a decision asks
// for (a fresh read, handoff targets) and decide again, then act.
func (l *Loop) reconcile(ctx context.Context) {
	l.writeStateTag(ctx)
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
				continue // forgotten by the read: no longer tagged for the group
			}
			d := Decide(l.cfg.Timing, l.observe(st))
			st.why = d.Why
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
	if l.manual != nil {
		l.checkManual()
	}
	now := l.cfg.Now()
	l.lastReconcile.Store(now.UnixNano())
	if l.obs != nil {
		l.obs.Reconciled(now)
	}
	l.publish()
}

func (l *Loop) sortedIDs() []string {
	ids := make([]string, 0, len(l.eips))
	for id := range l.eips {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (l *Loop) checkManual() {
	if !l.holdingAny() {
		l.finishManual(nil)
		return
	}
	for _, st := range l.eips {
		if st.holding && st.blocked {
			l.finishManual(fmt.Errorf("no ready member to hand %s off to: %s", st.addr.AllocationID, st.why))
			return
		}
	}
}

func (l *Loop) observe(st *eipState) Observation {
	held := 0
	for _, s := range l.eips {
		if s.holding {
			held++
		}
	}
	o := Observation{
		Now: l.cfg.Now(), Self: l.self, Priority: l.priority,
		Health: l.health.Status(), Drain: l.drain,
		Address: st.addr, AddressAt: st.addrAt, ReadTriedAt: l.readTriedAt, ReadError: l.readError,
		Holding: st.holding, Term: st.term, HolderSince: st.holderSince, LastRenew: st.lastRenew, RenewTried: st.renewTried,
		RankSince: st.rankSince, Held: held, MaxHold: l.maxHold(),
		Targets: st.targets, TargetsAt: st.targetsAt,
	}
	if l.manual != nil {
		o.ManualTarget = l.manual.to
	}
	if !st.holding {
		o.PeerDown = !st.addr.Associated() || st.peer.Status() == health.Down
		o.HolderStopped = l.holderStopped(st.addr)
		// A report stands in for a poll when it is about the IP the EIP
		// points at now (watchPeer clears it when that changes) and came
		// within one standby poll; a failed probe clears it.
		if r := st.peerReport; r.Answered && st.peerIP != "" && o.Now.Sub(st.peerAt) < l.cfg.StandbyPoll {
			id := st.addr.AllocationID
			role, listed := r.Roles[id]
			o.HolderConfirmed = r.Holds(id) && r.Health == health.Up.String()
			// Only a peer that manages this EIP and names another role
			// denies; one that does not list it (other --allocation-id)
			// says nothing, and the standby poll covers it.
			o.HolderDenies = listed && role != RoleHolder
		}
	}
	return o
}

// maxHold is ceil(EIPs / ready members), counting this instance when it is
// fit; 0 (no cap) with a single EIP.
func (l *Loop) maxHold() int {
	if len(l.eips) < 2 {
		return 0
	}
	ready := 0
	selfCounted := false
	for _, m := range l.members {
		if m.EIPDState == eip.StateReady {
			ready++
			if m.InstanceID == l.self.InstanceID {
				selfCounted = true
			}
		}
	}
	if !selfCounted && l.health.Status() == health.Up && l.drain == "" {
		ready++
	}
	if ready == 0 {
		return 0
	}
	return int(math.Ceil(float64(len(l.eips)) / float64(ready)))
}

// holderStopped reports whether the members list, when recent, shows the
// holder's instance as gone (members are running instances only).
func (l *Loop) holderStopped(a eip.Address) bool {
	if !a.Associated() || a.InstanceID == "" || l.membersAt.IsZero() || l.membersAt.Before(l.eips[a.AllocationID].addrAt) {
		return false
	}
	for _, m := range l.members {
		if m.InstanceID == a.InstanceID {
			return false
		}
	}
	return true
}

// readAddresses reads every managed EIP in one call.
func (l *Loop) readAddresses(ctx context.Context) {
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	var addrs []eip.Address
	var err error
	if len(l.cfg.AllocationIDs) > 0 {
		addrs, err = l.cloud.Addresses(cctx, l.cfg.AllocationIDs)
	} else {
		addrs, err = l.cloud.GroupAddresses(cctx)
	}
	now := l.cfg.Now()
	l.readTriedAt = now
	if err != nil {
		if !l.readError {
			l.log.Warn("cannot read addresses; AWS state unknown, nobody claims until it is known", "error", err)
		}
		l.readError = true
		return
	}
	if l.readError {
		l.log.Info("addresses readable again")
	}
	l.readError = false
	seen := map[string]bool{}
	for _, a := range addrs {
		seen[a.AllocationID] = true
		st := l.track(a.AllocationID)
		if len(a.Lease.Invalid) > 0 && !slices.Equal(a.Lease.Invalid, st.addr.Lease.Invalid) {
			l.log.Warn("lease tags do not parse; treating the lease as stale", "allocation_id", a.AllocationID, "tags", a.Lease.Invalid)
		}
		if a.InstanceID != st.addr.InstanceID {
			st.prevInstance = st.addr.InstanceID
		}
		st.addr, st.addrAt = a, now
		l.watchPeer(st)
		if l.obs != nil {
			age := time.Duration(0)
			if !a.Lease.Renewed.IsZero() {
				age = now.Sub(a.Lease.Renewed)
			}
			l.obs.SetLease(a.AllocationID, a.Lease.Term, age)
		}
	}
	if len(l.cfg.AllocationIDs) == 0 {
		for id, st := range l.eips {
			if !seen[id] && !st.holding {
				l.log.Info("EIP no longer tagged for this group; forgetting it", "allocation_id", id)
				delete(l.eips, id)
			}
		}
	}
	if len(addrs) == 0 {
		l.log.Warn("no EIP found to manage; tag an EIP with eipd:group or pass --allocation-id")
	}
	l.refreshMembers(ctx, false)
}

// watchPeer resets the probe history when the EIP points at a new IP.
func (l *Loop) watchPeer(st *eipState) {
	ip := st.addr.PrivateIP
	if st.holding || ip == l.self.PrivateIP {
		ip = ""
	}
	if ip != st.peerIP {
		st.peerIP = ip
		st.peer = health.NewHysteresis(1, max(1, l.cfg.ProbeFall))
		st.peerReport, st.peerAt, st.peerSilent = health.PeerReport{}, time.Time{}, false
	}
}

// refreshMembers lists running group members when the list is needed and
// old: several EIPs need it for spreading, a standby whose holder looks
// dead needs it to see whether the holder still runs.
func (l *Loop) refreshMembers(ctx context.Context, force bool) {
	need := force || len(l.eips) > 1
	for _, st := range l.eips {
		if !st.holding && st.addr.Associated() && st.peer.Status() == health.Down {
			need = true
		}
	}
	maxAge := l.cfg.StandbyPoll
	if len(l.eips) > 1 {
		maxAge = l.cfg.RenewInterval
	}
	for _, st := range l.eips {
		if !st.holding && st.peer.Status() == health.Down {
			maxAge = min(maxAge, l.cfg.LeaseDuration)
		}
	}
	if !need || (!force && !l.membersAt.IsZero() && l.cfg.Now().Sub(l.membersAt) < maxAge) {
		return
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	ms, err := l.cloud.Members(cctx)
	if err != nil {
		l.log.Warn("cannot list group members", "error", err)
		return
	}
	l.members, l.membersAt = ms, l.cfg.Now()
	for _, m := range ms {
		if m.InstanceID == l.self.InstanceID {
			l.priority = m.Priority
		}
	}
}

// seekTargets lists ready members and keeps those that pass a probe, best
// first: fewest EIPs held, then priority, then instance ID.
func (l *Loop) seekTargets(ctx context.Context, st *eipState) {
	l.refreshMembers(ctx, true)
	st.targetsAt = l.cfg.Now()
	held := map[string]int{}
	for _, s := range l.eips {
		if s.addr.Associated() && s.addr.InstanceID != "" {
			held[s.addr.InstanceID]++
		}
	}
	var cands []Target
	for _, m := range l.members {
		if m.InstanceID == l.self.InstanceID || !m.Running() || m.EIPDState != eip.StateReady ||
			m.NetworkInterfaceID == "" || m.PrivateIP == "" {
			continue
		}
		cands = append(cands, Target{Instance: m, Held: held[m.InstanceID]})
	}
	slices.SortFunc(cands, func(a, b Target) int {
		if a.Held != b.Held {
			return a.Held - b.Held
		}
		if a.Priority != b.Priority {
			return b.Priority - a.Priority
		}
		switch {
		case a.InstanceID < b.InstanceID:
			return -1
		case a.InstanceID > b.InstanceID:
			return 1
		}
		return 0
	})
	const maxProbed = 5
	if len(cands) > maxProbed {
		cands = cands[:maxProbed]
	}
	ok := make([]bool, len(cands))
	var wg sync.WaitGroup
	for i := range cands {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, l.cfg.ProbeTimeout)
			defer cancel()
			if _, err := l.prober.Check(pctx, cands[i].PrivateIP); err != nil {
				l.log.Debug("handoff target failed its probe", "instance_id", cands[i].InstanceID, "error", err)
				return
			}
			ok[i] = true
		}()
	}
	wg.Wait()
	st.targets = st.targets[:0]
	for i, c := range cands {
		if ok[i] {
			st.targets = append(st.targets, c)
		}
	}
}

// probePeers probes, for every EIP this instance does not hold, the private
// IP the EIP points at.
func (l *Loop) probePeers(ctx context.Context) {
	var wg sync.WaitGroup
	for _, st := range l.eips {
		if st.holding || st.peerIP == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, l.cfg.ProbeTimeout)
			defer cancel()
			report, err := l.prober.Check(pctx, st.peerIP)
			if ctx.Err() != nil {
				return
			}
			st.peerResult(report, err, l.cfg.Now())
		}()
	}
	wg.Wait()
	for id, st := range l.eips {
		if silent := st.peerIP != "" && st.peerErr == nil && !st.peerReport.Answered; silent != st.peerSilent {
			st.peerSilent = silent
			if silent {
				l.log.Warn("the holder's proxy answers but its eipd /status does not; falling back to reading the API every standby poll (allow the status port between members)",
					"allocation_id", id, "peer_ip", st.peerIP, "standby_poll", l.cfg.StandbyPoll)
			}
		}
		if st.peerChanged {
			st.peerChanged = false
			up := st.peer.Status() != health.Down
			if up && st.peerWasDown {
				l.log.Info("holder reachable as healthy again", "allocation_id", id, "peer_ip", st.peerIP)
			} else if !up {
				l.log.Warn("holder not reachable as healthy", "allocation_id", id, "peer_ip", st.peerIP, "error", st.peerErr)
			}
			st.peerWasDown = !up
			if l.obs != nil {
				l.obs.SetPeerProbeUp(id, up)
			}
		}
	}
}

func (st *eipState) peerResult(report health.PeerReport, err error, now time.Time) {
	if _, changed := st.peer.Observe(err == nil); changed {
		st.peerChanged = true
	}
	st.peerErr = err
	st.peerReport, st.peerAt = report, now
	if err != nil {
		st.peerReport = health.PeerReport{}
	}
}

// metadataReport is one poll of instance metadata.
type metadataReport struct {
	notices   []eip.Notice
	publicIPs []string
	ipsKnown  bool
}

// watchMetadata polls lifecycle notices and the primary ENI's public IPs
// every LifecyclePoll and reports them to the loop.
func (l *Loop) watchMetadata(ctx context.Context, out chan<- metadataReport) {
	t := time.NewTicker(l.cfg.LifecyclePoll)
	defer t.Stop()
	for {
		var r metadataReport
		cctx, cancel := context.WithTimeout(ctx, l.cfg.LifecyclePoll)
		notices, err := l.meta.Notices(cctx)
		if err != nil && ctx.Err() == nil {
			l.log.Debug("cannot read lifecycle notices", "error", err)
		}
		r.notices = notices
		ips, err := l.meta.PublicIPs(cctx)
		cancel()
		if err == nil {
			r.publicIPs, r.ipsKnown = ips, true
		} else if ctx.Err() == nil {
			l.log.Debug("cannot read own public IPs", "error", err)
		}
		select {
		case out <- r:
		case <-ctx.Done():
			return
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// applyMetadata turns notices into draining and notices an EIP that
// appeared on this instance (a handoff to us) so it is read at once.
func (l *Loop) applyMetadata(r metadataReport) {
	for _, n := range r.notices {
		if l.notices[n.Kind] {
			continue
		}
		l.notices[n.Kind] = true
		if l.obs != nil {
			l.obs.LifecycleNotice(string(n.Kind))
		}
		if n.Kind == eip.NoticeRebalance {
			// A rebalance recommendation is early and not a stop: stay,
			// but stop being offered as a handoff target.
			l.log.Info("rebalance recommendation received", "detail", n.Detail)
			continue
		}
		l.log.Warn("lifecycle notice: draining", "kind", n.Kind, "detail", n.Detail, "time", n.Time)
		if l.drain == "" || l.drain == ReasonHandoffManual {
			l.drain = ReasonHandoffDraining
		}
	}
	if !r.ipsKnown {
		return
	}
	for _, st := range l.eips {
		if !st.holding && st.addr.PublicIP != "" && slices.Contains(r.publicIPs, st.addr.PublicIP) {
			l.log.Debug("an EIP appeared on this instance; reading addresses", "allocation_id", st.addr.AllocationID)
			l.refreshNow = true
		}
	}
}

// ownState is the eipd:state this instance should carry, or "" when not
// yet known.
func (l *Loop) ownState() string {
	switch {
	case l.drain != "" && l.drain != ReasonHandoffManual:
		return eip.StateDraining
	case l.notices[eip.NoticeRebalance]:
		return eip.StateDraining
	}
	switch l.health.Status() {
	case health.Up:
		return eip.StateReady
	case health.Down:
		return eip.StateUnhealthy
	}
	return ""
}

// writeStateTag writes eipd:state on change, at most once per renew
// interval.
func (l *Loop) writeStateTag(ctx context.Context) {
	want := l.ownState()
	now := l.cfg.Now()
	if want == "" || want == l.stateTag || (!l.stateTagAt.IsZero() && now.Sub(l.stateTagAt) < l.cfg.RenewInterval && want != eip.StateDraining) {
		return
	}
	l.stateTagAt = now
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	if err := l.cloud.SetState(cctx, l.self.InstanceID, want); err != nil {
		l.log.Warn("cannot write own eipd:state", "state", want, "error", err)
		return
	}
	l.log.Info("own state", "state", want)
	l.stateTag = want
}

func (l *Loop) act(ctx context.Context, st *eipState, d Decision) {
	id := st.addr.AllocationID
	if d.Eligible {
		if st.rankSince.IsZero() {
			st.rankSince = l.cfg.Now()
		}
	} else {
		st.rankSince = time.Time{}
	}
	if st.blocked != d.Blocked {
		st.blocked = d.Blocked
		if d.Blocked {
			l.log.Warn("holder wants to hand off but no member is ready; keeping the EIP", "allocation_id", id, "why", d.Why)
		}
		if l.obs != nil {
			l.obs.SetHandoffBlocked(id, d.Blocked)
		}
	}
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	log := l.log.With("allocation_id", id, "public_ip", st.addr.PublicIP)
	if l.cfg.DryRun && (d.Action == Claim || d.Action == Handoff) {
		l.dryRunMove(cctx, st, d, log)
		return
	}
	switch d.Action {
	case Wait, Hold:
	case Renew:
		st.renewTried = l.cfg.Now()
		if err := l.cloud.Renew(cctx, id, d.Lease); err != nil {
			log.Warn("lease renewal failed; still holding", "term", d.Lease.Term, "error", err)
			return
		}
		st.lastRenew = d.Lease.Renewed
		log.Trace("lease renewed", "term", d.Lease.Term)
	case Adopt:
		st.renewTried = l.cfg.Now()
		if err := l.cloud.Renew(cctx, id, d.Lease); err != nil {
			log.Warn("cannot write the lease of an EIP found on this instance; will retry", "term", d.Lease.Term, "error", err)
			return
		}
		l.becomeHolder(st, d.Lease, d.Lease.Renewed)
		log.Info("holding the EIP found on this instance", "term", d.Lease.Term, "association_id", st.addr.AssociationID)
		if d.Lease.Reason != "" && d.Lease.Decided.After(l.started) {
			dur := max(0, st.addr.Lease.Renewed.Sub(d.Lease.Decided))
			from := st.prevInstance
			if from == l.self.InstanceID {
				from = ""
			}
			l.recordFailover(st, d.Lease.Reason, from, dur)
		}
	case Claim:
		log.Info("claiming the EIP", "why", d.Why, "term", d.Lease.Term, "association_id", st.addr.AssociationID)
		assoc, err := l.cloud.Claim(cctx, st.addr, l.self, d.Lease)
		st.rankSince = time.Time{}
		l.refreshNow = true
		if err != nil && assoc != "" {
			// Associated, but the lease was not written: we hold the EIP
			// and the next renewal writes the lease.
			log.Warn("claimed the EIP but could not write the lease; renewing soon", "association_id", assoc, "error", err)
			err = nil
		}
		if err != nil {
			switch {
			case errors.Is(err, eip.ErrAlreadyAssociated), errors.Is(err, eip.ErrStaleAssociation):
				log.Info("another member claimed the EIP first; staying standby", "error", err)
			default:
				log.Warn("claim failed; staying standby", "error", err)
			}
			return
		}
		from := st.addr.Lease.Holder
		st.addr.AssociationID, st.addr.NetworkInterfaceID, st.addr.PrivateIP, st.addr.InstanceID =
			assoc, l.self.NetworkInterfaceID, l.self.PrivateIP, l.self.InstanceID
		st.addr.Lease = d.Lease
		l.becomeHolder(st, d.Lease, l.cfg.Now())
		l.recordFailover(st, d.Reason, from, l.cfg.Now().Sub(d.Lease.Decided))
		log.Info("now holding the EIP", "term", d.Lease.Term, "association_id", assoc)
	case Handoff:
		log.Info("handing off the EIP", "reason", d.Reason, "to", d.Target.InstanceID, "term", d.Lease.Term)
		assoc, err := l.cloud.Handoff(cctx, st.addr, d.Target.Instance, d.Lease)
		st.targetsAt = time.Time{}
		if err != nil && assoc != "" {
			// The EIP moved but the lease names us still; the target
			// adopts it with a new term when it reads the address.
			log.Warn("handed off the EIP but could not write the lease", "association_id", assoc, "error", err)
			err = nil
		}
		if err != nil {
			log.Warn("handoff failed; still holding", "to", d.Target.InstanceID, "error", err)
			return
		}
		st.holding = false
		st.addr.AssociationID, st.addr.NetworkInterfaceID, st.addr.PrivateIP, st.addr.InstanceID =
			assoc, d.Target.NetworkInterfaceID, d.Target.PrivateIP, d.Target.InstanceID
		st.addr.Lease = d.Lease
		st.addrAt = l.cfg.Now()
		l.watchPeer(st)
		st.blocked = false
		st.last = &FailoverRecord{Time: l.cfg.Now(), Reason: d.Reason, From: l.self.InstanceID, To: d.Target.InstanceID,
			DurationSeconds: l.cfg.Now().Sub(d.Lease.Decided).Seconds()}
		if l.obs != nil {
			l.obs.SetHolder(id, false)
			l.obs.SetHandoffBlocked(id, false)
		}
		log.Info("handed off the EIP", "to", d.Target.InstanceID, "term", d.Lease.Term, "association_id", assoc)
	case StepDown:
		log.Info("stepping down", "why", d.Why, "term", st.term)
		st.holding = false
		l.watchPeer(st)
		if l.obs != nil {
			l.obs.SetHolder(id, false)
		}
	}
}

func (l *Loop) becomeHolder(st *eipState, lease eip.Lease, renewed time.Time) {
	st.holding = true
	st.term = lease.Term
	st.holderSince = l.cfg.Now()
	st.lastRenew = renewed
	st.targets, st.targetsAt = nil, time.Time{}
	l.watchPeer(st)
	if l.obs != nil {
		l.obs.SetHolder(st.addr.AllocationID, true)
		l.obs.SetLease(st.addr.AllocationID, lease.Term, 0)
	}
}

func (l *Loop) recordFailover(st *eipState, reason, from string, d time.Duration) {
	st.last = &FailoverRecord{Time: l.cfg.Now(), Reason: reason, From: from, To: l.self.InstanceID, DurationSeconds: d.Seconds()}
	if l.obs != nil {
		l.obs.Failover(st.addr.AllocationID, reason, d)
	}
}

// dryRunMove sends the move with DryRun=true (proving the permissions) and
// logs what would have happened, without changing any state.
func (l *Loop) dryRunMove(ctx context.Context, st *eipState, d Decision, log hclog.Logger) {
	now := l.cfg.Now()
	if now.Before(st.dryRunQuiet) {
		return
	}
	st.dryRunQuiet = now.Add(l.cfg.HolderPoll)
	st.rankSince = time.Time{}
	var err error
	if d.Action == Claim {
		_, err = l.cloud.Claim(ctx, st.addr, l.self, d.Lease)
	} else {
		_, err = l.cloud.Handoff(ctx, st.addr, d.Target.Instance, d.Lease)
	}
	to := l.self.InstanceID
	if d.Target != nil {
		to = d.Target.InstanceID
	}
	if err != nil {
		log.Warn("dry-run: the move would fail", "action", d.Action, "to", to, "reason", d.Reason, "error", err)
		return
	}
	log.Info("dry-run: would move the EIP", "action", d.Action, "to", to, "reason", d.Reason, "why", d.Why, "term", d.Lease.Term)
}
