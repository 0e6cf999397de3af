package leader

import (
	"slices"
	"time"

	"github.com/eipd/eipd/health"
)

// Roles of this instance for one EIP.
const (
	RoleHolder = "holder"
	// RoleUnverified: this instance holds the EIP as far as it knows, but
	// AWS has not confirmed it for a lease duration (API unreachable,
	// calls failing) or instance metadata says the EIP left: it does not
	// call itself holder, so standbys stop trusting it (§9.1, §9.6).
	RoleUnverified = "unverified"
	RoleStandby    = "standby"
	RoleDraining   = "draining"
	RoleUnhealthy  = "unhealthy"
)

// Status is this instance's view, served as JSON on /status and printed by
// `eipd status`. Peers read it when probing: its health, how long it has
// been up, and the EIPs it confirms holding with their lease stamps.
type Status struct {
	InstanceID       string  `json:"instance_id"`
	AvailabilityZone string  `json:"availability_zone"`
	PrivateIP        string  `json:"private_ip"`
	Health           string  `json:"health"`
	UpForSeconds     float64 `json:"up_for_seconds"`
	// DownAgoSeconds: how long ago the own check was last down; absent
	// when it never was since the daemon started.
	DownAgoSeconds *float64 `json:"down_ago_seconds,omitempty"`
	Draining       string   `json:"draining,omitempty"`
	// SlotsInUse are this instance's private IPs that carry an EIP it
	// holds: a member handing an EIP here picks another one.
	SlotsInUse []string `json:"private_ips_in_use,omitempty"`
	// ENIPublicIPs maps this instance's private IPs to the public IP on
	// each, as instance metadata listed them lately (/status?fresh=1 reads
	// them first): it knows of an EIP handed here that this daemon has
	// not read yet, and of EIPs it does not manage. Absent when unknown.
	ENIPublicIPs  map[string]string `json:"eni_public_ips,omitempty"`
	AWSStateKnown bool              `json:"aws_state_known"`
	EIPs          []EIPStatus       `json:"eips"`
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
	PrivateIPSlot   string   `json:"private_ip_slot,omitempty"`
	LeaseAgeSeconds *float64 `json:"lease_age_seconds,omitempty"`
	// LeaseRenewed is the holder's last renewal stamp, set only while it
	// confirms holding (role holder): standbys take it as a fresh lease.
	LeaseRenewed time.Time `json:"lease_renewed,omitzero"`
	PeerProbe    string    `json:"peer_probe,omitempty"`
	// HolderConfirmed: on a standby, the holder's own /status says it holds
	// this EIP, so the standby does not read it from the API.
	HolderConfirmed bool `json:"holder_confirmed,omitempty"`
	HandoffBlocked  bool `json:"handoff_blocked"`
	// HandingOff: this instance's call moving the EIP away is under way
	// (role unverified meanwhile); the target waits for its lease.
	HandingOff      bool `json:"handing_off,omitempty"`
	NoFreePrivateIP bool `json:"no_free_private_ip"`
	// Denied: IAM refused this instance's last move or lease write of the
	// EIP (the error, with the action to grant); retried at a slow pace.
	Denied       string          `json:"denied,omitempty"`
	Why          string          `json:"why"`
	LastFailover *FailoverRecord `json:"last_failover,omitempty"`
}

// FailoverRecord describes the last move of an EIP this instance took part
// in: when the EIP was associated, from and to which instance, and how long
// it took from the decision to the association.
type FailoverRecord struct {
	Time            time.Time `json:"time"`
	Reason          string    `json:"reason"`
	From            string    `json:"from,omitempty"`
	To              string    `json:"to"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// snapshot is what publish leaves for Status: the view, plus what Status
// needs to judge a holder at the moment it is asked (the loop may be busy
// in a slow call; trust must still run out on time).
type snapshot struct {
	Status
	holders map[string]holderTrust
}

type holderTrust struct {
	verifiedAt time.Time
	since      time.Time // holding since
	publicIP   string    // "" when metadata is not believed for it (imdsIgnore)
	imdsLost   bool
	letGo      string
	letGoUntil time.Time
}

// Status returns the view at this moment; safe for concurrent use.
func (l *Loop) Status() Status {
	l.mu.Lock()
	snap, seen, leaving := l.status, l.seen, l.leaving
	s := snap.Status
	s.EIPs = append([]EIPStatus(nil), s.EIPs...)
	l.mu.Unlock()
	now := l.cfg.Now()
	if !seen.at.IsZero() && now.Sub(seen.at) <= l.cfg.LifecyclePoll+l.cfg.ProbeInterval {
		s.ENIPublicIPs = make(map[string]string, len(seen.assocs))
		for _, as := range seen.assocs {
			s.ENIPublicIPs[as.PrivateIP] = as.PublicIP
		}
	}
	for i := range s.EIPs {
		e := &s.EIPs[i]
		h, ok := snap.holders[e.AllocationID]
		if !ok {
			continue
		}
		renewed := l.renewedAt(e.AllocationID)
		verified := h.verifiedAt
		if renewed.After(verified) {
			verified = renewed
		}
		if !renewed.IsZero() {
			age := now.Sub(renewed).Seconds()
			if e.LeaseAgeSeconds == nil || age < *e.LeaseAgeSeconds {
				e.LeaseAgeSeconds = &age
				e.LeaseRenewed = renewed
			}
		}
		// Metadata read after the holding began (and its first moments)
		// that no longer lists the EIP: it left this ENI.
		gone := h.publicIP != "" && seen.at.Sub(h.since) > 2*l.cfg.ProbeInterval && !slices.Contains(seen.publicIPs(), h.publicIP)
		switch {
		case leaving[e.AllocationID]:
			e.Role, e.LeaseRenewed, e.HandingOff = RoleUnverified, time.Time{}, true
			e.Why = "handing the EIP off"
		case h.imdsLost || gone || verified.IsZero() || now.Sub(verified) >= l.cfg.trustWindow():
			e.Role, e.LeaseRenewed = RoleUnverified, time.Time{}
			if e.Why == "holding" {
				e.Why = "AWS has not confirmed this holder lately"
			}
		case h.letGo != "" && now.Before(h.letGoUntil):
			e.Role, e.LeaseRenewed = RoleUnverified, time.Time{}
			e.Why = "took the EIP; waiting for " + h.letGo + " to stop calling itself holder"
		}
	}
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
	if h == health.Up && !l.own.upSince.IsZero() {
		s.UpForSeconds = now.Sub(l.own.upSince).Seconds()
	}
	if !l.own.downAt.IsZero() {
		ago := now.Sub(l.own.downAt).Seconds()
		s.DownAgoSeconds = &ago
	}
	holders := map[string]holderTrust{}
	for _, id := range l.sortedIDs() {
		st := l.eips[id]
		e := EIPStatus{
			AllocationID: id, PublicIP: st.addr.PublicIP, Holder: st.addr.Lease.Holder, Term: st.addr.Lease.Term,
			AssociationID: st.addr.AssociationID, AssociatedTo: st.addr.InstanceID, PrivateIPSlot: st.addr.PrivateIP,
			HandoffBlocked: st.blocked, NoFreePrivateIP: st.noFreeSlot, Denied: st.deniedWhy, Why: st.why, LastFailover: st.last,
		}
		if st.holding {
			e.Term = st.term
			e.Holder = l.self.InstanceID
			if st.ownSlot != "" {
				s.SlotsInUse = append(s.SlotsInUse, st.ownSlot)
			}
			pub := st.addr.PublicIP
			if st.imdsIgnore {
				pub = ""
			}
			holders[id] = holderTrust{verifiedAt: st.verifiedAt, since: st.holderSince, publicIP: pub,
				imdsLost: st.imdsLost,
				letGo:    st.letGo, letGoUntil: st.letGoUntil}
		}
		confirmed := !st.holding && st.peerReport.Holds(id) && st.peerIP != ""
		switch {
		case st.holding && !st.lastRenew.IsZero():
			age := now.Sub(st.lastRenew).Seconds()
			e.LeaseAgeSeconds = &age
			e.LeaseRenewed = st.lastRenew
		case confirmed:
			// Our copy of the lease is as old as our last read; the
			// holder vouches for the lease itself.
			e.HolderConfirmed = true
			if t, ok := st.peerReport.Terms[id]; ok {
				e.Term = t
			}
			if !st.stamp.IsZero() {
				age := now.Sub(st.stamp).Seconds()
				e.LeaseAgeSeconds = &age
			}
		case !st.stamp.IsZero():
			age := now.Sub(st.stamp).Seconds()
			e.LeaseAgeSeconds = &age
		}
		switch {
		case st.holding:
			e.Role = RoleHolder // Status turns it into unverified when trust runs out
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
	l.status = snapshot{Status: s, holders: holders}
	l.leaving = nil // the snapshot knows how each handoff ended
	l.mu.Unlock()
	if l.obs != nil {
		// Metrics follow what /status says: is_holder only while trusted.
		for _, e := range l.Status().EIPs {
			l.obs.SetHolder(e.AllocationID, e.Role == RoleHolder)
			if e.Role == RoleHolder || e.Role == RoleUnverified {
				age := time.Duration(0)
				if e.LeaseAgeSeconds != nil {
					age = time.Duration(*e.LeaseAgeSeconds * float64(time.Second))
				}
				l.obs.SetLease(e.AllocationID, e.Term, age)
			}
		}
	}
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
