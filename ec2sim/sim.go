// Package ec2sim emulates the parts of EC2 and of the instance metadata
// service (IMDSv2) that eipd uses, on loopback, faithfully enough that
// failover times and API costs measured against it mean something. See
// docs/ec2sim.md.
package ec2sim

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Options configure a simulator. Zero values take the documented defaults.
type Options struct {
	Instances       int    // default 3
	EIPs            int    // default 1
	Group           string // default "demo"; tag eipd:group=Group on instances and EIPs
	Listen          string // EC2 + control HTTP listener; default "127.0.0.1:0"
	TargetPort      int    // default 80: EIP traffic forwarded to <private ip>:TargetPort
	Region          string // default "us-east-1"
	ENIsPerInstance int    // default 1
	// PrivateIPs is the number of private IPs on each instance's primary
	// ENI (the primary one plus PrivateIPs-1 secondary ones), default 1,
	// at most MaxPrivateIPs. Each can carry its own EIP.
	PrivateIPs       int
	FirstIP          string        // default "127.0.0.11": instances get .11, .12, ...
	PropagationDelay time.Duration // EIP traffic switch delay after an association change
	// BootDelay is how long a started instance stays pending before it is
	// running (default 0: StartInstance makes it running at once).
	BootDelay time.Duration
	// AutoScalingGroup puts every instance in an Auto Scaling group of that
	// name (tag aws:autoscaling:groupName); "" = none. LifecycleHooks are
	// its termination lifecycle hooks (see autoscaling.go).
	AutoScalingGroup string
	LifecycleHooks   []string
	// AutoAssignPublicIP launches the instances into a subnet that
	// auto-assigns public IPv4 addresses: each gets one (owner "amazon",
	// from 198.18.0.0/15, never dialed), released while an EIP is on its
	// primary private IP (publicip.go). Default false: a private subnet.
	AutoAssignPublicIP bool
	Logger             hclog.Logger // nil → hclog.NewNullLogger()
}

func (o Options) withDefaults() Options {
	if o.Instances == 0 {
		o.Instances = 3
	}
	if o.EIPs == 0 {
		o.EIPs = 1
	}
	if o.Group == "" {
		o.Group = "demo"
	}
	if o.Listen == "" {
		o.Listen = "127.0.0.1:0"
	}
	if o.TargetPort == 0 {
		o.TargetPort = 80
	}
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.ENIsPerInstance == 0 {
		o.ENIsPerInstance = 1
	}
	if o.PrivateIPs == 0 {
		o.PrivateIPs = 1
	}
	if o.FirstIP == "" {
		o.FirstIP = "127.0.0.11"
	}
	if o.Logger == nil {
		o.Logger = hclog.NewNullLogger()
	}
	return o
}

// MaxPrivateIPs bounds Options.PrivateIPs. EC2's own limit depends on the
// instance type (a t3.micro has 2 per ENI, large types 30 or 50); a handful
// is all eipd's tests need.
const MaxPrivateIPs = 10

func (o Options) validate() error {
	var errs []error
	if o.Instances < 0 || o.Instances > 1000 {
		errs = append(errs, fmt.Errorf("instances %d: want 1..1000", o.Instances))
	}
	if o.EIPs < 0 || o.EIPs > 200 {
		errs = append(errs, fmt.Errorf("eips %d: want 1..200", o.EIPs))
	}
	if o.ENIsPerInstance < 0 || o.ENIsPerInstance > 15 {
		errs = append(errs, fmt.Errorf("enis per instance %d: want 1..15", o.ENIsPerInstance))
	}
	if o.PrivateIPs < 0 || o.PrivateIPs > MaxPrivateIPs {
		errs = append(errs, fmt.Errorf("private ips %d: want 1..%d", o.PrivateIPs, MaxPrivateIPs))
	}
	if o.TargetPort < 0 || o.TargetPort > 65535 {
		errs = append(errs, fmt.Errorf("target port %d: want 1..65535", o.TargetPort))
	}
	if ip := net.ParseIP(o.FirstIP); ip == nil || ip.To4() == nil {
		errs = append(errs, fmt.Errorf("first ip %q: not an IPv4 address", o.FirstIP))
	}
	if o.AutoScalingGroup != "" && !asgNameRE().MatchString(o.AutoScalingGroup) {
		errs = append(errs, fmt.Errorf("auto scaling group %q: want 1 to 255 printable characters", o.AutoScalingGroup))
	}
	if len(o.LifecycleHooks) > 0 && o.AutoScalingGroup == "" {
		errs = append(errs, errors.New("lifecycle hooks need an auto scaling group"))
	}
	for _, h := range o.LifecycleHooks {
		if !hookNameRE().MatchString(h) {
			errs = append(errs, fmt.Errorf("lifecycle hook %q: want 1 to 255 of A-Z a-z 0-9 - _ /", h))
		}
	}
	if o.PropagationDelay < 0 || o.BootDelay < 0 {
		errs = append(errs, errors.New("propagation and boot delays must not be negative"))
	}
	return errors.Join(errs...)
}

// Info describes a running simulator; its JSON is what `eipd sim` prints.
type Info struct {
	EC2Endpoint     string `json:"ec2_endpoint"`
	ControlEndpoint string `json:"control_endpoint"`
	Region          string `json:"region"`
	Group           string `json:"group"`
	// AutoScalingGroup and LifecycleHooks: see Options; omitted when none.
	AutoScalingGroup string         `json:"auto_scaling_group,omitempty"`
	LifecycleHooks   []string       `json:"lifecycle_hooks,omitempty"`
	Instances        []InstanceInfo `json:"instances"`
	EIPs             []EIPInfo      `json:"eips"`
}

// InstanceInfo is one simulated instance.
type InstanceInfo struct {
	InstanceID string `json:"instance_id"`
	PrivateIP  string `json:"private_ip"`
	// PrivateIPs are the private IPs of the primary ENI, primary first.
	PrivateIPs   []string `json:"private_ips"`
	AZ           string   `json:"az"`
	ENIID        string   `json:"eni_id"`
	IMDSEndpoint string   `json:"imds_endpoint"`
}

// EIPInfo is one allocated EIP and the loopback address carrying its traffic.
type EIPInfo struct {
	AllocationID string `json:"allocation_id"`
	PublicIP     string `json:"public_ip"`
	ForwardAddr  string `json:"forward_addr"`
}

// JSON is Info on one line, without a trailing newline.
func (i Info) JSON() []byte {
	b, err := json.Marshal(i)
	if err != nil { // only plain strings and slices: cannot happen
		return []byte("{}")
	}
	return b
}

// Event is one association change, or a change of an instance's
// auto-assigned public IPv4 address.
type Event struct {
	// Time is when the change landed (for a late write: when it was
	// applied, not when it was answered).
	Time         time.Time `json:"time"`
	AllocationID string    `json:"allocation_id"`
	From         string    `json:"from"` // instance ID, "" for none
	To           string    `json:"to"`   // instance ID, "" for none
	Caller       string    `json:"caller"`
	// Action: associate, move, disassociate, displaced, terminate,
	// release; public-ip-release and public-ip-return (an auto-assigned
	// address left or came back, PublicIP says which); late-dropped (a
	// late write that had no effect when it landed).
	Action        string `json:"action"`
	AssociationID string `json:"association_id,omitempty"`
	// PublicIP: the auto-assigned address of a public-ip-* event.
	PublicIP string `json:"public_ip,omitempty"`
	// Late marks a change made by a late write (Faults.LateWrites);
	// AcceptedAt is when its call was accepted and answered from.
	Late       bool      `json:"late,omitempty"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
}

// TagWrite is one CreateTags or DeleteTags call that touched eipd:* keys
// of a resource, as it landed (the time the simulator applied it, which
// with Faults.Latency is before the caller got its answer). Tags holds
// only the eipd:* keys: for "create" the values written, for "delete" the
// values the deleted keys had. One record per resource of the call.
type TagWrite struct {
	Time       time.Time         `json:"time"`
	ResourceID string            `json:"resource_id"`
	Caller     string            `json:"caller"` // instance ID, "" for the operator
	Action     string            `json:"action"` // create or delete
	Tags       map[string]string `json:"tags"`
	// Late marks a write that landed late (Faults.LateWrites); Time is
	// when it landed, AcceptedAt when its call was accepted and answered.
	Late       bool      `json:"late,omitempty"`
	AcceptedAt time.Time `json:"accepted_at,omitzero"`
}

// maxTagHistory bounds the tag history (oldest dropped): a day of one
// renewal per second per EIP for several EIPs.
const maxTagHistory = 500000

// Stats counts EC2 API calls. Caller "" is the operator (unknown access
// keys); action "(invalid)" counts requests that named no known action.
type Stats struct {
	Total     int64                       `json:"total"`
	ByAction  map[string]int64            `json:"by_action"`
	ByCaller  map[string]map[string]int64 `json:"by_caller"`  // caller → action → calls
	ByOutcome map[string]map[string]int64 `json:"by_outcome"` // action → "ok" or error code → calls
	// ByCallerOutcome: caller → "ok" or error code → calls, to tell whom
	// a fault was answered to (the throttling of an account-wide bucket
	// hits whoever calls next).
	ByCallerOutcome map[string]map[string]int64 `json:"by_caller_outcome"`
}

// AddressView is the true (not lagged) state of one EIP.
type AddressView struct {
	AllocationID       string            `json:"allocation_id"`
	PublicIP           string            `json:"public_ip"`
	AssociationID      string            `json:"association_id,omitempty"`
	InstanceID         string            `json:"instance_id,omitempty"`
	NetworkInterfaceID string            `json:"network_interface_id,omitempty"`
	PrivateIP          string            `json:"private_ip,omitempty"`
	Tags               map[string]string `json:"tags"`
}

type snap struct {
	at time.Time
	w  *world
}

type targetChange struct {
	at   time.Time
	addr string // "" = nowhere (unassociated, or instance not running)
}

type fwdRun struct {
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

// Sim is a running simulator.
type Sim struct {
	opts   Options
	logger hclog.Logger
	start  time.Time

	mu         sync.Mutex
	w          *world
	hist       []snap // only kept while some DescribeLag or IMDSLag is set
	events     []Event
	tagHist    []TagWrite
	stats      Stats
	faults     Faults
	instFaults map[string]Faults
	buckets    map[string]*bucket
	akids      map[string]string // access key ID → instance ID
	imdsAddr   map[string]string // instance ID → IMDS endpoint
	targets    map[string][]targetChange
	// fwdPorts: instances whose EIP traffic goes to another port than
	// Options.TargetPort (SetTargetPort).
	fwdPorts   map[string]int
	fwds       map[string]*fwdRun
	nextPublic int
	nextAuto   int // next auto-assigned public IPv4 (publicip.go)
	// lateQ: late writes waiting to land, by due time (late.go); wake
	// tells runTimer that something new is due.
	lateQ []pendingWrite
	wake  chan struct{}
	// lifecycleActions: Auto Scaling termination lifecycle actions.
	lifecycleActions []*LifecycleAction
	rnd              *rand.Rand

	ctx     context.Context // ends at Close
	cancel  context.CancelFunc
	closing chan struct{}
	ln      net.Listener
	servers []*http.Server
	wg      sync.WaitGroup // server and forwarder goroutines

	reqMu     sync.Mutex
	reqClosed bool
	reqWG     sync.WaitGroup // in-flight EC2 requests (partitioned ones hang)

	closeOnce sync.Once
	closeErr  error
}

// Start builds the simulated account, binds every listener and serves in
// goroutines it owns. It returns when all listeners are ready. The
// simulator stops when ctx ends or Close is called.
func Start(ctx context.Context, opts Options) (*Sim, error) {
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("ec2sim options: %w", err)
	}
	now := time.Now()
	sctx, cancel := context.WithCancel(context.Background())
	s := &Sim{
		opts:       opts,
		logger:     opts.Logger,
		start:      now,
		w:          &world{tags: map[string]map[string]string{}},
		instFaults: map[string]Faults{},
		buckets:    map[string]*bucket{},
		akids:      map[string]string{},
		imdsAddr:   map[string]string{},
		targets:    map[string][]targetChange{},
		fwdPorts:   map[string]int{},
		fwds:       map[string]*fwdRun{},
		rnd:        rand.New(rand.NewPCG(uint64(now.UnixNano()), 0x5eed)),
		ctx:        sctx,
		cancel:     cancel,
		closing:    make(chan struct{}),
		wake:       make(chan struct{}, 1),
	}
	s.stats = Stats{ByAction: map[string]int64{}, ByCaller: map[string]map[string]int64{}, ByOutcome: map[string]map[string]int64{},
		ByCallerOutcome: map[string]map[string]int64{}}
	s.buildWorld(now)

	fail := func(err error) (*Sim, error) {
		_ = s.Close()
		return nil, err
	}
	ln, err := net.Listen("tcp", opts.Listen)
	if err != nil {
		return fail(fmt.Errorf("ec2sim listen %s: %w", opts.Listen, err))
	}
	s.ln = ln
	s.serve(ln, s.routes())

	for _, in := range s.w.instances {
		iln, err := net.Listen("tcp", net.JoinHostPort(in.PrimaryIP, "0"))
		if err != nil {
			return fail(fmt.Errorf("ec2sim imds listen for %s on %s: %w", in.ID, in.PrimaryIP, err))
		}
		id := in.ID
		s.imdsAddr[id] = "http://" + iln.Addr().String()
		s.serve(iln, newIMDSHandler(func() (MetadataSnapshot, bool) { return s.metadata(id) },
			s.logger.Named("imds").With("instance_id", id)))
	}
	s.mu.Lock()
	for _, a := range s.w.addresses {
		if err := s.startForwarderLocked(a.AllocationID); err != nil {
			s.mu.Unlock()
			return fail(err)
		}
	}
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		s.runTimer()
	}()

	// Stop with the caller's context. This goroutine is not in wg: Close
	// waits for wg, and this goroutine may be the one calling Close.
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.closing:
		}
	}()
	s.logger.Info("ec2sim ready", "ec2_endpoint", "http://"+ln.Addr().String(),
		"instances", opts.Instances, "eips", opts.EIPs)
	return s, nil
}

func (s *Sim) serve(ln net.Listener, h http.Handler) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: s.logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	s.servers = append(s.servers, srv)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.logger.Error("ec2sim server stopped", "addr", ln.Addr().String(), "error", err)
		}
	}()
}

// Close stops every listener and goroutine and waits for them. Requests
// hanging in a partition are released; late writes still pending are
// dropped. Safe to call more than once.
func (s *Sim) Close() error {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock()
		s.lateQ = nil // pending late writes are dropped, never applied later
		s.mu.Unlock()
		s.reqMu.Lock()
		s.reqClosed = true
		s.reqMu.Unlock()
		var errs []error
		for _, srv := range s.servers {
			if err := srv.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		s.cancel()
		s.reqWG.Wait()
		s.wg.Wait()
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// enter registers an in-flight EC2 request; false once closing.
func (s *Sim) enter() bool {
	s.reqMu.Lock()
	defer s.reqMu.Unlock()
	if s.reqClosed {
		return false
	}
	s.reqWG.Add(1)
	return true
}

func (s *Sim) leave() { s.reqWG.Done() }

func ipAdd(base net.IP, n int) string {
	v := binary.BigEndian.Uint32(base.To4()) + uint32(n)
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], v)
	return net.IP(b[:]).String()
}

// buildWorld creates the instances (running, tagged, ENIs, credentials) and
// the group's EIPs (unassociated, tagged).
//
// Address layout from FirstIP (offsets): instance i's primary IP is i;
// the extra ENIs' IPs follow all primaries (Instances + i*(ENIs-1) + j-1);
// the secondary IPs of primary ENIs follow those
// (Instances*ENIs + i*(PrivateIPs-1) + k-1). So the primary IPs stay
// .11, .12, … whatever the other options, and no two IPs collide.
func (s *Sim) buildWorld(now time.Time) {
	o := s.opts
	base := net.ParseIP(o.FirstIP)
	vpc := newResourceID("vpc")
	subnets := map[string]string{}
	launch := now.Add(-time.Hour).UTC().Truncate(time.Second)
	mac := 0
	newMAC := func() string {
		mac++
		return fmt.Sprintf("02:00:00:%02x:%02x:%02x", (mac>>16)&0xff, (mac>>8)&0xff, mac&0xff)
	}
	for i := 0; i < o.Instances; i++ {
		az := o.Region + string(rune('a'+i%3))
		if subnets[az] == "" {
			subnets[az] = newResourceID("subnet")
		}
		in := &instRec{
			ID: newResourceID("i"), ReservationID: newResourceID("r"), AZ: az,
			SubnetID: subnets[az], VPCID: vpc, State: "running",
			LaunchTime: launch, Creds: newCredentials(now),
		}
		for j := 0; j < o.ENIsPerInstance; j++ {
			ips := []string{ipAdd(base, i)}
			if j > 0 {
				ips = []string{ipAdd(base, o.Instances+i*(o.ENIsPerInstance-1)+j-1)}
			} else {
				for k := 1; k < o.PrivateIPs; k++ {
					ips = append(ips, ipAdd(base, o.Instances*o.ENIsPerInstance+i*(o.PrivateIPs-1)+k-1))
				}
			}
			in.ENIs = append(in.ENIs, eniRec{ID: newResourceID("eni"), MAC: newMAC(),
				AttachmentID: newResourceID("eni-attach"), DeviceIndex: j, PrivateIPs: ips})
		}
		in.PrimaryENI, in.PrimaryIP = in.ENIs[0].ID, in.ENIs[0].PrivateIPs[0]
		in.PrimaryIPs = append([]string(nil), in.ENIs[0].PrivateIPs...)
		s.w.instances = append(s.w.instances, in)
		s.w.setTag(in.ID, "eipd:group", o.Group)
		s.w.setTag(in.ID, "Name", fmt.Sprintf("%s-%d", o.Group, i+1))
		if o.AutoScalingGroup != "" {
			s.w.setTag(in.ID, "aws:autoscaling:groupName", o.AutoScalingGroup)
		}
		s.akids[in.Creds.AccessKeyID] = in.ID
		if o.AutoAssignPublicIP {
			// With several ENIs it stands for an instance launched with
			// eth0 alone and given more later (ECS awsvpc trunking):
			// AWS only auto-assigns at launch to a single interface.
			in.AutoPublicIP, in.PublicIP = true, s.nextAutoIPLocked()
		}
	}
	for i := 0; i < o.EIPs; i++ {
		a := &addrRec{AllocationID: newResourceID("eipalloc"), PublicIP: s.nextPublicIPLocked()}
		s.w.addresses = append(s.w.addresses, a)
		s.w.setTag(a.AllocationID, "eipd:group", o.Group)
	}
}

// nextPublicIPLocked hands out addresses from the documentation ranges
// (RFC 5737); they are never dialed. "" when exhausted.
func (s *Sim) nextPublicIPLocked() string {
	ranges := []string{"198.51.100.", "203.0.113.", "192.0.2."}
	for {
		n := s.nextPublic
		r, host := n/244, n%244+10
		if r >= len(ranges) {
			return ""
		}
		s.nextPublic++
		ip := ranges[r] + strconv.Itoa(host)
		if s.w.addressByIP(ip) == nil {
			return ip
		}
	}
}

func (s *Sim) startForwarderLocked(allocID string) error {
	fln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("ec2sim forward listen for %s: %w", allocID, err)
	}
	fctx, cancel := context.WithCancel(s.ctx)
	run := &fwdRun{addr: fln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	s.fwds[allocID] = run
	f := newForwarder(fln, func(now time.Time) (string, bool) { return s.resolveTarget(allocID, now) },
		s.logger.Named("forward").With("allocation_id", allocID))
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(run.done)
		if err := f.Serve(fctx); err != nil {
			s.logger.Error("forwarder stopped", "allocation_id", allocID, "error", err)
		}
		_ = fln.Close()
	}()
	return nil
}

// resolveTarget is the forwarder's view: the target associated at
// now - PropagationDelay.
func (s *Sim) resolveTarget(allocID string, now time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickLocked(now)
	at := now.Add(-s.opts.PropagationDelay)
	addr := ""
	for _, tc := range s.targets[allocID] {
		if tc.at.After(at) {
			break
		}
		addr = tc.addr
	}
	return addr, addr != ""
}

// tickLocked applies time-driven changes: late writes and public IPv4
// returns that fell due (late.go), and pending instances whose boot delay
// has passed become running.
func (s *Sim) tickLocked(now time.Time) {
	s.applyDueLocked(now)
	changed := false
	for _, in := range s.w.instances {
		if in.State == "pending" && !now.Before(in.ReadyAt) {
			in.State, in.Reason = "running", ""
			changed = true
		}
	}
	if changed {
		s.commitLocked(now)
	}
}

// commitLocked records a write: a snapshot for lagged reads (only while a
// lag is configured) and the forwarding targets.
func (s *Sim) commitLocked(now time.Time) {
	if lag := s.maxLagLocked(); lag > 0 {
		s.hist = append(s.hist, snap{at: now, w: s.w.clone()})
		cut := now.Add(-lag)
		for len(s.hist) >= 2 && !s.hist[1].at.After(cut) {
			s.hist = s.hist[1:]
		}
		if len(s.hist) > 100000 {
			s.hist = s.hist[len(s.hist)-100000:]
		}
	} else {
		s.hist = nil
	}
	s.recordTargetsLocked(now)
}

// maxLagLocked is how much history lagged reads need: the largest
// DescribeLag or IMDSLag, global or per instance. Both read the same
// snapshots.
func (s *Sim) maxLagLocked() time.Duration {
	lag := max(s.faults.DescribeLag, s.faults.IMDSLag)
	for _, f := range s.instFaults {
		lag = max(lag, f.DescribeLag, f.IMDSLag)
	}
	return lag
}

// viewLocked is the state Describe* answer from under the given lag.
func (s *Sim) viewLocked(now time.Time, lag time.Duration) *world {
	if lag <= 0 || len(s.hist) == 0 {
		return s.w
	}
	cut := now.Add(-lag)
	for i := len(s.hist) - 1; i >= 0; i-- {
		if !s.hist[i].at.After(cut) {
			return s.hist[i].w
		}
	}
	return s.hist[0].w
}

func (s *Sim) recordTargetsLocked(now time.Time) {
	for _, a := range s.w.addresses {
		// The instance's stand-in binds its primary IP only; an HAProxy
		// bound to 0.0.0.0 serves every private IP of the instance, so
		// traffic for an EIP on a secondary IP (or another ENI) goes
		// there too.
		want := ""
		if a.ENIID != "" {
			if in, _ := s.w.eni(a.ENIID); in != nil && in.State == "running" {
				port := s.opts.TargetPort
				if p, ok := s.fwdPorts[in.ID]; ok {
					port = p
				}
				want = net.JoinHostPort(in.PrimaryIP, strconv.Itoa(port))
			}
		}
		h := s.targets[a.AllocationID]
		last := ""
		if len(h) > 0 {
			last = h[len(h)-1].addr
		}
		if len(h) == 0 && want == "" {
			continue
		}
		if want != last {
			h = append(h, targetChange{at: now, addr: want})
		}
		cut := now.Add(-s.opts.PropagationDelay)
		for len(h) >= 2 && !h[1].at.After(cut) {
			h = h[1:]
		}
		s.targets[a.AllocationID] = h
	}
}

func (s *Sim) recordEventLocked(e Event) {
	s.events = append(s.events, e)
	kv := []any{"action", e.Action, "allocation_id", e.AllocationID,
		"from", e.From, "to", e.To, "caller", e.Caller, "association_id", e.AssociationID}
	if e.PublicIP != "" {
		kv = append(kv, "public_ip", e.PublicIP)
	}
	if e.Late {
		kv = append(kv, "late", true, "accepted_at", e.AcceptedAt)
	}
	s.logger.Info("association change", kv...)
}

// recordTagWriteLocked keeps the eipd:* part of a tag write on id.
func (s *Sim) recordTagWriteLocked(now time.Time, id string, o origin, action string, kv map[string]string) {
	tags := map[string]string{}
	for k, v := range kv {
		if strings.HasPrefix(k, "eipd:") {
			tags[k] = v
		}
	}
	if len(tags) == 0 {
		return
	}
	tw := TagWrite{Time: now, ResourceID: id, Caller: o.caller, Action: action, Tags: tags, Late: o.late}
	if o.late {
		tw.AcceptedAt = o.accepted
	}
	s.tagHist = append(s.tagHist, tw)
	if len(s.tagHist) > maxTagHistory {
		s.tagHist = append([]TagWrite(nil), s.tagHist[len(s.tagHist)-maxTagHistory/2:]...)
	}
}

// TagHistory returns the writes of eipd:* tags, oldest first: all of
// them, or those on one resource when resourceID is not "".
func (s *Sim) TagHistory(resourceID string) []TagWrite {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickLocked(time.Now())
	out := []TagWrite{}
	for _, tw := range s.tagHist {
		if resourceID != "" && tw.ResourceID != resourceID {
			continue
		}
		c := tw
		c.Tags = make(map[string]string, len(tw.Tags))
		for k, v := range tw.Tags {
			c.Tags[k] = v
		}
		out = append(out, c)
	}
	return out
}

// metadata is the IMDS source of one instance. The items derived from
// its associations (public-ipv4, public-ipv4s, ipv4-associations) come
// from the state IMDSLag ago, as AWS's metadata trails an association
// change; everything else is current.
func (s *Sim) metadata(id string) (MetadataSnapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.tickLocked(now)
	lagged := s.viewLocked(now, combine(s.faults, s.instFaults[id]).IMDSLag)
	in := s.w.instance(id)
	if in == nil || in.State != "running" {
		return MetadataSnapshot{}, false
	}
	snap := MetadataSnapshot{
		InstanceID: in.ID, AccountID: simAccountID, ImageID: simImageID, InstanceType: simInstanceType,
		Region: s.opts.Region, AvailabilityZone: in.AZ, AvailabilityZoneID: azID(s.opts.Region, in.AZ),
		PrivateIP: in.PrimaryIP, PendingTime: in.LaunchTime, Role: simRoleName, Credentials: in.Creds,
		TargetLifecycleState: in.Lifecycle, Maintenance: append([]MaintenanceEvent(nil), in.Maintenance...),
	}
	if in.Spot != nil {
		sa := *in.Spot
		snap.SpotAction = &sa
	}
	if in.Rebalance != nil {
		t := *in.Rebalance
		snap.Rebalance = &t
	}
	autoIP := ""
	if li := lagged.instance(id); li != nil {
		autoIP = li.PublicIP
	}
	for _, e := range in.ENIs {
		im := InterfaceMetadata{MAC: e.MAC, InterfaceID: e.ID, DeviceIndex: e.DeviceIndex,
			PrivateIPs: append([]string(nil), e.PrivateIPs...), PublicIPs: map[string]string{}}
		for _, ip := range e.PrivateIPs {
			pub := ""
			if a := lagged.addressOn(e.ID, ip); a != nil {
				pub = a.PublicIP
			} else if onPrimaryIP(in, e.ID, ip) {
				pub = autoIP
			}
			if pub != "" {
				im.PublicIPs[ip] = pub
				if onPrimaryIP(in, e.ID, ip) {
					snap.PublicIP = pub
				}
			}
		}
		snap.Interfaces = append(snap.Interfaces, im)
	}
	return snap, true
}

// Info describes the simulator as `eipd sim` prints it.
func (s *Sim) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	base := ""
	if s.ln != nil {
		base = "http://" + s.ln.Addr().String()
	}
	info := Info{EC2Endpoint: base, ControlEndpoint: base + "/_sim", Region: s.opts.Region, Group: s.opts.Group,
		Instances: []InstanceInfo{}, EIPs: []EIPInfo{}, AutoScalingGroup: s.opts.AutoScalingGroup, LifecycleHooks: s.opts.LifecycleHooks}
	for _, in := range s.w.instances {
		info.Instances = append(info.Instances, InstanceInfo{InstanceID: in.ID, PrivateIP: in.PrimaryIP,
			PrivateIPs: append([]string{}, in.PrimaryIPs...),
			AZ:         in.AZ, ENIID: in.PrimaryENI, IMDSEndpoint: s.imdsAddr[in.ID]})
	}
	for _, a := range s.w.addresses {
		fa := ""
		if f := s.fwds[a.AllocationID]; f != nil {
			fa = f.addr
		}
		info.EIPs = append(info.EIPs, EIPInfo{AllocationID: a.AllocationID, PublicIP: a.PublicIP, ForwardAddr: fa})
	}
	return info
}

// Credentials returns the instance profile credentials an instance's IMDS
// hands out; calls signed with its access key count as that instance's.
func (s *Sim) Credentials(instanceID string) (Credentials, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.w.instance(instanceID)
	if in == nil {
		return Credentials{}, false
	}
	return in.Creds, true
}

// Events returns the association change log, oldest first.
func (s *Sim) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickLocked(time.Now())
	return append([]Event{}, s.events...)
}

// Stats returns a copy of the API call counters.
func (s *Sim) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := Stats{Total: s.stats.Total, ByAction: maps.Clone(s.stats.ByAction), ByCaller: cloneCounts(s.stats.ByCaller),
		ByOutcome: cloneCounts(s.stats.ByOutcome), ByCallerOutcome: cloneCounts(s.stats.ByCallerOutcome)}
	return c
}

func cloneCounts(m map[string]map[string]int64) map[string]map[string]int64 {
	c := make(map[string]map[string]int64, len(m))
	for k, inner := range m {
		c[k] = maps.Clone(inner)
	}
	return c
}

func (s *Sim) countLocked(action, caller, outcome string) {
	s.stats.Total++
	s.stats.ByAction[action]++
	m := s.stats.ByCaller[caller]
	if m == nil {
		m = map[string]int64{}
		s.stats.ByCaller[caller] = m
	}
	m[action]++
	o := s.stats.ByOutcome[action]
	if o == nil {
		o = map[string]int64{}
		s.stats.ByOutcome[action] = o
	}
	o[outcome]++
	co := s.stats.ByCallerOutcome[caller]
	if co == nil {
		co = map[string]int64{}
		s.stats.ByCallerOutcome[caller] = co
	}
	co[outcome]++
}

// Address returns the true current state of an EIP.
func (s *Sim) Address(allocationID string) (AddressView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickLocked(time.Now())
	a := s.w.address(allocationID)
	if a == nil {
		return AddressView{}, false
	}
	v := AddressView{AllocationID: a.AllocationID, PublicIP: a.PublicIP, AssociationID: a.AssociationID,
		InstanceID: a.InstanceID, NetworkInterfaceID: a.ENIID, PrivateIP: a.PrivateIP, Tags: map[string]string{}}
	for k, val := range s.w.tags[a.AllocationID] {
		v.Tags[k] = val
	}
	return v, true
}
