package leader

import (
	"time"

	"github.com/eipd/eipd/health"
)

// RoleObservation is what Role looks at for one EIP on one member.
type RoleObservation struct {
	Now  time.Time // monotonic
	Self string
	// Health and Draining: the member's own check and why it is leaving.
	Health   health.Status
	Draining string
	// Word is the coordinator's word on the EIP (on the coordinator: its
	// own view), nil when it has none; trusted until WordUntil, and based
	// on evidence gathered at WordAt (monotonic, local estimate).
	Word      *EIPStatus
	WordUntil time.Time
	WordAt    time.Time
	// OnENI: this member's last read of its instance metadata lists the
	// EIP on its ENI; ENIAt is when that read started. ListedAt is the
	// start of the last metadata read that listed it since a trusted word
	// first named this member (zero when none has).
	OnENI    bool
	ENIAt    time.Time
	ListedAt time.Time
}

// Role is what a member reports for one EIP, and why. It is a pure
// function: holder only while a trusted coordinator confirms the EIP is
// here and is not moving it (§1, §6). Instance metadata is a fast hint: once
// it has listed the EIP here, its saying the EIP left ends the holding at
// once, unless the coordinator confirmed the association by evidence
// gathered after that (the dated read wins).
func Role(o RoleObservation) (role, why string) {
	trusted := o.Word != nil && o.Now.Before(o.WordUntil)
	named := trusted && o.Word.Holder == o.Self && !o.Word.Moving
	left := !o.ListedAt.IsZero() && !o.OnENI && o.ENIAt.After(o.ListedAt) && !o.WordAt.After(o.ENIAt)
	switch {
	case named && !left:
		return RoleHolder, "the coordinator confirms the EIP is on this instance"
	case named:
		return RoleUnverified, "instance metadata says the EIP left this instance; waiting for the coordinator's next read"
	case o.OnENI:
		return RoleUnverified, "instance metadata lists the EIP on this instance, but no coordinator confirms it now"
	case o.Word != nil && o.Word.Holder == o.Self:
		return RoleUnverified, "the coordinator placed the EIP here but does not confirm it now"
	case o.Draining != "" && o.Draining != ReasonHandoffManual:
		return RoleDraining, "draining (" + o.Draining + ")"
	case o.Health != health.Up:
		return RoleUnhealthy, "own health is " + o.Health.String()
	}
	return RoleStandby, "standby"
}
