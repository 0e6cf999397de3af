package ec2sim

import (
	"slices"
	"time"
)

// Late writes: AWS answers a write before every part of EC2 has applied
// it ("Eventual consistency in the Amazon EC2 API"), and two racing
// AssociateAddress calls can both be answered 200 while only one takes
// effect (sebdah/aws-ec2-assign-elastic-ip#24). With Faults.LateWrites the
// answer is given as usual, from the true state when the request arrived,
// and the effect lands LateWrites after the answer was sent (or after the
// caller gave up or lost the answer). It is re-checked when it lands, as
// AWS's backend would: see each action's write function.
//
// The writes are AssociateAddress, DisassociateAddress, CreateTags and
// DeleteTags, the ones AWS's eventual consistency reaches and eipd makes.
// AllocateAddress and ReleaseAddress apply at once.

// origin says who made a write and, for a late one, when it was accepted
// (validated and answered from); events and tag writes carry both.
type origin struct {
	caller   string
	late     bool
	accepted time.Time
}

func (o origin) stamp(e *Event) {
	e.Caller, e.Late = o.caller, o.late
	if o.late {
		e.AcceptedAt = o.accepted
	}
}

// writeFunc applies a write at now, re-checking what the call's
// validation found when the request arrived; when that no longer holds it
// records a "late-dropped" event (or nothing, for tags) instead. It
// commits what it changed.
type writeFunc func(now time.Time, o origin)

type pendingWrite struct {
	due time.Time
	o   origin
	fn  writeFunc
}

// write applies fn now, or queues it with the call's late writes, which
// serveEC2 schedules once the answer is out (scheduleLate).
func (c *call) write(fn writeFunc) {
	if c.late <= 0 {
		fn(c.now, origin{caller: c.caller})
		return
	}
	c.pending = append(c.pending, fn)
}

// scheduleLate queues a call's writes to land c.late from now. Once the
// simulator is closing they are dropped: nothing would observe them.
func (s *Sim) scheduleLate(c *call) {
	if len(c.pending) == 0 {
		return
	}
	due := time.Now().Add(c.late)
	s.mu.Lock()
	select {
	case <-s.closing:
		s.mu.Unlock()
		return
	default:
	}
	for _, fn := range c.pending {
		pw := pendingWrite{due: due, o: origin{caller: c.caller, late: true, accepted: c.now}, fn: fn}
		i, _ := slices.BinarySearchFunc(s.lateQ, due, func(p pendingWrite, t time.Time) int {
			if p.due.After(t) {
				return 1
			}
			return -1 // equal dues keep their order
		})
		s.lateQ = slices.Insert(s.lateQ, i, pw)
	}
	s.mu.Unlock()
	s.wakeTimer()
}

// wakeTimer tells runTimer that something new is due.
func (s *Sim) wakeTimer() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// runTimer applies time-driven changes (late writes, public IPv4
// addresses coming back) when they are due, so that they land on time
// even while nobody calls the simulator. Every entry point also applies
// what is due first (tickLocked), so the order of changes never depends
// on this goroutine's promptness. One goroutine, owned by the simulator:
// Close stops it, and writes still pending are dropped.
func (s *Sim) runTimer() {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		s.mu.Lock()
		next, ok := s.nextDueLocked()
		s.mu.Unlock()
		d := time.Hour
		if ok {
			d = max(time.Until(next), 0)
		}
		t.Reset(d)
		select {
		case <-s.closing:
			return
		case <-s.wake:
		case <-t.C:
			s.mu.Lock()
			s.tickLocked(time.Now())
			s.mu.Unlock()
		}
	}
}

// nextDueLocked is the earliest pending time-driven change.
func (s *Sim) nextDueLocked() (time.Time, bool) {
	var next time.Time
	if len(s.lateQ) > 0 {
		next = s.lateQ[0].due
	}
	for _, in := range s.w.instances {
		if !in.PublicIPDue.IsZero() && (next.IsZero() || in.PublicIPDue.Before(next)) {
			next = in.PublicIPDue
		}
	}
	return next, !next.IsZero()
}

// applyDueLocked applies, in the order they fall due, the late writes and
// public IPv4 returns due by now, each at its due time, which is when
// events, tag history and snapshots say it happened.
func (s *Sim) applyDueLocked(now time.Time) {
	for {
		var in *instRec
		for _, x := range s.w.instances {
			if !x.PublicIPDue.IsZero() && !x.PublicIPDue.After(now) && (in == nil || x.PublicIPDue.Before(in.PublicIPDue)) {
				in = x
			}
		}
		late := len(s.lateQ) > 0 && !s.lateQ[0].due.After(now)
		switch {
		case late && (in == nil || !in.PublicIPDue.Before(s.lateQ[0].due)):
			pw := s.lateQ[0]
			s.lateQ = s.lateQ[1:]
			pw.fn(pw.due, pw.o)
		case in != nil:
			s.publicIPDueLocked(in)
		default:
			return
		}
	}
}
