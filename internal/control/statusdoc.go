package control

import (
	"errors"
	"time"

	"github.com/eipd/eipd/leader"
)

// WaitingForIMDS is what /status and /readyz say until the instance
// identity is known.
const WaitingForIMDS = "waiting for instance metadata"

// StatusDoc is /status and `eipd status --json`: the loop's view, and,
// until the loop runs, what the daemon waits for.
type StatusDoc struct {
	leader.Status
	// Waiting is what the daemon waits for before it takes part ("waiting
	// for instance metadata"); absent once the loop runs.
	Waiting string `json:"waiting,omitempty"`
	// WaitingAttempts and WaitingError: how many tries failed so far, and
	// the last error.
	WaitingAttempts int    `json:"waiting_attempts,omitempty"`
	WaitingError    string `json:"waiting_error,omitempty"`
	// AWSUnreachable is set while the EC2 API gives this instance no answer
	// at all: since when, why, and when it last answered.
	AWSUnreachable *AWSUnreachable `json:"aws_unreachable,omitempty"`
}

// AWSUnreachable is /status's aws_unreachable.
type AWSUnreachable struct {
	Since      time.Time `json:"since"`
	Cause      string    `json:"cause"`
	LastAnswer time.Time `json:"last_answer,omitzero"`
	Hint       string    `json:"hint"`
}

// Handoff refusals, mapped to HTTP status codes by the control server.
var (
	ErrNotRunning    = errors.New(WaitingForIMDS + ": nothing to hand off yet")
	ErrUnknownTarget = errors.New("unknown instance")
)
