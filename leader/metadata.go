package leader

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// metadataReport is one poll of instance metadata.
type metadataReport struct {
	at        time.Time
	notices   []eip.Notice
	noticesOK bool
	assocs    []eip.ENIAssociation
	ipsKnown  bool
}

// watchMetadata polls lifecycle notices every LifecyclePoll and the
// primary ENI's public IPs as often: every probe interval while this
// instance holds an EIP (a free, local way to learn at once that it was
// moved or disassociated), every LifecyclePoll otherwise.
func (l *Loop) watchMetadata(ctx context.Context, out chan<- metadataReport) {
	t := time.NewTicker(l.cfg.ProbeInterval)
	defer t.Stop()
	var nextNotices, nextIPs time.Time
	for {
		now := l.cfg.Now()
		r := metadataReport{at: now}
		cctx, cancel := context.WithTimeout(ctx, l.cfg.LifecyclePoll)
		if !now.Before(nextNotices) {
			nextNotices = now.Add(l.cfg.LifecyclePoll)
			notices, err := l.meta.Notices(cctx)
			if err != nil && ctx.Err() == nil {
				l.log.Debug("cannot read lifecycle notices", "error", err)
			}
			r.notices, r.noticesOK = notices, err == nil
		}
		if l.holding.Load() || !now.Before(nextIPs) {
			nextIPs = now.Add(l.cfg.LifecyclePoll)
			assocs, err := l.meta.Associations(cctx)
			if err == nil {
				r.assocs, r.ipsKnown = assocs, true
				l.mu.Lock()
				l.seen = ipsSeen{at: now, assocs: assocs}
				l.mu.Unlock()
			} else if ctx.Err() == nil {
				l.log.Debug("cannot read own public IPs", "error", err)
			}
		}
		cancel()
		if len(r.notices) > 0 || r.ipsKnown {
			select {
			case out <- r:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
	}
}

// StatusFresh is Status with this instance's ENI associations read from
// instance metadata first: a member about to hand an EIP here asks for it
// (/status?fresh=1), so private_ips_in_use lists an EIP that landed here a
// moment ago (a standby reads its ENI only every lifecycle poll) and the
// member picks another private IP instead of knocking that EIP off.
func (l *Loop) StatusFresh(ctx context.Context) Status {
	l.refreshSeen(ctx)
	return l.Status()
}

// refreshSeen reads the ENI's associations unless another request is
// reading them or they are younger than freshEnough.
func (l *Loop) refreshSeen(ctx context.Context) {
	if l.meta == nil || !l.seenRefresh.TryLock() {
		return
	}
	defer l.seenRefresh.Unlock()
	now := l.cfg.Now()
	l.mu.Lock()
	at := l.seen.at
	l.mu.Unlock()
	if now.Sub(at) < freshEnough {
		return
	}
	assocs, ok := l.readENI(ctx)
	if !ok {
		return
	}
	l.mu.Lock()
	if l.seen.at.Before(now) {
		l.seen = ipsSeen{at: now, assocs: assocs}
	}
	l.mu.Unlock()
}

// freshEnough: a view of the ENI this young is not read again for a
// StatusFresh (a few requests at once cost one metadata read).
const freshEnough = 100 * time.Millisecond

// applyMetadata turns notices into draining, notices an EIP that appeared
// on this instance (a handoff to us) so it is read at once, and one that
// left it while we hold it.
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
		l.log.Warn("lifecycle notice: draining", "kind", n.Kind, "detail", n.Detail, "notice_time", n.Time)
		if l.drain == "" || l.drain == ReasonHandoffManual {
			l.drain = ReasonHandoffDraining
		}
	}
	if !r.ipsKnown {
		return
	}
	ips := eip.PublicIPsOf(r.assocs)
	for id, st := range l.eips {
		here := st.addr.PublicIP != "" && slices.Contains(ips, st.addr.PublicIP)
		switch {
		case !st.holding && here:
			l.log.Debug("an EIP appeared on this instance; reading addresses", "allocation_id", id)
			l.refreshNow = true
		case st.holding && here:
			st.imdsLost, st.imdsIgnore = false, false
			st.imdsSeenAt = r.at
		case st.holding && !st.imdsLost && !st.imdsIgnore && r.at.Sub(st.holderSince) > 2*l.cfg.ProbeInterval:
			// Metadata may lag a fresh association by a moment; past
			// that, an EIP missing from our ENI was moved or
			// disassociated: stop vouching for it and read now. (If
			// metadata merely lags longer, the holder is unverified for
			// a while: conservative, never unsafe.)
			l.log.Info("instance metadata no longer lists the EIP on this instance; confirming with the API",
				"allocation_id", id, "public_ip", st.addr.PublicIP)
			st.imdsLost, st.imdsLostAt = true, r.at
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
// interval (draining at once).
func (l *Loop) writeStateTag(ctx context.Context) {
	want := l.ownState()
	now := l.cfg.Now()
	if want == "" || want == l.stateTag || (!l.stateTagAt.IsZero() && now.Sub(l.stateTagAt) < l.cfg.RenewInterval && want != eip.StateDraining) ||
		now.Before(l.stateDeniedUntil) {
		return
	}
	l.stateTagAt = now
	cctx, cancel := l.callCtx(ctx)
	defer cancel()
	if err := l.cloud.SetState(cctx, l.self.InstanceID, want); err != nil {
		l.passFailed = true
		if errors.Is(err, eip.ErrUnauthorized) {
			// Not transient: try again in a minute, not every renew
			// interval (see denied).
			l.stateDeniedUntil = now.Add(deniedMax)
			l.log.Warn("cannot write own eipd:state; this instance is no handoff target until it can", "state", want,
				"retry_in", deniedMax, "error", err)
			return
		}
		l.log.Warn("cannot write own eipd:state", "state", want, "error", err)
		return
	}
	l.stateDeniedUntil = time.Time{}
	l.log.Info("own state", "state", want)
	l.stateTag = want
}
