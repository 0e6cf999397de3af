package leader

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

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

// ErrUnknownInstance: a manual handoff named an instance that is not a
// running member of the group.
var ErrUnknownInstance = errors.New("unknown instance")

func (l *Loop) startManual(ctx context.Context, req *handoffRequest) {
	if req.to != "" && l.member(req.to) == nil {
		// A member launched since the last listing is not unknown.
		l.refreshMembers(ctx, true)
	}
	switch {
	case l.manual != nil:
		req.reply <- errors.New("a handoff is already in progress")
		return
	case l.drain != "":
		req.reply <- fmt.Errorf("already draining (%s)", l.drain)
		return
	case !l.holdingAny():
		req.reply <- errors.New("this instance holds no EIP")
		return
	case req.to == l.self.InstanceID:
		req.reply <- fmt.Errorf("%s is this instance", req.to)
		return
	case req.to != "" && l.member(req.to) == nil:
		req.reply <- fmt.Errorf("%w %s: not a running member of the group", ErrUnknownInstance, req.to)
		return
	}
	l.manual = req
	l.drain = ReasonHandoffManual
	for _, st := range l.eips {
		st.targetsAt = time.Time{}
	}
	l.log.Info("manual handoff requested", "target_instance_id", req.to)
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

// maxProbed bounds the targets probed for one handoff; the best by the
// member list come first.
const maxProbed = 8

// seekTargets lists ready members with a free private IP and keeps those
// that pass a probe, ranked by RankTargets.
func (l *Loop) seekTargets(ctx context.Context, st *eipState) {
	// One listing serves every EIP sought in the same pass.
	l.refreshMembers(ctx, !l.membersAt.After(l.passStart))
	st.targetsAt = l.cfg.Now()
	held := map[string]int{}
	for _, s := range l.eips {
		if s.addr.Associated() && s.addr.InstanceID != "" {
			held[s.addr.InstanceID]++
		}
	}
	var cands []Target
	readyElsewhere := false
	for _, m := range l.members {
		if m.InstanceID == l.self.InstanceID || !m.Running() || m.EIPDState != eip.StateReady || m.NetworkInterfaceID == "" {
			continue
		}
		readyElsewhere = true
		slot := l.freeSlot(m, st.addr.AllocationID)
		if slot == "" {
			continue
		}
		cands = append(cands, Target{Instance: m, Held: held[m.InstanceID], Slot: slot})
	}
	// Probe the likeliest first: fewest held, then priority.
	RankTargets(cands)
	if len(cands) > maxProbed {
		cands = cands[:maxProbed]
	}
	ok := make([]bool, len(cands))
	var wg sync.WaitGroup
	for i := range cands {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, l.cfg.ProbeTimeout)
			defer cancel()
			r, err := l.prober.Check(pctx, cands[i].PrivateIP)
			if err != nil {
				l.log.Debug("handoff target failed its probe", "instance_id", cands[i].InstanceID, "error", err)
				return
			}
			ok[i] = true
			if r.Answered {
				cands[i].UpFor = r.UpFor
				cands[i].DownRecently = r.DownAgo >= 0 && r.DownAgo < recentDown
				if r.Health != health.Up.String() || r.Draining != "" {
					// Its eipd knows better than our member list: a
					// member that is leaving is no target.
					ok[i] = false
				}
			}
		})
	}
	wg.Wait()
	st.targets = st.targets[:0]
	for i, c := range cands {
		if ok[i] {
			st.targets = append(st.targets, c)
		}
	}
	RankTargets(st.targets)
	st.slotsFull = len(cands) == 0 && readyElsewhere
}
