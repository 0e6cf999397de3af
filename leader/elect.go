package leader

import (
	"hash/fnv"
	"strconv"
	"time"
)

// Election is what Elect asks a member that does not coordinate to do.
type Election int

const (
	// ElectWait: nothing to do now.
	ElectWait Election = iota
	// ElectRead: read the EIPs (the group lease on them) from the API.
	ElectRead
	// ElectClaim: write the group lease with this member as coordinator
	// and the next epoch.
	ElectClaim
)

var electionNames = [...]string{"wait", "read", "claim"}

func (e Election) String() string { return electionNames[e] }

// ElectObservation is what Elect looks at.
type ElectObservation struct {
	Now  time.Time // monotonic
	Wall time.Time // the member's wall clock, for the lease stamp (§7)
	Self string
	// Lease is the freshest group lease this member knows.
	Lease LeaseSeen
	// CoordinatorUntil: the coordinator this member follows said on its
	// /status that it may act until then (monotonic, from the start of
	// this member's probe); zero when none does.
	CoordinatorUntil time.Time
	// ReadAt is the start of the last successful read of the EIPs; zero
	// before the first. ReadTriedAt and ReadError: the last attempt.
	ReadAt, ReadTriedAt time.Time
	ReadError           bool
	// MembersKnown: the member list was read (priorities rank claimants).
	MembersKnown bool
	// Unfit says why this member may not coordinate ("" when it may): its
	// own check is not up, it is leaving, IAM refused it lately, or it is
	// stopping. Troubled: its AWS calls failed lately (it claims only by
	// rank, never at once).
	Unfit    string
	Troubled bool
	// IdleSince: the coordinator it follows answers its probes but has
	// not said it acts since then (monotonic; zero when it acts, or does
	// not answer): past lease + skew the lease is stale, whatever stamps
	// the tags carry (a member whose claims time out after landing keeps
	// them fresh without ever acting).
	IdleSince time.Time
	// IdleTroubled: that idle coordinator says its AWS calls are in
	// trouble (its claim failed): it will not act soon, and its lease is
	// stale sooner (a renew interval and a probe interval of idleness).
	IdleTroubled bool
	// RankSince: when this member became eligible to claim (zero: not
	// yet); Rank its rank delay (RankDelay).
	RankSince time.Time
	Rank      time.Duration
	// ClaimFailedAt: the start of this member's last claim that failed
	// (zero: none yet); a read started after it allows the next claim.
	ClaimFailedAt time.Time
}

// ElectDecision is Elect's answer. Eligible: the member may claim once
// its rank delay has passed; the loop starts RankSince when it turns true
// and clears it otherwise.
type ElectDecision struct {
	Do       Election
	Why      string
	Eligible bool
}

// Elect decides, for a member that does not coordinate, whether to read
// the group lease, wait, or claim the coordinator role. It is a pure
// function. A member reads nothing while a coordinator confirms on its
// /status that it may act; otherwise it watches the lease at the renew
// interval and claims once it is stale (§7), after its rank delay and a
// read made after that delay (someone better placed may have claimed).
func Elect(t Timing, o ElectObservation) ElectDecision {
	if o.Now.Before(o.CoordinatorUntil) {
		return ElectDecision{Why: "the coordinator " + o.Lease.Lease.Coordinator + " confirms it may act"}
	}
	if o.ReadAt.IsZero() {
		return watch(t, o, "AWS state unknown: first read")
	}
	if !o.MembersKnown {
		return ElectDecision{Why: "the member list has not been read yet"}
	}
	stale, why := Stale(t, o.Lease, o.Wall, o.Now)
	if idle := t.idleAfter(o.IdleTroubled); !stale && !o.IdleSince.IsZero() && o.Now.Sub(o.IdleSince) > idle {
		stale, why = true, "the coordinator "+o.Lease.Lease.Coordinator+" answers but has not acted for "+idle.String()
	}
	if !stale {
		if o.Lease.Lease.Coordinator == o.Self && o.Unfit == "" && !o.Troubled {
			// A coordinator handed the role to this member (or this
			// member held it before a restart): take it at once (after
			// a failed claim, once a read started after it).
			if !o.ReadAt.After(o.ClaimFailedAt) {
				d := watch(t, o, "the group lease names this member; reading again after a failed claim")
				d.Eligible = true
				if !o.ReadError {
					d.Do = ElectRead
				}
				return d
			}
			return ElectDecision{Do: ElectClaim, Why: "the group lease names this member", Eligible: true}
		}
		return watch(t, o, "the coordinator "+o.Lease.Lease.Coordinator+" does not confirm; watching its lease")
	}
	if o.Unfit != "" {
		return watch(t, o, "no coordinator ("+why+") but this member may not coordinate: "+o.Unfit)
	}
	if o.RankSince.IsZero() || o.Now.Sub(o.RankSince) < o.Rank {
		return ElectDecision{Why: "no coordinator (" + why + "); waiting for the rank delay", Eligible: true}
	}
	if !o.ReadAt.After(maxTime(o.RankSince.Add(o.Rank), o.ClaimFailedAt)) {
		// Also after a failed claim: what refused it (an EIP released, a
		// rival's claim) shows in a read, and a claim that fails at once
		// must not be sent again on every pass.
		d := watch(t, o, "no coordinator ("+why+"); reading again before claiming")
		d.Eligible = true
		if o.ReadError {
			return d
		}
		d.Do = ElectRead
		return d
	}
	return ElectDecision{Do: ElectClaim, Why: "no coordinator (" + why + ")", Eligible: true}
}

// idleAfter is how long the coordinator a member follows may answer
// without acting before its lease counts as stale. Safety does not rest on
// it: a claimant that starts acting later runs its acceptance round first
// and steps down on meeting a member that follows a later epoch.
func (t Timing) idleAfter(troubled bool) time.Duration {
	if troubled {
		return t.RenewInterval + t.ProbeInterval
	}
	return t.staleAfter()
}

// watch reads at the renew interval (after a failure too), else waits.
func watch(t Timing, o ElectObservation, why string) ElectDecision {
	last := o.ReadAt
	if o.ReadTriedAt.After(last) {
		last = o.ReadTriedAt
	}
	if last.IsZero() || o.Now.Sub(last) >= t.RenewInterval {
		return ElectDecision{Do: ElectRead, Why: why}
	}
	return ElectDecision{Why: why}
}

// Rank is what orders members that would claim the coordinator role at
// the same moment.
type Rank struct {
	Self string
	// Priority is this member's eipd:priority, BestPriority the highest
	// among the running members.
	Priority, BestPriority int
	// Holds: EIPs on this member. A member that holds none coordinates
	// best: holding and coordinating then fail independently.
	Holds int
	// DownRecently: its own check was down within the last minute;
	// Troubled: its last AWS calls were throttled or failed.
	DownRecently, Troubled bool
	// Epoch is the lease's epoch, so that the order among equals changes
	// from one election to the next.
	Epoch int64
}

// RankDelay is how long an eligible member waits before claiming: one
// rank step per eipd:priority level below the best (at most five), two if
// it holds an EIP, three if its check was down lately, three if its AWS
// calls were troubled, plus a fraction of a step from a hash of its ID and
// the epoch. The best-placed member usually claims first and the others
// see it done.
func RankDelay(t Timing, r Rank) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(r.Self))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(r.Epoch, 10)))
	steps := float64(h.Sum64()%1000) / 1000
	steps += float64(min(max(r.BestPriority-r.Priority, 0), 5))
	if r.Holds > 0 {
		steps += 2
	}
	if r.DownRecently {
		steps += 3
	}
	if r.Troubled {
		steps += 3
	}
	return time.Duration(steps * float64(t.RankStep))
}
