package leader

import (
	"slices"
	"time"

	"github.com/eipd/eipd/eip"
)

// Trust is until when evidence gathered at the given moments (monotonic
// readings: the start of a confirmed renewal of the group lease, the start
// of a read that showed an association, AWS's answer to a move) lets a
// daemon act, or call itself coordinator or holder. Each piece vouches for
// one trust window (lease − skew) from when it was gathered, and the oldest
// bounds the whole; no evidence (a zero moment) vouches for nothing.
//
// It is the one place that says how long trust lasts: the coordinator's
// deadline is Trust(renewal); the holder it names for an EIP is vouched for
// until Trust(renewal, confirmation); a member carries that over as the
// remaining duration (valid_for) the coordinator's /status gives, measured
// from the start of its own probe, so no two clocks are compared (§6).
func Trust(t Timing, evidence ...time.Time) time.Time {
	var until time.Time
	for i, at := range evidence {
		if at.IsZero() {
			return time.Time{}
		}
		if u := at.Add(t.trustWindow()); i == 0 || u.Before(until) {
			until = u
		}
	}
	return until
}

// LeaseSeen is the group lease as one member knows it: the latest copy
// from its reads and from the coordinator's /status, and when (monotonic)
// it first saw that copy.
type LeaseSeen struct {
	Lease  eip.GroupLease
	SeenAt time.Time
	// recent are the stamps seen of this coordinator's epoch lately: one
	// not among them is a renewal, even when it is older by the wall clock
	// (the coordinator's clock was set back), while a read that lags shows
	// one among them and says nothing new.
	recent []time.Time
}

// see records a copy of the lease read or reported at now. A higher epoch
// replaces the lease; in the same epoch of the same coordinator, a stamp
// not seen lately is a renewal and restarts SeenAt (§7).
func (s *LeaseSeen) see(l eip.GroupLease, now time.Time) {
	if l.Coordinator == "" && l.Epoch == 0 {
		return
	}
	same := l.Coordinator == s.Lease.Coordinator && l.Epoch == s.Lease.Epoch
	switch {
	case s.SeenAt.IsZero() || l.Epoch > s.Lease.Epoch || (!same && l.Newer(s.Lease)):
		s.Lease, s.SeenAt, s.recent = l, now, []time.Time{l.Renewed}
	case same && !slices.ContainsFunc(s.recent, l.Renewed.Equal):
		s.Lease, s.SeenAt = l, now
		const keep = 4
		s.recent = append(s.recent, l.Renewed)
		if len(s.recent) > keep {
			s.recent = s.recent[len(s.recent)-keep:]
		}
	}
}

// Stale reports whether the group lease no longer protects its coordinator,
// and why (§7): no lease, tags that do not parse, a stamp that has not
// changed for lease + skew of this member's monotonic clock since it first
// saw it, or a stamp older than lease + skew by this member's wall clock
// once it has stayed unchanged for longer than a renewal takes. The first
// rule means a stamp in the future (a coordinator whose clock runs fast)
// never extends a lease beyond lease + skew after it stops changing; the
// condition on the second means a wall clock far off (a coordinator's
// that runs slow, or this member's that runs fast) never ends the lease of
// a coordinator that still renews.
func Stale(t Timing, s LeaseSeen, wall, now time.Time) (bool, string) {
	l := s.Lease
	limit := t.staleAfter()
	unchanged := now.Sub(s.SeenAt)
	switch {
	case l.Coordinator == "":
		return true, "no coordinator recorded"
	case len(l.Invalid) > 0:
		return true, "the group lease's tags do not parse"
	case l.Renewed.IsZero():
		return true, "no renewal recorded"
	case unchanged > limit:
		return true, "the group lease was not renewed for " + limit.String() + " by this member's clock"
	case unchanged > t.renewalGap() && wall.Sub(l.Renewed) > limit:
		return true, "the group lease expired"
	}
	return false, ""
}
