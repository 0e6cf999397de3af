package leader

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/eipd/eipd/eip"
)

// ec2Model is the in-memory EC2 of the model-based test: Elastic IPs with
// their tags and associations, and instances with one primary ENI each and
// that ENI's private IPs. Its methods are the EC2 calls eipd makes, with
// EC2's semantics (AWS-documented, and what ec2sim does):
//
//   - AssociateAddress mints a new association ID (IDs are never reused);
//     with AllowReassociation=false it fails with Resource.AlreadyAssociated
//     when the EIP is associated elsewhere; associating to a private IP that
//     already carries another EIP silently disassociates that EIP (one EIP
//     per private IP).
//   - DisassociateAddress needs the current association ID
//     (InvalidAssociationID.NotFound otherwise).
//   - DescribeAddresses by allocation IDs fails as a whole when one of them
//     does not exist.
//   - ReleaseAddress refuses an associated EIP.
//
// Reads can be answered from the past (read lag): every change keeps a
// snapshot for maxLag; a mixed read takes each address's association and
// its tags from two different moments (EC2 documents no atomic snapshot
// across them). Writes take the caller's name, as a request carries its
// principal, so that the invariants know who did what, and whether EC2
// applied them late (after answering, or after the caller gave up).
type ec2Model struct {
	now      func() time.Time // true time of the simulation
	maxLag   time.Duration    // how far back reads may look
	cur      *ec2State
	past     []ec2Snapshot // oldest first; the last one is cur as of its time
	assocSeq int
	// onChange, when set, sees every applied change, in order.
	onChange func(ec2Change)
}

// ec2State is the world at one moment.
type ec2State struct {
	addrs map[string]*ec2Address
	insts map[string]*ec2Instance
}

type ec2Snapshot struct {
	at    time.Time
	state *ec2State
}

// ec2Address is one Elastic IP allocation.
type ec2Address struct {
	AllocationID, PublicIP string
	// The association; all empty when unassociated.
	AssociationID, InstanceID, NetworkInterfaceID, PrivateIP string
	Tags                                                     map[string]string
}

// ec2Instance is one instance and its primary (device-index-0) ENI.
type ec2Instance struct {
	InstanceID, State, NetworkInterfaceID string
	PrivateIPs                            []string // [0] is the primary private IP
	Tags                                  map[string]string
}

// ec2PrivateIP is one private IP of an ENI as DescribeInstances lists it
// (privateIpAddressesSet), with the EIP associated to it, if any.
type ec2PrivateIP struct {
	PrivateIP                             string
	Primary                               bool
	AllocationID, PublicIP, AssociationID string
}

// ec2InstanceView is an instance as DescribeInstances returns it.
type ec2InstanceView struct {
	InstanceID, State, NetworkInterfaceID string
	PrivateIPs                            []ec2PrivateIP
	Tags                                  map[string]string
}

// ec2Change is one applied write.
type ec2Change struct {
	Caller string
	Op     string // AssociateAddress, DisassociateAddress, CreateTags, ReleaseAddress, StopInstances, StartInstances
	// Resource is the allocation or instance ID the change is about.
	Resource string
	// Association changes: where the EIP pointed before and after
	// ("" = unassociated).
	From, To string
	// DisplacedBy is set on an EIP knocked off its private IP by the
	// association of another EIP (this one) to that private IP.
	DisplacedBy string
	// CreateTags: the resource's tags before and after.
	OldTags, NewTags map[string]string
	// Late: applied after the call was answered or its caller gave up;
	// Acked: the caller got a success answer.
	Late, Acked bool
	// At: when EC2 applied it (the checks see it at their next step).
	At time.Time
}

// ec2Error is an EC2 API error, classified by its code as eip does.
type ec2Error struct{ Code, Message string }

func (e *ec2Error) Error() string { return e.Code + ": " + e.Message }

// Codes from "Error codes for the Amazon EC2 API".
const (
	codeAllocationNotFound  = "InvalidAllocationID.NotFound"
	codeAssociationNotFound = "InvalidAssociationID.NotFound"
	codeInstanceNotFound    = "InvalidInstanceID.NotFound"
	codeENINotFound         = "InvalidNetworkInterfaceID.NotFound"
	codeAlreadyAssociated   = "Resource.AlreadyAssociated"
	codeInUse               = "InvalidIPAddress.InUse"
	codeInvalidParameter    = "InvalidParameterValue"
	codeUnavailable         = "Unavailable"
	codeThrottled           = "RequestLimitExceeded"
	codeTimeout             = "RequestTimeout"
)

func newEC2Model(now func() time.Time, maxLag time.Duration) *ec2Model {
	m := &ec2Model{now: now, maxLag: maxLag,
		cur: &ec2State{addrs: map[string]*ec2Address{}, insts: map[string]*ec2Instance{}}}
	m.commit()
	return m
}

// commit records the current state as of now, and forgets snapshots that no
// read can reach any more.
func (m *ec2Model) commit() {
	now := m.now()
	m.past = append(m.past, ec2Snapshot{at: now, state: m.cur.clone()})
	keep := 0
	for keep < len(m.past)-1 && !m.past[keep+1].at.After(now.Add(-m.maxLag)) {
		keep++
	}
	m.past = m.past[keep:]
}

// setUp marks the world as built: reads lagging to before now see it
// whole (the instances and EIPs existed long before the daemons start).
func (m *ec2Model) setUp() { m.past = []ec2Snapshot{{at: m.now(), state: m.cur.clone()}} }

func (m *ec2Model) change(c ec2Change) {
	c.At = m.now()
	if m.onChange != nil {
		m.onChange(c)
	}
}

// asOf returns the world as it was at t (the oldest kept state when t is
// further back). The result must not be changed.
func (m *ec2Model) asOf(t time.Time) *ec2State {
	for i := len(m.past) - 1; i > 0; i-- {
		if !m.past[i].at.After(t) {
			return m.past[i].state
		}
	}
	return m.past[0].state
}

// current is the true world now. The result must not be changed.
func (m *ec2Model) current() *ec2State { return m.cur }

func (s *ec2State) clone() *ec2State {
	c := &ec2State{addrs: make(map[string]*ec2Address, len(s.addrs)), insts: make(map[string]*ec2Instance, len(s.insts))}
	for id, a := range s.addrs {
		ac := *a
		ac.Tags = maps.Clone(a.Tags)
		c.addrs[id] = &ac
	}
	for id, in := range s.insts {
		ic := *in
		ic.Tags = maps.Clone(in.Tags)
		ic.PrivateIPs = slices.Clone(in.PrivateIPs)
		c.insts[id] = &ic
	}
	return c
}

// addAddress allocates an EIP (set-up, not an API call of eipd).
func (m *ec2Model) addAddress(alloc, publicIP string, tags map[string]string) {
	m.cur.addrs[alloc] = &ec2Address{AllocationID: alloc, PublicIP: publicIP, Tags: maps.Clone(tags)}
	m.commit()
}

// addInstance launches a running instance (set-up).
func (m *ec2Model) addInstance(id, eni string, privateIPs []string, tags map[string]string) {
	m.cur.insts[id] = &ec2Instance{InstanceID: id, State: "running", NetworkInterfaceID: eni,
		PrivateIPs: slices.Clone(privateIPs), Tags: maps.Clone(tags)}
	m.commit()
}

// --- reads (on a state: now, or as of some time in the past) ---

// describeAddresses is DescribeAddresses with AllocationId.N (an unknown
// ID fails the call) or, with byFilter, the allocation-id filter (an
// unknown ID is left out), or with the filter tag:eipd:group=group when
// allocationIDs is empty.
func (s *ec2State) describeAddresses(allocationIDs []string, group string, byFilter bool) ([]ec2Address, error) {
	var out []ec2Address
	if len(allocationIDs) > 0 {
		for _, id := range allocationIDs {
			a, ok := s.addrs[id]
			if !ok && byFilter {
				continue
			}
			if !ok {
				return nil, &ec2Error{codeAllocationNotFound, fmt.Sprintf("The allocation ID '%s' does not exist", id)}
			}
			out = append(out, a.copy())
		}
		return out, nil
	}
	for _, id := range slices.Sorted(maps.Keys(s.addrs)) {
		if a := s.addrs[id]; a.Tags[eip.TagGroup] == group {
			out = append(out, a.copy())
		}
	}
	return out, nil
}

// mixed is a read whose addresses each take their association from one
// state and their tags from another.
func mixed(assocs, tags *ec2State) *ec2State {
	out := assocs.clone()
	for id, a := range out.addrs {
		if t, ok := tags.addrs[id]; ok {
			a.Tags = maps.Clone(t.Tags)
		}
	}
	return out
}

func (a *ec2Address) copy() ec2Address {
	c := *a
	c.Tags = maps.Clone(a.Tags)
	return c
}

// describeInstances is DescribeInstances with the filters
// tag:eipd:group=group and instance-state-name=running.
// describeInstances lists the group's instances that are not terminated,
// as eip.Client.Members asks (the running ones, and those stopping or
// stopped, which tell a list that lags from an instance that is gone).
func (s *ec2State) describeInstances(group string) []ec2InstanceView {
	var out []ec2InstanceView
	for _, id := range slices.Sorted(maps.Keys(s.insts)) {
		in := s.insts[id]
		if in.State == "terminated" || in.Tags[eip.TagGroup] != group {
			continue
		}
		v := ec2InstanceView{InstanceID: in.InstanceID, State: in.State, NetworkInterfaceID: in.NetworkInterfaceID,
			Tags: maps.Clone(in.Tags)}
		for i, ip := range in.PrivateIPs {
			p := ec2PrivateIP{PrivateIP: ip, Primary: i == 0}
			if a := s.addressOn(in.NetworkInterfaceID, ip); a != nil {
				p.AllocationID, p.PublicIP, p.AssociationID = a.AllocationID, a.PublicIP, a.AssociationID
			}
			v.PrivateIPs = append(v.PrivateIPs, p)
		}
		out = append(out, v)
	}
	return out
}

// addressOn returns the EIP associated to the private IP of the ENI, or nil.
func (s *ec2State) addressOn(eni, privateIP string) *ec2Address {
	for _, a := range s.addrs {
		if a.NetworkInterfaceID == eni && a.PrivateIP == privateIP {
			return a
		}
	}
	return nil
}

// instanceOfENI returns the instance whose primary ENI is eni, or nil.
func (s *ec2State) instanceOfENI(eni string) *ec2Instance {
	for _, in := range s.insts {
		if in.NetworkInterfaceID == eni {
			return in
		}
	}
	return nil
}

func where(a *ec2Address) string {
	if a.AssociationID == "" {
		return ""
	}
	return a.InstanceID + "/" + a.PrivateIP
}

// --- writes (on the current world) ---

// associateAddress is AssociateAddress by NetworkInterfaceId and
// PrivateIpAddress. It returns the association ID.
func (m *ec2Model) associateAddress(caller, alloc, eni, privateIP string, allowReassociation bool) (string, error) {
	return m.associate(caller, alloc, eni, privateIP, allowReassociation, "", false)
}

// mintAssociation reserves an association ID, for a write EC2 answers now
// and applies later.
func (m *ec2Model) mintAssociation() string {
	m.assocSeq++
	return fmt.Sprintf("eipassoc-%04d", m.assocSeq)
}

// associate is associateAddress with an association ID minted already (a
// late write) and the change marked late.
func (m *ec2Model) associate(caller, alloc, eni, privateIP string, allowReassociation bool, id string, late bool) (string, error) {
	s := m.cur
	a, ok := s.addrs[alloc]
	if !ok {
		return "", &ec2Error{codeAllocationNotFound, fmt.Sprintf("The allocation ID '%s' does not exist", alloc)}
	}
	in := s.instanceOfENI(eni)
	if in == nil {
		return "", &ec2Error{codeENINotFound, fmt.Sprintf("The networkInterface ID '%s' does not exist", eni)}
	}
	if !slices.Contains(in.PrivateIPs, privateIP) {
		return "", &ec2Error{codeInvalidParameter, fmt.Sprintf("The private IP address %s is not assigned to interface %s", privateIP, eni)}
	}
	same := a.NetworkInterfaceID == eni && a.PrivateIP == privateIP
	if same {
		return a.AssociationID, nil // repeating an association is not an error
	}
	if a.AssociationID != "" && !allowReassociation {
		return "", &ec2Error{codeAlreadyAssociated, fmt.Sprintf("resource %s is already associated with associate-id %s", alloc, a.AssociationID)}
	}
	if old := s.addressOn(eni, privateIP); old != nil {
		// One EIP per private IP: the one there leaves, silently.
		from := where(old)
		old.AssociationID, old.InstanceID, old.NetworkInterfaceID, old.PrivateIP = "", "", "", ""
		m.change(ec2Change{Caller: caller, Op: "AssociateAddress", Resource: old.AllocationID, From: from, DisplacedBy: alloc, Late: late})
	}
	from := where(a)
	if id == "" {
		id = m.mintAssociation()
	}
	a.AssociationID = id
	a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = in.InstanceID, eni, privateIP
	m.commit()
	m.change(ec2Change{Caller: caller, Op: "AssociateAddress", Resource: alloc, From: from, To: where(a), Late: late})
	return a.AssociationID, nil
}

// disassociateAddress is DisassociateAddress by AssociationId.
func (m *ec2Model) disassociateAddress(caller, associationID string) error {
	return m.disassociate(caller, associationID, false)
}

func (m *ec2Model) disassociate(caller, associationID string, late bool) error {
	for _, a := range m.cur.addrs {
		if a.AssociationID != "" && a.AssociationID == associationID {
			from := where(a)
			a.AssociationID, a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = "", "", "", ""
			m.commit()
			m.change(ec2Change{Caller: caller, Op: "DisassociateAddress", Resource: a.AllocationID, From: from, Late: late})
			return nil
		}
	}
	return &ec2Error{codeAssociationNotFound, fmt.Sprintf("The association ID '%s' does not exist", associationID)}
}

// createTags is CreateTags: every resource must exist, or nothing is written.
func (m *ec2Model) createTags(caller string, resources []string, tags map[string]string) error {
	return m.tag(caller, resources, tags, false, true)
}

// tag is createTags, marked late or not acknowledged (its answer was lost).
func (m *ec2Model) tag(caller string, resources []string, tags map[string]string, late, acked bool) error {
	for _, r := range resources {
		_, isAddr := m.cur.addrs[r]
		_, isInst := m.cur.insts[r]
		switch {
		case isAddr || isInst:
		case len(r) > 9 && r[:9] == "eipalloc-":
			return &ec2Error{codeAllocationNotFound, fmt.Sprintf("The allocation ID '%s' does not exist", r)}
		default:
			return &ec2Error{codeInstanceNotFound, fmt.Sprintf("The instance ID '%s' does not exist", r)}
		}
	}
	var changes []ec2Change
	for _, r := range resources {
		var t map[string]string
		if a, ok := m.cur.addrs[r]; ok {
			t = a.Tags
		} else {
			t = m.cur.insts[r].Tags
		}
		old := maps.Clone(t)
		maps.Copy(t, tags)
		changes = append(changes, ec2Change{Caller: caller, Op: "CreateTags", Resource: r, OldTags: old, NewTags: maps.Clone(t), Late: late, Acked: acked})
	}
	m.commit()
	for _, c := range changes {
		m.change(c)
	}
	return nil
}

// releaseAddress is ReleaseAddress: the EIP must be unassociated first.
func (m *ec2Model) releaseAddress(caller, alloc string) error {
	a, ok := m.cur.addrs[alloc]
	switch {
	case !ok:
		return &ec2Error{codeAllocationNotFound, fmt.Sprintf("The allocation ID '%s' does not exist", alloc)}
	case a.AssociationID != "":
		return &ec2Error{codeInUse, fmt.Sprintf("Address %s is in use.", a.PublicIP)}
	}
	delete(m.cur.addrs, alloc)
	m.commit()
	m.change(ec2Change{Caller: caller, Op: "ReleaseAddress", Resource: alloc})
	return nil
}

// setInstanceState is StopInstances / StartInstances, without the
// intermediate states. EIPs stay associated to a stopped instance's ENI.
func (m *ec2Model) setInstanceState(caller, id, state string) error {
	in, ok := m.cur.insts[id]
	if !ok {
		return &ec2Error{codeInstanceNotFound, fmt.Sprintf("The instance ID '%s' does not exist", id)}
	}
	in.State = state
	m.commit()
	op := "StopInstances"
	if state == "running" {
		op = "StartInstances"
	}
	m.change(ec2Change{Caller: caller, Op: op, Resource: id})
	return nil
}
