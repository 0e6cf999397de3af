package leader

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// act carries out one decision for one EIP.
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
	var log hclog.Logger
	if d.Action != Wait && d.Action != Hold {
		// Wait and Hold, nearly every pass, log nothing: no logger built
		// for them (hclog's With allocates).
		log = l.log.With("allocation_id", id, "public_ip", st.addr.PublicIP)
	}
	if l.cfg.DryRun && (d.Action == Claim || d.Action == Handoff) {
		cctx, cancel := l.callCtx(ctx)
		defer cancel()
		l.dryRunMove(cctx, st, d, log)
		return
	}
	switch d.Action {
	case Claim, Handoff, Repair, Adopt:
		if l.cfg.Now().Before(st.deniedUntil) {
			return // IAM refused the last attempt: see denied
		}
	default:
		if st.deniedStep > 0 && !l.cfg.Now().Before(st.deniedUntil) {
			// Nothing to move or write any more: the next refusal, for
			// another reason, starts from the first step again.
			l.allowed(st)
		}
	}
	switch d.Action {
	case Wait, Hold:
	case Repair, Adopt:
		if l.cfg.Now().Before(st.writeQuiet) {
			return
		}
		if !st.writeFailedAt.IsZero() && !st.readAt.After(st.writeFailedAt) {
			// A lease write failed (its answer may be lost, the world may
			// have moved on meanwhile): write again only from a read
			// started after it, never from memory (§9.2).
			l.refreshNow = true
			return
		}
		if d.Action == Repair {
			l.writeLease(ctx, st, d.Lease, log, "rewrote the lease")
		} else {
			l.adopt(ctx, st, d, log)
		}
	case Claim:
		l.claim(ctx, st, d, log)
	case Handoff:
		l.handoff(ctx, st, d, log)
	case StepDown:
		log.Info("stepping down", "why", d.Why, "term", st.term)
		l.stopHolding(st)
	}
}

// lockWrites stops the renewer from touching this EIP's lease while the
// loop writes it (a move, an adoption, a repair). The returned func
// releases it.
func (l *Loop) lockWrites(id string) func() {
	l.renewer.write.Lock()
	l.unplan(id)
	return l.renewer.write.Unlock
}

func (l *Loop) writeLease(ctx context.Context, st *eipState, lease eip.Lease, log hclog.Logger, done string) bool {
	defer l.lockWrites(st.addr.AllocationID)()
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	if err := l.cloud.WriteLease(cctx, st.addr.AllocationID, lease); err != nil {
		l.writeFailed(st, err)
		if st.holding && st.gapSince.IsZero() {
			st.gapSince = l.cfg.Now()
		}
		log.Warn("cannot write the lease; will retry after reading", "term", lease.Term, "error", err)
		return false
	}
	l.allowed(st)
	st.addr.Lease = lease
	st.lastRenew = lease.Renewed
	if st.holding && lease.Renewed.After(st.verifiedAt) {
		st.verifiedAt = lease.Renewed
	}
	log.Info(done, "term", lease.Term)
	return true
}

// writeFailed paces lease writes after a failure: a probe interval, or a
// lease when EC2 says the EIP does not exist (released: reads will show
// it gone and it is forgotten, §9.8), and asks for a read.
func (l *Loop) writeFailed(st *eipState, err error) {
	l.passFailed = true
	pause := l.cfg.ProbeInterval
	if errors.Is(err, eip.ErrNotFound) {
		pause = l.cfg.LeaseDuration
		l.refreshNow = true
	}
	st.writeQuiet = l.cfg.Now().Add(pause)
	st.writeFailedAt = l.cfg.Now()
	l.denied(st, err)
}

// IAM refusals are not transient: a member denied ec2:AssociateAddress (or
// CreateTags) that retried at the loop's pace would hammer an account-wide
// throttling bucket shared with everything else the account runs, and fill
// its log. A refused move or lease write of an EIP is retried after
// deniedFirst, doubling up to deniedMax; /status says why meanwhile.
const (
	deniedFirst = 5 * time.Second
	deniedMax   = time.Minute
)

// denied paces the next move or lease write of st after err, when IAM
// refused it; any other error clears the pacing.
func (l *Loop) denied(st *eipState, err error) {
	if !errors.Is(err, eip.ErrUnauthorized) {
		l.allowed(st)
		return
	}
	st.deniedStep = min(max(2*st.deniedStep, deniedFirst), deniedMax)
	st.deniedUntil = l.cfg.Now().Add(st.deniedStep)
	st.deniedWhy = err.Error()
	l.log.Warn("IAM refused the call; not trying again for a while", "allocation_id", st.addr.AllocationID,
		"retry_in", st.deniedStep, "error", err)
}

// allowed ends the pacing of denied after a call IAM let through.
func (l *Loop) allowed(st *eipState) {
	st.deniedStep, st.deniedUntil, st.deniedWhy = 0, time.Time{}, ""
}

func (l *Loop) adopt(ctx context.Context, st *eipState, d Decision, log hclog.Logger) {
	if l.notOnThisENI(ctx, st.addr.PublicIP) {
		// The read that shows the EIP here lags its move away (a daemon
		// that just started has no move of its own to date reads by):
		// instance metadata, which is current, says it is gone.
		log.Info("a read shows the EIP on this instance but instance metadata does not; reading again")
		l.refreshNow = true
		return
	}
	defer l.lockWrites(st.addr.AllocationID)()
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	if err := l.cloud.WriteLease(cctx, st.addr.AllocationID, d.Lease); err != nil {
		l.writeFailed(st, err)
		log.Warn("cannot write the lease of an EIP found on this instance; will retry", "term", d.Lease.Term, "error", err)
		return
	}
	l.allowed(st)
	moved := st.addr.Lease           // the move that brought the EIP here, as its mover recorded it
	st.movedByDaemonAt = l.cfg.Now() // it just arrived, by whatever means
	st.addr.Lease = d.Lease
	l.becomeHolder(st, d.Lease.Term, d.Lease.Renewed)
	log.Info("holding the EIP found on this instance", "term", d.Lease.Term, "association_id", st.addr.AssociationID)
	if d.Lease.Reason != "" && moved.Decided.After(l.started) && !moved.Renewed.IsZero() {
		// A handoff to us: the mover stamped renewed when the EIP was
		// associated, so that is the move's time and duration.
		l.recordFailover(st, FailoverRecord{Time: moved.Renewed, Reason: d.Lease.Reason, From: moved.From,
			To: l.self.InstanceID, DurationSeconds: max(0, moved.Renewed.Sub(moved.Decided)).Seconds()})
	}
}

func (l *Loop) claim(ctx context.Context, st *eipState, d Decision, log hclog.Logger) {
	defer l.lockWrites(st.addr.AllocationID)()
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	observed := st.addr
	here, busy := l.onThisENI(ctx, observed, d.Slot)
	switch {
	case here:
		// Instance metadata (local, fresher than a lagging read) shows
		// the EIP on this instance already: a handoff to us landed. A
		// claim would succeed (re-associating in place is a no-op) and
		// write a term older than the handoff's.
		log.Info("the EIP is already on this instance; reading instead of claiming")
		st.rankSince = time.Time{}
		l.refreshNow = true
		return
	case busy != "":
		// Another EIP landed on that private IP since the last read
		// (a handoff to us): associating there would knock it off.
		log.Info("instance metadata shows another EIP on the private IP; reading instead of claiming",
			"private_ip", d.Slot, "other_public_ip", busy)
		st.rankSince = time.Time{}
		l.refreshNow = true
		return
	}
	log.Info("claiming the EIP", "why", d.Why, "term", d.Lease.Term, "association_id", observed.AssociationID, "private_ip", d.Slot)
	assoc, err := l.cloud.Claim(cctx, observed, l.self, d.Slot, d.Lease)
	st.rankSince = time.Time{}
	l.refreshNow = true
	l.denied(st, err)
	if err != nil && assoc == "" {
		l.passFailed = true
		if errors.Is(err, eip.ErrUnavailable) {
			// The association may have happened (its answer lost):
			// keep the slot for this EIP until a lease has passed.
			st.reserve(l.self.NetworkInterfaceID, d.Slot, l.cfg.Now(), l.cfg.LeaseDuration)
		}
		switch {
		case errors.Is(err, eip.ErrAlreadyAssociated), errors.Is(err, eip.ErrStaleAssociation):
			log.Info("another member moved the EIP first; staying standby", "error", err)
		case errors.Is(err, eip.ErrUnauthorized):
			// denied said so, with when it tries again.
		default:
			log.Warn("claim failed; staying standby", "error", err)
		}
		if st.holding {
			// A holder re-associating its own EIP lost it to another.
			l.stopHolding(st)
		}
		return
	}
	now := l.cfg.Now()
	verified := now
	if err != nil {
		// Associated, but the lease was not written: we hold the EIP,
		// and a read must confirm it before any renewal (§9.2); the
		// tags are then repaired.
		l.passFailed = true
		log.Warn("claimed the EIP but could not write the lease; repairing after the next read", "association_id", assoc, "error", err)
		verified = time.Time{}
	}
	st.bury(observed.AssociationID)
	st.addr.AssociationID, st.addr.NetworkInterfaceID, st.addr.PrivateIP, st.addr.InstanceID =
		assoc, l.self.NetworkInterfaceID, d.Slot, l.self.InstanceID
	st.addr.Lease = d.Lease
	st.movedByDaemonAt = now
	l.becomeHolder(st, d.Lease.Term, verified)
	if verified.IsZero() {
		st.gapSince = now
	}
	if prev := previousHolder(observed); prev != "" && prev != l.self.InstanceID {
		st.letGo, st.letGoUntil = prev, now.Add(l.cfg.trustWindow())
		l.watchPeer(st)
	}
	l.recordFailover(st, FailoverRecord{Time: now, Reason: d.Reason, From: previousHolder(observed), To: l.self.InstanceID,
		DurationSeconds: now.Sub(d.Lease.Decided).Seconds()})
	log.Info("now holding the EIP", "term", d.Lease.Term, "association_id", assoc, "private_ip", d.Slot)
}

func (l *Loop) handoff(ctx context.Context, st *eipState, d Decision, log hclog.Logger) {
	if slot := l.freeSlot(d.Target.Instance, st.addr.AllocationID); slot != d.Target.Slot {
		// Another EIP went to that private IP since the targets were
		// sought (this very pass): pick the slot again, or look again.
		if slot == "" {
			st.targetsAt = time.Time{}
			return
		}
		tg := *d.Target
		tg.Slot = slot
		d.Target = &tg
	}
	// A target whose /status does not answer is taken on the member
	// list's word only when the list was read in this very pass: a list
	// kept from earlier may still call ready a member that has fallen ill
	// since (its eipd:state tag says so now).
	tg, ok := l.confirmTarget(ctx, d.Target, st.addr.AllocationID, !st.targetsAt.Before(l.passStart))
	if !ok {
		log.Info("handoff target no longer ready or has no free private IP; looking again", "target_instance_id", d.Target.InstanceID)
		st.targetsAt = time.Time{}
		return
	}
	d.Target = tg
	defer l.lockWrites(st.addr.AllocationID)()
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	l.mu.Lock()
	if l.leaving == nil {
		l.leaving = map[string]bool{}
	}
	l.leaving[st.addr.AllocationID] = true
	l.mu.Unlock()
	if l.obs != nil {
		l.obs.SetHolder(st.addr.AllocationID, false) // as /status says
	}
	log.Info("handing off the EIP", "reason", d.Reason, "target_instance_id", d.Target.InstanceID, "private_ip", d.Target.Slot, "term", d.Lease.Term)
	assoc, err := l.cloud.Handoff(cctx, st.addr, d.Target.Instance, d.Target.Slot, d.Lease)
	st.targetsAt = time.Time{}
	l.denied(st, err)
	if err != nil && assoc == "" {
		l.passFailed = true
		if errors.Is(err, eip.ErrUnavailable) {
			st.reserve(d.Target.NetworkInterfaceID, d.Target.Slot, l.cfg.Now(), l.cfg.LeaseDuration)
		}
		log.Warn("handoff failed; still holding", "target_instance_id", d.Target.InstanceID, "error", err)
		return
	}
	if err != nil {
		// The EIP moved but the lease names us still; the target
		// adopts it with a new term when it reads the address.
		l.passFailed = true
		log.Warn("handed off the EIP but could not write the lease", "association_id", assoc, "error", err)
	}
	now := l.cfg.Now()
	l.stopHolding(st) // buries the association we held: a lagging read showing it must not bring the EIP back (§9.5)
	st.addr.AssociationID, st.addr.NetworkInterfaceID, st.addr.PrivateIP, st.addr.InstanceID =
		assoc, d.Target.NetworkInterfaceID, d.Target.Slot, d.Target.InstanceID
	st.addr.Lease = d.Lease
	l.watchPeer(st)
	st.blocked = false
	st.last = &FailoverRecord{Time: now, Reason: d.Reason, From: l.self.InstanceID, To: d.Target.InstanceID,
		DurationSeconds: now.Sub(d.Lease.Decided).Seconds()}
	if l.obs != nil {
		l.obs.SetHandoffBlocked(st.addr.AllocationID, false)
	}
	log.Info("handed off the EIP", "target_instance_id", d.Target.InstanceID, "term", d.Lease.Term, "association_id", assoc)
}

// readENI reads this instance's ENI associations from instance metadata
// now, bounded by the probe timeout; ok is false when it cannot.
func (l *Loop) readENI(ctx context.Context) (assocs []eip.ENIAssociation, ok bool) {
	if l.meta == nil {
		return nil, false
	}
	mctx, cancel := context.WithTimeout(ctx, l.cfg.ProbeTimeout)
	defer cancel()
	assocs, err := l.meta.Associations(mctx)
	return assocs, err == nil
}

// notOnThisENI: instance metadata, read now, does not list publicIP on
// this instance's ENI. Metadata that cannot be read says nothing.
func (l *Loop) notOnThisENI(ctx context.Context, publicIP string) bool {
	if publicIP == "" {
		return false
	}
	assocs, ok := l.readENI(ctx)
	return ok && !slices.Contains(eip.PublicIPsOf(assocs), publicIP)
}

// onThisENI asks instance metadata, right before a claim, whether the EIP
// is on this instance's ENI already (here; a holder re-associating its own
// EIP does not count), and which other public IP, if any, is on the
// private IP slot (busy). Metadata that cannot be read says neither: the
// claim goes on with what the last read showed.
func (l *Loop) onThisENI(ctx context.Context, a eip.Address, slot string) (here bool, busy string) {
	assocs, ok := l.readENI(ctx)
	if !ok {
		return false, ""
	}
	for _, as := range assocs {
		switch {
		case a.PublicIP != "" && as.PublicIP == a.PublicIP:
			here = a.NetworkInterfaceID != l.self.NetworkInterfaceID
		case as.PrivateIP == slot:
			busy = as.PublicIP
		}
	}
	return here, busy
}

// previousHolder is the instance an EIP was taken from: the one it was
// associated to, or, when it was unassociated (disassociated by hand, or
// the instance terminated), the one its lease named.
func previousHolder(a eip.Address) string {
	if a.InstanceID != "" {
		return a.InstanceID
	}
	return a.Lease.Holder
}

// confirmTarget probes a handoff target once more right before the move
// (its state may have changed since the targets were sought, and a
// handoff has no fence to undo it): it must still be up and not leaving,
// and the slot must not carry an EIP it holds (its own word is fresher
// than any read of ours); another free slot of it will do.
//
// Without an answer from its eipd (status port blocked), only the member
// list says it is ready: a kept list must then be recent.
func (l *Loop) confirmTarget(ctx context.Context, tg *Target, alloc string, listFresh bool) (*Target, bool) {
	pctx, cancel := context.WithTimeout(ctx, l.cfg.ProbeTimeout)
	defer cancel()
	r, err := l.prober.Check(health.WithFreshStatus(pctx), tg.PrivateIP)
	switch {
	case err != nil:
		return nil, false
	case !r.Answered:
		return tg, listFresh
	case r.Health != health.Up.String() || r.Draining != "":
		return nil, false
	}
	// A slot is taken when the target holds an EIP on it, or when its
	// instance metadata lists a public IP there other than this EIP's (an
	// earlier handoff of this very EIP whose answer was lost may have put
	// it there: that slot is the right one).
	public := ""
	if st, ok := l.eips[alloc]; ok {
		public = st.addr.PublicIP
	}
	taken := func(ip string) bool {
		if pub, ok := r.ENIPublicIPs[ip]; ok {
			return pub != public
		}
		return slices.Contains(r.SlotsInUse, ip)
	}
	if !taken(tg.Slot) {
		return tg, true
	}
	in := tg.Instance
	in.PrivateIPs = slices.DeleteFunc(slices.Clone(in.Slots()), func(p eip.PrivateIP) bool { return taken(p.Address) })
	if len(in.PrivateIPs) == 0 {
		return nil, false // (an empty list would mean "the primary IP")
	}
	slot := l.freeSlot(in, alloc)
	if slot == "" {
		return nil, false
	}
	c := *tg
	c.Slot = slot
	return &c, true
}

func (l *Loop) becomeHolder(st *eipState, term int64, verified time.Time) {
	now := l.cfg.Now()
	st.holding = true
	st.ownAssoc, st.ownSlot = st.addr.AssociationID, st.addr.PrivateIP
	st.term = term
	st.holderSince = now
	st.movedAt = now
	st.lastRenew = verified
	st.verifiedAt = verified
	st.gapSince = time.Time{}
	st.imdsLost, st.imdsIgnore = false, false
	st.letGo = ""
	st.targets, st.targetsAt = nil, time.Time{}
	l.watchPeer(st)
	l.holding.Store(true)
	if l.obs != nil {
		l.obs.SetLease(st.addr.AllocationID, term, 0)
	}
}

// stopHolding makes this instance a standby for the EIP: no more
// renewals, and reads started before now say nothing (§9.5).
func (l *Loop) stopHolding(st *eipState) {
	l.unplan(st.addr.AllocationID)
	if st.holding {
		// The association we held is over, whatever replaced it.
		st.bury(st.ownAssoc)
		st.ownAssoc, st.ownSlot = "", ""
	}
	st.holding = false
	st.letGo = ""
	if st.reservedENI == l.self.NetworkInterfaceID {
		st.reservedIP = "" // this instance will not take it back
	}
	st.movedAt = l.cfg.Now()
	st.mayRenew = false
	l.watchPeer(st)
	if l.obs != nil {
		l.obs.SetHolder(st.addr.AllocationID, false)
	}
	// Say so at once: the new holder may adopt before this pass ends.
	l.publish()
}

func (l *Loop) recordFailover(st *eipState, rec FailoverRecord) {
	st.last = &rec
	if l.obs != nil {
		l.obs.Failover(st.addr.AllocationID, rec.Reason, time.Duration(rec.DurationSeconds*float64(time.Second)))
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
	to := l.self.InstanceID
	if d.Action == Claim {
		_, err = l.cloud.Claim(ctx, st.addr, l.self, d.Slot, d.Lease)
	} else {
		to = d.Target.InstanceID
		_, err = l.cloud.Handoff(ctx, st.addr, d.Target.Instance, d.Target.Slot, d.Lease)
	}
	if err != nil {
		log.Warn("dry-run: the move would fail", "action", d.Action, "target_instance_id", to, "reason", d.Reason, "error", err)
		return
	}
	log.Info("dry-run: would move the EIP", "action", d.Action, "target_instance_id", to, "reason", d.Reason, "why", d.Why, "term", d.Lease.Term)
}
