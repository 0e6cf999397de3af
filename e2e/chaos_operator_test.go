package e2e

// Chaos scenarios: what operators and the environment do to a running
// cluster — the EIP moved, disassociated or released by hand, lease tags
// edited to garbage, IAM denied to one member, instance metadata down at a
// member's start, a member's clock 3 s off.

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// dHolderPoll is the daemon's default holder poll: how often a holder
// re-reads its EIP from the API.
const dHolderPoll = 10 * time.Second

func init() {
	addChaos(
		chaosScenario{
			name: "moved-by-hand", title: "Operator moves the EIP by hand to another member",
			instances: 3,
			// A move to a healthy member: its HAProxy serves from the first
			// connection, so not one request may fail.
			fault: func(x *chaosRun) {
				alloc, h := x.alloc(), x.holder
				before := x.term(alloc)
				to := x.c.others(h)[0]
				x.fault()
				x.c.moveByHand(alloc, to.id())
				// Adoption: the old holder sees the EIP leave its ENI in
				// instance metadata (a probe interval), re-reads and steps
				// down; the new one then reads it on its ENI: a few renew
				// intervals at most.
				waitFor(x, 4*dRenew, to.id()+" to adopt the EIP and "+h.id()+" to let go of it", func() bool {
					return to.role(alloc) == "holder" && h.role(alloc) == "standby"
				})
				x.quiet(2 * dRenew)
				m := assocsIn(x.c.events(), alloc, x.faultAt)
				if len(m) != 1 || m[0].Caller != "" || m[0].To != to.id() {
					x.Fatalf("want exactly one move, the operator's to %s (no fight back), got:%s", to.id(), eventList(m))
				}
				tags := x.c.address(alloc).Tags
				if after, ok := parseTerm(tags["eipd:term"]); !ok || after <= before || tags["eipd:holder"] != to.id() {
					x.Fatalf("after the adoption the lease says holder %q term %q; want %s with a term above %d",
						tags["eipd:holder"], tags["eipd:term"], to.id(), before)
				}
				x.stays(to, 0, "after the adoption")
			},
		},
		chaosScenario{
			name: "disassociated-by-hand", title: "Operator disassociates the EIP by hand",
			instances: 3,
			// The holder sees the EIP leave its ENI within a probe interval
			// (1 s) and re-associates it at once: 1 s + a read + the
			// association + margin for a loaded machine.
			downtime: 3 * time.Second,
			fault: func(x *chaosRun) {
				alloc, h := x.alloc(), x.holder
				before := x.term(alloc)
				off := h.logSize()
				x.fault()
				x.c.disassociateByHand(alloc)
				var e simEvent
				waitFor(x, dLease+5*time.Second, "the EIP to be associated again", func() bool {
					var ok bool
					e, ok = firstAssocAfter(x.c.events(), alloc, "", x.faultAt)
					return ok
				})
				x.Logf("re-associated to %s by %q %s after the disassociation", e.To, e.Caller, e.Time.Sub(x.faultAt).Round(time.Millisecond))
				// Invariant 3 (checkInvariants) bounds the time unassociated
				// by the lease; the design says more: the holder itself takes
				// it back, fenced like a claim, with the next term.
				if e.To != h.id() || e.Caller != h.id() {
					x.Fatalf("re-associated to %s by %q, want the holder %s to take its EIP back itself", e.To, e.Caller, h.id())
				}
				x.clientBack(30*time.Second, 25)
				x.quiet(2 * dRenew)
				if m := assocsIn(x.c.events(), alloc, x.faultAt); len(m) != 1 {
					x.Fatalf("want one re-association, got %d:%s", len(m), eventList(m))
				}
				if after := x.term(alloc); after <= before {
					x.Fatalf("the re-association kept term %d (was %d), want the next term", after, before)
				}
				x.stays(h, 0, "after the re-association")
				for _, line := range strings.Split(h.logOf(off), "\n") {
					if strings.Contains(line, "moved away") {
						x.Fatalf("the holder logged the disassociation as a move: %s", line)
					}
				}
			},
		},
		chaosScenario{
			name: "released-by-hand", title: "Operator releases one of two EIPs",
			// The client goes through the first EIP, which nothing touches:
			// not one of its requests may fail.
			instances: 3, eips: 2, privateIPs: 2,
			// The holder of the released EIP may take it back between the
			// operator's disassociation and release (then released again).
			maxMoves: 1,
			fault:    releasedByHand,
		},
		chaosScenario{
			name: "tags-garbage", title: "Lease tags edited to garbage by hand",
			instances: 3, maxMoves: -1,
			fault: tagsGarbage,
		},
		chaosScenario{
			name: "iam-denied-standby", title: "IAM denied to one standby, then the holder's HAProxy dies",
			instances: 3, cold: true,
			// A handoff, as in haproxy-killed.
			downtime: 5 * time.Second,
			setup: func(x *chaosRun) {
				d := x.c.nodes[0]
				x.c.setInstanceFaults(d.id(), map[string]any{"deny": []string{"AssociateAddress", "DisassociateAddress", "CreateTags"}})
				// The best-ranked member, were it allowed: first to claim,
				// first handoff target.
				x.c.setInstanceTag(d.id(), "eipd:priority", "10")
			},
			fault: iamDeniedStandby,
		},
		chaosScenario{
			name: "imds-down-at-start", title: "Instance metadata down at a member's start",
			instances: 3, cold: true,
			downtime: 5 * time.Second, // the closing handoff, as haproxy-killed
			fault:    imdsDownAtStart,
		},
		clockOff("clock-3s-ahead", "A member's clock 3 s ahead (holder's lease stamps in the future)", 3*time.Second),
		clockOff("clock-3s-behind", "A member's clock 3 s behind (holder's lease stamps in the past)", -3*time.Second),
	)
}

// ---- helpers ----

// parseTerm reads an eipd:term value.
func parseTerm(v string) (int64, bool) {
	t, err := strconv.ParseInt(v, 10, 64)
	return t, err == nil && t >= 0
}

// term is alloc's eipd:term now; the run fails when it does not parse.
func (x *chaosRun) term(alloc string) int64 {
	x.Helper()
	v := x.c.address(alloc).Tags["eipd:term"]
	t, ok := parseTerm(v)
	if !ok {
		x.Fatalf("eipd:term of %s is %q, want a number", alloc, v)
	}
	return t
}

// tagAddress writes tags on an EIP as the operator would (EC2 API,
// operator keys).
func (c *cluster) tagAddress(alloc string, kv map[string]string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tags []types.Tag
	for k, v := range kv {
		tags = append(tags, types.Tag{Key: aws.String(k), Value: aws.String(v)})
	}
	if _, err := c.operatorEC2().CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{alloc}, Tags: tags}); err != nil {
		c.t.Fatalf("tag %s %v: %v", alloc, kv, err)
	}
}

// linesWith are the lines of s that contain every one of subs.
func linesWith(s string, subs ...string) []string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		ok := true
		for _, sub := range subs {
			ok = ok && strings.Contains(line, sub)
		}
		if ok {
			out = append(out, line)
		}
	}
	return out
}

// neverHolder fails the run if n was ever associated with alloc or ever
// reported itself holder of it in the whole run.
func (x *chaosRun) neverHolder(n *node, alloc string) {
	x.Helper()
	for _, e := range x.c.events() {
		if e.AllocationID == alloc && e.To == n.id() {
			x.Fatalf("%s was given %s: %s", n.id(), alloc, e)
		}
	}
	i := x.c.index(n)
	for _, r := range x.s.between(time.Time{}, time.Now()) {
		if r.role(i, alloc) == "holder" {
			x.Fatalf("%s reported holder of %s at %s", n.id(), alloc, r.at.Format("15:04:05.000"))
		}
	}
}

// notFoundCalls counts the EC2 calls answered InvalidAllocationID.NotFound.
func notFoundCalls(s simStats) int64 {
	var n int64
	for _, byCode := range s.ByOutcome {
		n += byCode["InvalidAllocationID.NotFound"]
	}
	return n
}

// ---- released by hand ----

// releasedByHand: the operator releases the second EIP (disassociate, then
// release, as AWS requires). Every daemon forgets it with one log line and
// eipd_eips_forgotten_total; the calls that name it stop; the first EIP,
// which the client uses, neither moves nor loses a request.
func releasedByHand(x *chaosRun) {
	gone := x.c.alloc(1)
	hk := x.holder // of the first EIP, x.alloc()
	hg := x.c.node(x.c.holder(gone))
	offs := map[*node]int{}
	for _, n := range x.c.nodes {
		offs[n] = n.logSize()
	}
	x.fault()
	for try := 0; ; try++ {
		x.c.disassociateByHand(gone)
		err := doJSON("POST", x.c.info.ControlEndpoint+"/addresses/"+gone+"/release", nil, nil)
		if err == nil {
			break
		}
		// Its holder took it back between the two calls (it does so at
		// once: invariant 3).
		if try == 3 {
			x.Fatalf("release %s: %v", gone, err)
		}
	}
	x.released = map[string]bool{gone: true}
	released := time.Now()
	nf0 := notFoundCalls(x.c.stats())
	forgot := map[*node]time.Duration{}
	// The holder learns it within a holder poll (or at its next renewal,
	// which EC2 refuses); standbys as soon as the holder's /status stops
	// listing it, at the renew interval, and forget after two reads
	// without it: holder poll + 2 renew intervals + margin.
	waitFor(x, dHolderPoll+2*dRenew+10*time.Second, "every daemon to forget the released EIP", func() bool {
		for _, n := range x.c.nodes {
			if _, done := forgot[n]; done {
				continue
			}
			st, err := n.status()
			if err != nil {
				continue
			}
			listed := false
			for _, e := range st.EIPs {
				listed = listed || e.AllocationID == gone
			}
			if !listed {
				forgot[n] = time.Since(released)
			}
		}
		return len(forgot) == len(x.c.nodes)
	})
	for _, n := range x.c.nodes {
		x.Logf("%s forgot %s %s after the release", n.id(), gone, forgot[n].Round(100*time.Millisecond))
		lines := linesWith(n.logOf(offs[n]), "forgetting it", gone)
		if len(lines) != 1 {
			x.Errorf("%s logged %d lines forgetting %s, want exactly one:\n%s", n.id(), len(lines), gone, strings.Join(lines, "\n"))
		}
		if v := n.metric("eipd_eips_forgotten_total", nil); v != 1 {
			x.Errorf("eipd_eips_forgotten_total on %s = %v, want 1", n.id(), v)
		}
	}
	// No retry storm: once forgotten nothing names it any more, and the
	// cluster is back to its one-EIP steady state.
	s0 := x.c.stats()
	x.quiet(2 * dRenew)
	s1 := x.c.stats()
	if n := notFoundCalls(s1) - notFoundCalls(s0); n > 0 {
		x.Errorf("%d EC2 calls still named the released EIP after every daemon forgot it", n)
	}
	if n := notFoundCalls(s1) - nf0; n > 2*int64(len(x.c.nodes)) {
		x.Errorf("%d EC2 calls answered InvalidAllocationID.NotFound after the release, want at most 2 a member", n)
	}
	// One EIP held: in two renew intervals at most 3 renewals, a holder
	// poll read and a target listing or two; 8 calls is more than the
	// steady state ever needs.
	if n := s1.Total - s0.Total; n > 8 {
		x.Errorf("%d EC2 calls in the %s after every daemon forgot the released EIP, want at most 8 (by action: %v)", n, 2*dRenew, diffActions(s0, s1))
	}
	x.Logf("%d EC2 calls answered NotFound after the release; %d calls in the %s after (%v); the released EIP's holder was %s",
		notFoundCalls(s1)-nf0, s1.Total-s0.Total, 2*dRenew, diffActions(s0, s1), hg.id())
	x.stays(hk, 0, "the other EIP after the release")
}

func diffActions(a, b simStats) map[string]int64 {
	out := map[string]int64{}
	for k, v := range b.ByAction {
		if d := v - a.ByAction[k]; d > 0 {
			out[k] = d
		}
	}
	return out
}

// ---- tags edited to garbage ----

// tagsGarbage: the operator writes garbage over the whole lease. The
// holder keeps the EIP (its own association is the fence, and standbys
// still see it serve), logs the tag it cannot parse, and rewrites a valid
// lease with a term no lower than before.
func tagsGarbage(x *chaosRun) {
	alloc, h := x.alloc(), x.holder
	before := x.term(alloc)
	off := h.logSize()
	x.fault()
	x.c.tagAddress(alloc, map[string]string{
		"eipd:term": "abc", "eipd:renewed": "yesterday", "eipd:holder": "i-nonexistent",
	})
	wrote := false
	for _, w := range x.c.tagHistory(alloc) {
		if w.Caller == "" && !w.Time.Before(x.faultAt) && w.Tags["eipd:term"] == "abc" {
			wrote = true
		}
	}
	if !wrote {
		x.Fatalf("the operator's garbage lease is not in the tag history of %s", alloc)
	}
	// The holder reads its EIP every holder poll; renewals (every renew
	// interval) rewrite holder and renewed but never the term.
	var lines []string
	waitFor(x, dHolderPoll+5*time.Second, "the holder to log the tag it cannot parse", func() bool {
		lines = linesWith(h.logOf(off), "eipd:term", "abc")
		return len(lines) > 0
	})
	x.Logf("the holder logged: %s", lines[0])
	waitFor(x, dHolderPoll+5*time.Second, "a valid lease again", func() bool {
		tags := x.c.address(alloc).Tags
		t, ok := parseTerm(tags["eipd:term"])
		r, err := time.Parse(time.RFC3339Nano, tags["eipd:renewed"])
		return ok && t >= before && tags["eipd:holder"] == h.id() && err == nil && time.Since(r) < dLease
	})
	x.stays(h, 2*dRenew, "after garbage lease tags")
	for _, w := range x.c.tagHistory(alloc) {
		if w.Time.Before(x.faultAt) {
			continue
		}
		if v, ok := w.Tags["eipd:term"]; ok && v != "abc" {
			if t, ok := parseTerm(v); !ok || t < before {
				x.Fatalf("after the garbage a lease write set eipd:term=%q, below the %d it was: %s", v, before, w)
			}
		}
	}
	x.Logf("term %d before the garbage, %d after", before, x.term(alloc))
}

// ---- IAM denied to one standby ----

// iamDeniedStandby: member D (eipd:priority=10, the best-ranked) runs with
// a role that may not associate, disassociate or tag. It cannot tag itself
// ready, so it is no handoff target; it says why in its log and metrics.
// The EIP is elected on the others, and when the holder's HAProxy dies it
// goes to the other permitted member, never to D.
func iamDeniedStandby(x *chaosRun) {
	alloc := x.alloc()
	d := x.c.nodes[0]
	x.c.startAll()
	h := x.c.heldBy(60*time.Second, alloc)[0]
	if h == d {
		x.Fatalf("the member denied AssociateAddress holds the EIP")
	}
	x.c.allReady(len(x.c.nodes) - 1)
	time.Sleep(2 * dRenew) // settled, as runChaos does for warm runs
	h = x.c.steady(alloc)
	var p *node
	for _, n := range x.c.others(h) {
		if n != d {
			p = n
		}
	}
	// D says why: one log line naming the refused action and the fix, and
	// the unauthorized outcome in its metrics.
	waitFor(x, 2*dRenew, "the denied member to log why", func() bool {
		return len(linesWith(d.logOf(0), "not authorized", "grant the IAM action ec2:CreateTags")) > 0
	})
	if v := d.metric("eipd_ec2_requests_total", map[string]string{"operation": "CreateTags", "outcome": "unauthorized"}); v < 1 {
		x.Fatalf("eipd_ec2_requests_total{operation=CreateTags,outcome=unauthorized} on the denied member = %v, want ≥ 1", v)
	}
	st := x.c.stats()
	if st.ByOutcome["CreateTags"]["UnauthorizedOperation"] < 1 {
		x.Fatalf("the emulator answered no CreateTags with UnauthorizedOperation: the denial did not happen (%v)", st.ByOutcome["CreateTags"])
	}
	x.Logf("before the fault the emulator refused %d CreateTags and %d AssociateAddress of %s",
		st.ByOutcome["CreateTags"]["UnauthorizedOperation"], st.ByOutcome["AssociateAddress"]["UnauthorizedOperation"], d.id())
	for _, line := range linesWith(d.logOf(0), "not authorized") {
		x.Logf("the denied member: %s", line)
	}
	x.holder = h
	x.fault()
	h.killHAProxy()
	to := x.movedAway(h, 30*time.Second)
	if to != p {
		x.Fatalf("the EIP went to %s, want the permitted member %s", to.id(), p.id())
	}
	x.clientBack(30*time.Second, 25)
	x.quiet(2 * dRenew)
	x.neverHolder(d, alloc)
	// The denied member keeps trying to tag itself ready at a calm pace.
	if n := x.c.stats().ByCaller[d.id()]["CreateTags"]; n > int64(time.Since(x.started)/dRenew)+2 {
		x.Errorf("the denied member made %d CreateTags calls in %s, want at most one a renew interval", n, time.Since(x.started).Round(time.Second))
	}
}

// ---- instance metadata down at start ----

// imdsGate fronts one instance's IMDS endpoint: while down it accepts and
// closes every connection without a reply (what an unreachable IMDS looks
// like to a client); while up it relays bytes both ways.
type imdsGate struct {
	ln     net.Listener
	target string // host:port of the real endpoint
	down   atomic.Bool
	mu     sync.Mutex
	conns  map[net.Conn]bool
	wg     sync.WaitGroup
}

func newIMDSGate(x *chaosRun, endpoint string) *imdsGate {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		x.Fatalf("imds gate: %v", err)
	}
	g := &imdsGate{ln: ln, target: strings.TrimPrefix(endpoint, "http://"), conns: map[net.Conn]bool{}}
	g.wg.Add(1)
	go g.serve()
	x.Cleanup(g.close)
	return g
}

func (g *imdsGate) url() string { return "http://" + g.ln.Addr().String() }

func (g *imdsGate) serve() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		if g.down.Load() {
			c.Close()
			continue
		}
		g.wg.Add(1)
		go g.relay(c)
	}
}

func (g *imdsGate) relay(c net.Conn) {
	defer g.wg.Done()
	u, err := net.DialTimeout("tcp", g.target, 2*time.Second)
	if err != nil {
		c.Close()
		return
	}
	if !g.track(c, u) {
		return
	}
	done := make(chan struct{}, 2)
	cp := func(dst, src net.Conn) {
		_, _ = io.Copy(dst, src)
		_ = dst.(*net.TCPConn).CloseWrite()
		done <- struct{}{}
	}
	go cp(u, c)
	go cp(c, u)
	<-done
	<-done
	g.untrack(c, u)
}

func (g *imdsGate) track(cs ...net.Conn) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.conns == nil { // closed
		for _, c := range cs {
			c.Close()
		}
		return false
	}
	for _, c := range cs {
		g.conns[c] = true
	}
	return true
}

func (g *imdsGate) untrack(cs ...net.Conn) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, c := range cs {
		c.Close()
		delete(g.conns, c)
	}
}

func (g *imdsGate) close() {
	g.ln.Close()
	g.mu.Lock()
	for c := range g.conns {
		c.Close()
	}
	g.conns = nil
	g.mu.Unlock()
	g.wg.Wait()
}

// imdsDownAtStart: two members elect a holder; the third starts while its
// instance metadata is unreachable. Its listeners come up at once and say
// it waits for instance metadata, it retries and logs each attempt, and
// nothing moves meanwhile. When IMDS answers it joins as a ready standby;
// then the other standby's HAProxy dies, then the holder's: the EIP goes
// to the late member, the only healthy one.
func imdsDownAtStart(x *chaosRun) {
	alloc := x.alloc()
	d := x.c.nodes[len(x.c.nodes)-1]
	gate := newIMDSGate(x, d.inst.IMDSEndpoint)
	gate.down.Store(true)
	d.inst.IMDSEndpoint = gate.url()
	for _, n := range x.c.others(d) {
		n.startDaemon()
	}
	for _, n := range x.c.others(d) {
		n.waitUp()
	}
	x.c.heldBy(60*time.Second, alloc)
	x.c.allReady(len(x.c.nodes) - 1)
	time.Sleep(2 * dRenew) // settled, as runChaos does for warm runs
	h := x.c.steady(alloc)
	x.holder = h
	x.fault()
	d.startDaemon()
	d.waitUp() // /status answers before the identity is known
	base := fmt.Sprintf("http://%s:%d", d.inst.PrivateIP, d.statusPort)
	if code, body, err := get(base + "/readyz"); err != nil || code != 503 || !strings.Contains(body, "waiting for instance metadata") {
		x.Fatalf("/readyz of the member without IMDS: %d %q %v, want 503 waiting for instance metadata", code, body, err)
	}
	if code, _, err := get(base + "/healthz"); err != nil || code != 200 {
		x.Fatalf("/healthz of the member without IMDS: %d %v, want 200 (alive)", code, err)
	}
	var st struct {
		Waiting string `json:"waiting"`
	}
	if err := doJSON("GET", base+"/status", nil, &st); err != nil || st.Waiting != "waiting for instance metadata" {
		x.Fatalf("/status of the member without IMDS: %+v %v, want it waiting for instance metadata", st, err)
	}
	// Retries at 0, 0.5, 1.5, 3.5 s: four logged attempts, then IMDS
	// comes back; nothing moved meanwhile.
	waitFor(x, 20*time.Second, "four logged IMDS retries", func() bool {
		return len(linesWith(d.logOf(0), "cannot read the instance identity from instance metadata (IMDS); retrying")) >= 4
	})
	if m := assocsIn(x.c.events(), alloc, x.faultAt); len(m) > 0 {
		x.Fatalf("the EIP moved while a member waited for instance metadata:%s", eventList(m))
	}
	if r := h.role(alloc); r != "holder" {
		x.Fatalf("the holder reports %q while a member waits for instance metadata", r)
	}
	gate.down.Store(false)
	up := time.Now()
	// The next retry is at most the capped backoff (10 s) away; then it
	// reads the member list and tags itself ready.
	waitFor(x, 10*time.Second+4*dRenew, "the late member to join as a ready standby", func() bool {
		s, err := d.status()
		return err == nil && s.Health == "up" && d.role(alloc) == "standby"
	})
	x.c.allReady(len(x.c.nodes))
	x.Logf("joined %s after IMDS answered", time.Since(up).Round(100*time.Millisecond))
	if len(linesWith(d.logOf(0), "instance metadata answered")) != 1 {
		x.Errorf("the late member did not log once that instance metadata answered")
	}
	if m := assocsIn(x.c.events(), alloc, x.faultAt); len(m) > 0 {
		x.Fatalf("the EIP moved when the late member joined:%s", eventList(m))
	}
	// Proof that it joined for real: with the other standby's HAProxy
	// down, the holder's failure must hand the EIP to the late member
	// (the holder's kept target list predates it: it must list again).
	var p *node
	for _, n := range x.c.others(h) {
		if n != d {
			p = n
		}
	}
	p.killHAProxy()
	waitFor(x, 10*time.Second, "the other standby to see its HAProxy down", func() bool {
		s, err := p.status()
		return err == nil && s.Health == "down"
	})
	h.killHAProxy()
	to := x.movedAway(h, 30*time.Second)
	if to != d {
		x.Fatalf("the EIP went to %s, want the late member %s, the only healthy one", to.id(), d.id())
	}
	x.clientBack(30*time.Second, 25)
	x.quiet(2 * dRenew)
}

// ---- a member's clock off ----

// clockOff: member F's clock is off by off (EIPD_TEST_CLOCK_OFFSET), three
// times the allowed skew; F is started first so it holds the EIP and
// stamps the lease with its clock. The design (docs/design.md, Clocks)
// judges a lease by its stamp against the local clock or by the stamp not
// changing for lease + skew of local monotonic time; a holder renews every
// 3 s, so standbys see its stamps at most 3 s + 3 s old (behind) or in the
// future (ahead): nobody may claim while it renews and serves, and when
// its HAProxy dies the EIP still moves once.
func clockOff(name, title string, off time.Duration) chaosScenario {
	return chaosScenario{
		name: name, title: title, instances: 3,
		downtime: 5 * time.Second, // the handoff, as haproxy-killed
		setup: func(x *chaosRun) {
			f := x.c.nodes[0]
			f.env = append(f.env, "EIPD_TEST_CLOCK_OFFSET="+off.String())
			f.startDaemon()
			f.waitUp()
			waitFor(x, 30*time.Second, "the member with the clock off to hold the EIP", func() bool {
				return x.c.holder(x.alloc()) == f.id() && f.role(x.alloc()) == "holder"
			})
			for _, n := range x.c.others(f) {
				n.startDaemon()
			}
			for _, n := range x.c.others(f) {
				n.waitUp()
			}
		},
		fault: func(x *chaosRun) {
			alloc, f := x.alloc(), x.c.nodes[0]
			if x.holder != f {
				x.Fatalf("%s holds the EIP, want the member with the clock off %s", x.holder.id(), f.id())
			}
			// Proof: its lease stamps are off by off from when they land.
			x.c.clockOffsetApplied(f, alloc, off)
			x.fault()
			// Steady state: the others see the stamps off by 3 s, and
			// nobody claims.
			x.stays(f, 2*dRenew, "steady state with the holder's clock "+off.String()+" off")
			if m := assocsIn(x.c.events(), alloc, time.Time{}); len(m) != 1 {
				x.Fatalf("want the first election only before the failure, got:%s", eventList(m))
			}
			f.killHAProxy()
			to := x.movedAway(f, 30*time.Second)
			x.clientBack(30*time.Second, 25)
			// The new holder stamps with a true clock; the old one, off,
			// never claims it back.
			n0 := len(renewals(x.c.tagHistory(alloc)))
			waitFor(x, 3*dRenew, "a renewal by the new holder", func() bool {
				rs := renewals(x.c.tagHistory(alloc))
				return len(rs) > n0 && rs[len(rs)-1].Caller == to.id()
			})
			x.c.clockOffsetApplied(to, alloc, 0)
			x.quiet(2 * dRenew)
			x.stays(to, 0, "after the failover")
		},
	}
}

// iamDeniedLastMember: member D's role may not associate, disassociate or
// tag; the holder dies whole (eipd and HAProxy), so D is the only member
// left. It cannot move the EIP; it must say why and must not hammer the API
// (AssociateAddress and DisassociateAddress share a bucket of 5 calls a
// second with the whole account): at most one move attempt a renew interval
// (eipd backs off from 5 s; before that it retried every pass, 20 refused
// calls in 20 s). Then the operator fixes IAM, and D takes the EIP at its
// next try.
func iamDeniedLastMember(x *chaosRun) {
	alloc := x.alloc()
	d := x.c.nodes[0]
	x.c.startAll()
	h := x.c.heldBy(60*time.Second, alloc)[0]
	if h == d {
		x.Fatalf("the member denied AssociateAddress holds the EIP")
	}
	time.Sleep(2 * dRenew) // settled, as runChaos does for warm runs
	x.holder = h
	moves := func() int64 {
		c := x.c.stats().ByCaller[d.id()]
		return c["AssociateAddress"] + c["DisassociateAddress"]
	}
	m0, off := moves(), d.logSize()
	x.fault()
	h.eipd.killWait(x)
	h.killHAProxy()
	// The lease runs out (lease + skew) and D's probes of the dead holder
	// fall; from then on D would claim, and is refused.
	const window = 20 * time.Second
	time.Sleep(window)
	tried, lines := moves()-m0, len(linesWith(d.logOf(off), "not authorized"))
	x.Logf("in the %s after the holder died the denied member made %d move calls and logged %d lines saying it is not authorized", window, tried, lines)
	if tried < 1 || lines < 1 {
		x.Fatalf("the denied member never tried to take the EIP over, or never said why (%d calls, %d lines)", tried, lines)
	}
	if limit := int64(window/dRenew) + 1; tried > limit {
		x.Errorf("retry storm: %d AssociateAddress/DisassociateAddress calls refused in %s, want at most one a renew interval (%d)", tried, window, limit)
	}
	if limit := int(window/dRenew) + 1; lines > limit {
		x.Errorf("%d log lines in %s saying it is not authorized, want at most one a renew interval (%d)", lines, window, limit)
	}
	x.c.clearInstanceFaults(d.id())
	x.measureFrom()
	waitFor(x, 15*time.Second, "the member, once allowed, to take the EIP", func() bool {
		return x.c.holder(alloc) == d.id() && d.role(alloc) == "holder"
	})
	x.clientBack(10*time.Second, 25)
	x.quiet(dRenew)
}

func init() {
	addChaos(chaosScenario{
		name: "iam-denied-last-member", title: "IAM denied to the only member left, then fixed",
		instances: 2, cold: true,
		// Until the operator fixes IAM nobody may move the EIP: the client's
		// downtime counts from the fix (x.measureFrom). A refused claim is
		// retried after 5 s, then 10 s, 20 s…: 20 s after the holder died
		// (first refusal once the lease ran out, ~12 s) the member waits at
		// most 10 s for its next try; + the claim + margin.
		downtime: 12 * time.Second,
		setup: func(x *chaosRun) {
			x.c.setInstanceFaults(x.c.nodes[0].id(), map[string]any{"deny": []string{"AssociateAddress", "DisassociateAddress", "CreateTags"}})
		},
		fault: iamDeniedLastMember,
	})
}
