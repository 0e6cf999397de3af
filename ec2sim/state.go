package ec2sim

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Instance state codes as EC2 reports them (as the EC2 API documents them).
var instanceStateCodes = map[string]int{
	"pending":       0,
	"running":       16,
	"shutting-down": 32,
	"terminated":    48,
	"stopping":      64,
	"stopped":       80,
}

const (
	simAccountID    = "123456789012"
	simImageID      = "ami-0eb0e1a1e5ef0c0de"
	simInstanceType = "t3.micro"
	simRoleName     = "eipd-sim-instance"
	ec2Namespace    = "http://ec2.amazonaws.com/doc/2016-11-15/"
)

// eniRec is one network interface. ENIs only exist attached to an instance:
// the simulator has no detached ENIs, and a terminated instance's ENIs are
// deleted with it (DeleteOnTermination, the default for the primary ENI).
type eniRec struct {
	ID, MAC, AttachmentID string
	DeviceIndex           int
	PrivateIPs            []string // primary first
}

type instRec struct {
	ID, ReservationID, AZ, SubnetID, VPCID string
	PrimaryENI                             string   // kept after termination for Info
	PrimaryIP                              string   // kept after termination for Info
	PrimaryIPs                             []string // primary ENI's private IPs, kept for Info
	State                                  string
	Reason                                 string // stateTransitionReason
	LaunchTime                             time.Time
	ReadyAt                                time.Time // pending → running at this time
	ENIs                                   []eniRec  // device index order; nil once terminated

	// AutoPublicIP: launched into a subnet that auto-assigns public IPv4
	// addresses (Options.AutoAssignPublicIP). PublicIP is the address it
	// has now ("" while an EIP is on its primary private IP, or while
	// stopped); PublicIPDue, when not zero, is when a new one comes back
	// (publicip.go).
	AutoPublicIP bool
	PublicIP     string
	PublicIPDue  time.Time

	Creds       Credentials
	Spot        *SpotAction
	Rebalance   *time.Time
	Lifecycle   string
	Maintenance []MaintenanceEvent
}

type addrRec struct {
	AllocationID, PublicIP string
	// Association; all "" when unassociated.
	AssociationID, ENIID, PrivateIP, InstanceID string
}

// world is the whole EC2 state. It is a value that can be cloned so that
// Describe* can answer from a past copy (DescribeLag) while writes go to the
// true state.
type world struct {
	instances []*instRec
	addresses []*addrRec
	// tags by resource ID (instances, ENIs, allocations).
	tags map[string]map[string]string
}

func (w *world) clone() *world {
	c := &world{
		instances: make([]*instRec, len(w.instances)),
		addresses: make([]*addrRec, len(w.addresses)),
		tags:      make(map[string]map[string]string, len(w.tags)),
	}
	for i, in := range w.instances {
		n := *in
		n.ENIs = make([]eniRec, len(in.ENIs))
		for j, e := range in.ENIs {
			e.PrivateIPs = append([]string(nil), e.PrivateIPs...)
			n.ENIs[j] = e
		}
		if in.ENIs == nil {
			n.ENIs = nil
		}
		n.Maintenance = append([]MaintenanceEvent(nil), in.Maintenance...)
		c.instances[i] = &n
	}
	for i, a := range w.addresses {
		n := *a
		c.addresses[i] = &n
	}
	for id, m := range w.tags {
		cm := make(map[string]string, len(m))
		for k, v := range m {
			cm[k] = v
		}
		c.tags[id] = cm
	}
	return c
}

func (w *world) instance(id string) *instRec {
	for _, in := range w.instances {
		if in.ID == id {
			return in
		}
	}
	return nil
}

func (w *world) address(allocID string) *addrRec {
	for _, a := range w.addresses {
		if a.AllocationID == allocID {
			return a
		}
	}
	return nil
}

func (w *world) addressByIP(ip string) *addrRec {
	for _, a := range w.addresses {
		if a.PublicIP == ip {
			return a
		}
	}
	return nil
}

func (w *world) addressByAssociation(assocID string) *addrRec {
	for _, a := range w.addresses {
		if a.AssociationID != "" && a.AssociationID == assocID {
			return a
		}
	}
	return nil
}

// eni finds an attached ENI and its instance.
func (w *world) eni(id string) (*instRec, *eniRec) {
	for _, in := range w.instances {
		for j := range in.ENIs {
			if in.ENIs[j].ID == id {
				return in, &in.ENIs[j]
			}
		}
	}
	return nil, nil
}

// addressOn is the EIP associated with the given ENI private IP, if any.
func (w *world) addressOn(eniID, privateIP string) *addrRec {
	for _, a := range w.addresses {
		if a.ENIID == eniID && a.PrivateIP == privateIP {
			return a
		}
	}
	return nil
}

// sortedTags returns the tags of a resource ordered by key.
func (w *world) sortedTags(id string) [][2]string {
	m := w.tags[id]
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([][2]string, len(keys))
	for i, k := range keys {
		out[i] = [2]string{k, m[k]}
	}
	return out
}

func (w *world) setTag(id, k, v string) {
	m := w.tags[id]
	if m == nil {
		m = make(map[string]string)
		w.tags[id] = m
	}
	m[k] = v
}

// randHex returns n lowercase hex digits. crypto/rand cannot fail on Linux
// (Go ≥1.24 crashes rather than return an error), so there is no error path.
func randHex(n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)[:n]
}

// newResourceID returns a modern 17-hex-digit EC2 ID with the given prefix.
func newResourceID(prefix string) string { return prefix + "-" + randHex(17) }

const upperAlnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"

func randUpper(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = upperAlnum[int(b[i])%len(upperAlnum)]
	}
	return string(b)
}

func newCredentials(now time.Time) Credentials {
	return Credentials{
		AccessKeyID:     "ASIA" + randUpper(16),
		SecretAccessKey: randHex(40),
		Token:           "IQoJb3JpZ2luX2VjE" + randHex(64),
		Expiration:      now.Add(6 * time.Hour).UTC().Truncate(time.Second),
	}
}

// ec2DNSName is the private DNS name EC2 gives an IP in a region.
func ec2DNSName(ip, region string) string {
	host := "ip-" + strings.ReplaceAll(ip, ".", "-")
	if region == "us-east-1" {
		return host + ".ec2.internal"
	}
	return host + "." + region + ".compute.internal"
}

// azID maps us-east-1a → use1-az1 style IDs (the mapping is per account on
// AWS; any stable one will do).
func azID(region, az string) string {
	parts := strings.Split(region, "-")
	short := ""
	for i, p := range parts {
		if i == 0 || i == len(parts)-1 {
			short += p
		} else if p != "" {
			short += p[:1]
		}
	}
	letter := az[len(az)-1]
	return fmt.Sprintf("%s-az%d", short, int(letter-'a')+1)
}
