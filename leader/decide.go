// Package leader elects one holder per Elastic IP. Decide is a pure function
// from observations to an action; Loop gathers the observations and carries
// the actions out through the small interfaces declared in loop.go.
package leader

import (
	"hash/fnv"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// Action is what Decide asks the loop to do for one EIP.
type Action int

const (
	// Wait: nothing to do now (standby).
	Wait Action = iota
	// Hold: holder with nothing to do now.
	Hold
	// Refresh: read the address from the API before deciding further.
	Refresh
	// SeekTargets: list ready members and probe them before a handoff.
	SeekTargets
	// Renew: write the lease (holder, term, renewed).
	Renew
	// Adopt: the EIP is on this instance's ENI: become holder and write
	// the lease (restart, handoff target, or moved here by hand).
	Adopt
	// Claim: fence on the observed association and take the EIP.
	Claim
	// Handoff: move the EIP to Decision.Target (make before break).
	Handoff
	// StepDown: someone else holds the EIP now; become standby.
	StepDown
)

var actionNames = [...]string{"wait", "hold", "refresh", "seek-targets", "renew", "adopt", "claim", "handoff", "step-down"}

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

// Timing holds the durations the decision depends on (DESIGN.md §5).
type Timing struct {
	RenewInterval time.Duration
	LeaseDuration time.Duration
	MaxClockSkew  time.Duration
	HolderPoll    time.Duration
	StandbyPoll   time.Duration
	ProbeInterval time.Duration
	// RankStep spreads concurrent claimants: the best-ranked waits about
	// one step, the others up to two (see RankDelay).
	RankStep time.Duration
	// TargetRetry is how often a holder that wants to leave looks again
	// for a ready target when it found none.
	TargetRetry time.Duration
}

// Target is a member that could take the EIP over.
type Target struct {
	eip.Instance
	Held int // managed EIPs it holds now
}

// Observation is everything Decide may look at for one EIP. The loop
// fills it; Decide never does I/O and never reads the clock itself.
type Observation struct {
	Now      time.Time
	Self     eip.Identity
	Priority int // own eipd:priority

	// Own condition.
	Health health.Status
	// Drain is the reason this instance wants to give its EIPs away
	// (ReasonHandoffDraining, ReasonHandoffShutdown, ReasonHandoffManual)
	// or "" when it does not.
	Drain string
	// ManualTarget restricts a manual handoff to one instance ("" = any).
	ManualTarget string

	// The address as last read from the API.
	Address     eip.Address
	AddressAt   time.Time // when the last successful read completed; zero = never
	ReadTriedAt time.Time // when the last read was attempted
	ReadError   bool      // the last read attempt failed: AWS state unknown

	// Holder-side memory (Holding = this instance is the holder).
	Holding     bool
	Term        int64     // term this instance holds with
	HolderSince time.Time // when it became holder
	LastRenew   time.Time // last successful lease write
	RenewTried  time.Time // last lease write attempt

	// Standby-side memory.
	PeerDown bool // probe of the address's private IP has failed fall times (true when there is nothing to probe)
	// HolderConfirmed: the last probe of the instance the EIP points at
	// passed and its eipd's /status says it holds this EIP, so an API read
	// would tell nothing new (DESIGN.md §4: watch the holder over the
	// network, poll the API as a fallback).
	HolderConfirmed bool
	// HolderDenies: that instance's eipd answered and says it does not hold
	// this EIP: the cached address is out of date.
	HolderDenies  bool
	HolderStopped bool      // the holder instance is known not to be running
	RankSince     time.Time // when this standby became eligible to claim; zero = not yet

	// Spreading of several EIPs.
	Held    int // managed EIPs this instance holds (this one included if Holding)
	MaxHold int // most EIPs one instance should hold; 0 = no cap

	// Handoff targets: ready members that passed a probe, best first.
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
	// Target is where Handoff moves the EIP.
	Target *Target
	// Lease is what Renew, Adopt, Claim and Handoff write.
	Lease eip.Lease
	// Blocked: the holder wants to hand off but has no ready target.
	Blocked bool
	// Eligible: a standby that may claim once its rank delay has passed;
	// the loop starts RankSince when this turns true and clears it
	// otherwise.
	Eligible bool
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
	return a.Associated() && a.NetworkInterfaceID == o.Self.NetworkInterfaceID &&
		(a.PrivateIP == "" || a.PrivateIP == o.Self.PrivateIP)
}

func decideHolder(t Timing, o Observation) Decision {
	lease := o.Address.Lease
	readAfterClaim := o.AddressAt.After(o.HolderSince)
	if readAfterClaim && !o.ReadError {
		// Someone else won a later term: never fight.
		if lease.Term > o.Term && lease.Holder != o.Self.InstanceID {
			return Decision{Action: StepDown, Why: "a later term belongs to " + lease.Holder}
		}
		if !ownsAssociation(o) {
			// A read showing an older term may predate our own claim
			// (Describe* lag behind writes); believe it only once it
			// shows our term or the lag window is long past.
			settled := o.AddressAt.Sub(o.HolderSince) > t.LeaseDuration
			if lease.Term >= o.Term || settled {
				return Decision{Action: StepDown, Why: "the EIP was moved away"}
			}
		}
	}

	if reason := leaveReason(o); reason != "" {
		// A handoff re-associates with AllowReassociation=true, which
		// fences on nothing: move only what a fresh read shows is still
		// here, or a holder cut off from the API could move an EIP that
		// another member already took.
		if o.ReadError || o.Now.Sub(o.AddressAt) >= t.RenewInterval {
			if readDue(t, o, t.ProbeInterval) {
				return Decision{Action: Refresh, Why: "checking the EIP is still here before handing it off", Reason: reason}
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
		if tgt := pickTarget(o); tgt != nil {
			return Decision{
				Action: Handoff, Why: "handing off to a ready member", Reason: reason, Target: tgt,
				Lease: eip.Lease{Holder: tgt.InstanceID, Term: o.Term + 1, Renewed: o.Now, Reason: reason, Decided: o.Now},
			}
		}
		if o.TargetsAt.IsZero() || o.Now.Sub(o.TargetsAt) >= t.TargetRetry {
			return Decision{Action: SeekTargets, Why: "looking for a ready member to hand off to", Reason: reason}
		}
		// No ready target: keep the EIP (moving it to an unknown
		// instance helps nobody) and keep the lease alive.
		d := holderRoutine(t, o)
		d.Blocked = reason != ReasonHandoffRebalance
		d.Why = "no ready member to hand off to (" + reason + "); keeping the EIP"
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
	case o.MaxHold > 0 && o.Held > o.MaxHold:
		return ReasonHandoffRebalance
	}
	return ""
}

// pickTarget returns the best target that fits the situation, or nil.
// Targets arrive best first; a rebalance only moves to a member that
// holds less than the cap, and a manual handoff may name its target.
func pickTarget(o Observation) *Target {
	reason := leaveReason(o)
	for i := range o.Targets {
		tg := &o.Targets[i]
		if tg.InstanceID == o.Self.InstanceID {
			continue
		}
		if reason == ReasonHandoffManual && o.ManualTarget != "" && tg.InstanceID != o.ManualTarget {
			continue
		}
		if reason == ReasonHandoffRebalance && (o.MaxHold == 0 || tg.Held+1 > o.MaxHold) {
			continue
		}
		return tg
	}
	return nil
}

func holderRoutine(t Timing, o Observation) Decision {
	// After a gap longer than a lease (a paused or partitioned process),
	// look before writing: the EIP may have moved, and renewing a lease
	// that is no longer ours would name the wrong holder with an old term.
	if readDue(t, o, t.LeaseDuration) {
		return Decision{Action: Refresh, Why: "no read for a lease duration; checking before renewing"}
	}
	// A failed write is retried after a probe interval, not every tick.
	renewDue := o.Now.Sub(o.LastRenew) >= t.RenewInterval &&
		(!o.RenewTried.After(o.LastRenew) || o.Now.Sub(o.RenewTried) >= t.ProbeInterval)
	if renewDue {
		return Decision{Action: Renew, Why: "renewing the lease", Lease: eip.Lease{
			Holder: o.Self.InstanceID, Term: o.Term, Renewed: o.Now,
		}}
	}
	if readDue(t, o, t.HolderPoll) {
		return Decision{Action: Refresh, Why: "holder poll"}
	}
	return Decision{Action: Hold, Why: "holding"}
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
// and why (DESIGN.md §3, takeover condition 2).
func Stale(t Timing, o Observation) (bool, string) {
	a, l := o.Address, o.Address.Lease
	switch {
	case !a.Associated():
		return true, "the EIP is not associated"
	case l.Holder == "":
		return true, "no holder recorded"
	case len(l.Invalid) > 0:
		return true, "lease tags do not parse"
	case l.Renewed.IsZero():
		return true, "no renewal recorded"
	case o.HolderStopped:
		return true, "the holder instance is not running"
	case o.Now.Sub(l.Renewed) > t.LeaseDuration+t.MaxClockSkew:
		return true, "the lease expired"
	}
	return false, ""
}

func decideStandby(t Timing, o Observation) Decision {
	if o.AddressAt.IsZero() {
		if readDue(t, o, t.RenewInterval) {
			return Decision{Action: Refresh, Why: "first read"}
		}
		return Decision{Action: Wait, Why: "AWS state unknown"}
	}
	if ownsAssociation(o) && !o.ReadError {
		l := o.Address.Lease
		lease := eip.Lease{Holder: o.Self.InstanceID, Term: l.Term, Renewed: o.Now, Reason: l.Reason, Decided: l.Decided}
		if l.Holder != o.Self.InstanceID || len(l.Invalid) > 0 {
			// Moved here by hand, or the tags were garbage: a new term.
			lease.Term = l.Term + 1
			lease.Reason, lease.Decided = "", time.Time{}
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
			until := o.Address.Lease.Renewed.Add(t.LeaseDuration + t.MaxClockSkew).Sub(o.Now)
			if age >= t.StandbyPoll || (age >= t.ProbeInterval && until <= 0) {
				return Decision{Action: Refresh, Why: "holder unreachable; checking its lease"}
			}
			return Decision{Action: Wait, Why: "holder unreachable but its lease is fresh"}
		}
		if o.HolderDenies && readDue(t, o, t.RenewInterval) {
			return Decision{Action: Refresh, Why: "the instance the EIP points at says it does not hold it"}
		}
		if o.HolderConfirmed {
			return Decision{Action: Wait, Why: "standby; the holder confirms it holds the EIP"}
		}
		if age >= t.StandbyPoll {
			return Decision{Action: Refresh, Why: "standby poll (the holder's /status does not confirm it)"}
		}
		return Decision{Action: Wait, Why: "standby"}
	}

	// The lease is stale. Claim only if this instance is fit to hold and
	// the holder is not reachable as healthy from here.
	switch {
	case o.Health != health.Up:
		return standbyWait(t, o, "lease stale ("+why+") but own health is "+o.Health.String())
	case o.Drain != "":
		return standbyWait(t, o, "lease stale ("+why+") but draining")
	case !o.PeerDown && o.HolderConfirmed:
		// Our copy of the lease is old, but the holder itself says it
		// holds the EIP: a read would only confirm it.
		return Decision{Action: Wait, Why: "standby; the holder confirms it holds the EIP"}
	case !o.PeerDown:
		return standbyWait(t, o, "lease stale ("+why+") but the holder answers as healthy")
	case o.MaxHold > 0 && o.Held >= o.MaxHold:
		return standbyWait(t, o, "lease stale ("+why+") but already holding the most EIPs one member should")
	}
	reason := ReasonTakeoverStale
	if !o.Address.Associated() {
		reason = ReasonTakeoverUnassociated
	}
	if o.RankSince.IsZero() || o.Now.Sub(o.RankSince) < RankDelay(t, o) {
		return Decision{Action: Wait, Why: "lease stale (" + why + "); waiting for rank delay", Eligible: true}
	}
	if !o.AddressAt.After(o.RankSince.Add(RankDelay(t, o))) {
		// Re-read after the rank delay: a better-ranked member may have
		// claimed in the meantime.
		return Decision{Action: Refresh, Why: "re-reading before claiming", Eligible: true}
	}
	l := o.Address.Lease
	return Decision{
		Action: Claim, Why: "lease stale (" + why + ")", Reason: reason, Eligible: true,
		Lease: eip.Lease{Holder: o.Self.InstanceID, Term: l.Term + 1, Renewed: o.Now, Reason: reason, Decided: o.Now},
	}
}

func standbyWait(t Timing, o Observation, why string) Decision {
	if o.Now.Sub(o.AddressAt) >= t.StandbyPoll {
		return Decision{Action: Refresh, Why: why}
	}
	return Decision{Action: Wait, Why: why}
}

// RankDelay is how long a standby waits, once eligible, before claiming:
// higher eipd:priority first, then a hash of instance ID, allocation ID and
// term, so that the best candidate usually goes first and the others see
// it done, and different EIPs tend to go to different members.
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
	prio := max(0, min(o.Priority, 10))
	// Priority 0 waits one to two steps, priority 10 up to one step.
	return time.Duration((frac + float64(10-prio)/10) * float64(t.RankStep))
}
