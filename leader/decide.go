// Package leader elects one holder per Elastic IP. Decide is a pure function
// from observations to an action; Loop gathers the observations and carries
// the actions out through the small interfaces declared in loop.go.
//
// The safety invariants the package keeps are stated in docs/design.md
// ("Safety invariants"); the comments below name them by number (§9.n).
package leader

import (
	"hash/fnv"
	"slices"
	"strconv"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// Action is what Decide asks the loop to do for one EIP.
type Action int

const (
	// Wait: nothing to do now (standby).
	Wait Action = iota
	// Hold: holder with nothing to do now; the renewer keeps the lease
	// alive when Decision.MayRenew says so.
	Hold
	// Refresh: read the address from the API before deciding further.
	Refresh
	// SeekTargets: list ready members and probe them before a handoff.
	SeekTargets
	// Repair: the EIP is on this instance but its tags do not carry this
	// holder's lease (a lease write was lost): write the lease whole.
	Repair
	// Adopt: the EIP is on this instance's ENI: become holder and write
	// the lease (restart, handoff target, or moved here by hand).
	Adopt
	// Claim: fence on the observed association and take the EIP onto
	// Decision.Slot of this instance.
	Claim
	// Handoff: move the EIP to Decision.Target (make before break).
	Handoff
	// StepDown: the EIP is no longer this instance's; become standby.
	StepDown
)

var actionNames = [...]string{"wait", "hold", "refresh", "seek-targets", "repair", "adopt", "claim", "handoff", "step-down"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return "unknown"
}

// Failover reasons: the fixed label set of eipd_failovers_total.
const (
	ReasonHandoffUnhealthy     = "handoff-unhealthy"
	ReasonHandoffDraining      = "handoff-draining"
	ReasonHandoffShutdown      = "handoff-shutdown"
	ReasonHandoffManual        = "handoff-manual"
	ReasonHandoffRebalance     = "handoff-rebalance"
	ReasonTakeoverStale        = "takeover-stale"
	ReasonTakeoverUnassociated = "takeover-unassociated"
)

// Reasons lists every failover reason, for metrics label initialisation.
var Reasons = []string{
	ReasonHandoffUnhealthy, ReasonHandoffDraining, ReasonHandoffShutdown, ReasonHandoffManual,
	ReasonHandoffRebalance, ReasonTakeoverStale, ReasonTakeoverUnassociated,
}

// Timing holds the durations the decision depends on.
type Timing struct {
	RenewInterval time.Duration
	LeaseDuration time.Duration
	MaxClockSkew  time.Duration
	HolderPoll    time.Duration
	StandbyPoll   time.Duration
	ProbeInterval time.Duration
	// RankStep spreads concurrent claimants: see RankDelay.
	RankStep time.Duration
	// TargetRetry is how often a holder that wants to leave looks again
	// for a ready target when it found none.
	TargetRetry time.Duration
	// TargetsKeep is how long a list of handoff targets stays usable: a
	// healthy holder keeps one at hand, refreshed this often, so that a
	// handoff needs no EC2 read on its critical path (the chosen target
	// is probed again right before the move). Zero: seek when leaving.
	TargetsKeep time.Duration
}

// trustWindow is how long a successful read or renewal vouches for a
// holder (§9.1, §9.6). It ends a clock skew before the lease does, so a
// holder stops calling itself holder before any standby, even one whose
// clock runs ahead by the allowed skew, can judge its lease stale.
func (t Timing) trustWindow() time.Duration {
	return max(t.RenewInterval, t.LeaseDuration-t.MaxClockSkew)
}

// recentDown is how long a member that was unhealthy stays the last
// choice as a target (§9.4).
const recentDown = time.Minute

// Target is a member that could take the EIP over.
type Target struct {
	eip.Instance
	Held int    // managed EIPs it holds now
	Slot string // a free private IP of its primary ENI
	// UpFor is how long its own check has been up, as it said on /status;
	// DownRecently: it was unhealthy within the last minute.
	UpFor        time.Duration
	DownRecently bool
}

// Observation is everything Decide may look at for one EIP. The loop
// fills it; Decide never does I/O and never reads the clock itself.
type Observation struct {
	Now      time.Time
	Self     eip.Identity
	Priority int // own eipd:priority
	// BestPriority is the highest eipd:priority among running members
	// that are ready or not yet known, this one included.
	BestPriority int
	// MembersKnown: the member list has been read at least once, so
	// Priority and BestPriority mean something.
	MembersKnown bool

	// Own condition.
	Health health.Status
	// DownRecently: the own check was down within the last minute.
	DownRecently bool
	// Drain is the reason this instance wants to give its EIPs away
	// (ReasonHandoffDraining, ReasonHandoffShutdown, ReasonHandoffManual)
	// or "" when it does not.
	Drain string
	// ManualTarget restricts a manual handoff to one instance ("" = any).
	ManualTarget string
	// FreeSlot is a private IP of this instance's primary ENI that carries
	// no EIP, or "" when every one does (EC2 allows one EIP per private IP).
	FreeSlot string

	// The address as last read from the API.
	Address eip.Address
	// AddressAt is when the read that produced Address started; zero when
	// no read started after this instance's own last move of the EIP
	// (§9.5: a read from before the move says nothing about after it).
	AddressAt   time.Time
	ReadTriedAt time.Time // when the last read was attempted
	ReadError   bool      // the last read attempt failed: AWS state unknown

	// LeaseStamp is the freshest eipd:renewed known from reads or from the
	// holder's own /status, and LeaseSeenAt when this instance first saw
	// that value (§9.7).
	LeaseStamp  time.Time
	LeaseSeenAt time.Time

	// Holder-side memory (Holding = this instance is the holder).
	Holding     bool
	Term        int64     // term this instance holds with
	HolderSince time.Time // when it became holder
	// VerifiedAt is the last time AWS confirmed the holding: a successful
	// renewal, or a read that showed the EIP here with this term.
	VerifiedAt time.Time
	// GapSince is the first failed read or renewal since then; zero when
	// none (§9.2).
	GapSince time.Time
	// IMDSLost: instance metadata no longer lists the EIP on this ENI.
	IMDSLost bool
	// IMDSSeenAt is when instance metadata last listed the EIP on this
	// ENI (polled every probe interval while holding): local evidence,
	// fresher than any API read, that the EIP is still here.
	IMDSSeenAt time.Time

	// Standby-side memory.
	PeerDown bool // probe of the address's private IP has failed fall times (true when there is nothing to probe)
	// HolderConfirmed: the last probe of the instance the EIP points at
	// passed and its eipd's /status says it holds this EIP (which it says
	// only while AWS has confirmed it lately, §9.6).
	HolderConfirmed bool
	// HolderDenies: that instance's eipd answered and says it does not hold
	// this EIP (or cannot confirm it): the cached address is out of date.
	HolderDenies bool
	// HolderHandingOff: it denies because it is handing the EIP off right
	// now (moved, lease not yet written); HolderLetGoAt is when its
	// probes began to deny otherwise (zero unless they do).
	HolderHandingOff bool
	HolderLetGoAt    time.Time
	HolderStopped    bool // the holder instance is known not to be running
	// PeerProbed: the member probed for this EIP (see HolderConfirmed)
	// was probed after the last read, or there is none to probe.
	PeerProbed bool
	RankSince  time.Time // when this standby became eligible to claim; zero = not yet

	// Spreading of several EIPs.
	Held    int // managed EIPs this instance holds (this one included if Holding)
	MaxHold int // most EIPs one instance should hold; 0 = no cap
	// RebalanceFirst: of the EIPs this holder holds, this is the one to
	// move first when it holds more than MaxHold: the one a daemon moved
	// longest ago, so no EIP moves twice for one fault (§9.4).
	RebalanceFirst bool
	// LastMove is when a daemon last moved this EIP, as far as this
	// instance knows; a rebalance waits a minute after it, so an EIP a
	// fault just moved is not moved again for spreading.
	LastMove time.Time

	// Handoff targets: ready members with a free slot that passed a probe,
	// best first (RankTargets).
	Targets   []Target
	TargetsAt time.Time // when they were sought; zero = never
}

// Decision is Decide's answer.
type Decision struct {
	Action Action
	// Why explains the decision in a few words, for logs and /status.
	Why string
	// Reason is the failover reason for Claim and Handoff.
	Reason string
	// Target is where Handoff moves the EIP (to Target.Slot).
	Target *Target
	// Slot is the private IP of this instance that Claim associates to.
	Slot string
	// Lease is what Repair, Adopt, Claim and Handoff write.
	Lease eip.Lease
	// Blocked: the holder wants to hand off but has no ready target.
	Blocked bool
	// NoFreeSlot: the EIP should come here or go elsewhere but no private
	// IP is free for it; it stays where it is.
	NoFreeSlot bool
	// Eligible: a standby that may claim once its rank delay has passed;
	// the loop starts RankSince when this turns true and clears it
	// otherwise.
	Eligible bool
	// MayRenew: the renewer may keep this holder's lease alive (§9.2: only
	// while AWS has confirmed the holding since the last failure).
	MayRenew bool
}

// Decide returns what to do next for one EIP. It is a pure function.
func Decide(t Timing, o Observation) Decision {
	if o.Holding {
		return decideHolder(t, o)
	}
	return decideStandby(t, o)
}

func ownsAssociation(o Observation) bool {
	a := o.Address
	return a.Associated() && a.NetworkInterfaceID == o.Self.NetworkInterfaceID
}

// Verified reports whether AWS has confirmed this holder's holding lately
// enough for it to call itself holder (§9.1, §9.6).
func Verified(t Timing, o Observation) bool {
	return o.Holding && !o.IMDSLost && !o.VerifiedAt.IsZero() && o.Now.Sub(o.VerifiedAt) < t.trustWindow()
}

// fit reports whether this instance may take an EIP on.
func fit(o Observation) bool { return o.Health == health.Up && o.Drain == "" }

func decideHolder(t Timing, o Observation) Decision {
	lease := o.Address.Lease
	dated := o.AddressAt.After(o.HolderSince)
	if dated && !o.ReadError {
		// Someone else won a later term: never fight.
		if lease.Term > o.Term && lease.Holder != o.Self.InstanceID {
			return Decision{Action: StepDown, Why: "a later term (" + itoa(lease.Term) + ") belongs to " + lease.Holder}
		}
		if !ownsAssociation(o) {
			// A read showing an older term may lag behind our own move
			// (our lease is written after the association); believe it
			// once it shows our term or the lag window is long past.
			settled := o.AddressAt.Sub(o.HolderSince) > t.LeaseDuration
			if lease.Term >= o.Term || settled {
				if !o.Address.Associated() {
					if fit(o) && o.FreeSlot != "" && (o.MaxHold == 0 || o.Held <= o.MaxHold) {
						// Disassociated under us (by hand, or by AWS):
						// take it back at once, fenced like any claim.
						return Decision{
							Action: Claim, Why: "the EIP was disassociated; associating it again", Reason: ReasonTakeoverUnassociated,
							Slot:  o.FreeSlot,
							Lease: eip.Lease{Holder: o.Self.InstanceID, Term: max(o.Term, lease.Term) + 1, Renewed: o.Now, Reason: ReasonTakeoverUnassociated, Decided: o.Now},
						}
					}
					return Decision{Action: StepDown, Why: "the EIP was disassociated"}
				}
				return Decision{Action: StepDown, Why: "the EIP was moved to " + orUnknown(o.Address.InstanceID)}
			}
		}
	}

	// §9.2: after a failed read or renewal, or a silence longer than the
	// trust window, look before writing anything.
	// The loop clears GapSince when a read started after it shows the EIP
	// here, so either condition means "not confirmed since".
	if !o.GapSince.IsZero() || !Verified(t, o) {
		d := Decision{Action: Hold, Why: "AWS has not confirmed this holder lately; waiting for a read"}
		every := t.ProbeInterval
		if o.ReadError {
			every = t.RenewInterval
		}
		if readDue(t, o, every) {
			d.Action, d.Why = Refresh, "confirming the EIP is still here before renewing"
		}
		return d
	}

	if reason := leaveReason(o); reason != "" {
		// A handoff re-associates with AllowReassociation=true, which
		// fences on nothing: move only what a fresh read shows is still
		// here, or a holder cut off from the API could move an EIP that
		// another member already took.
		// Instance metadata listing it here within two probe intervals
		// will do too: it is fresher than a read, and saves a call on
		// the handoff's critical path.
		imdsFresh := o.IMDSSeenAt.After(o.HolderSince) && o.Now.Sub(o.IMDSSeenAt) <= 2*t.ProbeInterval
		readFresh := dated && o.Now.Sub(o.AddressAt) < t.RenewInterval
		if o.ReadError || !(readFresh || imdsFresh) {
			if readDue(t, o, t.ProbeInterval) {
				return Decision{Action: Refresh, Why: "checking the EIP is still here before handing it off", Reason: reason, MayRenew: true}
			}
			d := holderRoutine(t, o)
			d.Why = "AWS state unknown; cannot hand off (" + reason + ")"
			return d
		}
		if !ownsAssociation(o) {
			d := holderRoutine(t, o)
			d.Why = "waiting for a read that shows the EIP here before handing it off (" + reason + ")"
			return d
		}
		// A kept list will do (the loop probes the chosen target again
		// right before the move); an empty one is sought again.
		age := o.Now.Sub(o.TargetsAt)
		tgt := pickTarget(o)
		fresh := !o.TargetsAt.IsZero() && (age < t.TargetRetry || (tgt != nil && age < t.TargetsKeep))
		if tgt != nil && fresh {
			return Decision{
				Action: Handoff, Why: "handing off to a ready member", Reason: reason, Target: tgt,
				Lease: eip.Lease{Holder: tgt.InstanceID, Term: max(o.Term, lease.Term) + 1, Renewed: o.Now,
					Reason: reason, Decided: o.Now, From: o.Self.InstanceID},
			}
		}
		if !fresh {
			return Decision{Action: SeekTargets, Why: "looking for a ready member to hand off to", Reason: reason, MayRenew: true}
		}
		// No ready target: keep the EIP (moving it to an unknown
		// instance helps nobody) and keep the lease alive.
		d := holderRoutine(t, o)
		d.Blocked = reason != ReasonHandoffRebalance
		d.Why = "no ready member with a free private IP to hand off to (" + reason + "); keeping the EIP"
		return d
	}
	return holderRoutine(t, o)
}

// leaveReason says why a holder should give this EIP away, or "".
func leaveReason(o Observation) string {
	switch {
	case o.Drain != "":
		return o.Drain
	case o.Health == health.Down:
		return ReasonHandoffUnhealthy
	case o.MaxHold > 0 && o.Held > o.MaxHold && o.RebalanceFirst && o.Now.Sub(o.LastMove) >= recentDown:
		return ReasonHandoffRebalance
	}
	return ""
}

// pickTarget returns the best target that fits the situation, or nil.
// Targets arrive best first; a rebalance only moves to a member that
// holds less than the cap and was not unhealthy lately, and a manual
// handoff may name its target.
func pickTarget(o Observation) *Target {
	reason := leaveReason(o)
	for i := range o.Targets {
		tg := &o.Targets[i]
		switch {
		case tg.InstanceID == o.Self.InstanceID, tg.Slot == "":
			continue
		case reason == ReasonHandoffManual && o.ManualTarget != "" && tg.InstanceID != o.ManualTarget:
			continue
		case reason == ReasonHandoffRebalance && (o.MaxHold == 0 || tg.Held+1 > o.MaxHold || tg.DownRecently):
			continue
		case reason == ReasonHandoffRebalance && tg.InstanceID == o.Address.Lease.From &&
			o.Now.Sub(o.Address.Lease.Decided) < recentDown:
			// Never rebalance an EIP back to the member it just left
			// (a manual handoff away from it, say): that is ping-pong.
			continue
		}
		return tg
	}
	return nil
}

func holderRoutine(t Timing, o Observation) Decision {
	l := o.Address.Lease
	if o.AddressAt.After(o.HolderSince) && ownsAssociation(o) && !o.ReadError &&
		(l.Holder != o.Self.InstanceID || l.Term != o.Term || len(l.Invalid) > 0) {
		// Our association, but the tags name someone else or another
		// term: a lease write was lost (or a stale daemon renewed). Write
		// ours whole; a renewal alone would keep the wrong term.
		return Decision{Action: Repair, Why: "the EIP's tags do not carry this holder's lease; rewriting it",
			Lease: eip.Lease{Holder: o.Self.InstanceID, Term: max(o.Term, l.Term), Renewed: o.Now}}
	}
	if readDue(t, o, t.HolderPoll) {
		return Decision{Action: Refresh, Why: "holder poll", MayRenew: true}
	}
	if t.TargetsKeep > 0 && (o.TargetsAt.IsZero() || o.Now.Sub(o.TargetsAt) >= t.TargetsKeep) {
		return Decision{Action: SeekTargets, Why: "keeping handoff targets at hand", MayRenew: true}
	}
	return Decision{Action: Hold, Why: "holding", MayRenew: true}
}

// readDue reports whether the address should be read again, at most once
// per every, and no more than once per renew interval after a failure.
func readDue(t Timing, o Observation, every time.Duration) bool {
	last := o.AddressAt
	if o.ReadTriedAt.After(last) {
		last = o.ReadTriedAt
		if o.ReadError {
			every = min(every, t.RenewInterval)
		}
	}
	return last.IsZero() || o.Now.Sub(last) >= every
}

// Stale reports whether the lease of an address no longer protects it,
// and why (takeover condition 2, with §9.7's two clocks).
func Stale(t Timing, o Observation) (bool, string) {
	a, l := o.Address, o.Address.Lease
	limit := t.LeaseDuration + t.MaxClockSkew
	switch {
	case !a.Associated():
		return true, "the EIP is not associated"
	case l.Holder == "":
		return true, "no holder recorded"
	case len(l.Invalid) > 0:
		return true, "lease tags do not parse"
	case o.LeaseStamp.IsZero():
		return true, "no renewal recorded"
	case o.HolderStopped:
		return true, "the holder instance is not running"
	case o.Now.Sub(o.LeaseStamp) > limit:
		return true, "the lease expired"
	case !o.LeaseSeenAt.IsZero() && o.Now.Sub(o.LeaseSeenAt) > limit:
		// The stamp may be in the future (a holder's fast clock): by our
		// own clock it has not moved for a whole lease (§9.7).
		return true, "the lease was not renewed for " + limit.String() + " by this instance's clock"
	}
	return false, ""
}

func decideStandby(t Timing, o Observation) Decision {
	if o.AddressAt.IsZero() || !o.MembersKnown {
		if readDue(t, o, t.RenewInterval) {
			return Decision{Action: Refresh, Why: "first read"}
		}
		if o.AddressAt.IsZero() {
			return Decision{Action: Wait, Why: "AWS state unknown"}
		}
		// Priorities decide who claims first: no claim without them.
		return Decision{Action: Wait, Why: "the member list has not been read yet"}
	}
	if ownsAssociation(o) && !o.ReadError {
		l := o.Address.Lease
		stale, _ := Stale(t, o)
		othersLive := l.Holder != o.Self.InstanceID && len(l.Invalid) == 0 && !stale
		if othersLive && (o.HolderConfirmed || !o.PeerProbed) {
			// Moved here by hand (or a handoff whose lease is not
			// written yet) while the member the lease names still says
			// it holds the EIP: let it notice first (it watches its own
			// ENI), so that two members never both call themselves
			// holder. The EIP serves from here meanwhile.
			return Decision{Action: Wait, Why: "the EIP is on this instance; waiting for " + l.Holder + " to let go of it"}
		}
		// A handoff writes its lease (this instance, the move's term,
		// reason and time) just after the association: a read between
		// the two shows the EIP here under the old lease. Adopting from
		// it would write a lease of our own over the handoff's (same
		// holder, so no harm to safety) and the move would go uncounted.
		if othersLive && o.HolderHandingOff {
			return Decision{Action: Wait, Why: "the EIP is on this instance; waiting for " + l.Holder + " to finish handing it off"}
		}
		if othersLive && o.HolderDenies && !o.AddressAt.After(o.HolderLetGoAt) {
			// At most once a probe interval: a read dropped as lagging
			// does not advance AddressAt, and must not make every pass
			// read.
			why := "the EIP is on this instance and " + l.Holder + " let go of it after the last read; reading the lease it wrote"
			if readDue(t, o, t.ProbeInterval) {
				return Decision{Action: Refresh, Why: why}
			}
			return Decision{Action: Wait, Why: why}
		}
		lease := eip.Lease{Holder: o.Self.InstanceID, Term: l.Term, Renewed: o.Now, Reason: l.Reason, Decided: l.Decided, From: l.From}
		if l.Holder != o.Self.InstanceID || len(l.Invalid) > 0 {
			// Moved here by hand, or the tags were garbage: a new term.
			lease.Term = l.Term + 1
			lease.Reason, lease.Decided, lease.From = "", time.Time{}, ""
		}
		return Decision{Action: Adopt, Why: "the EIP is on this instance", Lease: lease}
	}

	if o.ReadError {
		// AWS state unknown: never claim; read again at a calm pace.
		if readDue(t, o, t.RenewInterval) {
			return Decision{Action: Refresh, Why: "AWS state unknown"}
		}
		return Decision{Action: Wait, Why: "AWS state unknown"}
	}
	age := o.Now.Sub(o.AddressAt)

	stale, why := Stale(t, o)
	if !stale {
		if o.PeerDown {
			// The holder looks dead from here but its lease is fresh:
			// read again when the lease would run out, not before.
			limit := t.LeaseDuration + t.MaxClockSkew
			until := min(o.LeaseStamp.Add(limit).Sub(o.Now), o.LeaseSeenAt.Add(limit).Sub(o.Now))
			if age >= t.StandbyPoll || (age >= t.ProbeInterval && until <= 0) {
				return Decision{Action: Refresh, Why: "holder unreachable; checking its lease"}
			}
			return Decision{Action: Wait, Why: "holder unreachable but its lease is fresh"}
		}
		if o.HolderDenies && readDue(t, o, t.RenewInterval) {
			return Decision{Action: Refresh, Why: "the instance the EIP points at does not confirm it holds it"}
		}
		if o.HolderConfirmed {
			return Decision{Action: Wait, Why: "standby; the holder confirms it holds the EIP"}
		}
		if age >= t.StandbyPoll {
			return Decision{Action: Refresh, Why: "standby poll (the holder's /status does not confirm it)"}
		}
		return Decision{Action: Wait, Why: "standby"}
	}

	// The lease looks stale. Claim only if this instance is fit to hold
	// and the holder is not reachable as healthy from here. Otherwise
	// keep looking at the renew interval until a fresh lease shows
	// (§9.6): a holder that cannot see AWS must not be trusted for long.
	switch {
	case o.Health != health.Up:
		return standbyWait(t, o, "lease stale ("+why+") but own health is "+o.Health.String())
	case o.Drain != "":
		return standbyWait(t, o, "lease stale ("+why+") but draining")
	case !o.PeerDown:
		return standbyWait(t, o, "lease stale ("+why+") but the holder answers as healthy")
	case o.FreeSlot == "":
		d := standbyWait(t, o, "lease stale ("+why+") but no private IP of this instance is free for it")
		d.NoFreeSlot = true
		return d
	}
	reason := ReasonTakeoverStale
	if !o.Address.Associated() {
		reason = ReasonTakeoverUnassociated
	}
	delay := RankDelay(t, o)
	if o.RankSince.IsZero() || o.Now.Sub(o.RankSince) < delay {
		return Decision{Action: Wait, Why: "lease stale (" + why + "); waiting for rank delay", Eligible: true}
	}
	if !o.AddressAt.After(o.RankSince.Add(delay)) {
		// Re-read after the rank delay: a better-ranked member may have
		// claimed in the meantime.
		return Decision{Action: Refresh, Why: "re-reading before claiming", Eligible: true}
	}
	l := o.Address.Lease
	return Decision{
		Action: Claim, Why: "lease stale (" + why + ")", Reason: reason, Eligible: true, Slot: o.FreeSlot,
		Lease: eip.Lease{Holder: o.Self.InstanceID, Term: l.Term + 1, Renewed: o.Now, Reason: reason, Decided: o.Now,
			From: previousHolder(o.Address)},
	}
}

func standbyWait(t Timing, o Observation, why string) Decision {
	if readDue(t, o, t.RenewInterval) {
		return Decision{Action: Refresh, Why: why}
	}
	return Decision{Action: Wait, Why: why}
}

// RankDelay is how long a standby waits, once eligible, before claiming
// (§9.4): members below the best eipd:priority wait a step per level (at
// most five), a member that was unhealthy within the last minute waits
// three steps more, one step more per EIP it already holds (at most
// three), and a hash of instance ID, allocation ID and term
// orders the rest within a step, so that the best candidate usually goes
// first and the others see it done, and different EIPs tend to go to
// different members.
func RankDelay(t Timing, o Observation) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(o.Self.InstanceID))
	h.Write([]byte{0})
	h.Write([]byte(o.Address.AllocationID))
	var b [8]byte
	term := uint64(o.Address.Lease.Term)
	for i := range b {
		b[i] = byte(term >> (8 * i))
	}
	h.Write(b[:])
	frac := float64(h.Sum64()%1000) / 1000
	steps := frac + float64(min(max(o.BestPriority-o.Priority, 0), 5))
	if o.DownRecently {
		steps += 3
	}
	// Members that hold fewer EIPs go first: spreading at claim time
	// saves a rebalancing move later.
	steps += float64(min(o.Held, 3))
	return time.Duration(steps * float64(t.RankStep))
}

// RankTargets orders handoff candidates best first (§9.4): members that
// were not unhealthy in the last minute, then fewest EIPs held (spreading),
// then higher eipd:priority, then the one ready longest, then instance ID.
func RankTargets(ts []Target) {
	slices.SortStableFunc(ts, func(a, b Target) int {
		switch {
		case a.DownRecently != b.DownRecently:
			if a.DownRecently {
				return 1
			}
			return -1
		case a.Held != b.Held:
			return a.Held - b.Held
		case a.Priority != b.Priority:
			return b.Priority - a.Priority
		case a.UpFor != b.UpFor:
			if a.UpFor > b.UpFor {
				return -1
			}
			return 1
		case a.InstanceID < b.InstanceID:
			return -1
		case a.InstanceID > b.InstanceID:
			return 1
		}
		return 0
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func orUnknown(s string) string {
	if s == "" {
		return "another network interface"
	}
	return s
}
