package leader

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// The faults the model test injects at random, each healed after a while:
// what production throws at a group (docs/design.md lists them), with the
// unkindness of real AWS: read lag and mixed reads, instance metadata that
// trails the API, answers lost after the call took effect, writes applied
// late, throttling, partitions, paused daemons, clocks that change.

// simMeanFaultGap is the mean time between random faults.
const simMeanFaultGap = 10 * time.Second

func (s *sim) faultGap() time.Duration {
	return time.Second + time.Duration(-math.Log(1-s.rng.Float64())*float64(simMeanFaultGap))
}

type simFault struct {
	weight int
	do     func(s *sim)
}

var simFaults = []simFault{
	{6, faultSick},
	{5, faultProxyOff},
	{4, faultPause},
	{3, faultFreeze},
	{3, faultCrash},
	{3, faultSIGTERM},
	{2, faultStopInstance},
	{4, faultAPIPartition},
	{6, faultAPIUnkind},
	{3, faultReadLag},
	{4, faultIMDS},
	{3, faultNetCut},
	{2, faultStatusBlocked},
	{3, faultClock},
	{3, faultHandMove},
	{2, faultHandDisassociate},
	{2, faultHandTags},
	{1, faultRelease},
	{3, faultManualHandoff},
	{2, faultSpot},
}

func (s *sim) injectFault() {
	total := 0
	for _, f := range simFaults {
		total += f.weight
	}
	n := s.rng.IntN(total)
	for _, f := range simFaults {
		if n < f.weight {
			f.do(s)
			break
		}
		n -= f.weight
	}
	s.after(s.faultGap(), s.injectFault)
}

// someDaemon picks an instance that is not terminated.
func (s *sim) someDaemon() *simDaemon {
	var ds []*simDaemon
	for _, d := range s.daemons {
		if d.state != "terminated" {
			ds = append(ds, d)
		}
	}
	return ds[s.rng.IntN(len(ds))]
}

// touch marks a fault on d: it concerns the EIPs on d (§4).
func (s *sim) touch(d *simDaemon) {
	var allocs []string
	for _, a := range s.world.current().addrs {
		if a.InstanceID == d.id || a.Tags[eip.TagHolder] == d.id {
			allocs = append(allocs, a.AllocationID)
		}
	}
	s.inv.faultOn(allocs...)
}

// recovered marks a member becoming fit again: the EIPs may spread again,
// so it concerns them all.
func (s *sim) recovered() { s.inv.faultOn(s.allocs...) }

func faultSick(s *sim) {
	d := s.someDaemon()
	if d.sick {
		return
	}
	s.fault(d.id, "the proxy's checks fail (backends down)")
	d.sick = true
	s.touch(d)
	s.healthFollows(d)
	s.after(s.between(2*time.Second, 30*time.Second), func() {
		d.sick = false
		s.event(d.id, "the proxy's checks pass again")
		s.recovered()
		s.healthFollows(d)
	})
}

func faultProxyOff(s *sim) {
	d := s.someDaemon()
	if d.proxyOff {
		return
	}
	s.fault(d.id, "the proxy dies")
	d.proxyOff = true
	s.touch(d)
	s.healthFollows(d)
	s.after(s.between(2*time.Second, 30*time.Second), func() {
		d.proxyOff = false
		s.event(d.id, "the proxy is back")
		s.recovered()
		s.healthFollows(d)
	})
}

func faultPause(s *sim) {
	d := s.someDaemon()
	if !d.eipd || d.paused {
		return
	}
	s.fault(d.id, "eipd paused (SIGSTOP), the proxy serves")
	d.paused = true
	s.touch(d)
	s.after(s.between(2*time.Second, 40*time.Second), func() { s.resume(d) })
}

func faultFreeze(s *sim) {
	d := s.someDaemon()
	if !d.eipd || d.paused {
		return
	}
	s.fault(d.id, "the instance hangs: eipd and the proxy")
	d.paused, d.frozen = true, true
	s.touch(d)
	s.after(s.between(2*time.Second, 40*time.Second), func() {
		d.frozen = false
		s.resume(d)
	})
}

// resume lets a paused eipd run again: it takes in what arrived meanwhile.
func (s *sim) resume(d *simDaemon) {
	if !d.paused {
		return
	}
	d.paused, d.liveSince = false, s.now
	s.event(d.id, "eipd resumes")
	s.recovered()
	held := d.held
	d.held = nil
	for _, apply := range held {
		if d.eipd && !d.paused {
			apply()
		}
	}
	d.pass()
}

func faultCrash(s *sim) {
	d := s.someDaemon()
	if !d.eipd || d.frozen {
		return // a hung instance restarts nothing
	}
	s.fault(d.id, "eipd crashes (SIGKILL)")
	d.exit()
	s.touch(d)
	s.after(s.between(time.Second, 20*time.Second), func() {
		s.start(d)
		s.recovered()
	})
}

func faultSIGTERM(s *sim) {
	d := s.someDaemon()
	if !d.live() || d.loop.stopping {
		return
	}
	s.fault(d.id, "eipd gets SIGTERM")
	d.loop.beginStop()
	d.pass()
	s.touch(d)
	s.after(s.between(5*time.Second, 30*time.Second), func() {
		if !d.eipd {
			s.start(d)
			s.recovered()
		}
	})
}

func faultStopInstance(s *sim) {
	d := s.someDaemon()
	if d.state != "running" || s.running() <= 2 {
		return
	}
	s.fault(d.id, "the instance is stopped")
	d.exit()
	d.state = "stopped"
	_ = s.world.setInstanceState("", d.id, "stopped")
	s.touch(d)
	s.after(s.between(10*time.Second, 60*time.Second), func() {
		_ = s.world.setInstanceState("", d.id, "running")
		d.state, d.health, d.paused, d.frozen = "running", health.Unknown, false, false
		s.event(d.id, "the instance runs again")
		s.start(d)
		s.healthFollows(d)
		s.recovered()
	})
}

func (s *sim) running() int {
	n := 0
	for _, d := range s.daemons {
		if d.state == "running" {
			n++
		}
	}
	return n
}

func faultAPIPartition(s *sim) {
	d := s.someDaemon()
	if d.api.partition {
		return
	}
	s.fault(d.id, "cut off from the EC2 API")
	d.api.partition = true
	s.touch(d)
	s.after(s.between(2*time.Second, 40*time.Second), func() {
		d.api.partition = false
		s.event(d.id, "reaches the EC2 API again")
		s.recovered()
	})
}

// faultAPIUnkind makes one daemon's EC2 calls fail, lose their answers,
// land late, get throttled or slow, for a while.
func faultAPIUnkind(s *sim) {
	d := s.someDaemon()
	a := simAPI{partition: d.api.partition}
	switch s.rng.IntN(5) {
	case 0:
		a.errRatio = 0.2 + 0.5*s.rng.Float64()
	case 1:
		a.lostRatio = 0.1 + 0.4*s.rng.Float64()
	case 2:
		a.lateRatio = 0.2 + 0.6*s.rng.Float64()
	case 3:
		a.throttleRatio = 0.3 + 0.6*s.rng.Float64()
	case 4:
		a.latMin, a.latMax = s.between(0, time.Second), s.between(time.Second, 6*time.Second)
	}
	s.fault(d.id, "EC2 calls: %.0f%% 5xx, %.0f%% answers lost, %.0f%% applied late, %.0f%% throttled, latency %v–%v",
		100*a.errRatio, 100*a.lostRatio, 100*a.lateRatio, 100*a.throttleRatio, a.latMin, a.latMax)
	d.api = a
	s.touch(d)
	s.after(s.between(3*time.Second, 40*time.Second), func() {
		d.api = simAPI{partition: d.api.partition}
		s.event(d.id, "EC2 calls are well again")
		s.recovered()
	})
}

func faultReadLag(s *sim) {
	s.readLag = s.between(0, simMaxLag)
	s.mixed = s.rng.IntN(2) == 0
	s.fault("EC2", "reads lag up to %v, mixed %v", s.readLag, s.mixed)
	s.inv.faultOn(s.allocs...)
}

func faultIMDS(s *sim) {
	d := s.someDaemon()
	if s.rng.IntN(4) == 0 {
		s.fault(d.id, "instance metadata does not answer")
		d.imdsDown = true
	} else {
		d.imdsLag = s.between(0, 8*time.Second)
		s.fault(d.id, "instance metadata trails the API by %v", d.imdsLag)
	}
	s.touch(d)
	s.after(s.between(5*time.Second, 60*time.Second), func() {
		d.imdsDown, d.imdsLag = false, 0
		s.event(d.id, "instance metadata is current again")
	})
}

func faultNetCut(s *sim) {
	a, b := s.someDaemon(), s.someDaemon()
	if a == b || !s.reachable(a, b) {
		return
	}
	s.fault(a.id, "cannot reach %s over the network (nor it this one)", b.id)
	s.setCut(a, b, true)
	s.touch(a)
	s.touch(b)
	s.after(s.between(2*time.Second, 40*time.Second), func() {
		s.setCut(a, b, false)
		s.event(a.id, "reaches %s again", b.id)
		s.recovered()
	})
}

func faultStatusBlocked(s *sim) {
	d := s.someDaemon()
	if d.statusBlocked {
		return
	}
	s.fault(d.id, "its status port is blocked")
	d.statusBlocked = true
	s.touch(d)
	s.after(s.between(5*time.Second, 40*time.Second), func() {
		d.statusBlocked = false
		s.event(d.id, "its status port answers again")
		s.recovered()
	})
}

// faultClock moves a daemon's wall clock within the allowed skew, or far
// ahead for a while (a stamp in the future must never extend a lease).
func faultClock(s *sim) {
	d := s.someDaemon()
	half := simTiming.MaxClockSkew / 2
	if s.rng.IntN(4) == 0 {
		d.offset = 10 * time.Minute
		if s.rng.IntN(2) == 0 {
			d.offset = -d.offset
		}
		s.fault(d.id, "its clock jumps %v", d.offset)
		s.after(s.between(10*time.Second, 40*time.Second), func() {
			d.offset = 0
			s.event(d.id, "its clock is set right")
		})
		return
	}
	d.offset = s.between(-half, half)
	s.fault(d.id, "its clock is now %v off", d.offset)
}

func (s *sim) someAlloc() string {
	var live []string
	for _, a := range s.allocs {
		if !s.released[a] {
			live = append(live, a)
		}
	}
	if len(live) == 0 {
		return ""
	}
	return live[s.rng.IntN(len(live))]
}

func faultHandMove(s *sim) {
	alloc, d := s.someAlloc(), s.someDaemon()
	if alloc == "" || d.state != "running" {
		return
	}
	ip := d.ips[s.rng.IntN(len(d.ips))]
	s.fault("operator", "moves %s to %s/%s by hand", alloc, d.id, ip)
	if a := s.world.current().addressOn(d.ident.NetworkInterfaceID, ip); a != nil {
		s.inv.faultOn(a.AllocationID)
	}
	s.inv.faultOn(alloc)
	s.inv.handMoved[alloc] = s.now
	_, _ = s.world.associateAddress("", alloc, d.ident.NetworkInterfaceID, ip, true)
}

func faultHandDisassociate(s *sim) {
	alloc := s.someAlloc()
	if alloc == "" {
		return
	}
	a := s.world.current().addrs[alloc]
	if a.AssociationID == "" {
		return
	}
	s.fault("operator", "disassociates %s by hand", alloc)
	s.inv.faultOn(alloc)
	_ = s.world.disassociateAddress("", a.AssociationID)
}

func faultHandTags(s *sim) {
	alloc := s.someAlloc()
	if alloc == "" {
		return
	}
	tags := map[string]string{}
	switch s.rng.IntN(4) {
	case 0:
		tags[eip.TagTerm] = "x"
	case 1:
		tags[eip.TagHolder] = "i-nobody"
	case 2:
		tags[eip.TagEpoch] = "-1"
		tags[eip.TagRenewed] = "yesterday"
	case 3:
		top := eip.Term{}
		for _, a := range s.world.current().addrs {
			if t, ok := eip.ParseTerm(a.Tags[eip.TagTerm]); ok && top.Less(t) {
				top = t
			}
		}
		tags[eip.TagTerm] = eip.Term{Epoch: top.Epoch + 5}.String()
	}
	s.fault("operator", "edits the tags of %s by hand: %v", alloc, tags)
	s.inv.faultOn(alloc)
	_ = s.world.createTags("", []string{alloc}, tags)
}

func faultRelease(s *sim) {
	alloc := s.someAlloc()
	if alloc == "" || len(s.allocs)-len(s.released) < 2 {
		return
	}
	s.fault("operator", "releases %s", alloc)
	if a := s.world.current().addrs[alloc]; a.AssociationID != "" {
		_ = s.world.disassociateAddress("", a.AssociationID)
	}
	if err := s.world.releaseAddress("", alloc); err == nil {
		s.released[alloc] = true
	}
	s.inv.faultOn(s.allocs...)
}

func faultManualHandoff(s *sim) {
	d := s.someDaemon()
	if !d.live() || d.manual != nil {
		return
	}
	to := ""
	if s.rng.IntN(2) == 0 {
		to = s.someDaemon().id
	}
	req := &handoffRequest{to: to, reply: make(chan error, 1)}
	d.loop.startManual(req)
	select {
	case err := <-req.reply:
		s.event(d.id, "manual handoff refused: %v", err)
		return
	default:
	}
	s.fault(d.id, "eipd handoff --to %q", to)
	s.inv.handoffAsked[d.id] = s.now
	d.manual = req
	s.touch(d)
	d.pass()
}

// faultSpot: a spot interruption notice, then the instance is terminated
// and a new instance joins the group.
func faultSpot(s *sim) {
	d := s.someDaemon()
	if d.state != "running" || d.spot || s.running() <= 2 {
		return
	}
	s.fault(d.id, "spot interruption notice")
	d.spot = true
	s.touch(d)
	s.after(s.between(10*time.Second, 30*time.Second), func() {
		if d.state != "running" {
			return
		}
		s.event(d.id, "the instance is terminated")
		d.exit()
		d.state = "terminated"
		_ = s.world.setInstanceState("", d.id, "terminated")
		for _, a := range s.world.current().addrs {
			if a.InstanceID == d.id {
				_ = s.world.disassociateAddress("", a.AssociationID)
			}
		}
		s.touch(d)
		s.launch()
	})
}

// launch adds a new instance to the group and starts eipd on it.
func (s *sim) launch() {
	i := len(s.daemons)
	id := fmt.Sprintf("i-%017d", i+1)
	ips := []string{fmt.Sprintf("10.0.0.%d", i+11)}
	for k := 1; k < s.cfg.Slots; k++ {
		ips = append(ips, fmt.Sprintf("10.0.%d.%d", k, i+11))
	}
	eni := fmt.Sprintf("eni-%017d", i+1)
	s.world.addInstance(id, eni, ips, map[string]string{eip.TagGroup: simGroup})
	d := &simDaemon{s: s, id: id, ips: ips, state: "running", health: health.Unknown,
		ident: eip.Identity{InstanceID: id, Region: "us-east-1", AvailabilityZone: "us-east-1a", NetworkInterfaceID: eni, PrivateIP: ips[0]}}
	s.daemons = append(s.daemons, d)
	s.event(id, "a new instance joins the group")
	s.start(d)
	s.healthFollows(d)
	s.recovered()
}

var _ = slices.Contains[[]string]
