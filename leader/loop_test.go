package leader

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// fakeCloud is an in-memory EC2 holding the EIPs and the group members,
// with the association fence of the real API: association IDs are never
// reused, DisassociateAddress needs the current ID, and AssociateAddress
// without reassociation refuses an associated address. Each loop talks to
// it through a cloudView that knows who calls and can inject faults.
type fakeCloud struct {
	mu    sync.Mutex
	next  int
	addrs map[string]*eip.Address
	insts map[string]*eip.Instance
	moves []move // every association, oldest first
}

type move struct {
	Alloc, To, Assoc, Op string // Op: claim or handoff
	Reason               string
}

func newFakeCloud() *fakeCloud {
	return &fakeCloud{addrs: map[string]*eip.Address{}, insts: map[string]*eip.Instance{}}
}

func (c *fakeCloud) addEIP(alloc, publicIP string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.addrs[alloc] = &eip.Address{AllocationID: alloc, PublicIP: publicIP, Group: "test"}
}

func (c *fakeCloud) addInstance(in eip.Instance) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.insts[in.InstanceID] = &in
}

// setAddress overwrites an address as an operator or a dead daemon left it.
func (c *fakeCloud) setAddress(alloc string, f func(a *eip.Address)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c.addrs[alloc])
}

func (c *fakeCloud) address(alloc string) eip.Address {
	c.mu.Lock()
	defer c.mu.Unlock()
	return *c.addrs[alloc]
}

func (c *fakeCloud) history(alloc string) []move {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []move
	for _, m := range c.moves {
		if m.Alloc == alloc {
			out = append(out, m)
		}
	}
	return out
}

func (c *fakeCloud) holderOf(alloc string) string {
	return c.address(alloc).InstanceID
}

func (c *fakeCloud) state(inst string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.insts[inst].EIPDState
}

// associateLocked points alloc at an instance's ENI.
func (c *fakeCloud) associateLocked(a *eip.Address, inst *eip.Instance, slot, op string, lease eip.Lease) string {
	c.next++
	if slot == "" {
		slot = inst.PrivateIP
	}
	a.AssociationID = fmt.Sprintf("eipassoc-%d", c.next)
	a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = inst.InstanceID, inst.NetworkInterfaceID, slot
	c.moves = append(c.moves, move{Alloc: a.AllocationID, To: inst.InstanceID, Assoc: a.AssociationID, Op: op, Reason: lease.Reason})
	return a.AssociationID
}

// writeLeaseLocked writes holder, term and renewed, and reason and decided
// when set (eip.Lease's contract).
func writeLeaseLocked(a *eip.Address, l eip.Lease) {
	old := a.Lease
	a.Lease = eip.Lease{Holder: l.Holder, Term: l.Term, Renewed: l.Renewed, Reason: old.Reason, Decided: old.Decided, From: old.From}
	if l.Reason != "" {
		a.Lease.Reason, a.Lease.Decided, a.Lease.From = l.Reason, l.Decided, l.From
	}
}

var errInjected = fmt.Errorf("injected fault: %w", eip.ErrUnavailable)

// cloudView is one loop's connection to the fake cloud.
type cloudView struct {
	c    *fakeCloud
	self string

	mu       sync.Mutex
	readFail bool // DescribeAddresses fails
	dead     bool // every call fails
	reads    int  // DescribeAddresses calls made
	// deny: Claim is refused by IAM; denied counts the refusals.
	deny   bool
	denied int
	// handoffWrite, when set, is waited on after a handoff's association
	// lands and before its lease write returns (a throttled CreateTags).
	handoffWrite chan struct{}
	// handoffLease, when set, is waited on between a handoff's association
	// and its lease write: the cloud shows the EIP moved under the old
	// lease meanwhile.
	handoffLease chan struct{}
}

func (v *cloudView) setDeny(on bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.deny = on
}

func (v *cloudView) deniedCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.denied
}

func (v *cloudView) readCount() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.reads
}

func (v *cloudView) set(readFail, dead bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.readFail, v.dead = readFail, dead
}

func (v *cloudView) isDead() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.dead
}

func (v *cloudView) fault(read bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.dead || (read && v.readFail) {
		return errInjected
	}
	return nil
}

func (v *cloudView) Addresses(ctx context.Context, ids []string) ([]eip.Address, error) {
	v.mu.Lock()
	v.reads++
	v.mu.Unlock()
	if err := v.fault(true); err != nil {
		return nil, fmt.Errorf("describe addresses %v: %w", ids, err)
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	var out []eip.Address
	for _, id := range ids {
		if a, ok := v.c.addrs[id]; ok {
			out = append(out, *a)
		}
	}
	return out, nil
}

func (v *cloudView) GroupAddresses(ctx context.Context) ([]eip.Address, error) {
	v.mu.Lock()
	v.reads++
	v.mu.Unlock()
	if err := v.fault(true); err != nil {
		return nil, fmt.Errorf("describe group addresses: %w", err)
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	var out []eip.Address
	for _, a := range v.c.addrs {
		out = append(out, *a)
	}
	slices.SortFunc(out, func(a, b eip.Address) int { return strings.Compare(a.AllocationID, b.AllocationID) })
	return out, nil
}

func (v *cloudView) Members(ctx context.Context) ([]eip.Instance, error) {
	if err := v.fault(false); err != nil {
		return nil, fmt.Errorf("describe instances: %w", err)
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	var out []eip.Instance
	for _, in := range v.c.insts {
		if in.Running() {
			out = append(out, *in)
		}
	}
	return out, nil
}

func (v *cloudView) Renew(ctx context.Context, allocs []string, holder string, at time.Time) error {
	if err := v.fault(false); err != nil {
		return fmt.Errorf("renew leases of %v: %w", allocs, err)
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	for _, alloc := range allocs {
		if _, ok := v.c.addrs[alloc]; !ok {
			return fmt.Errorf("renew leases of %v: %w", allocs, eip.ErrNotFound)
		}
	}
	for _, alloc := range allocs {
		a := v.c.addrs[alloc]
		a.Lease.Holder, a.Lease.Renewed = holder, at
	}
	return nil
}

func (v *cloudView) WriteLease(ctx context.Context, alloc string, lease eip.Lease) error {
	if err := v.fault(false); err != nil {
		return fmt.Errorf("write lease of %s: %w", alloc, err)
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	a, ok := v.c.addrs[alloc]
	if !ok {
		return fmt.Errorf("write lease of %s: %w", alloc, eip.ErrNotFound)
	}
	writeLeaseLocked(a, lease)
	return nil
}

func (v *cloudView) Claim(ctx context.Context, observed eip.Address, self eip.Identity, slot string, lease eip.Lease) (string, error) {
	alloc := observed.AllocationID
	if err := v.fault(false); err != nil {
		return "", fmt.Errorf("claim %s: %w", alloc, err)
	}
	v.mu.Lock()
	if v.deny {
		v.denied++
		v.mu.Unlock()
		return "", fmt.Errorf("claim %s: AssociateAddress: %w", alloc, eip.ErrUnauthorized)
	}
	v.mu.Unlock()
	v.c.mu.Lock()
	a, ok := v.c.addrs[alloc]
	inst := v.c.insts[self.InstanceID]
	if !ok || inst == nil {
		v.c.mu.Unlock()
		return "", fmt.Errorf("claim %s: %w", alloc, eip.ErrNotFound)
	}
	if observed.Associated() {
		if a.AssociationID != observed.AssociationID {
			v.c.mu.Unlock()
			return "", fmt.Errorf("claim %s: disassociate %s: %w", alloc, observed.AssociationID, eip.ErrStaleAssociation)
		}
		a.AssociationID, a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = "", "", "", ""
	}
	// Let another claimant run between the two calls, as over the wire.
	v.c.mu.Unlock()
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	if a.Associated() {
		return "", fmt.Errorf("claim %s: associate: %w", alloc, eip.ErrAlreadyAssociated)
	}
	assoc := v.c.associateLocked(a, inst, slot, "claim", lease)
	lease.Renewed = time.Now() // as eip.Client: when the association was confirmed
	writeLeaseLocked(a, lease)
	return assoc, nil
}

func (v *cloudView) Handoff(ctx context.Context, addr eip.Address, target eip.Instance, slot string, lease eip.Lease) (string, error) {
	alloc := addr.AllocationID
	if err := v.fault(false); err != nil {
		return "", fmt.Errorf("hand off %s to %s: %w", alloc, target.InstanceID, err)
	}
	if lease.Holder != target.InstanceID {
		return "", fmt.Errorf("hand off %s to %s: lease names %s: %w", alloc, target.InstanceID, lease.Holder, eip.ErrInvalidRequest)
	}
	v.mu.Lock()
	gate, leaseGate := v.handoffWrite, v.handoffLease
	v.mu.Unlock()
	if gate != nil {
		defer func() { <-gate }()
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	a, ok := v.c.addrs[alloc]
	inst := v.c.insts[target.InstanceID]
	if !ok || inst == nil {
		return "", fmt.Errorf("hand off %s to %s: %w", alloc, target.InstanceID, eip.ErrNotFound)
	}
	assoc := v.c.associateLocked(a, inst, slot, "handoff", lease)
	if leaseGate != nil {
		v.c.mu.Unlock()
		<-leaseGate
		v.c.mu.Lock()
	}
	lease.Renewed = time.Now()
	writeLeaseLocked(a, lease)
	return assoc, nil
}

func (v *cloudView) SetState(ctx context.Context, instanceID, state string) error {
	if err := v.fault(false); err != nil {
		return fmt.Errorf("set state of %s: %w", instanceID, err)
	}
	v.c.mu.Lock()
	defer v.c.mu.Unlock()
	v.c.insts[instanceID].EIPDState = state
	return nil
}

// fakeHealth is the own check with a settable status.
type fakeHealth struct {
	mu      sync.Mutex
	s       health.Status
	changed chan struct{}
}

func newFakeHealth(s health.Status) *fakeHealth {
	return &fakeHealth{s: s, changed: make(chan struct{}, 1)}
}

func (h *fakeHealth) set(s health.Status) {
	h.mu.Lock()
	h.s = s
	h.mu.Unlock()
	select {
	case h.changed <- struct{}{}:
	default:
	}
}

func (h *fakeHealth) Status() health.Status {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.s
}

func (h *fakeHealth) Changed() <-chan struct{} { return h.changed }

// fakeProber answers per IP; unknown IPs are healthy. With status set it
// also answers for the peer's eipd the way health.PeerProber reads
// /status: from that loop's own Status().
type fakeProber struct {
	mu     sync.Mutex
	down   map[string]bool
	status func(ip string) (Status, bool)
}

func (p *fakeProber) setDown(ip string, down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down[ip] = down
}

func (p *fakeProber) Check(ctx context.Context, ip string) (health.PeerReport, error) {
	p.mu.Lock()
	down, status := p.down[ip], p.status
	p.mu.Unlock()
	if down {
		return health.PeerReport{}, fmt.Errorf("probe %s: connection refused", ip)
	}
	if status == nil {
		return health.PeerReport{}, nil
	}
	st, ok := status(ip)
	if !ok {
		return health.PeerReport{}, nil
	}
	r := reportFromStatus(st)
	return r, nil
}

// reportFromStatus is what health.PeerProber makes of a peer's /status
// (the fields it decodes), for fakes that answer from a Loop's Status.
func reportFromStatus(st Status) health.PeerReport {
	r := health.PeerReport{Answered: true, Health: st.Health, Draining: st.Draining, SlotsInUse: st.SlotsInUse, ENIPublicIPs: st.ENIPublicIPs, Roles: map[string]string{},
		Terms: map[string]int64{}, Renewed: map[string]time.Time{},
		UpFor: time.Duration(st.UpForSeconds * float64(time.Second)), DownAgo: -1}
	if st.DownAgoSeconds != nil {
		r.DownAgo = time.Duration(*st.DownAgoSeconds * float64(time.Second))
	}
	for _, e := range st.EIPs {
		r.Roles[e.AllocationID], r.Terms[e.AllocationID] = e.Role, e.Term
		if e.HandingOff {
			if r.HandingOff == nil {
				r.HandingOff = map[string]bool{}
			}
			r.HandingOff[e.AllocationID] = true
		}
		if !e.LeaseRenewed.IsZero() {
			r.Renewed[e.AllocationID] = e.LeaseRenewed
		}
	}
	return r
}

// fakeMetadata lists lifecycle notices set by the test and the public IPs
// the fake cloud associates with the instance.
type fakeMetadata struct {
	cloud *fakeCloud
	self  string

	mu      sync.Mutex
	notices []eip.Notice
}

func (m *fakeMetadata) notify(n eip.Notice) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.notices = append(m.notices, n)
}

func (m *fakeMetadata) Notices(ctx context.Context) ([]eip.Notice, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.notices), nil
}

func (m *fakeMetadata) Associations(ctx context.Context) ([]eip.ENIAssociation, error) {
	m.cloud.mu.Lock()
	defer m.cloud.mu.Unlock()
	var ips []eip.ENIAssociation
	for _, a := range m.cloud.addrs {
		if a.InstanceID == m.self {
			ips = append(ips, eip.ENIAssociation{PublicIP: a.PublicIP, PrivateIP: a.PrivateIP})
		}
	}
	return ips, nil
}

// recObserver records what the loop reports.
type recObserver struct {
	mu        sync.Mutex
	failovers []failover
	holder    map[string]bool
	blocked   map[string]bool
	notices   []string
	passes    int
}

type failover struct {
	Alloc, Reason string
	D             time.Duration
}

func newRecObserver() *recObserver {
	return &recObserver{holder: map[string]bool{}, blocked: map[string]bool{}}
}

func (r *recObserver) SetHolder(alloc string, holder bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.holder[alloc] = holder
}
func (r *recObserver) SetLease(string, int64, time.Duration) {}
func (r *recObserver) SetPeerProbeUp(string, bool)           {}
func (r *recObserver) SetHandoffBlocked(alloc string, b bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blocked[alloc] = b
}
func (r *recObserver) Failover(alloc, reason string, d time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failovers = append(r.failovers, failover{alloc, reason, d})
}
func (r *recObserver) SetNoFreePrivateIP(string, bool) {}
func (r *recObserver) ForgetPeerProbe(string)          {}
func (r *recObserver) Forgotten(string)                {}
func (r *recObserver) LifecycleNotice(kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notices = append(r.notices, kind)
}
func (r *recObserver) Reconciled(time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.passes++
}

func (r *recObserver) failoverList() []failover {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.failovers)
}

func (r *recObserver) isHolder(alloc string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.holder[alloc]
}

// cluster is a set of loops on one fake cloud, each run by the test.
type cluster struct {
	t      *testing.T
	cloud  *fakeCloud
	prober *fakeProber
	allocs []string // nil: loops find EIPs by group
	nodes  map[string]*node
	// stopTimeout overrides Config.StopTimeout for loops added after.
	stopTimeout time.Duration
	// standbyPoll overrides Timing.StandbyPoll for loops added after.
	standbyPoll time.Duration
	// leaseDuration overrides Timing.LeaseDuration for loops added after.
	leaseDuration time.Duration
}

// answerStatus makes the prober answer for each node's eipd from that
// loop's own Status(), as /status would.
func (c *cluster) answerStatus() {
	c.prober.mu.Lock()
	defer c.prober.mu.Unlock()
	c.prober.status = func(ip string) (Status, bool) {
		for _, nd := range c.nodes {
			if nd.ip == ip {
				return nd.loop.Status(), true
			}
		}
		return Status{}, false
	}
}

type node struct {
	id     string
	ip     string
	loop   *Loop
	health *fakeHealth
	view   *cloudView
	meta   *fakeMetadata
	obs    *recObserver

	cancel context.CancelFunc
	done   chan error
}

func loopConfig(allocs []string) Config {
	return Config{
		Timing: Timing{
			RenewInterval: 30 * time.Millisecond,
			LeaseDuration: 100 * time.Millisecond,
			MaxClockSkew:  10 * time.Millisecond,
			HolderPoll:    50 * time.Millisecond,
			StandbyPoll:   200 * time.Millisecond,
			ProbeInterval: 10 * time.Millisecond,
			RankStep:      5 * time.Millisecond,
		},
		AllocationIDs: allocs,
		ProbeFall:     2,
		ProbeTimeout:  50 * time.Millisecond,
		LifecyclePoll: 20 * time.Millisecond,
		StopTimeout:   3 * time.Second,
		CallTimeout:   time.Second,
		Tick:          5 * time.Millisecond,
	}
}

// newCluster makes a fake cloud with the given EIPs. With byGroup the
// loops are not told the allocation IDs and find them by group.
func newCluster(t *testing.T, byGroup bool, allocs ...string) *cluster {
	c := &cluster{t: t, cloud: newFakeCloud(), prober: &fakeProber{down: map[string]bool{}}, nodes: map[string]*node{}}
	for i, a := range allocs {
		c.cloud.addEIP(a, fmt.Sprintf("203.0.113.%d", 10+i))
	}
	if !byGroup {
		c.allocs = allocs
	}
	t.Cleanup(c.stopAll)
	return c
}

// add registers a running instance and its loop (not started).
func (c *cluster) add(id string) *node {
	n := len(c.nodes) + 1
	ip := fmt.Sprintf("10.0.0.%d", n)
	self := eip.Identity{InstanceID: id, Region: "eu-west-1", AvailabilityZone: "eu-west-1a",
		NetworkInterfaceID: "eni-" + strings.TrimPrefix(id, "i-"), PrivateIP: ip}
	c.cloud.addInstance(eip.Instance{InstanceID: id, State: "running", AvailabilityZone: self.AvailabilityZone,
		NetworkInterfaceID: self.NetworkInterfaceID, PrivateIP: ip})
	nd := &node{id: id, ip: ip, health: newFakeHealth(health.Up), view: &cloudView{c: c.cloud, self: id},
		meta: &fakeMetadata{cloud: c.cloud, self: id}, obs: newRecObserver()}
	logger := hclog.New(&hclog.LoggerOptions{Name: id, Level: hclog.Warn, Output: testWriter{c.t}})
	cfg := loopConfig(c.allocs)
	if c.stopTimeout > 0 {
		cfg.StopTimeout = c.stopTimeout
	}
	if c.standbyPoll > 0 {
		cfg.StandbyPoll = c.standbyPoll
	}
	if c.leaseDuration > 0 {
		cfg.LeaseDuration = c.leaseDuration
	}
	nd.loop = New(cfg, self, nd.view, nd.meta, nd.health, c.prober, nd.obs, logger)
	c.nodes[id] = nd
	return nd
}

func (c *cluster) start(ids ...string) {
	for _, id := range ids {
		nd := c.nodes[id]
		ctx, cancel := context.WithCancel(context.Background())
		nd.cancel, nd.done = cancel, make(chan error, 1)
		go func() { nd.done <- nd.loop.Run(ctx) }()
	}
}

// stop cancels a node (SIGTERM) and waits for Run to return.
func (n *node) stop(t *testing.T) error {
	t.Helper()
	n.cancel()
	select {
	case err := <-n.done:
		n.done = nil
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: Run did not return after cancel", n.id)
		return nil
	}
}

// stopAll stops holders first, so that their shutdown handoff finds
// standbys still ready, then the rest.
func (c *cluster) stopAll() {
	for _, nd := range c.nodes {
		nd.view.set(false, false)
	}
	for _, holders := range []bool{true, false} {
		var stopping []*node
		for _, nd := range c.nodes {
			// The second round stops every node left, including one that
			// became holder while the first round handed off to it.
			if nd.done != nil && (!holders || len(nd.loop.Status().Holding()) > 0) {
				nd.cancel()
				stopping = append(stopping, nd)
			}
		}
		for _, nd := range stopping {
			<-nd.done
			nd.done = nil
		}
	}
}

// holders lists the running nodes whose loop says it holds alloc. A node
// cut off from the API cannot know it lost the EIP and is left out.
func (c *cluster) holders(alloc string) []string {
	var ids []string
	for id, nd := range c.nodes {
		if nd.done != nil && !nd.view.isDead() && slices.Contains(nd.loop.Status().Holding(), alloc) {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

// settled reports whether alloc is associated to exactly one running loop
// and that loop, alone, believes it holds it.
func (c *cluster) settled(alloc string) (string, bool) {
	h := c.cloud.holderOf(alloc)
	hs := c.holders(alloc)
	return h, h != "" && len(hs) == 1 && hs[0] == h
}

// waitSettled waits until alloc is settled on a holder other than not.
func (c *cluster) waitSettled(alloc string, not ...string) string {
	c.t.Helper()
	var h string
	eventually(c.t, 5*time.Second, func() bool {
		var ok bool
		h, ok = c.settled(alloc)
		return ok && !slices.Contains(not, h)
	}, func() string {
		return fmt.Sprintf("%s not settled: cloud says %q, loops holding %v, moves %+v",
			alloc, c.cloud.holderOf(alloc), c.holders(alloc), c.cloud.history(alloc))
	})
	return h
}

// waitReady waits until every started node has published eipd:state=ready.
func (c *cluster) waitReady(ids ...string) {
	c.t.Helper()
	eventually(c.t, 5*time.Second, func() bool {
		for _, id := range ids {
			if c.cloud.state(id) != eip.StateReady {
				return false
			}
		}
		return true
	}, func() string { return fmt.Sprintf("%v not all ready", ids) })
}

// steady asserts that for d nothing moves and the holder stays settled.
func (c *cluster) steady(alloc string, d time.Duration) {
	c.t.Helper()
	before := len(c.cloud.history(alloc))
	holder := c.cloud.holderOf(alloc)
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if n := len(c.cloud.history(alloc)); n != before {
			c.t.Fatalf("%s moved while it should stay on %s: %+v", alloc, holder, c.cloud.history(alloc))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if nd := c.nodes[holder]; nd != nil && nd.view.isDead() {
		return // it cannot know; the cloud's history is the check
	}
	if h, ok := c.settled(alloc); !ok || h != holder {
		c.t.Fatalf("%s: holder %q settled=%v after a steady period, want %q (loops holding %v)", alloc, h, ok, holder, c.holders(alloc))
	}
}

func eventually(t *testing.T, timeout time.Duration, cond func() bool, msg func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testWriter sends loop logs to the test log; they show only on failure.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

const alloc1 = "eipalloc-1"

// startWithHolder starts ids[0] alone, waits until it holds alloc1, then
// starts the others and waits until they are all ready.
func startWithHolder(c *cluster, ids ...string) {
	c.t.Helper()
	c.start(ids[0])
	if h := c.waitSettled(alloc1); h != ids[0] {
		c.t.Fatalf("holder %s, want %s", h, ids[0])
	}
	c.start(ids[1:]...)
	c.waitReady(ids...)
}

func TestLoopElectsOneHolder(t *testing.T) {
	c := newCluster(t, false, alloc1)
	for _, id := range []string{"i-a", "i-b", "i-c"} {
		c.add(id)
	}
	c.start("i-a", "i-b", "i-c")
	h := c.waitSettled(alloc1)
	c.steady(alloc1, 600*time.Millisecond)

	moves := c.cloud.history(alloc1)
	if len(moves) != 1 || moves[0].To != h || moves[0].Op != "claim" {
		t.Fatalf("moves %+v, want one claim by %s", moves, h)
	}
	if got := c.nodes[h].obs.failoverList(); len(got) != 1 || got[0].Reason != ReasonTakeoverUnassociated {
		t.Fatalf("holder recorded failovers %+v, want one %s", got, ReasonTakeoverUnassociated)
	}
	a := c.cloud.address(alloc1)
	if a.Lease.Holder != h || a.Lease.Term != 1 {
		t.Fatalf("lease %+v, want holder %s term 1", a.Lease, h)
	}
	if time.Since(a.Lease.Renewed) > time.Second {
		t.Fatalf("lease not renewed: %v", a.Lease.Renewed)
	}
	for id, nd := range c.nodes {
		st := nd.loop.Status()
		if !st.AWSStateKnown || len(st.EIPs) != 1 {
			t.Fatalf("%s status %+v", id, st)
		}
		wantRole := RoleStandby
		if id == h {
			wantRole = RoleHolder
		}
		if e := st.EIPs[0]; e.Role != wantRole || e.Holder != h || e.Term != 1 {
			t.Errorf("%s sees %+v, want role %s holder %s term 1", id, e, wantRole, h)
		}
		if nd.obs.isHolder(alloc1) != (id == h) {
			t.Errorf("%s observer holder=%v", id, nd.obs.isHolder(alloc1))
		}
		if nd.loop.LastReconcile().IsZero() {
			t.Errorf("%s never reconciled", id)
		}
	}
}

func TestLoopHandsOffWhenUnhealthy(t *testing.T) {
	c := newCluster(t, false, alloc1)
	for _, id := range []string{"i-a", "i-b", "i-c"} {
		c.add(id)
	}
	// i-c cannot be reached: it must not be chosen although ready.
	c.prober.setDown(c.nodes["i-c"].ip, true)
	startWithHolder(c, "i-a", "i-b", "i-c")

	c.nodes["i-a"].health.set(health.Down)
	h := c.waitSettled(alloc1, "i-a")
	if h != "i-b" {
		t.Fatalf("handed off to %s, want i-b (i-c fails its probe)", h)
	}
	moves := c.cloud.history(alloc1)
	if len(moves) != 2 || moves[1].Op != "handoff" || moves[1].Reason != ReasonHandoffUnhealthy {
		t.Fatalf("moves %+v, want a claim then a handoff for %s", moves, ReasonHandoffUnhealthy)
	}
	if l := c.cloud.address(alloc1).Lease; l.Term != 2 {
		t.Fatalf("lease after handoff %+v, want term 2", l)
	}
	// The new holder reports the move when it adopts the EIP (the old
	// holder made the calls and does not count it).
	eventually(t, 5*time.Second, func() bool {
		f := c.nodes["i-b"].obs.failoverList()
		return len(f) == 1 && f[0].Reason == ReasonHandoffUnhealthy && f[0].Alloc == alloc1
	}, func() string { return fmt.Sprintf("i-b failovers %+v", c.nodes["i-b"].obs.failoverList()) })
	if f := c.nodes["i-a"].obs.failoverList(); len(f) != 1 || f[0].Reason != ReasonTakeoverUnassociated {
		t.Errorf("old holder recorded %+v, want only its own first claim", f)
	}
	st := c.nodes["i-a"].loop.Status()
	if e := st.EIPs[0]; e.Role != RoleUnhealthy || e.LastFailover == nil ||
		e.LastFailover.Reason != ReasonHandoffUnhealthy || e.LastFailover.From != "i-a" || e.LastFailover.To != "i-b" {
		t.Errorf("old holder status %+v (last failover %+v)", e, e.LastFailover)
	}
	if lf := c.nodes["i-b"].loop.Status().EIPs[0].LastFailover; lf == nil || lf.To != "i-b" || lf.From != "i-a" ||
		lf.Reason != ReasonHandoffUnhealthy {
		t.Errorf("new holder's last failover %+v, want %s from i-a to i-b", lf, ReasonHandoffUnhealthy)
	}
	if f := c.nodes["i-b"].obs.failoverList(); f[0].D < 0 || f[0].D > 5*time.Second {
		t.Errorf("handoff duration %v", f[0].D)
	}
	// The state tag is written after the move (off its critical path),
	// rate-limited to one write per renew interval.
	eventually(t, 5*time.Second, func() bool { return c.cloud.state("i-a") == eip.StateUnhealthy },
		func() string { return fmt.Sprintf("i-a state tag %q", c.cloud.state("i-a")) })
	// No preemption: i-a recovers and does not take the EIP back.
	c.nodes["i-a"].health.set(health.Up)
	c.steady(alloc1, 400*time.Millisecond)
}

func TestLoopKeepsEIPWithoutReadyTarget(t *testing.T) {
	c := newCluster(t, false, alloc1)
	c.add("i-a")
	c.add("i-b")
	startWithHolder(c, "i-a", "i-b")
	c.nodes["i-b"].health.set(health.Down)
	eventually(t, 5*time.Second, func() bool { return c.cloud.state("i-b") == eip.StateUnhealthy },
		func() string { return "i-b never reported unhealthy" })

	c.nodes["i-a"].health.set(health.Down)
	eventually(t, 5*time.Second, func() bool {
		c.nodes["i-a"].obs.mu.Lock()
		defer c.nodes["i-a"].obs.mu.Unlock()
		return c.nodes["i-a"].obs.blocked[alloc1]
	}, func() string { return "handoff never reported blocked" })
	c.steady(alloc1, 300*time.Millisecond)
	if e := c.nodes["i-a"].loop.Status().EIPs[0]; !e.HandoffBlocked || e.Role != RoleHolder {
		t.Fatalf("status %+v, want a blocked holder", e)
	}
	// Keeps the lease alive meanwhile.
	if l := c.cloud.address(alloc1).Lease; time.Since(l.Renewed) > time.Second {
		t.Fatalf("lease not renewed while blocked: %v", l.Renewed)
	}
	// Once a member is ready again it goes there.
	c.nodes["i-b"].health.set(health.Up)
	if h := c.waitSettled(alloc1, "i-a"); h != "i-b" {
		t.Fatalf("holder %s", h)
	}
}

func TestLoopHandsOffOnShutdown(t *testing.T) {
	c := newCluster(t, false, alloc1)
	for _, id := range []string{"i-a", "i-b", "i-c"} {
		c.add(id)
	}
	startWithHolder(c, "i-a", "i-b", "i-c")

	if err := c.nodes["i-a"].stop(t); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	// Make before break: the EIP is elsewhere by the time Run returns.
	moves := c.cloud.history(alloc1)
	if h := c.cloud.holderOf(alloc1); h == "i-a" || h == "" || len(moves) != 2 ||
		moves[1].Op != "handoff" || moves[1].Reason != ReasonHandoffShutdown {
		t.Fatalf("after stop: holder %q, moves %+v", h, moves)
	}
	if c.cloud.state("i-a") != eip.StateDraining {
		t.Errorf("i-a state tag %q, want draining", c.cloud.state("i-a"))
	}
	c.waitSettled(alloc1, "i-a")
}

func TestLoopShutdownWithoutTargetReturns(t *testing.T) {
	c := newCluster(t, false, alloc1)
	c.stopTimeout = 300 * time.Millisecond
	c.add("i-a")
	c.start("i-a")
	c.waitSettled(alloc1)
	start := time.Now()
	// Nobody to hand off to: Run gives up after StopTimeout rather than
	// hang, still holding.
	if err := c.nodes["i-a"].stop(t); err != nil {
		t.Fatalf("Run returned %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("Run took %v to return", time.Since(start))
	}
	if h := c.cloud.holderOf(alloc1); h != "i-a" {
		t.Fatalf("holder %q after a shutdown with no target", h)
	}
}

func TestLoopTakesOverFromDeadHolder(t *testing.T) {
	c := newCluster(t, false, alloc1)
	for _, id := range []string{"i-a", "i-b", "i-c"} {
		c.add(id)
	}
	startWithHolder(c, "i-a", "i-b", "i-c")

	// i-a loses the API and its proxy: no renewals, probes fail.
	c.nodes["i-a"].view.set(false, true)
	c.prober.setDown(c.nodes["i-a"].ip, true)
	h := c.waitSettled(alloc1, "i-a")
	moves := c.cloud.history(alloc1)
	if len(moves) != 2 || moves[1].Op != "claim" || moves[1].Reason != ReasonTakeoverStale {
		t.Fatalf("moves %+v, want one takeover", moves)
	}
	if f := c.nodes[h].obs.failoverList(); len(f) != 1 || f[0].Reason != ReasonTakeoverStale {
		t.Fatalf("%s recorded %+v", h, f)
	}
	if l := c.cloud.address(alloc1).Lease; l.Holder != h || l.Term != 2 {
		t.Fatalf("lease %+v", l)
	}
	// i-a comes back: it sees the later term and steps down, no fight.
	c.nodes["i-a"].view.set(false, false)
	c.prober.setDown(c.nodes["i-a"].ip, false)
	eventually(t, 5*time.Second, func() bool { return len(c.nodes["i-a"].loop.Status().Holding()) == 0 },
		func() string { return "i-a never stepped down" })
	c.steady(alloc1, 400*time.Millisecond)
}

func TestLoopNoTakeoverWhileLeaseRenewed(t *testing.T) {
	c := newCluster(t, false, alloc1)
	for _, id := range []string{"i-a", "i-b", "i-c"} {
		c.add(id)
	}
	startWithHolder(c, "i-a", "i-b", "i-c")

	// Probes of the holder fail (a security group), but it renews.
	c.prober.setDown(c.nodes["i-a"].ip, true)
	eventually(t, 5*time.Second, func() bool {
		return c.nodes["i-b"].loop.Status().EIPs[0].PeerProbe == health.Down.String()
	}, func() string { return "i-b never saw the holder's probe fail" })
	c.steady(alloc1, 800*time.Millisecond)
	if h := c.cloud.holderOf(alloc1); h != "i-a" {
		t.Fatalf("holder %s", h)
	}
}

func TestLoopNoTakeoverWhileHolderServes(t *testing.T) {
	c := newCluster(t, false, alloc1)
	for _, id := range []string{"i-a", "i-b"} {
		c.add(id)
	}
	startWithHolder(c, "i-a", "i-b")
	// i-a's daemon loses the API (no renewals) but its proxy serves.
	c.nodes["i-a"].view.set(false, true)
	c.steady(alloc1, 800*time.Millisecond)
	// Now the proxy stops answering too: i-b takes over.
	c.prober.setDown(c.nodes["i-a"].ip, true)
	if h := c.waitSettled(alloc1, "i-a"); h != "i-b" {
		t.Fatalf("holder %s", h)
	}
}

// TestLoopRefusedClaimBacksOff: a member IAM refuses the move to does not
// retry at the loop's pace (the calls share an account-wide throttling
// bucket): after the first refusal it waits 5 s, says why on /status, and
// claims once IAM lets it.
func TestLoopRefusedClaimBacksOff(t *testing.T) {
	c := newCluster(t, false, alloc1)
	nd := c.add("i-a")
	nd.view.setDeny(true)
	c.start("i-a")
	eventually(t, 5*time.Second, func() bool { return nd.view.deniedCount() >= 1 },
		func() string { return "the claim was never tried" })
	eventually(t, 2*time.Second, func() bool { return nd.loop.Status().EIPs[0].Denied != "" },
		func() string { return "/status never said the claim was refused" })
	time.Sleep(3 * time.Second)
	if n := nd.view.deniedCount(); n != 1 {
		t.Fatalf("%d refused claims within 3 s of the first, want 1 (retry after %s)", n, deniedFirst)
	}
	if e := nd.loop.Status().EIPs[0]; !strings.Contains(e.Denied, "not authorized") && !strings.Contains(e.Denied, "unauthorized") {
		t.Errorf("/status denied %q, want the IAM error", e.Denied)
	}
	nd.view.setDeny(false)
	if h := c.waitSettled(alloc1); h != "i-a" {
		t.Fatalf("holder %q after IAM allowed the claim", h)
	}
	if e := nd.loop.Status().EIPs[0]; e.Denied != "" {
		t.Errorf("/status still says denied after the claim: %q", e.Denied)
	}
}

// TestLoopHolderStopsVouchingWhileHandingOff: while a handoff's call is
// under way (its lease write throttled, say, long after the association
// landed), the old holder's /status no longer calls it holder, so two
// members never both do (design invariant 1).
func TestLoopHolderStopsVouchingWhileHandingOff(t *testing.T) {
	c := newCluster(t, false, alloc1)
	for _, id := range []string{"i-a", "i-b"} {
		c.add(id)
	}
	startWithHolder(c, "i-a", "i-b")
	gate := make(chan struct{})
	a := c.nodes["i-a"]
	a.view.mu.Lock()
	a.view.handoffWrite = gate
	a.view.mu.Unlock()
	a.health.set(health.Down)
	eventually(t, 5*time.Second, func() bool { return c.cloud.address(alloc1).InstanceID == "i-b" },
		func() string { return "the handoff never associated the EIP to i-b" })
	// The call has not returned: i-a must already not say holder.
	if e := a.loop.Status().EIPs[0]; e.Role == RoleHolder {
		t.Errorf("old holder reports %q (%s) while its handoff call is under way", e.Role, e.Why)
	}
	close(gate)
	if h := c.waitSettled(alloc1, "i-a"); h != "i-b" {
		t.Fatalf("holder %s, want i-b", h)
	}
}

// A handoff's target that reads the EIP on its ENI before the handoff's
// lease is written must not adopt it under a lease of its own: it waits
// while the old holder says it is handing off, and reads again once it
// let go, so it holds with the handoff's term and counts the move.
func TestLoopTargetAdoptsTheHandoffsLease(t *testing.T) {
	c := newCluster(t, false, alloc1)
	// The lease write is held back for a while below; a stale lease is
	// adopted whatever the old holder says, so keep it fresh meanwhile.
	c.leaseDuration = 2 * time.Second
	for _, id := range []string{"i-a", "i-b"} {
		c.add(id)
	}
	c.answerStatus()
	startWithHolder(c, "i-a", "i-b")
	a, b := c.nodes["i-a"], c.nodes["i-b"]
	before := c.cloud.address(alloc1).Lease.Term
	gate := make(chan struct{})
	var release sync.Once
	open := func() { release.Do(func() { close(gate) }) }
	t.Cleanup(open) // a failed check must not leave i-a's handoff blocked
	a.view.mu.Lock()
	a.view.handoffLease = gate
	a.view.mu.Unlock()
	a.health.set(health.Down)
	eventually(t, 5*time.Second, func() bool { return c.cloud.address(alloc1).InstanceID == "i-b" },
		func() string { return "the handoff never associated the EIP to i-b" })
	// i-b reads the EIP on its ENI under i-a's lease (the old holder has
	// stopped vouching): it must wait, not adopt, however often it reads.
	readsThen := b.view.readCount()
	eventually(t, 5*time.Second, func() bool { return b.view.readCount() > readsThen },
		func() string { return "i-b did not read the address while the handoff was under way" })
	time.Sleep(300 * time.Millisecond)
	if l := c.cloud.address(alloc1).Lease; l.Holder != "i-a" || l.Term != before {
		t.Fatalf("lease %+v while i-a's handoff has not written it: i-b adopted under a lease of its own", l)
	}
	if e := b.loop.Status().EIPs[0]; e.Role == RoleHolder {
		t.Fatalf("i-b reports holder (%s) before the handoff's lease is written", e.Why)
	}
	open()
	if h := c.waitSettled(alloc1, "i-a"); h != "i-b" {
		t.Fatalf("holder %s, want i-b", h)
	}
	if l := c.cloud.address(alloc1).Lease; l.Holder != "i-b" || l.Term != before+1 || l.Reason != ReasonHandoffUnhealthy {
		t.Errorf("lease %+v, want the handoff's: i-b, term %d, reason %s", l, before+1, ReasonHandoffUnhealthy)
	}
	eventually(t, 5*time.Second, func() bool {
		f := b.obs.failoverList()
		return len(f) == 1 && f[0].Reason == ReasonHandoffUnhealthy
	}, func() string { return fmt.Sprintf("i-b counted %+v, want the handoff", b.obs.failoverList()) })
}

func TestLoopNoClaimWhenReadsFail(t *testing.T) {
	c := newCluster(t, false, alloc1)
	// A holder from before, not running eipd, whose lease ran out and
	// whose proxy does not answer.
	c.cloud.addInstance(eip.Instance{InstanceID: "i-old", State: "running", NetworkInterfaceID: "eni-old", PrivateIP: "10.0.9.9"})
	c.cloud.setAddress(alloc1, func(a *eip.Address) {
		a.AssociationID, a.InstanceID, a.NetworkInterfaceID, a.PrivateIP = "eipassoc-old", "i-old", "eni-old", "10.0.9.9"
		a.Lease = eip.Lease{Holder: "i-old", Term: 7, Renewed: time.Now().Add(-time.Hour)}
	})
	c.prober.setDown("10.0.9.9", true)
	for _, id := range []string{"i-a", "i-b", "i-c"} {
		c.add(id).health.set(health.Down)
	}
	// Every loop sees the stale lease but is unfit to claim.
	c.start("i-a", "i-b", "i-c")
	eventually(t, 5*time.Second, func() bool {
		for _, nd := range c.nodes {
			st := nd.loop.Status()
			if !st.AWSStateKnown || st.EIPs[0].PeerProbe != health.Down.String() || !strings.Contains(st.EIPs[0].Why, "stale") {
				return false
			}
		}
		return true
	}, func() string { return "loops never saw the stale lease and the holder down" })

	// The API starts failing reads; then the loops become fit.
	for _, nd := range c.nodes {
		nd.view.set(true, false)
	}
	eventually(t, 5*time.Second, func() bool {
		for _, nd := range c.nodes {
			if nd.loop.Status().AWSStateKnown {
				return false
			}
		}
		return true
	}, func() string { return "loops never noticed failing reads" })
	for _, nd := range c.nodes {
		nd.health.set(health.Up)
	}
	time.Sleep(800 * time.Millisecond)
	if m := c.cloud.history(alloc1); len(m) != 0 {
		t.Fatalf("claimed while AWS state was unknown: %+v", m)
	}
	for id, nd := range c.nodes {
		if e := nd.loop.Status().EIPs[0]; !strings.Contains(e.Why, "unknown") {
			t.Errorf("%s why %q", id, e.Why)
		}
	}
	// Reads work again: exactly one takes over.
	for _, nd := range c.nodes {
		nd.view.set(false, false)
	}
	h := c.waitSettled(alloc1)
	c.steady(alloc1, 300*time.Millisecond)
	if m := c.cloud.history(alloc1); len(m) != 1 || m[0].To != h || m[0].Reason != ReasonTakeoverStale {
		t.Fatalf("moves %+v", m)
	}
	if l := c.cloud.address(alloc1).Lease; l.Term != 8 {
		t.Fatalf("lease %+v, want term 8", l)
	}
}

func TestLoopManualHandoff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := newCluster(t, false, alloc1)
	for _, id := range []string{"i-a", "i-b", "i-c"} {
		c.add(id)
	}
	startWithHolder(c, "i-a", "i-b", "i-c")

	t.Run("not holding", func(t *testing.T) {
		err := c.nodes["i-b"].loop.RequestHandoff(ctx, "")
		if err == nil || !strings.Contains(err.Error(), "holds no EIP") {
			t.Fatalf("RequestHandoff on a standby = %v", err)
		}
	})
	t.Run("to an unknown instance", func(t *testing.T) {
		err := c.nodes["i-a"].loop.RequestHandoff(ctx, "i-nope")
		if !errors.Is(err, ErrUnknownInstance) || !strings.Contains(err.Error(), "i-nope") {
			t.Fatalf("RequestHandoff to an unknown instance = %v", err)
		}
		if h := c.cloud.holderOf(alloc1); h != "i-a" {
			t.Fatalf("holder %s", h)
		}
	})
	t.Run("to a member that is not ready", func(t *testing.T) {
		c.cloud.addInstance(eip.Instance{InstanceID: "i-sick", State: "running", NetworkInterfaceID: "eni-sick",
			PrivateIP: "10.0.0.99", EIPDState: eip.StateUnhealthy})
		err := c.nodes["i-a"].loop.RequestHandoff(ctx, "i-sick")
		if err == nil || !strings.Contains(err.Error(), "no ready member") {
			t.Fatalf("RequestHandoff to a member that is not ready = %v", err)
		}
		if h := c.cloud.holderOf(alloc1); h != "i-a" {
			t.Fatalf("holder %s", h)
		}
		if d := c.nodes["i-a"].loop.Status().Draining; d != "" {
			t.Fatalf("still draining (%s) after a failed manual handoff", d)
		}
	})
	t.Run("to a named member", func(t *testing.T) {
		// i-b ranks first; naming i-c must win over rank.
		if err := c.nodes["i-a"].loop.RequestHandoff(ctx, "i-c"); err != nil {
			t.Fatalf("RequestHandoff: %v", err)
		}
		if h := c.cloud.holderOf(alloc1); h != "i-c" {
			t.Fatalf("holder %s after RequestHandoff returned, want i-c", h)
		}
		if m := c.cloud.history(alloc1); m[len(m)-1].Reason != ReasonHandoffManual {
			t.Fatalf("moves %+v", m)
		}
		c.waitSettled(alloc1)
	})
	t.Run("to any member", func(t *testing.T) {
		if err := c.nodes["i-c"].loop.RequestHandoff(ctx, ""); err != nil {
			t.Fatalf("RequestHandoff: %v", err)
		}
		h := c.waitSettled(alloc1, "i-c")
		if m := c.cloud.history(alloc1); len(m) != 3 || m[2].To != h || m[2].Reason != ReasonHandoffManual {
			t.Fatalf("moves %+v", m)
		}
		// A manual handoff is not a drain: the old holder stays ready.
		if s := c.cloud.state("i-c"); s != eip.StateReady {
			t.Fatalf("i-c state %q after a manual handoff", s)
		}
	})
}

func TestLoopLifecycleNoticeDrains(t *testing.T) {
	c := newCluster(t, false, alloc1)
	for _, id := range []string{"i-a", "i-b"} {
		c.add(id)
	}
	startWithHolder(c, "i-a", "i-b")
	c.nodes["i-a"].meta.notify(eip.Notice{Kind: eip.NoticeSpotInterruption, Detail: "terminate"})
	if h := c.waitSettled(alloc1, "i-a"); h != "i-b" {
		t.Fatalf("holder %s", h)
	}
	if m := c.cloud.history(alloc1); m[len(m)-1].Reason != ReasonHandoffDraining {
		t.Fatalf("moves %+v", m)
	}
	if s := c.cloud.state("i-a"); s != eip.StateDraining {
		t.Fatalf("i-a state %q", s)
	}
	if e := c.nodes["i-a"].loop.Status().EIPs[0]; e.Role != RoleDraining {
		t.Fatalf("i-a role %s", e.Role)
	}
	c.steady(alloc1, 300*time.Millisecond)
}

func TestLoopSpreadsTwoEIPs(t *testing.T) {
	const alloc2 = "eipalloc-2"
	c := newCluster(t, true, alloc1, alloc2)
	ids := []string{"i-a", "i-b", "i-c"}
	for _, id := range ids {
		c.add(id)
	}
	c.start(ids...)
	spread := func() bool {
		h1, ok1 := c.settled(alloc1)
		h2, ok2 := c.settled(alloc2)
		return ok1 && ok2 && h1 != h2
	}
	eventually(t, 10*time.Second, spread, func() string {
		return fmt.Sprintf("not spread: %s on %q %v, %s on %q %v", alloc1, c.cloud.holderOf(alloc1), c.holders(alloc1),
			alloc2, c.cloud.holderOf(alloc2), c.holders(alloc2))
	})
	moves := len(c.cloud.history(alloc1)) + len(c.cloud.history(alloc2))
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n := len(c.cloud.history(alloc1)) + len(c.cloud.history(alloc2)); n != moves {
			t.Fatalf("EIPs still moving after spreading: %+v %+v", c.cloud.history(alloc1), c.cloud.history(alloc2))
		}
		for _, nd := range c.nodes {
			if n := len(nd.loop.Status().Holding()); n > 1 {
				t.Fatalf("%s holds %d EIPs", nd.id, n)
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !spread() {
		t.Fatalf("spread did not last: %s on %q, %s on %q", alloc1, c.cloud.holderOf(alloc1), alloc2, c.cloud.holderOf(alloc2))
	}
}

func TestRequestHandoffHonoursContext(t *testing.T) {
	c := newCluster(t, false, alloc1)
	nd := c.add("i-a")
	// The loop is not running: nobody takes the request.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := nd.loop.RequestHandoff(ctx, ""); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RequestHandoff without a loop = %v", err)
	}
}

// TestLoopStandbysTrustTheHolderStatus: when the holder's eipd answers
// /status and says it holds the EIP, standbys skip their API polls (the
// cluster's read cost stays flat as it grows, docs/design.md); without that
// answer they poll. When the instance the EIP pointed at says it no longer
// holds it, standbys read at once, long before their poll.
func TestLoopStandbysTrustTheHolderStatus(t *testing.T) {
	standbyReads := func(answer bool) int {
		c := newCluster(t, false, alloc1)
		for _, id := range []string{"i-a", "i-b", "i-c"} {
			c.add(id)
		}
		if answer {
			c.answerStatus()
		}
		h := func() string { startWithHolder(c, "i-a", "i-b", "i-c"); return "i-a" }()
		time.Sleep(300 * time.Millisecond) // past the first reads of the standbys
		before := 0
		for id, nd := range c.nodes {
			if id != h {
				before += nd.view.readCount()
			}
		}
		c.steady(alloc1, 1200*time.Millisecond) // six standby polls of 200ms
		after := 0
		for id, nd := range c.nodes {
			if id != h {
				after += nd.view.readCount()
			}
		}
		c.stopAll()
		return after - before
	}
	polled, trusted := standbyReads(false), standbyReads(true)
	if polled < 6 {
		t.Errorf("without /status answers two standbys made %d reads in six poll intervals, want them to poll", polled)
	}
	if trusted > 1 {
		t.Errorf("with the holder confirming, two standbys still made %d reads in six poll intervals", trusted)
	}

	// A standby learns of a handoff from the old holder's /status, not
	// from its poll (an hour here).
	c := newCluster(t, false, alloc1)
	c.standbyPoll = time.Hour
	for _, id := range []string{"i-a", "i-b", "i-c"} {
		c.add(id)
	}
	c.answerStatus()
	startWithHolder(c, "i-a", "i-b", "i-c")
	c.nodes["i-a"].health.set(health.Down)
	nh := c.waitSettled(alloc1, "i-a")
	other := "i-b"
	if nh == "i-b" {
		other = "i-c"
	}
	eventually(t, 3*time.Second, func() bool {
		e := c.nodes[other].loop.Status().EIPs[0]
		return e.Holder == nh && e.AssociatedTo == nh
	}, func() string {
		return fmt.Sprintf("%s still sees %+v after the handoff to %s", other, c.nodes[other].loop.Status().EIPs[0], nh)
	})
}
