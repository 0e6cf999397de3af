package leader

import (
	"context"
	"errors"
	"net"
	"slices"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// elect runs the election for a member that does not coordinate (Elect).
func (l *Loop) elect(now time.Time) {
	if l.co != nil {
		return
	}
	var until time.Time
	if p := l.peers[l.follow.ID]; p != nil && p.ok && p.status != nil && p.status.IsCoordinator &&
		p.status.Epoch == l.follow.Epoch && p.status.ValidForSeconds > 0 {
		until = p.at.Add(seconds(p.status.ValidForSeconds))
	}
	if a := l.accepted.Load(); a != nil && *a == l.follow {
		// The coordinator this member follows probes it: it is alive and
		// acts (it stops probing as coordinator when its deadline
		// passes), even if this member cannot reach it back.
		until = maxTime(until, time.Unix(0, l.heard.Load()).Add(time.Duration(l.cfg.ProbeFall)*l.cfg.ProbeInterval))
	}
	d := Elect(l.cfg.Timing, ElectObservation{
		Now: now, Wall: l.wall(), Self: l.self.InstanceID, Lease: l.lease, CoordinatorUntil: until,
		ReadAt: l.read.at, ReadTriedAt: l.read.triedAt, ReadError: l.read.failed,
		MembersKnown: !l.list.at.IsZero(), Unfit: l.unfit(now), Troubled: l.awsTrouble(now) != "",
		RankSince: l.rankSince, Rank: l.rankDelay(now), IdleSince: l.idleSince, IdleTroubled: l.idleTroubled,
		ClaimFailedAt: l.claimFailedAt,
	})
	switch {
	case d.Eligible && l.rankSince.IsZero():
		l.rankSince = now
	case !d.Eligible:
		l.rankSince = time.Time{}
	}
	if !l.list.inFlight && (l.list.at.IsZero() || (l.follow.ID != "" && l.ipOf(l.follow.ID) == "")) &&
		l.list.due(now, l.cfg.RenewInterval) {
		// Priorities rank claimants; and the coordinator must be found.
		l.listMembers(now, time.Time{})
	}
	switch d.Do {
	case ElectRead:
		l.readAddresses(now, time.Time{})
	case ElectClaim:
		l.claim(now)
	default:
		// A coordinator that probes this member but whose /status this
		// member cannot read (its status port blocked from here) gives
		// no word on the EIPs nor its lease's stamps: watch the lease in
		// the tags at the renew interval, as when it does not confirm
		// (released EIPs are forgotten that way too).
		if p := l.peers[l.follow.ID]; p != nil && p.status == nil && l.read.due(now, l.cfg.RenewInterval) {
			l.readAddresses(now, time.Time{})
		}
	}
}

// unfit says why this member may not coordinate now, or "".
func (l *Loop) unfit(now time.Time) string {
	switch {
	case l.stopping:
		return "stopping"
	case l.drain != "" && l.drain != ReasonHandoffManual:
		return "draining (" + l.drain + ")"
	case l.health.Status() != health.Up:
		return "own health is " + l.health.Status().String()
	case now.Before(l.unfitUntil):
		return "IAM refused its calls lately"
	}
	return ""
}

func (l *Loop) rankDelay(now time.Time) time.Duration {
	r := Rank{Self: l.self.InstanceID, DownRecently: l.own.downRecently(now), Epoch: l.lease.Lease.Epoch,
		Troubled: l.awsTrouble(now) != ""}
	for _, m := range l.members {
		r.BestPriority = max(r.BestPriority, m.Priority)
		if m.InstanceID == l.self.InstanceID {
			r.Priority = m.Priority
		}
	}
	for _, st := range l.eips {
		if st.role == RoleHolder || st.role == RoleUnverified {
			r.Holds++
		}
	}
	return RankDelay(l.cfg.Timing, r)
}

// claim writes the group lease naming this member with the next epoch.
// Safety never depends on it (EC2 tags have no compare-and-swap): two
// members that claim at once are sorted out by the order every member
// follows (follow.precedes), and every move is fenced on its own.
func (l *Loop) claim(now time.Time) {
	if l.claiming {
		return
	}
	ids := l.leaseIDs(nil)
	if len(ids) == 0 {
		return
	}
	epoch := l.maxEpoch() + 1
	lease := eip.GroupLease{Coordinator: l.self.InstanceID, Epoch: epoch, Renewed: l.leaseStamp()}
	l.claiming = true
	l.log.Info("claiming the coordinator role", "epoch", epoch, "why", "no coordinator confirms")
	l.exec.start(op{name: "claim", mutates: true, timeout: l.renewTimeout(), run: func(ctx context.Context) func() {
		err := l.cloud.WriteLease(ctx, ids, lease)
		return func() { l.onClaim(now, lease, err) }
	}})
}

func (l *Loop) onClaim(started time.Time, lease eip.GroupLease, err error) {
	l.claiming = false
	if err != nil {
		l.troubled(err)
		l.log.Warn("could not claim the coordinator role", "epoch", lease.Epoch, "error", err)
		if errors.Is(err, eip.ErrNoAnswer) {
			// It may have landed: a read showing it says so.
			l.claimDoubt = &claimDoubt{lease: lease, started: started}
		}
		if errors.Is(err, eip.ErrNotFound) {
			// An EIP was released: claim on the others (a read that
			// lags would list it again), as a renewal does.
			for _, id := range eip.Gone(err) {
				if st := l.eips[id]; st != nil {
					st.missing, st.goneAt = max(st.missing, 1), l.now()
				}
			}
		}
		l.claimFailedAt = started
		l.read.wanted = true
		return
	}
	l.won(started, lease)
}

// claimDoubt is a claim whose answer never came: if a read shows its lease,
// it landed, and this member coordinates from its start.
type claimDoubt struct {
	lease   eip.GroupLease
	started time.Time
}

// settleClaim takes in a read's copies of the lease after a claim whose
// answer was lost.
func (l *Loop) settleClaim(leases []eip.GroupLease) {
	d := l.claimDoubt
	if d == nil || l.co != nil {
		l.claimDoubt = nil
		return
	}
	for _, ls := range leases {
		if ls.Coordinator == d.lease.Coordinator && ls.Epoch == d.lease.Epoch && ls.Renewed.Equal(d.lease.Renewed) {
			l.claimDoubt = nil
			if l.now().Before(Trust(l.cfg.Timing, d.started)) {
				l.log.Info("a claim without answer landed", "epoch", d.lease.Epoch)
				l.won(d.started, d.lease)
			}
			return
		}
	}
	if l.now().Sub(d.started) > l.cfg.trustWindow() {
		l.claimDoubt = nil
	}
}

// won makes this member coordinator after a claim that landed.
func (l *Loop) won(started time.Time, lease eip.GroupLease) {
	f := follow{ID: l.self.InstanceID, Epoch: lease.Epoch}
	if !f.precedes(l.follow) && l.follow != f {
		l.log.Info("another coordinator came first while claiming; not coordinating", "coordinator", l.follow.ID, "epoch", l.follow.Epoch)
		return
	}
	l.followBetter(f, "its own claim")
	l.lease.see(lease, started)
	l.becomeCoordinator(started, lease.Epoch)
}

// leaseIDs are the EIPs the group lease is written on: every EIP the last
// read listed (a released one would fail the whole CreateTags), but those
// in except.
func (l *Loop) leaseIDs(except map[string]bool) []string {
	var ids []string
	for _, id := range l.sortedIDs() {
		if st := l.eips[id]; !st.readAt.IsZero() && st.missing == 0 && !except[id] {
			ids = append(ids, id)
		}
	}
	return ids
}

// maxEpoch is the highest epoch this member has seen anywhere: the lease it
// follows and the terms of the EIPs' records, so that a new coordinator's
// terms are above every term written before (§2).
// plausibleEpoch: an epoch claimed on the status port (a coordinator's
// probe, a member's /status) is at most epochSlack beyond the highest this
// member knows. The port is unauthenticated: a forged claim may force an
// election, but cannot push the epoch so close to the largest int64 that
// no claim can follow it (a claim takes the highest epoch seen, plus one).
func (l *Loop) plausibleEpoch(epoch int64) bool {
	return epoch > 0 && epoch <= l.knownEpoch.Load()+epochSlack
}

// epochSlack: how far a claim on the status port may run ahead of what
// this member knows. Generous (a member cut off from the API learns
// epochs only this way), yet it takes billions of billions of forged
// requests to run the epoch out.
const epochSlack = 1000

func (l *Loop) maxEpoch() int64 {
	e := max(l.follow.Epoch, l.lease.Lease.Epoch)
	for _, st := range l.eips {
		e = max(e, st.addr.Lease.Epoch, st.addr.Record.Term.Epoch)
	}
	return e
}

func (l *Loop) renewTimeout() time.Duration {
	return min(l.cfg.CallTimeout, l.cfg.RenewInterval*3/4)
}

// ipOf is the private IP of a member, from the member list or, failing
// that, the coordinator's own probes or its member list.
func (l *Loop) ipOf(id string) string {
	if m := l.member(id); m != nil {
		return m.PrivateIP
	}
	if ip, ok := l.coordIPs.Load(id); ok {
		return ip.(string)
	}
	if p := l.peers[l.follow.ID]; p != nil && p.status != nil {
		for _, m := range p.status.Members {
			if m.InstanceID == id {
				return m.PrivateIP
			}
		}
	}
	return ""
}

// probeCoordinator probes the coordinator this member follows, every probe
// interval: its /status confirms its lease and says where each EIP is.
func (l *Loop) probeCoordinator(now time.Time) {
	if l.follow.ID == "" || l.follow.ID == l.self.InstanceID {
		return
	}
	p := l.peer(l.follow.ID, l.ipOf(l.follow.ID))
	for id := range l.peers {
		if id != l.follow.ID {
			delete(l.peers, id) // a member probes only its coordinator
		}
	}
	if l.probeDue(p, now) {
		l.probe(p, now)
	}
}

// hearCoordinator takes in the /status of the coordinator this member
// follows, from a probe started at started.
func (l *Loop) hearCoordinator(started time.Time, s *Status) {
	if !s.IsCoordinator || s.Epoch != l.follow.Epoch || s.ValidForSeconds <= 0 {
		if l.idleSince.IsZero() {
			l.idleSince = started
		}
		l.idleTroubled = s.AWSTrouble != ""
		// An answer that is not taken in: the coordinator that gave it may
		// still count the ask as this member letting go (§1).
		l.dropWordsOf(s.InstanceID, l.now())
		return
	}
	l.idleSince, l.idleTroubled = time.Time{}, false
	valid := seconds(s.ValidForSeconds)
	if s.InstanceID == l.handedTo {
		l.handedTo = "" // it took the role
	}
	l.lease.see(eip.GroupLease{Coordinator: s.InstanceID, Epoch: s.Epoch, Renewed: s.LeaseRenewed}, started)
	listed := map[string]bool{}
	for i := range s.EIPs {
		e := s.EIPs[i]
		if l.forgotten[e.AllocationID] || (len(l.cfg.AllocationIDs) > 0 && !slices.Contains(l.cfg.AllocationIDs, e.AllocationID)) {
			continue
		}
		listed[e.AllocationID] = true
		st := l.track(e.AllocationID)
		st.missing = 0
		until := valid
		at := started
		if e.ConfirmedAgoSeconds != nil {
			ago := seconds(*e.ConfirmedAgoSeconds)
			until = min(valid, l.cfg.trustWindow()-ago)
			at = started.Add(-ago)
		}
		st.word, st.wordUntil, st.wordAt, st.wordBy = &e, started.Add(until), at, s.InstanceID
		if st.addr.PublicIP == "" {
			st.addr.PublicIP = e.PublicIP
		}
		if e.Holder == l.self.InstanceID && !e.Moving {
			if st.namedAt.IsZero() {
				st.namedAt = started
			}
		} else {
			st.namedAt, st.disagreed = time.Time{}, false
		}
	}
	for id, st := range l.eips {
		if !listed[id] {
			// The coordinator does not list it: released, untagged, or
			// not one the group manages.
			st.word = nil
			if st.missing++; st.missing >= 2 {
				l.forget(id, st)
			}
		}
	}
}

// pollMetadata reads lifecycle notices every lifecycle poll, and this
// instance's ENI every probe interval while it may have an EIP (every
// lifecycle poll otherwise).
func (l *Loop) pollMetadata(now time.Time) {
	if l.meta == nil {
		return
	}
	if l.notices.due(now, l.cfg.LifecyclePoll) {
		l.notices.start(now)
		l.exec.start(op{name: "imds notices", timeout: l.cfg.LifecyclePoll, run: func(ctx context.Context) func() {
			ns, err := l.meta.Notices(ctx)
			return func() { l.onNotices(now, ns, err) }
		}})
	}
	every := l.cfg.LifecyclePoll
	if l.co != nil || l.mayHoldAny() {
		every = l.cfg.ProbeInterval
	}
	if l.eniCall.due(now, every) {
		l.eniCall.start(now)
		l.exec.start(op{name: "imds eni", timeout: l.cfg.ProbeTimeout, run: func(ctx context.Context) func() {
			as, err := l.meta.Associations(ctx)
			return func() { l.onENI(now, as, err) }
		}})
	}
}

func (l *Loop) mayHoldAny() bool {
	for _, st := range l.eips {
		if st.role == RoleHolder || st.role == RoleUnverified || !st.namedAt.IsZero() {
			return true
		}
	}
	return false
}

// eniView is this instance's ENI as instance metadata last listed it.
type eniView struct {
	at     time.Time // start of the read
	ok     bool
	assocs []eip.ENIAssociation
	since  listedSince
}

// listedSince maps each public IP that a member's instance metadata lists
// to when it was first seen listed, without a gap since: how long
// metadata has said so, for the rule that a dated read started a lease
// after that wins over it (§6).
type listedSince map[string]time.Time

// update takes in a listing seen at at.
func (ls listedSince) update(pubs []string, at time.Time) listedSince {
	next := listedSince{}
	for _, pub := range pubs {
		if pub == "" {
			continue
		}
		if t, ok := ls[pub]; ok {
			next[pub] = t
		} else {
			next[pub] = at
		}
	}
	return next
}

func (v eniView) lists(publicIP string) bool {
	return publicIP != "" && slices.Contains(eip.PublicIPsOf(v.assocs), publicIP)
}

func (l *Loop) onENI(started time.Time, as []eip.ENIAssociation, err error) {
	l.eniCall.done(started, err == nil)
	if err != nil {
		l.log.Debug("cannot read own ENI from instance metadata", "error", err)
		return
	}
	l.seeENI(started, as)
}

// seeENI takes in a read of this instance's ENI from instance metadata
// (the loop's own poll, or one made for /status?fresh=1).
func (l *Loop) seeENI(started time.Time, as []eip.ENIAssociation) {
	if started.Before(l.eni.at) {
		return
	}
	prev := l.eni
	l.eni = eniView{at: started, ok: true, assocs: as, since: prev.since.update(eip.PublicIPsOf(as), started)}
	l.mu.Lock()
	if l.seen.at.Before(started) {
		l.seen = ipsSeen{at: started, assocs: as}
	}
	l.mu.Unlock()
	for id, st := range l.eips {
		pub := st.addr.PublicIP
		here := l.eni.lists(pub)
		switch {
		case here:
			st.eniSeen = true
		case st.eniSeen && (st.leftAt.IsZero() || prev.lists(pub)):
			// Kept when metadata lists the EIP again: trailing
			// metadata may show an older arrival after a leave, and
			// only the coordinator's newer evidence outweighs that.
			st.leftAt = started
		}
		if here != prev.lists(pub) && prev.ok {
			// An EIP arrived or left: the coordinator learns it now
			// rather than at its next read.
			l.log.Info("instance metadata: an EIP arrived on or left this instance", "allocation_id", id, "public_ip", pub, "here", here)
			l.wantNotify("an EIP arrived or left")
			if l.co != nil {
				l.read.wanted = true
			}
		}
	}
}

func (l *Loop) onNotices(started time.Time, ns []eip.Notice, err error) {
	l.notices.done(started, err == nil)
	if err != nil {
		l.log.Debug("cannot read lifecycle notices", "error", err)
		return
	}
	for _, n := range ns {
		if l.noticed[n.Kind] {
			continue
		}
		l.noticed[n.Kind] = true
		if l.obs != nil {
			l.obs.LifecycleNotice(string(n.Kind))
		}
		if n.Kind == eip.NoticeRebalance {
			// Early and not a stop: stay, but take no new EIP.
			l.log.Info("rebalance recommendation received: this member takes no new EIP", "detail", n.Detail)
			l.wantNotify("rebalance recommendation")
			continue
		}
		l.log.Warn("lifecycle notice: draining", "kind", n.Kind, "detail", n.Detail, "notice_time", n.Time)
		if l.drain == "" || l.drain == ReasonHandoffManual {
			l.setDrain(ReasonHandoffDraining, "")
		}
	}
}

// setDrain starts (or ends, reason "") giving this member's EIPs away.
func (l *Loop) setDrain(reason, to string) {
	l.drain, l.handoffTo = reason, to
	l.wantNotify("draining: " + reason)
}

// wantNotify asks for a notice to the coordinator: this member's state
// changed, probe it now. A notice carries no authority: the coordinator
// only probes the member sooner and acts on what it says of itself.
func (l *Loop) wantNotify(why string) {
	l.notify.wanted = true
	l.log.Debug("notifying the coordinator", "why", why)
}

func (l *Loop) sendNotify(now time.Time) {
	if !l.notify.wanted || l.notify.inFlight || l.co != nil || l.follow.ID == "" || l.follow.ID == l.self.InstanceID {
		if l.co != nil {
			l.notify.wanted = false // the coordinator sees itself
		}
		return
	}
	ip := l.ipOf(l.follow.ID)
	if ip == "" {
		return
	}
	l.notify.start(now)
	l.exec.start(op{name: "notify", timeout: l.cfg.ProbeTimeout, run: func(ctx context.Context) func() {
		err := l.prober.Notify(ctx, ip, l.self.InstanceID)
		return func() {
			l.notify.done(now, err == nil)
			if err != nil {
				l.log.Debug("cannot notify the coordinator; it probes this member anyway", "error", err)
			}
		}
	}})
}

// writeHeartbeat writes eipd:heartbeat on this member's instance every
// renew interval while it cannot see a coordinator (or, coordinating a
// group of two, the other member): in a group of two the
// coordinator, unable to probe it, then knows it is alive and reaches the
// API, and moves nothing off it (§3); larger groups confirm a failed probe
// through another member instead and ignore it. It is written whatever
// the group's size, because a member that does not coordinate knows the
// member list only as it was when it last read it (a group that shrank
// to two would otherwise lose its witness).
func (l *Loop) writeHeartbeat(now time.Time) {
	if l.heartbeat.inFlight {
		return
	}
	var cut bool
	if l.co != nil {
		// A coordinator that cannot reach a member of a group of two may
		// be the one cut off, and that member may have claimed the role
		// too: its heartbeat keeps the other from moving EIPs off it.
		for _, p := range l.peers {
			cut = cut || (len(l.members) <= 2 && p.hist.Status() == health.Down)
		}
	} else {
		p := l.peers[l.follow.ID]
		cut = l.follow.ID == "" || p == nil || p.hist.Status() == health.Down
	}
	if !cut || !l.heartbeat.due(now, l.cfg.RenewInterval) {
		return
	}
	l.heartbeat.start(now)
	at := l.wall()
	l.exec.start(op{name: "heartbeat", mutates: true, timeout: l.renewTimeout(), run: func(ctx context.Context) func() {
		err := l.cloud.Heartbeat(ctx, l.self.InstanceID, at)
		return func() {
			l.heartbeat.done(now, err == nil)
			if err != nil {
				l.troubled(err)
				l.log.Warn("cannot write the heartbeat", "error", err)
			}
		}
	}})
}

// receive takes in what an HTTP handler passed to the loop.
func (l *Loop) receive(it inboxItem) {
	if it.accept != nil {
		l.followBetter(*it.accept, "a coordinator's probe")
		return
	}
	if l.co == nil || it.notice == "" {
		return
	}
	if m := l.member(it.notice); m != nil {
		p := l.peer(m.InstanceID, m.PrivateIP)
		p.fresh = true
		return
	}
	// A member this coordinator does not know yet: list the members, at
	// most every renew interval (a notice carries no authority), until a
	// list shows it or a lease has passed (a list may lag behind a launch).
	if _, ok := l.joining[it.notice]; !ok && len(l.joining) < maxJoining {
		l.joining[it.notice] = l.now()
	}
}

// maxJoining bounds the unknown instances that notices named (anyone can
// send one).
const maxJoining = 16

// listForJoining asks for a member list, at most every renew interval,
// while a notice named an instance the last list did not show.
func (l *Loop) listForJoining(now time.Time) {
	for id, at := range l.joining {
		if l.member(id) != nil || now.Sub(at) > 2*l.cfg.LeaseDuration {
			delete(l.joining, id)
		}
	}
	if len(l.joining) == 0 {
		return
	}
	if next := l.list.triedAt.Add(l.cfg.RenewInterval); l.listAt.IsZero() || next.Before(l.listAt) {
		l.listAt = maxTime(next, now)
	}
}

// Notice is a member's notice that its state changed (POST /notice on the
// status listener): the coordinator probes that member now. It never
// blocks and carries no authority.
func (l *Loop) Notice(from string) {
	select {
	case l.inbox <- inboxItem{notice: from}:
	default:
	}
}

// HeardFrom notes that the member from asked for this daemon's /status
// (from=): on the coordinator, it now holds the word about to be served.
// Safe for concurrent use; a member that lies about its ID only makes the
// coordinator wait longer before it names another holder.
func (l *Loop) HeardFrom(from string) {
	if validID(from) && l.askedN.Load() < maxAsked {
		if _, loaded := l.asked.Swap(from, l.now().UnixNano()); !loaded {
			l.askedN.Add(1)
		}
	}
}

// maxAsked bounds what HeardFrom and AcceptAt remember: a group has a few
// members, and anyone who reaches the status port can send IDs.
const maxAsked = 1024

// validID: what an EC2 instance ID looks like (i- and 8 or 17 hex digits).
func validID(id string) bool {
	if len(id) != 10 && len(id) != 19 || id[:2] != "i-" {
		return false
	}
	for _, c := range id[2:] {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// askedAt is when the member id last asked for this daemon's /status.
func (l *Loop) askedAt(id string) time.Time {
	if v, ok := l.asked.Load(id); ok {
		return time.Unix(0, v.(int64))
	}
	return time.Time{}
}

// Accept is a coordinator's probe (/status?coordinator=ID&epoch=N): the
// member follows it when it comes before the coordinator it follows (the
// highest epoch; at equal epochs the lowest instance ID), and reports the
// one it follows in the answer, so that of two coordinators that claimed
// at once, one learns at its next probe that it must step down. Safe for
// concurrent use.
func (l *Loop) Accept(id string, epoch int64) { l.AcceptAt(id, "", epoch) }

// AcceptAt is Accept with the coordinator's private IP, as its probe gave
// it (coordinator_ip=): a member that has not listed the group's instances
// (or cannot: its own AWS calls fail) can probe the coordinator back.
func (l *Loop) AcceptAt(id, ip string, epoch int64) {
	if ip != "" && net.ParseIP(ip) != nil && validID(id) && l.askedN.Load() < maxAsked {
		if _, loaded := l.coordIPs.Swap(id, ip); !loaded {
			l.askedN.Add(1)
		}
	}
	if !l.plausibleEpoch(epoch) {
		return
	}
	f := follow{ID: id, Epoch: epoch}
	for {
		cur := l.accepted.Load()
		if cur != nil && *cur == f {
			l.heard.Store(l.now().UnixNano())
			return
		}
		if cur != nil && !f.precedes(*cur) {
			return
		}
		if l.accepted.CompareAndSwap(cur, &f) {
			l.heard.Store(l.now().UnixNano())
			break
		}
	}
	select {
	case l.inbox <- inboxItem{accept: &f}:
	default:
	}
}
