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
	// EIP on its ENI; ENIAt is when that read started. LeftAt is the start
	// of the last metadata read that saw the EIP go (no longer listed after
	// a read that listed it; kept when a later read lists it again, since
	// metadata trails and that listing may be older than the leave; zero
	// if it never went).
	OnENI  bool
	ENIAt  time.Time
	LeftAt time.Time
}

// Role is what a member reports for one EIP, and why. It is a pure
// function: holder only while a trusted coordinator confirms the EIP is
// here and is not moving it (§1, §6). Instance metadata is a fast hint: its
// seeing the EIP go (listed, then no longer) ends the holding at once,
// unless the coordinator confirmed the association by evidence gathered
// after that (the dated read wins); metadata listing it again does not
// undo that (it trails: the listing may predate the leave). Metadata that
// never listed the EIP here (it lags behind a move to this member) ends
// nothing.
func Role(o RoleObservation) (role, why string) {
	trusted := o.Word != nil && o.Now.Before(o.WordUntil)
	named := trusted && o.Word.Holder == o.Self && !o.Word.Moving
	left := !o.LeftAt.IsZero() && !o.WordAt.After(o.LeftAt)
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
