package leader

import (
	"context"
	"errors"
	"fmt"
)

type handoffRequest struct {
	to    string
	reply chan error
}

// RequestHandoff asks the coordinator to move every EIP on this member to
// a ready member (to = "" for any, or one instance ID) and waits for the
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

func (l *Loop) startManual(req *handoffRequest) {
	if req.to != "" && l.member(req.to) == nil && l.ipOf(req.to) == "" {
		// A member launched since the last listing is not unknown.
		l.list.wanted = true
	}
	switch {
	case l.manual != nil:
		req.reply <- errors.New("a handoff is already in progress")
		return
	case l.drain != "":
		req.reply <- fmt.Errorf("already draining (%s)", l.drain)
		return
	case len(l.Status().MayHold()) == 0:
		req.reply <- errors.New("this instance holds no EIP")
		return
	case req.to == l.self.InstanceID:
		req.reply <- fmt.Errorf("%s is this instance", req.to)
		return
	case req.to != "" && l.member(req.to) == nil && l.ipOf(req.to) == "":
		req.reply <- fmt.Errorf("%w %s: not a running member of the group", ErrUnknownInstance, req.to)
		return
	case l.co == nil && l.follow.ID == "":
		req.reply <- errors.New("no coordinator: nobody can move the EIPs now")
		return
	}
	l.manual = req
	l.setDrain(ReasonHandoffManual, req.to)
	l.log.Info("manual handoff requested", "target_instance_id", req.to)
}

func (l *Loop) finishManual(err error) {
	if l.manual == nil {
		return
	}
	l.manual.reply <- err
	l.manual = nil
	if l.drain == ReasonHandoffManual {
		l.setDrain("", "")
	}
}

// checkManual ends a manual handoff once no EIP is on this member any more,
// or fails it when the coordinator says it cannot move one.
func (l *Loop) checkManual() {
	s := l.Status()
	if len(s.MayHold()) == 0 {
		l.finishManual(nil)
		return
	}
	for _, e := range s.EIPs {
		if (e.Role == RoleHolder || e.Role == RoleUnverified) && e.HandoffBlocked {
			l.finishManual(fmt.Errorf("no ready member to hand %s off to: %s", e.AllocationID, e.Why))
			return
		}
	}
}

// beginStop starts handing off this member's EIPs, and the coordinator
// role, within the stop timeout (SIGTERM): the loop goes on until
// finished says so.
func (l *Loop) beginStop() {
	if l.stopping {
		return
	}
	if l.manual != nil {
		l.manual.reply <- errors.New("eipd is stopping")
		l.manual = nil
	}
	l.stopping = true
	l.stopBy = l.now().Add(l.cfg.StopTimeout)
	l.setDrain(ReasonHandoffShutdown, "")
	l.log.Info("stopping: handing off the EIPs on this instance before exit", "stop_timeout", l.cfg.StopTimeout)
}

// finished reports whether a stopping member may exit: its instance
// metadata and the coordinator show no EIP on it and it does not
// coordinate, or waiting longer would not help, or the stop timeout ran
// out.
func (l *Loop) finished() bool {
	s := l.Status()
	switch why := l.cannotLeave(); {
	case len(s.MayHold()) == 0 && l.co == nil:
		l.log.Info("handoff done; exiting")
	case why != "":
		l.log.Warn("stopping without handing off", "why", why, "may_hold", s.MayHold())
	case !l.now().Before(l.stopBy):
		l.log.Warn("stop timeout ran out before the handoff was done; exiting", "may_hold", s.MayHold(), "coordinating", l.co != nil)
	default:
		return false
	}
	return true
}

// cannotLeave says why waiting longer would not help a stopping member:
// every EIP on it is blocked (no ready member to take it) and, when it
// coordinates, no member can take the role. "" when it can still leave.
func (l *Loop) cannotLeave() string {
	s := l.Status()
	for _, e := range s.EIPs {
		if (e.Role == RoleHolder || e.Role == RoleUnverified) && !e.HandoffBlocked {
			return ""
		}
	}
	if l.co != nil && (len(l.co.moves) > 0 || l.successor(false) != "") {
		return ""
	}
	if len(s.MayHold()) == 0 {
		if l.co == nil {
			return ""
		}
		return "no other member can coordinate"
	}
	return "no ready member can take its EIPs"
}
