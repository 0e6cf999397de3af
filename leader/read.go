package leader

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// eipState is the loop's memory of one EIP. Only the loop goroutine
// touches it.
type eipState struct {
	addr eip.Address
	// readAt is when the read that produced addr started; the loop also
	// overwrites addr after its own moves, without changing readAt.
	readAt time.Time
	// movedAt is this instance's own last move of the EIP (claim,
	// handoff, adoption, step-down): reads started before it are ignored
	// (§9.5).
	movedAt time.Time
	// deadAssoc are association IDs this instance replaced or saw
	// replaced: EC2 never reuses one, so a read showing one of them lags
	// behind a move and is ignored (the handoff fence of §9.5).
	deadAssoc []string
	// reserved is a private IP kept for this EIP for a lease from
	// reservedAt: the one it was last seen on before a read showed it
	// unassociated (its holder is about to re-associate it there), or one
	// an association of it was sent to with an unknown outcome (the
	// answer was lost: it may be there). Another EIP does not go there.
	reservedENI, reservedIP string
	reservedAt, reservedTil time.Time
	// writeQuiet: no lease write for this EIP before this time, after a
	// failed one (paced; a long pause when EC2 said it does not exist).
	writeQuiet time.Time
	// writeFailedAt: the last failed lease write; the next one waits for
	// a read started after it.
	writeFailedAt time.Time
	// deniedUntil: IAM refused the last move or lease write (deniedWhy);
	// none is tried before then (see denied).
	deniedUntil time.Time
	deniedStep  time.Duration
	deniedWhy   string
	// missing counts successive successful reads that did not list the
	// EIP (§9.8: two in a row and it is forgotten).
	missing int

	// stamp is the freshest eipd:renewed known (from reads or from the
	// holder's /status) and stampSeenAt when this instance first saw it.
	stamp       time.Time
	stampSeenAt time.Time

	// movedByDaemonAt is when the EIP last arrived here (claimed or
	// adopted): rebalancing moves the EIP that arrived longest ago first,
	// and none within a minute of arriving.
	movedByDaemonAt time.Time

	// Holder side. ownAssoc is the association this instance holds the
	// EIP by, kept apart from addr (which a lagging read may overwrite),
	// so that it is buried when the holding ends.
	ownAssoc    string
	ownSlot     string // the private IP of ours it is on
	holding     bool
	term        int64
	holderSince time.Time
	lastRenew   time.Time
	verifiedAt  time.Time
	gapSince    time.Time
	mayRenew    bool
	// steady: the last pass decided a plain Hold, renewals allowed,
	// nothing wanted (see tickInterval).
	steady bool
	// imdsLost: instance metadata stopped listing the EIP on our ENI (at
	// imdsLostAt). Reads right after may lag, so they do not override it;
	// imdsIgnore: reads a whole lease later still showed the EIP here, so
	// metadata is not believed again until it lists the EIP once more.
	imdsLost   bool
	imdsLostAt time.Time
	imdsSeenAt time.Time // metadata last listed it on our ENI
	imdsIgnore bool
	// letGo is the member this instance took the EIP from: until that
	// member stops calling itself holder (probed), is unreachable, or a
	// trust window has passed (letGoUntil), this instance does not call
	// itself holder either, so two never do at once (§9.1).
	letGo      string
	letGoUntil time.Time

	// Standby side: the probe of the private IP the EIP points at.
	peer             *health.Hysteresis
	peerIP           string
	peerChanged      bool
	peerWasDown      bool
	peerErr          error
	peerReport       health.PeerReport // from the last probe; zero when it failed
	peerSaid         health.PeerReport // what its eipd said in the last probe, even when the probe failed
	peerDownAt       time.Time         // when the probe of it last fell
	peerAt           time.Time         // when that probe completed
	peerLetGoAt      time.Time         // first probe of the current run that found it denying, not handing off; zero when the last did not
	peerEverAnswered bool              // its /status answered at least once
	peerSilent       bool              // silence logged
	rankSince        time.Time

	dryRunQuiet time.Time // dry run: no would-be move logged again before this
	targets     []Target
	targetsAt   time.Time
	blocked     bool
	slotsFull   bool // the last search found ready members, none with a free private IP
	noFreeSlot  bool
	why         string
	last        *FailoverRecord
}

func (st *eipState) isDead(assoc string) bool {
	return assoc != "" && slices.Contains(st.deadAssoc, assoc)
}

// bury records an association ID as gone. A handful is plenty: a lagging
// read can only show recent ones.
func (st *eipState) bury(assoc string) {
	if assoc == "" || st.isDead(assoc) {
		return
	}
	const keep = 8
	st.deadAssoc = append(st.deadAssoc, assoc)
	if len(st.deadAssoc) > keep {
		st.deadAssoc = st.deadAssoc[len(st.deadAssoc)-keep:]
	}
}

func (st *eipState) reserve(eni, ip string, at time.Time, d time.Duration) {
	st.reservedENI, st.reservedIP, st.reservedAt, st.reservedTil = eni, ip, at, at.Add(d)
}

// seeStamp records a renewal stamp if it is newer than any known (§9.7).
func (st *eipState) seeStamp(stamp, now time.Time) {
	if stamp.After(st.stamp) {
		st.stamp, st.stampSeenAt = stamp, now
	}
}

// readAddresses reads every managed EIP in one call, and applies what it
// shows unless it lags behind what this instance already knows.
func (l *Loop) readAddresses(ctx context.Context) {
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	started := l.cfg.Now()
	var addrs []eip.Address
	var err error
	if len(l.cfg.AllocationIDs) > 0 {
		var ids []string
		for _, id := range l.cfg.AllocationIDs {
			if !l.forgotten[id] {
				ids = append(ids, id)
			}
		}
		addrs, err = l.cloud.Addresses(cctx, ids)
	} else {
		addrs, err = l.cloud.GroupAddresses(cctx)
	}
	l.readTriedAt = started
	if err != nil {
		if !l.readError {
			l.log.Warn("cannot read addresses; AWS state unknown, nobody claims until it is known", "error", err)
		}
		l.readError = true
		l.passFailed = true
		for _, st := range l.eips {
			if st.holding && st.gapSince.IsZero() {
				st.gapSince = started
			}
		}
		return
	}
	if l.readError {
		l.log.Info("addresses readable again")
	}
	l.readError = false
	seen := map[string]bool{}
	for _, a := range addrs {
		if l.forgotten[a.AllocationID] {
			continue
		}
		seen[a.AllocationID] = true
		l.applyRead(l.track(a.AllocationID), a, started)
	}
	for id, st := range l.eips {
		if seen[id] {
			st.missing = 0
			continue
		}
		st.missing++
		if st.missing >= 2 {
			l.forget(id, st)
		}
	}
	if len(addrs) == 0 && len(l.eips) == 0 {
		l.log.Warn("no EIP found to manage; tag an EIP with eipd:group or pass --allocation-id")
	}
	l.refreshMembers(ctx, l.membersNow)
}

// applyRead takes one address from a read started at started.
func (l *Loop) applyRead(st *eipState, a eip.Address, started time.Time) {
	if st.isDead(a.AssociationID) {
		l.log.Debug("ignoring a read that lags behind a move", "allocation_id", a.AllocationID, "association_id", a.AssociationID)
		return
	}
	if !started.After(st.movedAt) {
		return // started before our own last move (§9.5)
	}
	// (Tags that do not parse are logged once by eip, with their values.)
	if st.addr.AssociationID != "" && a.AssociationID != st.addr.AssociationID && st.readAt.Before(started) {
		// The association we knew may be gone, or this read may lag
		// behind it: it is not buried here (only associations this
		// instance replaced itself are), but the slot is kept a moment.
		if !a.Associated() {
			// Its holder notices within a probe interval and takes it
			// back at once: a renew interval covers that.
			st.reserve(st.addr.NetworkInterfaceID, st.addr.PrivateIP, started, l.cfg.RenewInterval)
		}
	}
	if st.reservedIP != "" && started.Sub(st.reservedAt) >= l.cfg.RenewInterval &&
		!(a.NetworkInterfaceID == st.reservedENI && a.PrivateIP == st.reservedIP) {
		// A read well after an association of unknown outcome shows the
		// EIP elsewhere: the slot is not in doubt any more.
		st.reservedIP = ""
	}
	st.addr, st.readAt = a, started
	st.seeStamp(a.Lease.Renewed, started)
	if st.holding && a.Associated() && a.NetworkInterfaceID == l.self.NetworkInterfaceID && started.After(st.holderSince) {
		// AWS confirms the holding (§9.2): trust is renewed, a gap is
		// closed, and metadata that said otherwise lags.
		if started.After(st.verifiedAt) {
			st.verifiedAt = started
		}
		st.ownAssoc, st.ownSlot = a.AssociationID, a.PrivateIP
		if !st.gapSince.IsZero() && started.After(st.gapSince) {
			st.gapSince = time.Time{}
		}
		if st.imdsLost && started.Sub(st.imdsLostAt) >= l.cfg.LeaseDuration {
			// Metadata has said "gone" for a whole lease while every read
			// says "here": the metadata is wrong, not the reads (a read
			// lagging that long is past any bound we plan for).
			st.imdsLost, st.imdsIgnore = false, true
		}
	}
	l.watchPeer(st)
	if l.obs != nil && !st.holding {
		age := time.Duration(0)
		if !a.Lease.Renewed.IsZero() {
			age = started.Sub(a.Lease.Renewed)
		}
		l.obs.SetLease(a.AllocationID, a.Lease.Term, age)
	}
}

// forget drops an EIP that the API no longer lists (§9.8): released, or
// no longer tagged for the group.
func (l *Loop) forget(id string, st *eipState) {
	l.log.Warn("EIP no longer exists or is no longer tagged for this group; forgetting it",
		"allocation_id", id, "public_ip", st.addr.PublicIP, "was_holder", st.holding)
	if st.holding && l.obs != nil {
		l.obs.SetHolder(id, false)
	}
	if st.noFreeSlot && l.obs != nil {
		l.obs.SetNoFreePrivateIP(id, false)
	}
	delete(l.eips, id)
	if len(l.cfg.AllocationIDs) > 0 {
		// A configured ID that is gone stays out of every later read.
		l.forgotten[id] = true
	}
	if l.obs != nil {
		l.obs.Forgotten(id)
	}
}

// watchPeer picks the member to probe for an EIP this instance does not
// hold, and resets the probe history when that changes: the member the EIP
// points at, or, when the EIP was moved onto this instance while the lease
// still names another member, that member (is it letting go?).
func (l *Loop) watchPeer(st *eipState) {
	ip := ""
	a := st.addr
	switch {
	case st.holding && st.letGo != "":
		if m := l.member(st.letGo); m != nil {
			ip = m.PrivateIP
		}
	case st.holding || !a.Associated():
	case a.NetworkInterfaceID != l.self.NetworkInterfaceID:
		ip = a.PrivateIP
		// Peers are probed on their primary IP: their proxy and eipd
		// listen there, whichever of their private IPs the EIP sits on.
		if m := l.member(a.InstanceID); m != nil && m.PrivateIP != "" {
			ip = m.PrivateIP
		}
	case a.Lease.Holder != "" && a.Lease.Holder != l.self.InstanceID:
		if m := l.member(a.Lease.Holder); m != nil {
			ip = m.PrivateIP
		}
	}
	if ip != st.peerIP {
		if ip == "" && st.peerIP != "" && l.obs != nil {
			l.obs.ForgetPeerProbe(st.addr.AllocationID)
		}
		st.peerIP = ip
		st.peer = health.NewHysteresis(1, max(1, l.cfg.ProbeFall))
		st.peerReport, st.peerAt, st.peerSilent, st.peerEverAnswered = health.PeerReport{}, time.Time{}, false, false
		st.peerLetGoAt = time.Time{}
	}
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

// refreshMembers lists running group members when the list is needed and
// old: for the first election (priorities), for several EIPs (spreading,
// free private IPs), and when a holder looks dead (does it still run?).
func (l *Loop) refreshMembers(ctx context.Context, force bool) {
	need := force || l.membersAt.IsZero() || len(l.eips) > 1
	maxAge := l.cfg.StandbyPoll
	if len(l.eips) > 1 {
		maxAge = l.cfg.RenewInterval
	}
	for _, st := range l.eips {
		if !st.holding && st.addr.Associated() && st.peer.Status() == health.Down {
			need = true
			maxAge = min(maxAge, l.cfg.LeaseDuration)
		}
	}
	if !need || (!force && !l.membersAt.IsZero() && l.cfg.Now().Sub(l.membersAt) < maxAge) {
		return
	}
	l.membersNow = false
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	started := l.cfg.Now()
	ms, err := l.cloud.Members(cctx)
	if err != nil {
		l.passFailed = true
		if !errors.Is(err, context.Canceled) {
			l.log.Warn("cannot list group members", "error", err)
		}
		return
	}
	l.members, l.membersAt = ms, started
	for _, m := range ms {
		if m.InstanceID == l.self.InstanceID {
			l.priority = m.Priority
		}
	}
	for _, st := range l.eips {
		l.watchPeer(st)
	}
}

// bestPriority is the highest eipd:priority among running members that
// are ready or whose state is not known yet (a cold start), this one
// included.
func (l *Loop) bestPriority() int {
	best := l.priority
	for _, m := range l.members {
		if m.EIPDState == eip.StateReady || m.EIPDState == "" {
			best = max(best, m.Priority)
		}
	}
	return best
}

// holderStopped reports whether a member list, read after the address or
// after the probe of the holder fell, shows the instance the EIP points at
// as gone (members are running instances only): it will not renew again,
// so its lease protects nothing. (The re-read before a claim must not make
// that evidence look old.)
func (l *Loop) holderStopped(st *eipState) bool {
	a := st.addr
	if !a.Associated() || a.InstanceID == "" || l.membersAt.IsZero() ||
		(l.membersAt.Before(st.readAt) && (st.peerDownAt.IsZero() || l.membersAt.Before(st.peerDownAt))) {
		return false
	}
	return l.member(a.InstanceID) == nil
}
