package leader

import (
	"time"

	"github.com/eipd/eipd/health"
)

// Roles of this instance for one EIP (DESIGN.md §3).
const (
	RoleHolder    = "holder"
	RoleStandby   = "standby"
	RoleDraining  = "draining"
	RoleUnhealthy = "unhealthy"
)

// Status is this instance's view, served as JSON on /status and printed by
// `eipd status`. Peers read its Health field when probing.
type Status struct {
	InstanceID       string      `json:"instance_id"`
	AvailabilityZone string      `json:"availability_zone"`
	PrivateIP        string      `json:"private_ip"`
	Health           string      `json:"health"`
	Draining         string      `json:"draining,omitempty"`
	AWSStateKnown    bool        `json:"aws_state_known"`
	EIPs             []EIPStatus `json:"eips"`
}

// EIPStatus is the view of one EIP.
type EIPStatus struct {
	AllocationID    string   `json:"allocation_id"`
	PublicIP        string   `json:"public_ip,omitempty"`
	Role            string   `json:"role"`
	Holder          string   `json:"holder,omitempty"`
	Term            int64    `json:"term"`
	AssociationID   string   `json:"association_id,omitempty"`
	AssociatedTo    string   `json:"associated_to,omitempty"`
	LeaseAgeSeconds *float64 `json:"lease_age_seconds,omitempty"`
	PeerProbe       string   `json:"peer_probe,omitempty"`
	// HolderConfirmed: on a standby, the holder's own /status says it holds
	// this EIP, so the standby does not read it from the API.
	HolderConfirmed bool            `json:"holder_confirmed,omitempty"`
	HandoffBlocked  bool            `json:"handoff_blocked"`
	Why             string          `json:"why"`
	LastFailover    *FailoverRecord `json:"last_failover,omitempty"`
}

// FailoverRecord describes the last move of an EIP this instance took part in.
type FailoverRecord struct {
	Time            time.Time `json:"time"`
	Reason          string    `json:"reason"`
	From            string    `json:"from,omitempty"`
	To              string    `json:"to"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// Status returns the latest snapshot; safe for concurrent use.
func (l *Loop) Status() Status {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.status
	s.EIPs = append([]EIPStatus(nil), s.EIPs...)
	return s
}

// publish builds the snapshot from loop state (loop goroutine only).
func (l *Loop) publish() {
	now := l.cfg.Now()
	h := l.health.Status()
	s := Status{
		InstanceID: l.self.InstanceID, AvailabilityZone: l.self.AvailabilityZone, PrivateIP: l.self.PrivateIP,
		Health: h.String(), Draining: l.drain, AWSStateKnown: !l.readError && !l.readTriedAt.IsZero(),
	}
	for _, id := range l.sortedIDs() {
		st := l.eips[id]
		e := EIPStatus{
			AllocationID: id, PublicIP: st.addr.PublicIP, Holder: st.addr.Lease.Holder, Term: st.addr.Lease.Term,
			AssociationID: st.addr.AssociationID, AssociatedTo: st.addr.InstanceID,
			HandoffBlocked: st.blocked, Why: st.why, LastFailover: st.last,
		}
		if st.holding {
			e.Term = st.term
			e.Holder = l.self.InstanceID
		}
		confirmed := !st.holding && st.peerReport.Holds(id) && st.peerIP != ""
		switch {
		case st.holding && !st.lastRenew.IsZero():
			age := now.Sub(st.lastRenew).Seconds()
			e.LeaseAgeSeconds = &age
			if l.obs != nil {
				l.obs.SetLease(id, st.term, now.Sub(st.lastRenew))
			}
		case confirmed:
			// Our copy of the lease is as old as our last read; the
			// holder vouches for the lease itself.
			e.HolderConfirmed = true
			if t, ok := st.peerReport.Terms[id]; ok {
				e.Term = t
			}
		case !st.addr.Lease.Renewed.IsZero():
			age := now.Sub(st.addr.Lease.Renewed).Seconds()
			e.LeaseAgeSeconds = &age
		}
		switch {
		case st.holding:
			e.Role = RoleHolder
		case l.drain != "" && l.drain != ReasonHandoffManual:
			e.Role = RoleDraining
		case h != health.Up:
			e.Role = RoleUnhealthy
		default:
			e.Role = RoleStandby
		}
		if !st.holding && st.peerIP != "" {
			e.PeerProbe = st.peer.Status().String()
		}
		s.EIPs = append(s.EIPs, e)
	}
	l.mu.Lock()
	l.status = s
	l.mu.Unlock()
}

// Holding lists the allocation IDs this instance holds (from the snapshot).
func (s Status) Holding() []string {
	var ids []string
	for _, e := range s.EIPs {
		if e.Role == RoleHolder {
			ids = append(ids, e.AllocationID)
		}
	}
	return ids
}
