package health

// Status is the debounced health of a set of checks.
type Status int

const (
	// Unknown: not yet rise successes or fall failures in a row since start.
	Unknown Status = iota
	Up
	Down
)

func (s Status) String() string {
	switch s {
	case Up:
		return "up"
	case Down:
		return "down"
	default:
		return "unknown"
	}
}

// MarshalText writes the status as its word ("up"), so JSON logs and
// documents say what text mode says rather than an integer.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// Hysteresis turns single check results into a Status: rise consecutive
// successes make it Up, fall consecutive failures make it Down, anything
// shorter changes nothing. It starts Unknown, so a daemon that just started
// is neither claimed healthy nor reported failed until the evidence is in.
// Not safe for concurrent use; Monitor serialises access.
type Hysteresis struct {
	rise, fall int
	okRun      int // consecutive successes, capped at rise
	failRun    int // consecutive failures, capped at fall
	status     Status
}

// NewHysteresis returns a Hysteresis in state Unknown. rise and fall below 1
// are treated as 1.
func NewHysteresis(rise, fall int) *Hysteresis {
	return &Hysteresis{rise: max(rise, 1), fall: max(fall, 1)}
}

// Observe records one result and returns the status after it, and whether
// this result changed it.
func (h *Hysteresis) Observe(ok bool) (s Status, changed bool) {
	if ok {
		h.failRun = 0
		h.okRun = min(h.okRun+1, h.rise)
		if h.okRun >= h.rise && h.status != Up {
			h.status = Up
			return h.status, true
		}
	} else {
		h.okRun = 0
		h.failRun = min(h.failRun+1, h.fall)
		if h.failRun >= h.fall && h.status != Down {
			h.status = Down
			return h.status, true
		}
	}
	return h.status, false
}

// Status returns the current status.
func (h *Hysteresis) Status() Status { return h.status }

// Settling reports whether a failure streak is under way that has not yet
// reached fall: the last result failed and the status is not Down. This is
// when a monitor re-checks at its fast interval, so that fall failures in a
// row cost (fall-1) fast intervals instead of (fall-1) intervals. It changes
// no count: whether the status changes still depends only on the results.
func (h *Hysteresis) Settling() bool { return h.failRun > 0 && h.status != Down }
