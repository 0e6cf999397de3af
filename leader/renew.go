package leader

import (
	"context"
	"slices"
	"sync"
	"time"
)

// renewer keeps the held leases alive on its own timer (§9.9): a slow read
// or a slow move never delays a renewal, and one CreateTags renews every
// EIP held. The loop tells it what it may renew (the plan, §9.2) and reads
// back what happened.
type renewer struct {
	// write is held around every lease write, renewal or move, so that a
	// renewal never lands after a move of the same EIP and names the old
	// holder again.
	write sync.Mutex

	mu   sync.Mutex
	plan []string // allocation IDs it may renew
	// validUntil bounds each plan entry: the renewer writes a lease only
	// while AWS confirmed the holding within a trust window, so a daemon
	// that was paused (or whose loop is stuck) never renews from memory
	// (§9.2). Its own successes extend it.
	validUntil map[string]time.Time
	lastStart  time.Time
	okAt       map[string]time.Time // stamp of the last successful renewal
	failAt     map[string]time.Time // start of the last failed renewal
	failing    bool                 // last attempt failed (logged once)
	// wake tells runRenewer that the plan changed; failed tells the loop
	// that a renewal failed. Capacity 1: a send never blocks.
	wake, failed chan struct{}
}

func newRenewer() renewer {
	return renewer{wake: make(chan struct{}, 1), failed: make(chan struct{}, 1), okAt: map[string]time.Time{}, failAt: map[string]time.Time{}, validUntil: map[string]time.Time{}}
}

// renewTimeout is shorter than the renew interval, so one slow call cannot
// push the next renewal back.
func (l *Loop) renewTimeout() time.Duration {
	return min(l.cfg.CallTimeout, l.cfg.RenewInterval*3/4)
}

// runRenewer calls renewIfDue when a renewal falls due and sleeps in
// between: no wake-ups on a standby, one per renew interval on a holder
// (a timer per loop tick used to cost every daemon five wake-ups a second).
// planRenewals wakes it when the plan changes.
func (l *Loop) runRenewer(ctx context.Context) {
	t := time.NewTimer(l.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-l.renewer.wake:
		}
		l.renewIfDue(ctx)
		if d, ok := l.nextRenewal(); ok {
			t.Reset(d)
		}
	}
}

// nextRenewal is how long the renewer may sleep after renewIfDue: until
// the next renewal falls due; false while nothing is planned (planRenewals
// wakes it). A due plan that renewIfDue left alone (no confirmation within
// the trust window, §9.2) is looked at again every tick, as any pass of
// the loop may confirm it.
func (l *Loop) nextRenewal() (time.Duration, bool) {
	r := &l.renewer
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.plan) == 0 {
		return 0, false
	}
	if !r.lastStart.IsZero() {
		if d := r.lastStart.Add(l.cfg.RenewInterval).Sub(l.cfg.Now()); d > 0 {
			return d, true
		}
	}
	return l.cfg.Tick, true
}

// renewIfDue renews the planned leases when a renew interval has passed
// since the last attempt.
func (l *Loop) renewIfDue(ctx context.Context) {
	r := &l.renewer
	r.write.Lock()
	defer r.write.Unlock()
	now := l.cfg.Now()
	r.mu.Lock()
	var plan []string
	for _, id := range r.plan {
		if now.Before(r.validUntil[id]) {
			plan = append(plan, id)
		}
	}
	due := len(plan) > 0 && (r.lastStart.IsZero() || now.Sub(r.lastStart) >= l.cfg.RenewInterval)
	if due {
		r.lastStart = now
	}
	r.mu.Unlock()
	if !due {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, l.renewTimeout())
	err := l.cloud.Renew(cctx, plan, l.self.InstanceID, now)
	cancel()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, id := range plan {
		if err == nil {
			r.okAt[id] = now
			r.validUntil[id] = now.Add(l.cfg.trustWindow())
		} else {
			r.failAt[id] = now
		}
	}
	switch {
	case err != nil && !r.failing:
		l.log.Warn("lease renewal failed; reading before renewing again", "allocation_ids", plan, "error", err)
	case err == nil && r.failing:
		l.log.Info("lease renewals succeed again", "allocation_ids", plan)
	}
	r.failing = err != nil
	if err != nil {
		select {
		case r.failed <- struct{}{}:
		default:
		}
	}
}

// syncRenewals takes what the renewer did into the loop's state: a success
// is a confirmation, a failure opens a gap that only a later read closes.
func (l *Loop) syncRenewals() {
	r := &l.renewer
	r.mu.Lock()
	defer r.mu.Unlock()
	for id, st := range l.eips {
		if !st.holding {
			continue
		}
		if ok := r.okAt[id]; ok.After(st.lastRenew) && ok.After(st.holderSince) {
			st.lastRenew = ok
			if ok.After(st.verifiedAt) {
				st.verifiedAt = ok
			}
		}
		if f := r.failAt[id]; f.After(st.holderSince) && f.After(st.verifiedAt) && st.gapSince.IsZero() {
			st.gapSince = f
		}
	}
}

// planRenewals tells the renewer which leases it may keep alive.
func (l *Loop) planRenewals() {
	var plan []string
	valid := map[string]time.Time{}
	for _, id := range l.sortedIDs() {
		if st := l.eips[id]; st.holding && st.mayRenew {
			plan = append(plan, id)
			valid[id] = st.verifiedAt.Add(l.cfg.trustWindow())
		}
	}
	r := &l.renewer
	r.mu.Lock()
	if !slices.Equal(r.plan, plan) {
		select {
		case r.wake <- struct{}{}:
		default:
		}
	}
	r.plan = plan
	for id, v := range valid {
		if v.After(r.validUntil[id]) {
			r.validUntil[id] = v
		}
	}
	r.mu.Unlock()
	l.holding.Store(l.holdingAny())
}

// unplan stops renewals of one EIP at once (before a move), and clears its
// record so an old result is not taken for a new holding.
func (l *Loop) unplan(id string) {
	r := &l.renewer
	r.mu.Lock()
	defer r.mu.Unlock()
	r.plan = slices.DeleteFunc(r.plan, func(s string) bool { return s == id })
	delete(r.okAt, id)
	delete(r.failAt, id)
	delete(r.validUntil, id)
}

// renewedAt is the stamp of the renewer's last success for id, for Status.
func (l *Loop) renewedAt(id string) time.Time {
	r := &l.renewer
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.okAt[id]
}
