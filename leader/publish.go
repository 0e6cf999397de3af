package leader

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// snapshot is what publish leaves for Status (HTTP goroutines).
type snapshot struct {
	Status
	at  time.Time         // monotonic
	ips map[string]string // members' private IPs, for ProbeMember
	// What Status re-judges when it is asked (the loop may be busy, and a
	// pass is up to a tick old): until when the coordinator may act, when
	// each EIP's association was confirmed, and until when each role
	// holder stands.
	validUntil  time.Time
	confirmed   map[string]time.Time
	holderUntil map[string]time.Time
}

// publish builds this member's view (loop goroutine only): the
// coordinator's word on every EIP, this member's role for each, and the
// metrics that follow them.
func (l *Loop) publish() {
	now := l.now()
	l.knownEpoch.Store(l.maxEpoch())
	h := l.health.Status()
	s := Status{
		Protocol: Protocol, InstanceID: l.self.InstanceID, AvailabilityZone: l.self.AvailabilityZone, PrivateIP: l.self.PrivateIP,
		Health: h.String(), Draining: l.drain, HandoffTo: l.handoffTo, NoNewEIPs: l.noticed[eip.NoticeRebalance],
		Coordinator: l.follow.ID, Epoch: l.follow.Epoch, IsCoordinator: l.co != nil,
		HeartbeatWritten: !l.heartbeat.at.IsZero() && now.Sub(l.heartbeat.at) < 2*l.cfg.RenewInterval,
		AWSTrouble:       l.awsTrouble(now),
	}
	if l.stopping && s.Draining == "" {
		s.Draining = ReasonHandoffShutdown
	}
	if h == health.Up && !l.own.upSince.IsZero() {
		s.UpForSeconds = now.Sub(l.own.upSince).Seconds()
	}
	if !l.own.downAt.IsZero() {
		s.DownAgoSeconds = secondsPtr(now.Sub(l.own.downAt))
	}
	if l.lease.Lease.Coordinator == l.follow.ID && l.lease.Lease.Epoch == l.follow.Epoch {
		s.LeaseRenewed = l.lease.Lease.Renewed
	}
	co := l.co
	acting := co != nil && co.accepted && now.Before(co.deadline) && co.handingTo == ""
	confirmed, holderUntil := map[string]time.Time{}, map[string]time.Time{}
	var validUntil time.Time
	if acting {
		validUntil = co.deadline
	}
	switch {
	case co != nil:
		s.AWSStateKnown = !l.read.at.IsZero() && !l.read.failed
		if acting {
			s.ValidForSeconds = co.deadline.Sub(now).Seconds()
		}
		s.Members = l.memberStatuses()
		if l.obs != nil {
			l.obs.SetLeaseAge(now.Sub(co.renew.at))
		}
	default:
		if p := l.peers[l.follow.ID]; p != nil && p.status != nil {
			s.AWSStateKnown = p.status.AWSStateKnown
		}
	}
	for id, p := range l.peers {
		if p.protocol != 0 {
			if s.PeerProtocols == nil {
				s.PeerProtocols = map[string]int{}
			}
			s.PeerProtocols[id] = p.protocol
		}
	}
	for _, id := range l.sortedIDs() {
		st := l.eips[id]
		var e EIPStatus
		var until, at time.Time
		if co != nil {
			e = l.word(st, now, acting)
			if acting {
				// Kept with the word: after a hand-over its trust runs
				// out on its own, unless the next coordinator's word
				// replaces it first.
				st.wordUntil, st.wordAt, st.wordBy = minTime(co.deadline, Trust(l.cfg.Timing, st.confirmedAt)), st.confirmedAt, l.self.InstanceID
			}
			w := e
			st.word = &w
			until, at = st.wordUntil, st.wordAt
		} else if st.word != nil {
			e = *st.word
			until, at = st.wordUntil, st.wordAt
		} else {
			e = EIPStatus{AllocationID: id, PublicIP: st.addr.PublicIP}
		}
		e.Role, e.Why = Role(RoleObservation{Now: now, Self: l.self.InstanceID, Health: h, Draining: s.Draining,
			Word: st.word, WordUntil: until, WordAt: at,
			OnENI: l.eni.ok && l.eni.lists(st.addr.PublicIP), ENIAt: l.eni.at, LeftAt: st.leftAt})
		if e.Role == RoleHolder {
			holderUntil[id] = until
		}
		if co != nil && e.ConfirmedAgoSeconds != nil {
			confirmed[id] = st.confirmedAt
		}
		if co == nil && st.word != nil && e.Role == RoleStandby && st.word.Why != "" {
			e.Why = "standby; coordinator: " + st.word.Why
		}
		l.noteRole(st, e, now)
		s.EIPs = append(s.EIPs, e)
	}
	if s.EIPs == nil {
		s.EIPs = []EIPStatus{}
	}
	ips := map[string]string{}
	for _, m := range l.members {
		ips[m.InstanceID] = m.PrivateIP
	}
	if p := l.peers[l.follow.ID]; p != nil && p.status != nil {
		for _, m := range p.status.Members {
			if _, ok := ips[m.InstanceID]; !ok {
				ips[m.InstanceID] = m.PrivateIP
			}
		}
	}
	l.mu.Lock()
	l.snap = snapshot{Status: s, at: now, ips: ips, validUntil: validUntil, confirmed: confirmed, holderUntil: holderUntil}
	l.mu.Unlock()
	if l.obs != nil {
		l.obs.SetCoordinator(acting)
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// word is the coordinator's word on one EIP: where it is, whom it names
// holder, what it is doing about it.
func (l *Loop) word(st *eipState, now time.Time, acting bool) EIPStatus {
	co := l.co
	a := st.addr
	id := a.AllocationID
	e := EIPStatus{AllocationID: id, PublicIP: a.PublicIP, AssociationID: a.AssociationID, AssociatedTo: a.InstanceID,
		PrivateIPSlot: a.PrivateIP, HandoffBlocked: st.note.Blocked, NoFreePrivateIP: st.note.NoFreeSlot,
		Denied: st.denied, Why: st.note.Why}
	if !a.Record.Term.IsZero() {
		e.Term = a.Record.Term.String()
	}
	if m := l.memberByENI(a.NetworkInterfaceID); m != nil && a.Associated() {
		e.AssociatedTo = m.InstanceID
		e.LastFailover = failoverFrom(a.Record, m.InstanceID)
	}
	mv := co.moves[id]
	e.Moving = (mv != nil && mv.mutating) || st.doubt != nil
	if a.Associated() && !st.confirmedAt.IsZero() {
		e.ConfirmedAgoSeconds = secondsPtr(now.Sub(st.confirmedAt))
	}
	if acting {
		e.Holder = l.nameHolder(st, now)
	}
	if e.Why == "" {
		switch {
		case e.Moving:
			e.Why = "moving"
		case mv != nil:
			e.Why = "about to move it (" + mv.Reason + ")"
		case e.Holder != "":
			e.Why = "on " + e.Holder
		case !a.Associated():
			e.Why = "not associated"
		default:
			e.Why = "waiting for the member it was on to let go"
		}
	}
	if st.note.Why != "" && st.note.Why != st.notedWhy {
		st.notedWhy = st.note.Why
		l.log.Warn("an EIP cannot move", "allocation_id", id, "why", st.note.Why)
	}
	if l.obs != nil {
		l.obs.SetHandoffBlocked(id, st.note.Blocked)
		l.obs.SetNoFreePrivateIP(id, st.note.NoFreeSlot)
	}
	return e
}

// nameHolder is the member the coordinator names holder of st: the member
// the EIP is on, confirmed within a trust window and not being moved. A
// new name is given only once no other member calls itself holder of the
// EIP (their /status, probed since the coordinator stopped naming anyone,
// or since it took over), or they cannot be reached, or a trust window has
// passed: so two members never both report holder (§1).
func (l *Loop) nameHolder(st *eipState, now time.Time) string {
	co := l.co
	id := st.addr.AllocationID
	target := ""
	a := st.addr
	if mv := co.moves[id]; a.Associated() && (mv == nil || !mv.mutating) && st.doubt == nil &&
		now.Before(Trust(l.cfg.Timing, st.confirmedAt)) {
		if m := l.memberByENI(a.NetworkInterfaceID); m != nil {
			target = m.InstanceID
		} else if a.NetworkInterfaceID == l.self.NetworkInterfaceID {
			target = l.self.InstanceID
		}
	}
	named, ok := co.named[id]
	if ok && target == named {
		delete(co.unnamed, id)
		return named
	}
	since, waiting := co.unnamed[id]
	if !waiting {
		// Nobody named since: either the name just changed, or this
		// coordinator never named anyone (its acceptance round probed
		// every member since it claimed).
		since = now
		if !ok {
			since = co.claimedAt
		}
		co.unnamed[id] = since
	}
	co.named[id] = ""
	if target == "" || !l.othersLetGo(id, target, since, now) {
		return ""
	}
	co.named[id] = target
	delete(co.unnamed, id)
	return target
}

// othersLetGo: no member but target calls itself holder of alloc, by
// what a probe started after since shows (its own /status, or what
// another member's probe of it saw), or a trust window has passed since
// (its trust in an older word runs out then). A member whose eipd answers
// nobody reports nothing; one cut off from this coordinator may still
// answer others. It asks for fresh probes of those it waits for.
func (l *Loop) othersLetGo(alloc, target string, since, now time.Time) bool {
	if now.Sub(since) >= l.cfg.trustWindow() {
		return true
	}
	ok := true
	for id, p := range l.peers {
		if id == target || l.lettingGo(p, alloc, since) {
			continue
		}
		ok = false
		if !p.call.inFlight {
			p.fresh = true
		}
	}
	return ok
}

// lettingGo: by evidence gathered after since, p does not call itself
// holder of alloc.
func (l *Loop) lettingGo(p *peer, alloc string, since time.Time) bool {
	if p.status != nil {
		e := p.status.eipOf(alloc)
		return p.at.After(since) && (e == nil || e.Role != RoleHolder)
	}
	// Another member's probe reached its eipd. One whose eipd did not
	// answer that probe may still hold the word (a blocked status port
	// answers nobody, yet the member reads this coordinator's /status):
	// it is judged as below.
	if p.viaAt.After(since) && p.viaEIPD {
		return !slices.Contains(p.viaHolding, alloc)
	}
	// Cut off from this coordinator (or its status port blocked), it may
	// still read this coordinator's word: the last time it asked for this
	// /status, and its trust in that word runs out a trust window later.
	// One that never asked never had a word to trust.
	// One that asked since this coordinator stopped naming anyone, and
	// since it acts (a pass later: the /status it got was built after, and
	// says it acts, so its word counts), read a word that names nobody,
	// and let go: once that answer reached it, or its probe gave up on it
	// (a probe timeout after the ask, and a pass to take it in; a member
	// whose probe of its coordinator goes unanswered drops the word that
	// named it holder). Until then it may still act on the older word. A
	// member whose loop stalls with the answer unread stops reporting
	// holder on its own a probe interval and a pass after its last
	// publish (Status): the wait covers that too.
	if a := l.askedAt(p.id); !l.co.actingAt.IsZero() && a.After(maxTime(since, l.co.actingAt).Add(2*l.cfg.Tick)) &&
		l.now().After(a.Add(max(l.cfg.ProbeTimeout, l.cfg.ProbeInterval+l.cfg.Tick)+2*l.cfg.Tick)) {
		return true
	}
	asked := maxTime(l.askedAt(p.id), p.answered)
	return asked.IsZero() || l.now().After(asked.Add(l.cfg.ProbeInterval+l.cfg.trustWindow()))
}

// noteRole counts what a member's role for an EIP says happened: a move to
// it (eipd_failovers_total, on the member the EIP moved to), and
// disagreements between instance metadata and the coordinator's reads.
func (l *Loop) noteRole(st *eipState, e EIPStatus, now time.Time) {
	prev := st.role
	st.role, st.why = e.Role, e.Why
	if prev != e.Role && (prev == RoleHolder || e.Role == RoleHolder) {
		l.log.Info("role", "allocation_id", e.AllocationID, "role", e.Role, "why", e.Why, "term", e.Term)
	}
	if l.obs == nil {
		return
	}
	l.obs.SetHolder(e.AllocationID, e.Role == RoleHolder)
	if t, ok := eip.ParseTerm(e.Term); ok {
		l.obs.SetTerm(e.AllocationID, t.Epoch, t.Seq)
	}
	if e.Role == RoleHolder && e.LastFailover != nil && e.LastFailover.To == l.self.InstanceID && st.counted != e.Term {
		st.counted = e.Term
		if prev != "" && prev != RoleHolder {
			f := e.LastFailover
			l.obs.Failover(e.AllocationID, f.Reason, time.Duration(f.DurationSeconds*float64(time.Second)))
		}
	}
	// The dated read wins over instance metadata, and says so (§6).
	onENI := l.eni.ok && l.eni.lists(st.addr.PublicIP)
	switch {
	case e.Role != RoleHolder:
	case st.disagreed:
	case !onENI && l.eni.ok && !st.namedAt.IsZero() && now.Sub(st.namedAt) > l.cfg.LeaseDuration:
		st.disagreed = true
		l.log.Warn("instance metadata does not list an EIP that the coordinator's reads show on this instance; trusting the reads",
			"allocation_id", e.AllocationID, "public_ip", st.addr.PublicIP)
		l.obs.MetadataDisagreement()
	}
}

// memberStatuses is the coordinator's view of the group, for /status.
func (l *Loop) memberStatuses() []MemberStatus {
	held := map[string]int{}
	for _, st := range l.eips {
		if m := l.memberByENI(st.addr.NetworkInterfaceID); m != nil && st.addr.Associated() {
			held[m.InstanceID]++
		}
	}
	var out []MemberStatus
	for _, m := range l.members {
		ms := MemberStatus{InstanceID: m.InstanceID, PrivateIP: m.PrivateIP, Held: held[m.InstanceID], Probe: "up"}
		if m.InstanceID == l.self.InstanceID {
			ms.Health = l.health.Status().String()
		} else if p := l.peers[m.InstanceID]; p != nil {
			ms.Probe = p.hist.Status().String()
			if p.status != nil {
				ms.Health = p.status.Health
			}
		} else {
			ms.Probe = health.Unknown.String()
		}
		out = append(out, ms)
	}
	return out
}

// Status returns the view at this moment; safe for concurrent use.
func (l *Loop) Status() Status {
	l.mu.Lock()
	snap := l.snap
	seen := l.seen
	l.mu.Unlock()
	s := snap.Status
	s.EIPs = slices.Clone(s.EIPs)
	now := l.now()
	// Trust runs out on time, whenever the view was built (§6).
	if !snap.validUntil.IsZero() {
		s.ValidForSeconds = max(0, snap.validUntil.Sub(now).Seconds())
	}
	stuck := now.Sub(snap.at) > l.cfg.ProbeInterval+l.cfg.Tick
	for i := range s.EIPs {
		e := &s.EIPs[i]
		if stuck && e.Role == RoleHolder {
			// The loop has not published for a while (stopped, starved):
			// its view may be out of date.
			e.Role, e.Why = RoleUnverified, "this daemon's view is out of date (its loop is not running)"
		}
		if at, ok := snap.confirmed[e.AllocationID]; ok {
			e.ConfirmedAgoSeconds = secondsPtr(now.Sub(at))
			if now.Sub(at) >= l.cfg.trustWindow() || s.ValidForSeconds == 0 {
				e.Holder = ""
			}
		}
		if until, ok := snap.holderUntil[e.AllocationID]; ok && !now.Before(until) {
			e.Role, e.Why = RoleUnverified, "the coordinator's confirmation ran out"
		}
	}
	if !seen.at.IsZero() && now.Sub(seen.at) <= l.cfg.LifecyclePoll+l.cfg.ProbeInterval {
		s.ENIPublicIPs = make(map[string]string, len(seen.assocs))
		for _, as := range seen.assocs {
			s.ENIPublicIPs[as.PrivateIP] = as.PublicIP
		}
		s.ENIAgeSeconds = secondsPtr(max(0, now.Sub(seen.at)))
	}
	if a := l.accepted.Load(); a != nil && a.precedes(follow{ID: s.Coordinator, Epoch: s.Epoch}) {
		// A coordinator's probe was accepted since the last pass.
		s.Coordinator, s.Epoch, s.IsCoordinator, s.ValidForSeconds = a.ID, a.Epoch, false, 0
	}
	return s
}

// ProbeMember probes another member of the group for the coordinator
// (/probe?instance=ID), which confirms this way that a member it cannot
// reach is unreachable from here too before it moves an EIP off it. Only
// members this daemon knows are probed, at their private IP. Safe for
// concurrent use.
// ok is false when id is not a member it knows (or is itself).
func (l *Loop) ProbeMember(ctx context.Context, id string) (a health.ProbeAnswer, ok bool) {
	l.mu.Lock()
	ip := l.snap.ips[id]
	l.mu.Unlock()
	a = health.ProbeAnswer{InstanceID: id}
	if ip == "" || id == l.self.InstanceID {
		return a, false
	}
	pctx, cancel := context.WithTimeout(ctx, l.cfg.ProbeTimeout)
	defer cancel()
	r, err := l.prober.Check(pctx, ip)
	if r.Answered {
		var st Status
		if json.Unmarshal(r.Status, &st) == nil && st.InstanceID == id && st.Protocol == Protocol {
			a.EIPDAnswered = true
			a.Holding = st.Holding()
		}
	}
	if err != nil {
		a.Error = err.Error()
		return a, true
	}
	a.Reachable = true
	return a, true
}

// StatusFresh is Status with this instance's ENI read from instance
// metadata first: the coordinator asks for it (/status?fresh=1) right
// before a move that concerns this member, so that it sees an EIP that
// landed or left a moment ago.
func (l *Loop) StatusFresh(ctx context.Context) Status {
	l.refreshSeen(ctx)
	return l.Status()
}

// freshEnough: a view of the ENI this young is not read again for a
// StatusFresh (a few requests at once cost one metadata read).
const freshEnough = 100 * time.Millisecond

func (l *Loop) refreshSeen(ctx context.Context) {
	if l.meta == nil || !l.seenRefresh.TryLock() {
		return
	}
	defer l.seenRefresh.Unlock()
	now := l.now()
	l.mu.Lock()
	at := l.seen.at
	l.mu.Unlock()
	if now.Sub(at) < freshEnough {
		return
	}
	mctx, cancel := context.WithTimeout(ctx, l.cfg.ProbeTimeout)
	defer cancel()
	as, err := l.meta.Associations(mctx)
	if err != nil {
		return
	}
	l.mu.Lock()
	if l.seen.at.Before(now) {
		l.seen = ipsSeen{at: now, assocs: as}
	}
	l.mu.Unlock()
}
