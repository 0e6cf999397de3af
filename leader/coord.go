package leader

import (
	"context"
	"errors"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// coordinator is the state of a member while it coordinates.
type coordinator struct {
	epoch     int64
	claimedAt time.Time // start of the claim's lease write (monotonic)
	// deadline: it acts only before it, and it bounds every call it makes:
	// Trust(start of its last confirmed renewal) (§6).
	deadline time.Time
	renew    callState
	// renewing: the EIPs a renewal under way covers; no move of them
	// starts its first write meanwhile (§9).
	renewing []string
	// failing counts its AWS calls that failed in a row (throttled, 5xx,
	// no answer); giveUp asks it to hand the role over (IAM refused it, or
	// its calls keep failing: a member whose calls go through coordinates
	// better).
	failing int
	giveUp  string
	// accepted: a probe of every member since the claim found none that
	// follows a coordinator before it; it moves nothing until then.
	accepted bool
	// actingAt: when it started to act (its /status says so from the
	// next pass on).
	actingAt time.Time
	moves    map[string]*move
	// named is the member it names holder of each EIP on /status; it
	// changes only once the previous one no longer calls itself holder.
	named      map[string]string
	unnamed    map[string]time.Time // when it stopped naming the previous holder
	handingTo  string
	dryRunNext map[string]time.Time
}

func (l *Loop) becomeCoordinator(claimedAt time.Time, epoch int64) {
	l.co = &coordinator{epoch: epoch, claimedAt: claimedAt, deadline: Trust(l.cfg.Timing, claimedAt),
		moves: map[string]*move{}, named: map[string]string{}, unnamed: map[string]time.Time{}, dryRunNext: map[string]time.Time{}}
	l.co.renew.at, l.co.renew.triedAt = claimedAt, claimedAt
	l.rankSince = time.Time{}
	l.log.Info("coordinating the group", "epoch", epoch)
	// A read and a member list made as coordinator come before any move:
	// the previous coordinator's last writes show in them.
	l.read.wanted, l.list.wanted = true, true
	for _, p := range l.peers {
		p.fresh = true
	}
}

// stepDown ends this member's coordination; calls under way finish but
// their results change nothing it coordinates.
func (l *Loop) stepDown(why string) {
	if l.co == nil {
		return
	}
	l.log.Warn("no longer coordinating", "epoch", l.co.epoch, "why", why)
	l.co = nil
	if l.obs != nil {
		// The coordinator's own gauges say 0 elsewhere.
		l.obs.SetCoordinator(false)
		l.obs.SetMembers(0, 0)
		l.obs.SetLeaseAge(0)
		for id := range l.eips {
			l.obs.SetHandoffBlocked(id, false)
			l.obs.SetNoFreePrivateIP(id, false)
		}
	}
}

// coordinate is the coordinator's part of a pass.
func (l *Loop) coordinate(now time.Time) {
	co := l.co
	if !now.Before(co.deadline) {
		l.stepDown("the group lease was not confirmed within lease − skew")
		return
	}
	if co.giveUp != "" && len(co.moves) == 0 {
		l.giveUp(now)
		return
	}
	l.renewLease(now)
	if !l.readAgainAt.IsZero() && !now.Before(l.readAgainAt) && !l.read.inFlight {
		l.readAgainAt, l.read.wanted = time.Time{}, true
	}
	if l.read.due(now, l.cfg.AddressPoll) || (l.read.failed && l.read.due(now, l.cfg.ProbeInterval)) {
		l.readAddresses(now, co.deadline)
	}
	l.listForJoining(now)
	if !l.listAt.IsZero() && !now.Before(l.listAt) && !l.list.inFlight {
		l.listAt, l.list.wanted = time.Time{}, true
	}
	if l.list.due(now, l.cfg.MemberPoll) || l.heartbeatCheckDue(now) {
		l.listMembers(now, co.deadline)
	}
	l.probeMembers(now)
	if !co.accepted {
		// Probes started a rank step after the claim: a member that
		// claimed at the same moment (its write in flight when this one's
		// first probes reached it) has made its claim known by then.
		co.accepted = now.Sub(co.claimedAt) > l.cfg.RankStep && l.roundDone(co.claimedAt.Add(l.cfg.RankStep))
		if !co.accepted {
			return
		}
		co.actingAt = now
		l.log.Info("every member answered or was tried since the claim; acting as coordinator", "epoch", co.epoch)
	}
	for _, m := range co.moves {
		l.advance(m, now)
	}
	if l.co != co || co.handingTo != "" || l.read.at.Before(co.claimedAt) || l.read.failed || l.list.at.IsZero() {
		return // AWS state unknown: nothing moves
	}
	l.confirmFalls(now)
	pl := Plan(l.view(now))
	for _, st := range l.eips {
		st.note = Note{}
	}
	for id, n := range pl.Notes {
		if st := l.eips[id]; st != nil {
			st.note = n
		}
	}
	for _, mv := range pl.Moves {
		l.startMove(mv, now)
	}
	if len(pl.Notes) > 0 {
		l.listForBlocked(now)
	} else {
		l.blockedSince = time.Time{}
	}
	l.maybeHandOver(now)
}

// listForBlocked asks for a member list while an EIP must move and no
// member can take it: a member launched since the last list may, and its
// notice may never have come (the coordinator's status port blocked, or
// the notice lost). Without it the coordinator would learn of it only at
// the next member poll (§3). The lists back off: a renew interval apart at
// first, then half the time blocked so far, up to the member poll, so
// that a lasting block (no free private IP, every proxy down) costs little.
func (l *Loop) listForBlocked(now time.Time) {
	if l.blockedSince.IsZero() {
		l.blockedSince = now
	}
	gap := min(max(l.cfg.RenewInterval, now.Sub(l.blockedSince)/2), l.cfg.MemberPoll)
	if next := l.list.triedAt.Add(gap); l.listAt.IsZero() || next.Before(l.listAt) {
		l.listAt = maxTime(next, now)
	}
}

// renewLease renews the group lease every renew interval (sooner after a
// failure), on its own call so that it never waits behind a read or a move
// (§9). It skips the EIPs being moved, so that a renewal never overlaps a
// move's record write of the same EIP.
func (l *Loop) renewLease(now time.Time) {
	co := l.co
	if co.renew.inFlight {
		return
	}
	every := l.cfg.RenewInterval
	if co.renew.failed {
		every = min(every, l.cfg.ProbeInterval)
	}
	if now.Sub(co.renew.triedAt) < every {
		return
	}
	busy := map[string]bool{}
	for id, m := range co.moves {
		if m.mutating {
			busy[id] = true
		}
	}
	ids := l.leaseIDs(busy)
	if len(ids) == 0 {
		return
	}
	lease := eip.GroupLease{Coordinator: l.self.InstanceID, Epoch: co.epoch, Renewed: l.leaseStamp()}
	co.renew.start(now)
	co.renewing = ids
	l.exec.start(op{name: "renew", mutates: true, timeout: l.renewTimeout(), deadline: co.deadline,
		run: func(ctx context.Context) func() {
			err := l.cloud.WriteLease(ctx, ids, lease)
			return func() { l.onRenew(co, now, lease, err) }
		}})
}

func (l *Loop) onRenew(co *coordinator, started time.Time, lease eip.GroupLease, err error) {
	co.renew.done(started, err == nil)
	co.renewing = nil
	if l.co != co {
		return
	}
	switch {
	case err == nil:
		if co.renew.failed {
			l.log.Info("group lease renewals succeed again")
		}
		l.callOK()
		co.deadline = maxTime(co.deadline, Trust(l.cfg.Timing, started))
		l.lease.see(lease, started)
		if l.obs != nil {
			l.obs.SetLeaseAge(0)
		}
		return
	case errors.Is(err, eip.ErrNotFound):
		// An EIP was released: renew on the others at once, and read.
		for _, id := range eip.Gone(err) {
			if st := l.eips[id]; st != nil {
				st.missing, st.goneAt = max(st.missing, 1), l.now()
			}
		}
		co.renew.triedAt = time.Time{}
		l.read.wanted = true
	case errors.Is(err, eip.ErrUnauthorized):
		co.giveUp = "IAM refused the renewal: " + err.Error()
	}
	l.troubled(err)
	l.log.Warn("group lease renewal failed", "epoch", co.epoch, "acts_until_s", co.deadline.Sub(l.now()).Seconds(), "error", err)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// probeMembers probes every running member each probe interval, and drops
// what it knew of instances that left the group.
func (l *Loop) probeMembers(now time.Time) {
	ids := map[string]bool{}
	for _, m := range l.members {
		if m.InstanceID == l.self.InstanceID {
			continue
		}
		ids[m.InstanceID] = true
		p := l.peer(m.InstanceID, m.PrivateIP)
		if l.probeDue(p, now) {
			l.probe(p, now)
		}
	}
	for id := range l.peers {
		if !ids[id] {
			delete(l.peers, id)
		}
	}
}

// roundDone reports whether every member was probed since `since` (or
// the probe timed out): none of them follows a coordinator before this
// one, or it would have stepped down already.
func (l *Loop) roundDone(since time.Time) bool {
	if l.list.at.IsZero() {
		return false
	}
	for _, m := range l.members {
		if m.InstanceID == l.self.InstanceID {
			continue
		}
		p := l.peers[m.InstanceID]
		if p == nil {
			return false
		}
		if p.at.Before(since) {
			if !p.call.inFlight {
				l.probe(p, l.now())
			}
			return false
		}
	}
	return true
}

// repairRecords rewrites records that do not match their association,
// once per read started after the last repair (so that a lagging read, or
// a hand-edited tag, costs one write per read, not one per pass), and steps
// down when a record's term comes from a later epoch.
func (l *Loop) repairRecords(started time.Time) {
	co := l.co
	if co == nil || !co.accepted {
		return
	}
	for _, id := range l.sortedIDs() {
		st := l.eips[id]
		if co.moves[id] != nil || st.doubt != nil || !st.addr.Associated() || st.readAt != started {
			continue
		}
		r := st.addr.Record
		if r.Term.Epoch > co.epoch {
			l.stepDown("the record of " + id + " carries a term of a later epoch (" + r.Term.String() + ")")
			return
		}
		m := l.memberByENI(st.addr.NetworkInterfaceID)
		if m == nil {
			continue // not on a member: Plan takes it back
		}
		// A term below the last one this coordinator wrote, by a read made
		// well after that write: a late write landed over it.
		lowered := r.Term.Less(st.wrote) && started.After(st.wroteAt.Add(l.cfg.AddressPoll))
		matches := r.Holder == m.InstanceID && len(r.Invalid) == 0 && !r.Term.IsZero()
		// The association this coordinator recorded, with an older record:
		// a read that soon after the write may mix the new association
		// with the old tags (EC2 gives no snapshot across them); it is
		// judged by a read made well after the write, as a lowered term is.
		mixed := st.wroteHolder == m.InstanceID && r.Term.Less(st.wrote) && !lowered
		if (matches && !lowered) || mixed || st.recording || !started.After(st.wroteAt) ||
			(!st.repaired.IsZero() && !started.After(st.repaired)) {
			// One record write at a time, and a repair only from a read
			// started after the last write returned: two in flight could
			// land in either order.
			continue
		}
		st.repaired = started
		rec := eip.Record{Holder: m.InstanceID, Term: l.nextTerm(st), Moved: l.wall(), From: r.Holder}
		why := "the EIP's record does not match its association; rewriting it"
		if matches {
			rec.Reason, rec.Decided, rec.Moved, rec.From = r.Reason, r.Decided, r.Moved, r.From
			why = "a late write lowered the EIP's term; writing it again"
		}
		l.log.Info(why, "allocation_id", id, "instance_id", m.InstanceID, "recorded_holder", r.Holder,
			"recorded_term", r.Term.String(), "term", rec.Term.String())
		l.writeRecord(st, rec, "repair")
	}
}

// nextTerm is the term of the next move of st: this coordinator's epoch,
// one past the sequence of the last record of that epoch (§2).
func (l *Loop) nextTerm(st *eipState) eip.Term {
	seq := st.seq
	if r := st.addr.Record.Term; r.Epoch == l.co.epoch {
		seq = max(seq, r.Seq)
	}
	st.seq = seq + 1
	return eip.Term{Epoch: l.co.epoch, Seq: st.seq}
}

func (l *Loop) writeRecord(st *eipState, rec eip.Record, why string) {
	co := l.co
	alloc := st.addr.AllocationID
	st.recording = true
	l.exec.start(op{name: "record " + why, mutates: true, deadline: co.deadline, run: func(ctx context.Context) func() {
		err := l.cloud.WriteRecord(ctx, alloc, rec)
		return func() {
			if st := l.eips[alloc]; st != nil {
				st.recording = false
				st.wroteAt = l.now()
			}
			if err != nil {
				l.troubled(err)
				if errors.Is(err, eip.ErrUnauthorized) && l.co == co {
					co.giveUp = "IAM refused a record write: " + err.Error()
				}
				l.log.Warn("cannot write the EIP's record; it is rewritten after the next read", "allocation_id", alloc, "error", err)
				return
			}
			if st := l.eips[alloc]; st != nil {
				st.wrote, st.wroteHolder, st.wroteAt = rec.Term, rec.Holder, l.now()
				if st.addr.Record.Term.Less(rec.Term) {
					st.addr.Record = rec
				}
			}
		}
	}})
}

// heartbeatCheckDue: in a group of two, a member that cannot be probed is
// lost only if it wrote no heartbeat after it could have noticed (§3); the
// member list, read after that, says.
func (l *Loop) heartbeatCheckDue(now time.Time) bool {
	if len(l.members) != 2 || l.list.inFlight {
		return false
	}
	for _, p := range l.peers {
		if p.hist.Status() == health.Down && !p.answering() {
			wait := l.heartbeatDue(p)
			if now.After(wait) && l.list.at.Before(wait) {
				return true
			}
			if now.Sub(l.list.triedAt) >= l.cfg.RenewInterval {
				return true
			}
		}
	}
	return false
}

// heartbeatWait: a member cut off from the coordinator notices within about
// a probe interval of the coordinator noticing it (both probe each other
// every interval), and writes its heartbeat at once.
func (l *Loop) heartbeatWait() time.Duration { return 2 * l.cfg.ProbeInterval }

// heartbeatDue is when a member list, started then or later, says whether
// p, whose probe fell, wrote a heartbeat since: two probe intervals after
// the fall (heartbeatWait), and two renew intervals after the list that
// showed the heartbeat it is compared with. A member that already wrote
// heartbeats (it saw no coordinator) writes the next one only a renew
// interval after the last, each within a renewal timeout: the list taken
// at the fall may already show the one written just after the fall, and
// two probe intervals later the next one has not come yet (model seed
// 2132).
func (l *Loop) heartbeatDue(p *peer) time.Time {
	due := p.downAt.Add(l.heartbeatWait())
	if !p.hbListAt.IsZero() {
		due = maxTime(due, p.hbListAt.Add(2*l.cfg.RenewInterval))
	}
	return due
}

// confirmFalls asks every other member that answers to probe each member
// whose probe fell (groups of three or more): only a failure that none of
// them can see past counts (fallConfirmed).
func (l *Loop) confirmFalls(now time.Time) {
	for _, p := range l.peers {
		if p.hist.Status() != health.Down || p.answering() || len(l.members) < 3 {
			continue
		}
		for _, q := range l.peers {
			if q == p || !q.answering() {
				continue
			}
			vp := p.via[q.id]
			if vp == nil {
				vp = &viaProbe{}
				p.via[q.id] = vp
			}
			if vp.call.inFlight || (vp.call.triedAt.After(p.downAt) && now.Sub(vp.call.triedAt) < l.cfg.ProbeInterval) {
				continue
			}
			vp.call.start(now)
			target, ip, viaID := p.id, q.ip, q.id
			l.exec.start(op{name: "probe " + target + " via " + viaID, timeout: 2 * l.cfg.ProbeTimeout,
				run: func(ctx context.Context) func() {
					a, answered, err := l.prober.CheckVia(ctx, ip, target)
					return func() {
						vp.call.done(now, answered)
						if !answered {
							l.log.Debug("cannot probe a member through another", "instance_id", target, "via", viaID, "error", err)
							return
						}
						vp.at, vp.reached = now, a.Reachable
						p.viaAt, p.viaEIPD, p.viaHolding = now, a.EIPDAnswered, a.Holding
						if a.Reachable {
							l.log.Info("this coordinator cannot reach a member that another member reaches; it stays",
								"instance_id", target, "reached_by", viaID)
						}
					}
				}})
		}
	}
}

// giveUp hands the role to the best fit member, or simply stops renewing
// when it cannot (the others then claim it once the lease is stale).
func (l *Loop) giveUp(now time.Time) {
	why := l.co.giveUp
	l.unfitUntil = now.Add(deniedPause)
	if to := l.successor(false); to != "" && l.co.handingTo == "" {
		l.log.Warn("giving the coordinator role up", "why", why, "to", to)
		l.handOver(to, now)
		return
	}
	if l.co.handingTo == "" {
		l.stepDown("giving the role up: " + why)
	}
}

// maybeHandOver: a coordinator that holds an EIP while a fit member holds
// none hands the role over, so that holding and coordinating fail
// independently; a leaving one (stopping, draining) once its EIPs are gone.
func (l *Loop) maybeHandOver(now time.Time) {
	co := l.co
	if co == nil || co.handingTo != "" || len(co.moves) > 0 {
		return
	}
	holds := 0
	for _, st := range l.eips {
		if st.addr.Associated() && st.addr.NetworkInterfaceID == l.self.NetworkInterfaceID {
			holds++
		}
	}
	switch {
	case (l.stopping || (l.drain != "" && l.drain != ReasonHandoffManual)) && holds == 0:
		// Leaving (stopping, a lifecycle notice): the role goes too.
		if to := l.successor(false); to != "" {
			l.handOver(to, now)
		}
	case holds > 0 && !l.stopping && now.Sub(co.claimedAt) >= l.cfg.LeaseDuration:
		// Not urgent: a coordinator that just took over settles first.
		if to := l.successor(true); to != "" {
			l.handOver(to, now)
		}
	}
}

// successor is the best member to coordinate next: fit, answering this
// coordinator's probes, its AWS calls well, up for a lease at least,
// preferring one that holds no EIP (required when idle is set).
func (l *Loop) successor(idle bool) string {
	held := map[string]int{}
	for _, st := range l.eips {
		if m := l.memberByENI(st.addr.NetworkInterfaceID); m != nil && st.addr.Associated() {
			held[m.InstanceID]++
		}
	}
	best, bestHeld := "", 0
	now := l.now()
	for _, m := range l.members {
		p := l.peers[m.InstanceID]
		if m.InstanceID == l.self.InstanceID || p == nil || !p.ok || p.status == nil ||
			p.status.Health != health.Up.String() || p.status.Draining != "" || p.status.AWSTrouble != "" ||
			seconds(p.status.UpForSeconds) < l.cfg.LeaseDuration ||
			(m.InstanceID == l.handedTo && now.Sub(l.handedAt) < deniedPause) {
			continue
		}
		h := held[m.InstanceID]
		if idle && h > 0 {
			continue
		}
		if best == "" || h < bestHeld || (h == bestHeld && m.InstanceID < best) {
			best, bestHeld = m.InstanceID, h
		}
	}
	return best
}

// handOver writes the group lease naming to, with the next epoch, after
// this coordinator stopped acting: the old one stops before the new one
// starts.
func (l *Loop) handOver(to string, now time.Time) {
	co := l.co
	ids := l.leaseIDs(nil)
	if len(ids) == 0 {
		return
	}
	co.handingTo = to
	lease := eip.GroupLease{Coordinator: to, Epoch: co.epoch + 1, Renewed: l.leaseStamp()}
	l.log.Info("handing the coordinator role over", "to", to, "epoch", lease.Epoch)
	l.exec.start(op{name: "hand over", mutates: true, timeout: l.renewTimeout(), deadline: co.deadline,
		run: func(ctx context.Context) func() {
			err := l.cloud.WriteLease(ctx, ids, lease)
			return func() {
				if l.co != co {
					return
				}
				co.handingTo = ""
				if err != nil {
					l.troubled(err)
					l.log.Warn("could not hand the coordinator role over", "to", to, "error", err)
					if co.giveUp != "" {
						l.stepDown("giving the role up: " + co.giveUp)
					}
					return
				}
				l.stepDown("handed the role to " + to)
				l.handedTo, l.handedAt = to, l.now()
				l.followBetter(follow{ID: to, Epoch: lease.Epoch}, "its own hand-over")
				l.lease.see(lease, now)
				l.wantNotify("handed the coordinator role over")
			}
		}})
}

func seconds(f float64) time.Duration { return time.Duration(f * float64(time.Second)) }
