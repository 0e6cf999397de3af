// Package leader keeps a group's Elastic IPs on healthy members. One member,
// the coordinator, holds the group lease and decides and makes every move;
// every member serves, watches its own health and instance metadata, and
// reports on /status.
//
// The decisions are pure functions: Plan (where each EIP should be),
// Elect (whether a member should read, wait or claim the coordinator role),
// Trust (until when a daemon may act or call itself holder or coordinator)
// and Role (what a member reports for each EIP). The Loop feeds them
// observations and carries their answers out, one AWS call at a time, off
// its own goroutine, so that no move waits behind a slow read.
//
// The protocol and the safety invariants it keeps are stated in
// docs/design.md; comments below name the invariants by number (§n).
package leader

import (
	"context"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// Protocol is the version of the protocol members speak to each other on
// /status. A member that sees a peer with another version says so and does
// not act on what that peer says.
const Protocol = 2

// Timing holds the durations the protocol depends on.
type Timing struct {
	// RenewInterval: the coordinator renews the group lease this often.
	RenewInterval time.Duration
	// LeaseDuration: a lease not renewed for this long (plus MaxClockSkew)
	// is stale.
	LeaseDuration time.Duration
	// MaxClockSkew is how far apart members' clocks may be.
	MaxClockSkew time.Duration
	// AddressPoll: the coordinator reads the EIPs this often.
	AddressPoll time.Duration
	// MemberPoll: the coordinator lists the group's instances this often
	// (and whenever a member it does not know speaks up, or one fails).
	MemberPoll time.Duration
	// ProbeInterval: the coordinator probes every member, and every member
	// probes the coordinator, this often.
	ProbeInterval time.Duration
	// ProbeFall: probes that must fail in a row before a peer counts as
	// down.
	ProbeFall int
	// RankStep orders members that would claim the coordinator role at
	// once (see RankDelay).
	RankStep time.Duration
}

// trustWindow is how long a confirmation (a renewal of the group lease, a
// read of an association) vouches for what it confirmed. It ends a clock
// skew before the lease does, so a coordinator stops acting before any
// member, even one whose clock runs ahead by the allowed skew, can judge
// its lease stale.
func (t Timing) trustWindow() time.Duration {
	return t.LeaseDuration - t.MaxClockSkew // configuration keeps it ≥ the renew interval
}

// staleAfter is how long a lease stamp may be old, or unchanged, before the
// lease is stale (§7).
func (t Timing) staleAfter() time.Duration { return t.LeaseDuration + t.MaxClockSkew }

// renewalGap is the longest a live coordinator's stamp stays unchanged: a
// renew interval, a renewal's timeout (three quarters of one), and a probe
// interval for a member to see the new stamp.
func (t Timing) renewalGap() time.Duration { return t.RenewInterval*7/4 + t.ProbeInterval }

// Cloud is what the loop needs from AWS, one call per method; *eip.Client
// satisfies it.
type Cloud interface {
	// Addresses reads the managed EIPs: the given allocations, or every
	// EIP tagged with the group when ids is empty.
	Addresses(ctx context.Context, ids []string) ([]eip.Address, error)
	// Members lists the group's running instances.
	Members(ctx context.Context) ([]eip.Instance, error)
	Associate(ctx context.Context, allocationID, eni, privateIP string, reassociate bool) (string, error)
	Disassociate(ctx context.Context, associationID string) error
	WriteLease(ctx context.Context, allocationIDs []string, l eip.GroupLease) error
	WriteRecord(ctx context.Context, allocationID string, r eip.Record) error
	Heartbeat(ctx context.Context, instanceID string, at time.Time) error
}

// Metadata is what the loop needs from instance metadata; *eip.Metadata
// satisfies it.
type Metadata interface {
	Notices(ctx context.Context) ([]eip.Notice, error)
	// Associations lists the public IPs on this instance's primary ENI and
	// the private IP each is on: local evidence that an EIP arrived or
	// left, and of which private IPs are taken. It may trail the API.
	Associations(ctx context.Context) ([]eip.ENIAssociation, error)
}

// Health is the own health check after rise/fall; *health.Monitor
// satisfies it.
type Health interface {
	Status() health.Status
	Changed() <-chan struct{}
}

// Prober reaches other members; *health.PeerProber satisfies it.
type Prober interface {
	// Check probes the member at ip: its proxy (the local checks aimed at
	// it) and its eipd's /status (fresh when ctx asks, health.WithFreshStatus).
	Check(ctx context.Context, ip string) (health.PeerReport, error)
	// CheckVia asks the member at via to probe the member instanceID: is
	// it reachable as healthy from there, does its eipd answer, and what
	// does it say it holds. answered is false when via did not answer.
	CheckVia(ctx context.Context, via, instanceID string) (a health.ProbeAnswer, answered bool, err error)
	// Notify tells the member at ip (the coordinator) that this member's
	// state changed, so that it probes this member now.
	Notify(ctx context.Context, ip, from string) error
}

// Observer receives what the loop decides and sees (metrics implements it).
type Observer interface {
	SetHolder(allocationID string, holder bool)
	SetCoordinator(coordinator bool)
	SetTerm(allocationID string, epoch, seq int64)
	SetLeaseAge(age time.Duration)
	SetHandoffBlocked(allocationID string, blocked bool)
	SetNoFreePrivateIP(allocationID string, blocked bool)
	SetMembers(reachable, total int)
	Failover(allocationID, reason string, d time.Duration)
	Forgotten(allocationID string)
	LifecycleNotice(kind string)
	MetadataDisagreement()
	Reconciled(t time.Time)
}

// Config configures the loop.
type Config struct {
	Timing
	// AllocationIDs to manage; empty = every EIP tagged with the group.
	AllocationIDs []string
	ProbeTimeout  time.Duration
	LifecyclePoll time.Duration
	StopTimeout   time.Duration
	// CallTimeout bounds each AWS call.
	CallTimeout time.Duration
	// Tick is how often the loop reconsiders when nothing happens.
	Tick time.Duration
	// Now is the wall clock: it stamps the lease and reads other members'
	// stamps. Mono is the local monotonic clock (time elapsed since an
	// arbitrary start): every duration the loop measures itself (deadlines,
	// intervals, how long a stamp stayed unchanged, §7) uses it, so a wall
	// clock that jumps cannot stretch them. nil: time.Now and the time
	// elapsed since New.
	Now  func() time.Time
	Mono func() time.Duration
	// DryRun: Cloud changes nothing (it sends DryRun=true), so a move
	// changes no state; each would-be move is logged once per AddressPoll.
	DryRun bool
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

// recentDown is how long a member that was unhealthy, or that an EIP just
// left, stays the last choice as a target (§4).
const recentDown = time.Minute
