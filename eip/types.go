package eip

import (
	"errors"
	"time"
)

// Tag keys eipd reads and writes (docs/design.md, What is stored in EC2).
const (
	// TagGroup names the group an EIP or an instance belongs to (set by
	// the operator).
	TagGroup = "eipd:group"
	// TagPriority ranks instances (optional, higher is preferred; set by
	// the operator).
	TagPriority = "eipd:priority"

	// The group lease, on every managed EIP: which instance coordinates,
	// its epoch, and its last renewal.
	TagCoordinator = "eipd:coordinator"
	TagEpoch       = "eipd:epoch"
	TagRenewed     = "eipd:renewed"

	// The record of the last move of one EIP, written by the coordinator
	// that made it: the instance it put the EIP on, the move's term, why,
	// when it was decided and confirmed, and where the EIP came from.
	TagHolder  = "eipd:holder"
	TagTerm    = "eipd:term"
	TagReason  = "eipd:reason"
	TagDecided = "eipd:decided"
	TagMoved   = "eipd:moved"
	TagFrom    = "eipd:from"

	// TagHeartbeat is written on a member's own instance, every renew
	// interval, only while it cannot see a coordinator: in a group of two,
	// the coordinator's witness that a member it cannot reach is alive and
	// reaches the API.
	TagHeartbeat = "eipd:heartbeat"
)

// RenewedLayout is the format of eipd:renewed: RFC 3339 with milliseconds, UTC.
const RenewedLayout = "2006-01-02T15:04:05.000Z07:00"

// Sentinel errors. Every AWS error is classified into one of these in this
// package (wrapped, so the original code and message stay in the chain);
// callers use errors.Is and never look at AWS error codes themselves.
var (
	// ErrAlreadyAssociated: AssociateAddress with AllowReassociation=false
	// found the EIP associated elsewhere (Resource.AlreadyAssociated).
	// Another instance won the race.
	ErrAlreadyAssociated = errors.New("address already associated")
	// ErrStaleAssociation: the association ID we fenced on no longer exists
	// (InvalidAssociationID.NotFound). Someone moved the EIP first.
	ErrStaleAssociation = errors.New("association no longer exists")
	// ErrThrottled: RequestLimitExceeded after the SDK's retries, or the
	// client-side budget refused the call.
	ErrThrottled = errors.New("throttled by EC2")
	// ErrUnauthorized: UnauthorizedOperation or other IAM denial.
	ErrUnauthorized = errors.New("not authorized")
	// ErrNotFound: the allocation, instance or ENI does not exist.
	ErrNotFound = errors.New("resource not found")
	// ErrInvalidState: the target instance or ENI is not in a state that
	// allows the operation (pending, stopped, terminated).
	ErrInvalidState = errors.New("resource in invalid state")
	// ErrUnavailable: 5xx, network error, timeout: AWS state is unknown.
	ErrUnavailable = errors.New("EC2 unavailable")
	// ErrNoAnswer: no answer came at all (timeout, connection reset or
	// closed): the call may have taken effect. It comes with
	// ErrUnavailable. An answer with an error code (5xx) means the call
	// failed.
	ErrNoAnswer = errors.New("no answer")
	// ErrInvalidRequest: any other 4xx: a bug or bad configuration.
	ErrInvalidRequest = errors.New("invalid request")
	// ErrDryRun: DryRunOperation, i.e. the call would have succeeded.
	ErrDryRun = errors.New("dry run would have succeeded")
	// ErrIMDS: the instance metadata service is unreachable or refused.
	ErrIMDS = errors.New("instance metadata unavailable")
)

// Identity is this instance as IMDSv2 describes it.
type Identity struct {
	InstanceID         string
	Region             string
	AvailabilityZone   string
	NetworkInterfaceID string // device-index-0 ENI
	PrivateIP          string // its primary private IPv4
}

// Address is one EIP allocation as DescribeAddresses returns it.
type Address struct {
	AllocationID       string
	PublicIP           string
	AssociationID      string // "" when unassociated
	InstanceID         string // "" when unassociated or associated to a bare ENI
	NetworkInterfaceID string
	PrivateIP          string // private IP the EIP maps to
	Group              string // eipd:group tag
	Lease              GroupLease
	Record             Record
}

// Associated reports whether the EIP is associated with anything.
func (a Address) Associated() bool { return a.AssociationID != "" }

// Instance is a member of the group as DescribeInstances returns it.
type Instance struct {
	InstanceID         string
	State              string // EC2 state name: running, stopped, ...
	AvailabilityZone   string
	NetworkInterfaceID string // device-index-0 ENI
	PrivateIP          string // primary private IP of that ENI
	// PrivateIPs are every private IPv4 of that ENI, primary first, each
	// with the public IP associated to it (EC2 allows one per private IP).
	PrivateIPs []PrivateIP
	Priority   int // eipd:priority; 0 when absent or invalid
	LaunchTime time.Time
	// Heartbeat is its eipd:heartbeat tag: the last time it wrote that it
	// cannot see a coordinator; zero when absent.
	Heartbeat time.Time
}

// Running keeps the instances of ms that are running (Client.Members also
// lists pending, stopping and stopped ones).
func Running(ms []Instance) []Instance {
	var out []Instance
	for _, m := range ms {
		if m.State == "" || m.State == "running" {
			out = append(out, m)
		}
	}
	return out
}

// PrivateIP is one private IPv4 of an ENI and the public IP (an EIP or an
// auto-assigned address) associated to it, if any.
type PrivateIP struct {
	Address string
	Primary bool
	// PublicIP is the Elastic IP associated to this private IP, "" when
	// none. An auto-assigned public IP (owner "amazon") is not listed: an
	// EIP associated there replaces it without knocking any EIP off.
	PublicIP string
	// AutoPublicIP is the auto-assigned public IP on it, "" when none.
	AutoPublicIP string
}

// Slots returns the private IPs of the instance's primary ENI, primary
// first; at least the primary IP when the listing had none.
func (i Instance) Slots() []PrivateIP {
	if len(i.PrivateIPs) > 0 {
		return i.PrivateIPs
	}
	if i.PrivateIP == "" {
		return nil
	}
	return []PrivateIP{{Address: i.PrivateIP, Primary: true}}
}

// Running reports whether EC2 says the instance is running.
func (i Instance) Running() bool { return i.State == "running" }

// NoticeKind is the kind of a lifecycle notice read from IMDS.
type NoticeKind string

const (
	NoticeSpotInterruption NoticeKind = "spot-interruption"
	NoticeRebalance        NoticeKind = "rebalance"
	NoticeASGTerminating   NoticeKind = "asg-terminating"
	NoticeMaintenance      NoticeKind = "maintenance"
)

// Notice is a planned stop announced through instance metadata.
type Notice struct {
	Kind   NoticeKind
	Time   time.Time // when it takes effect, if known
	Detail string    // e.g. spot action "terminate", lifecycle state "Terminated"
}
