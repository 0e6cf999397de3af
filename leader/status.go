package leader

import (
	"time"

	"github.com/eipd/eipd/eip"
)

// Roles of a member for one EIP.
const (
	// RoleHolder: the EIP is on this instance, and a trusted coordinator
	// confirmed it (a dated read or its own move) lately.
	RoleHolder = "holder"
	// RoleUnverified: the EIP is on this instance as far as it knows (its
	// instance metadata lists it, or the coordinator last placed it here),
	// but no trusted coordinator confirms it now. It does not count as
	// holder.
	RoleUnverified = "unverified"
	RoleStandby    = "standby"
	RoleDraining   = "draining"
	RoleUnhealthy  = "unhealthy"
)

// Status is a member's view, served as JSON on /status and printed by
// `eipd status`. Members read each other's: the coordinator reads every
// member's (health, whether it is leaving, its ENI as instance metadata
// shows it), and every member reads the coordinator's (its lease, where
// it placed each EIP).
type Status struct {
	Protocol         int     `json:"protocol"`
	InstanceID       string  `json:"instance_id"`
	AvailabilityZone string  `json:"availability_zone"`
	PrivateIP        string  `json:"private_ip"`
	Health           string  `json:"health"`
	UpForSeconds     float64 `json:"up_for_seconds"`
	// DownAgoSeconds: how long ago the own check was last down; absent
	// when it never was since the daemon started.
	DownAgoSeconds *float64 `json:"down_ago_seconds,omitempty"`
	// Draining is why this member is giving its EIPs away, "" when it is
	// not; HandoffTo names the target of a manual handoff ("" = any).
	Draining  string `json:"draining,omitempty"`
	HandoffTo string `json:"handoff_to,omitempty"`
	// NoNewEIPs: a rebalance recommendation arrived; the member stays but
	// takes no new EIP.
	NoNewEIPs bool `json:"no_new_eips,omitempty"`
	// ENIPublicIPs maps this instance's private IPs to the public IP on
	// each, as instance metadata listed them lately (/status?fresh=1 reads
	// them first); null when unknown, {} when none.
	ENIPublicIPs map[string]string `json:"eni_public_ips"`
	// ENIAgeSeconds: how long ago that read of instance metadata started
	// (absent with ENIPublicIPs). The coordinator takes a fresh probe's
	// listing as current only when this is shorter than a probe timeout.
	ENIAgeSeconds *float64 `json:"eni_age_seconds,omitempty"`
	// AWSStateKnown: this daemon's last read of the EIPs succeeded (on a
	// member that does not coordinate: as the coordinator says).
	AWSStateKnown bool `json:"aws_state_known"`
	// AWSTrouble says why this member's own AWS calls are in trouble (one
	// failed within the last minute, or one hangs): it claims the
	// coordinator role only after the others (its rank delay is longer),
	// and is never handed it. "" when none is.
	AWSTrouble string `json:"aws_trouble,omitempty"`

	// Coordinator is the instance this member takes as coordinator, ""
	// when it knows none; IsCoordinator says whether that is itself and
	// it may act. Epoch is that coordinator's epoch.
	Coordinator   string `json:"coordinator"`
	IsCoordinator bool   `json:"is_coordinator"`
	Epoch         int64  `json:"epoch,omitempty"`
	// On the coordinator only, while it may act: its last renewal's stamp
	// and how much longer it may act without another one.
	LeaseRenewed    time.Time `json:"lease_renewed,omitzero"`
	ValidForSeconds float64   `json:"valid_for_seconds,omitempty"`
	// Members is the coordinator's view of the group (on the coordinator
	// only): members read the others' addresses from it, to confirm a
	// failed probe for it (/probe).
	Members []MemberStatus `json:"members,omitempty"`
	// PeerProtocols names members that speak another protocol version
	// (this daemon ignores what they say).
	PeerProtocols map[string]int `json:"peer_protocols,omitempty"`
	// HeartbeatWritten: this member cannot see a coordinator and writes
	// eipd:heartbeat on its instance (in a group of two, the coordinator's
	// proof that it is alive).
	HeartbeatWritten bool `json:"heartbeat_written,omitempty"`

	EIPs []EIPStatus `json:"eips"`
}

// MemberStatus is one member as the coordinator sees it.
type MemberStatus struct {
	InstanceID string `json:"instance_id"`
	PrivateIP  string `json:"private_ip"`
	// Probe is "up" or "down" (after fall), or "unknown" before enough
	// probes; Health what the member's /status last said ("" when its
	// eipd does not answer).
	Probe  string `json:"probe"`
	Health string `json:"health,omitempty"`
	// Held is how many managed EIPs are on it.
	Held int `json:"held"`
}

// EIPStatus is one EIP. Everything but Role is the coordinator's word: on
// a member, copied from the coordinator's /status.
type EIPStatus struct {
	AllocationID string `json:"allocation_id"`
	PublicIP     string `json:"public_ip,omitempty"`
	// Role is this member's role for the EIP.
	Role string `json:"role"`
	// Holder is the member the coordinator confirms the EIP is on, ""
	// while none is confirmed (unassociated, being moved, unknown).
	Holder string `json:"holder,omitempty"`
	// Term is the term of the EIP's record ("epoch.seq").
	Term          string `json:"term,omitempty"`
	AssociationID string `json:"association_id,omitempty"`
	AssociatedTo  string `json:"associated_to,omitempty"`
	PrivateIPSlot string `json:"private_ip_slot,omitempty"`
	// Moving: the coordinator is moving the EIP (or does not know yet
	// whether its last move landed); nobody is holder meanwhile.
	Moving bool `json:"moving,omitempty"`
	// ConfirmedAgoSeconds: how old the coordinator's evidence for the
	// association is (a read started then, or its own move).
	ConfirmedAgoSeconds *float64 `json:"confirmed_ago_seconds,omitempty"`
	// HandoffBlocked: the EIP should leave the member it is on, but no
	// member is ready with a free private IP.
	HandoffBlocked bool `json:"handoff_blocked"`
	// NoFreePrivateIP: no ready member has a private IP free for it.
	NoFreePrivateIP bool `json:"no_free_private_ip"`
	// Denied: IAM refused the coordinator's last move or record write of
	// the EIP (the error, with the action to grant).
	Denied       string          `json:"denied,omitempty"`
	Why          string          `json:"why"`
	LastFailover *FailoverRecord `json:"last_failover,omitempty"`
}

// FailoverRecord describes the last move of an EIP: when AWS confirmed the
// association, from and to which instance, why, and how long it took from
// the decision to the association.
type FailoverRecord struct {
	Time            time.Time `json:"time"`
	Reason          string    `json:"reason"`
	From            string    `json:"from,omitempty"`
	To              string    `json:"to"`
	DurationSeconds float64   `json:"duration_seconds"`
}

// Holding lists the EIPs this member reports holding.
func (s Status) Holding() []string {
	var ids []string
	for _, e := range s.EIPs {
		if e.Role == RoleHolder {
			ids = append(ids, e.AllocationID)
		}
	}
	return ids
}

// MayHold lists the EIPs this member may still have on its ENI: holder or
// unverified. A draining member waits for this to be empty before it
// exits or lets Auto Scaling terminate it.
func (s Status) MayHold() []string {
	var ids []string
	for _, e := range s.EIPs {
		if e.Role == RoleHolder || e.Role == RoleUnverified {
			ids = append(ids, e.AllocationID)
		}
	}
	return ids
}

// eipOf returns the entry for alloc, or nil.
func (s *Status) eipOf(alloc string) *EIPStatus {
	for i := range s.EIPs {
		if s.EIPs[i].AllocationID == alloc {
			return &s.EIPs[i]
		}
	}
	return nil
}

func failoverFrom(r eip.Record, to string) *FailoverRecord {
	if r.Reason == "" || r.Moved.IsZero() {
		return nil
	}
	return &FailoverRecord{Time: r.Moved, Reason: r.Reason, From: r.From, To: to,
		DurationSeconds: max(0, r.Moved.Sub(r.Decided)).Seconds()}
}

func secondsPtr(d time.Duration) *float64 {
	s := d.Seconds()
	return &s
}
