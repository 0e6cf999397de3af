package e2e

// Chaos scenarios: what operators and the environment do to a running
// cluster — the EIP moved, disassociated or released by hand, lease tags
// edited to garbage, IAM denied to a member, instance metadata down at a
// member's start, a member's clock 3 s off.

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/eipd/eipd/eip"
)

func operatorScenarios() []chaosScenario {
	return []chaosScenario{
		{
			name: "moved-by-hand", title: "Operator moves the EIP by hand to another member",
			instances: 3, apiMax: 60,
			// A move to a healthy member: its HAProxy serves from the first
			// connection, so not one request may fail.
			fault: movedByHand,
		},
		{
			name: "disassociated-by-hand", title: "Operator disassociates the EIP by hand",
			instances: 3, apiMax: 60,
			// The holder's instance metadata shows the EIP gone within a
			// probe interval and it tells the coordinator, which reads and
			// associates it again. See chaosBounds.
			downtime: chaosBound("disassociated"),
			fault:    disassociatedByHand,
		},
		{
			name: "released-by-hand", title: "Operator releases one of two EIPs",
			// The client goes through the first EIP, which nothing touches:
			// not one of its requests may fail.
			instances: 3, eips: 2, privateIPs: 2, apiMax: 60,
			// The coordinator may take the released EIP back between the
			// operator's disassociation and release (then released again).
			maxMoves: 1,
			fault:    releasedByHand,
		},
		{
			name: "tags-garbage", title: "Lease and record tags edited to garbage by hand",
			instances: 3, maxMoves: -1, apiMax: 60,
			fault: tagsGarbage,
		},
		{
			name: "iam-denied-standby", title: "IAM denied to one member (the best priority), then the holder's HAProxy dies",
			instances: 3, cold: true, apiMax: 80,
			// A takeover, as in haproxy-killed.
			downtime: proxyDeathBound,
			setup: func(x *chaosRun) {
				d := x.c.nodes[0]
				x.c.setInstanceFaults(d.id(), map[string]any{"deny": []string{"AssociateAddress", "DisassociateAddress", "CreateTags"}})
				// The best-ranked member, were it allowed: first to claim
				// the coordinator role, first target.
				x.c.setInstanceTag(d.id(), "eipd:priority", "10")
			},
			fault: iamDeniedStandby,
		},
		{
			name: "imds-down-at-start", title: "Instance metadata down at a member's start",
			instances: 3, cold: true, apiMax: 100,
			downtime: proxyDeathBound, // the closing takeover, as haproxy-killed
			fault:    imdsDownAtStart,
		},
		clockOff("clock-3s-ahead", "A member's clock 3 s ahead (the coordinator's lease stamps in the future)", 3*time.Second),
		clockOff("clock-3s-behind", "A member's clock 3 s behind (the coordinator's lease stamps in the past)", -3*time.Second),
	}
}

// ---- helpers ----

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

// notFoundCalls counts the EC2 calls answered InvalidAllocationID.NotFound.
func notFoundCalls(s simStats) int64 {
	var n int64
	for _, byCode := range s.ByOutcome {
		n += byCode["InvalidAllocationID.NotFound"]
	}
	return n
}

// ---- moved and disassociated by hand ----

// movedByHand: the operator associates the EIP with another member. The
// coordinator reads it there (the old holder's instance metadata shows it
// leave, and it tells the coordinator), names the new member holder and
// rewrites the record with the next term: no fight back.
func movedByHand(x *chaosRun) {
	alloc, h := x.alloc(), x.holder
	before := x.term(alloc)
	to := x.c.others(h)[0]
	x.fault()
	x.c.moveByHand(alloc, to.id())
	// Adoption: an address poll at most, or sooner by the old holder's
	// notice; a few renew intervals with margin.
	waitFor(x, dAddressPoll+4*dRenew, to.id()+" to be holder of the EIP and "+h.id()+" to let go of it", func() bool {
		return to.role(alloc) == "holder" && h.role(alloc) == "standby"
	})
	x.quiet(2 * dRenew)
	m := assocsIn(x.c.events(), alloc, x.faultAt)
	if len(m) != 1 || m[0].Caller != "" || m[0].To != to.id() {
		x.Fatalf("want exactly one move, the operator's to %s (no fight back), got:%s", to.id(), eventList(m))
	}
	tags := x.c.address(alloc).Tags
	if after, ok := eip.ParseTerm(tags["eipd:term"]); !ok || !before.Less(after) || tags["eipd:holder"] != to.id() {
		x.Fatalf("after the move by hand the record says holder %q term %q; want %s with a term above %s",
			tags["eipd:holder"], tags["eipd:term"], to.id(), before)
	}
	x.stays(to, 0, "after the move by hand")
}

// disassociatedByHand: the operator disassociates the EIP. The
// coordinator associates it again with its holder, fenced like a claim,
// with the next term, and the record says why (takeover-unassociated).
func disassociatedByHand(x *chaosRun) {
	alloc, h := x.alloc(), x.holder
	before := x.term(alloc)
	x.fault()
	x.c.disassociateByHand(alloc)
	var e simEvent
	waitFor(x, dLease+5*time.Second, "the EIP to be associated again", func() bool {
		var ok bool
		e, ok = firstAssocAfter(x.c.events(), alloc, "", x.faultAt)
		return ok
	})
	x.Logf("re-associated to %s by %q %s after the disassociation", e.To, e.Caller, e.Time.Sub(x.faultAt).Round(time.Millisecond))
	// The premise: the operator's disassociation is what happened first.
	if ch := x.changes(); len(ch) == 0 || ch[0].Action != "disassociate" || ch[0].Caller != "" || ch[0].From != h.id() {
		x.Fatalf("the premise failed: the first change since the fault is not the operator's disassociation from %s:%s", h.id(), eventList(ch))
	}
	// Invariant 3 (checkInvariants) bounds the time unassociated by the
	// lease; the design says more: the coordinator associates it again,
	// with a fit member, with the next term. (Where: Plan's ranking of
	// targets, which does not prefer the member it was on: 1 run in 3 it
	// went to another.)
	if to := x.c.node(e.To); to == nil || !x.byDaemon(e) || e.Caller != x.coord.id() {
		x.Fatalf("re-associated to %s by %q, want the coordinator %s to associate it with a member", e.To, e.Caller, x.coord.id())
	}
	h = x.c.node(e.To)
	x.clientBack(30*time.Second, 25)
	x.quiet(2 * dRenew)
	if m := assocsIn(x.c.events(), alloc, x.faultAt); len(m) != 1 {
		x.Fatalf("want one re-association, got %d:%s", len(m), eventList(m))
	}
	if after := x.term(alloc); !before.Less(after) {
		x.Fatalf("the re-association kept term %s (was %s), want the next term", after, before)
	}
	if r := x.c.address(alloc).Tags["eipd:reason"]; r != "takeover-unassociated" {
		x.Fatalf("the record says eipd:reason=%q after the re-association, want takeover-unassociated", r)
	}
	x.stays(h, 0, "after the re-association")
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
		// The coordinator took it back between the two calls (it does
		// so at once: invariant 3).
		if try == 3 {
			x.Fatalf("release %s: %v", gone, err)
		}
	}
	x.released = map[string]bool{gone: true}
	released := time.Now()
	nf0 := notFoundCalls(x.c.stats())
	forgot := map[*node]time.Duration{}
	// The coordinator learns it within an address poll (or at its next
	// renewal, which EC2 refuses) and forgets it after two reads without
	// it; members once its /status has not listed it twice: two address
	// polls + 2 probe intervals + margin.
	waitFor(x, 2*dAddressPoll+2*time.Second+10*time.Second, "every daemon to forget the released EIP", func() bool {
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
	// One EIP left: in two renew intervals the coordinator makes at most
	// 3 renewals, 2 reads and a member listing; 8 calls is more than the
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

// tagsGarbage: the operator writes garbage over the group lease and the
// EIP's record. The holder keeps the EIP (its association is the truth,
// and the coordinator confirms it on its own /status to every member),
// the coordinator logs the tags it cannot parse and writes a valid lease
// and record again, with a term no lower than before.
func tagsGarbage(x *chaosRun) {
	alloc, h := x.alloc(), x.holder
	before := x.term(alloc)
	offs := x.c.logMarks()
	x.fault()
	x.c.tagAddress(alloc, map[string]string{
		"eipd:term": "abc", "eipd:renewed": "yesterday", "eipd:holder": "i-nonexistent",
		"eipd:epoch": "-1", "eipd:coordinator": "",
	})
	wrote := false
	for _, w := range x.c.tagHistory(alloc) {
		if w.Caller == "" && !w.Time.Before(x.faultAt) && w.Tags["eipd:term"] == "abc" {
			wrote = true
		}
	}
	if !wrote {
		x.Fatalf("the operator's garbage tags are not in the tag history of %s", alloc)
	}
	// The coordinator reads the EIPs every address poll.
	var lines []string
	waitFor(x, dAddressPoll+5*time.Second, "the coordinator to log the tag it cannot parse", func() bool {
		lines = linesWith(x.coord.logOf(offs[x.coord]), "unparseable", "eipd:term", "abc")
		return len(lines) > 0
	})
	x.Logf("the coordinator logged: %s", lines[0])
	waitFor(x, dAddressPoll+5*time.Second, "a valid lease and record again", func() bool {
		tags := x.c.address(alloc).Tags
		t, ok := eip.ParseTerm(tags["eipd:term"])
		r, err := time.Parse(time.RFC3339Nano, tags["eipd:renewed"])
		return ok && !t.Less(before) && tags["eipd:holder"] == h.id() && tags["eipd:coordinator"] == x.coord.id() &&
			err == nil && time.Since(r) < dLease
	})
	x.stays(h, 2*dRenew, "after garbage lease tags")
	for _, w := range x.c.tagHistory(alloc) {
		if w.Time.Before(x.faultAt) || w.Caller == "" {
			continue
		}
		if v, ok := w.Tags["eipd:term"]; ok {
			if t, ok := eip.ParseTerm(v); !ok || t.Less(before) {
				x.Fatalf("after the garbage a daemon wrote eipd:term=%q, below the %s it was: %s", v, before, w)
			}
		}
	}
	x.Logf("term %s before the garbage, %s after", before, x.term(alloc))
}

// ---- IAM denied to one member ----

// iamDeniedStandby: member D (eipd:priority=10, the best-ranked) runs with
// a role that may not associate, disassociate or tag. It would claim the
// coordinator role first; EC2 refuses its claim, it says why (a log line
// naming the action to grant, the unauthorized outcome in its metrics)
// and never coordinates, and does not retry at the loop's pace. It may
// still hold an EIP (holding needs no call). Then the holder's HAProxy
// dies: the EIP moves once, in bounded time, to a healthy member.
func iamDeniedStandby(x *chaosRun) {
	alloc := x.alloc()
	d := x.c.nodes[0]
	x.c.startAll()
	x.c.heldBy(60*time.Second, alloc)
	x.c.allReady(len(x.c.nodes))
	time.Sleep(2 * dRenew) // settled, as runChaos does for warm runs
	h := x.c.steady(alloc)
	co, _ := x.c.coordinator(10 * time.Second)
	if co == d {
		x.Fatalf("the member denied CreateTags coordinates")
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
	if st.ByCallerOutcome[d.id()]["UnauthorizedOperation"] < 1 {
		x.Fatalf("the emulator refused no call of %s: the denial did not happen (%v)", d.id(), st.ByCallerOutcome[d.id()])
	}
	for _, line := range linesWith(d.logOf(0), "not authorized") {
		x.Logf("the denied member: %s", line)
	}
	x.holder, x.coord = h, co
	x.fault()
	h.killHAProxy()
	x.healthFalls(h, 10*time.Second)
	to := x.movedAway(h, 30*time.Second)
	x.requireFenced(h, x.firstAssoc(h))
	x.clientBack(30*time.Second, 25)
	x.neverCoordinated(d)
	x.Logf("the EIP went from %s to %s; the denied member %s", h.id(), to.id(), d.id())
	// The denied member does not try again at the loop's pace: a refused
	// member does not claim for a while (deniedPause, 5 min).
	if n := x.c.stats().ByCaller[d.id()]["CreateTags"]; n > 3 {
		x.Errorf("the denied member made %d CreateTags calls in %s, want at most 3", n, time.Since(x.started).Round(time.Second))
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
// nothing moves meanwhile. When IMDS answers it joins: it tells the
// coordinator, which lists the members again and sees it ready. Then the
// other standby's HAProxy dies, then the holder's: the EIP goes to the late
// member, the only healthy one.
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
	x.coord, _ = x.c.coordinator(10 * time.Second)
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
	if st, err := d.status(); err != nil || st.Waiting != "waiting for instance metadata" {
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
	// reads its identity, tells the coordinator, which lists the members.
	waitFor(x, 10*time.Second+4*dRenew, "the late member to join as a standby", func() bool {
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
	// down, the holder's failure must hand the EIP to the late member.
	var p *node
	for _, n := range x.c.others(h) {
		if n != d {
			p = n
		}
	}
	p.killHAProxy()
	x.healthFalls(p, 10*time.Second)
	h.killHAProxy()
	to := x.movedAway(h, 30*time.Second)
	if to != d {
		x.Fatalf("the EIP went to %s, want the late member %s, the only healthy one", to.id(), d.id())
	}
	x.clientBack(30*time.Second, 25)
}

// ---- a member's clock off ----

// clockOff: member F's clock is off by off (EIPD_TEST_CLOCK_OFFSET), three
// times the allowed skew; F has the best eipd:priority, so it claims the
// coordinator role first and stamps the group lease with its clock. The
// design (docs/design.md, Clocks) judges a lease by its stamp against the
// local clock or by the stamp not changing for lease + skew of local
// monotonic time: while F renews nobody may claim (a stamp 3 s old or in
// the future, renewed every 3 s); when the holder's HAProxy dies F moves
// the EIP once; and when F's daemon dies, another member takes the role
// within the election's bound, however far ahead F's last stamp reads.
func clockOff(name, title string, off time.Duration) chaosScenario {
	return chaosScenario{
		name: name, title: title, instances: 3, apiMax: 80,
		downtime: proxyDeathBound, // the takeover, as haproxy-killed
		setup: func(x *chaosRun) {
			f := x.c.nodes[0]
			f.env = append(f.env, "EIPD_TEST_CLOCK_OFFSET="+off.String())
			x.c.setInstanceTag(f.id(), "eipd:priority", "10")
		},
		fault: func(x *chaosRun) {
			alloc, f := x.alloc(), x.c.nodes[0]
			if x.coord != f {
				x.Fatalf("%s coordinates, want the member with the clock off %s (eipd:priority=10)", x.coord.id(), f.id())
			}
			_, cs := x.c.coordinator(10 * time.Second)
			// Proof: its lease stamps are off by off from when they land.
			x.c.clockOffsetApplied(f, alloc, off)
			x.fault()
			// Steady state: the others see the stamps off by 3 s for longer
			// than a lease, and nobody claims.
			x.stays(x.holder, dLease+dSkew+dRenew, "steady state with the coordinator's clock "+off.String()+" off")
			if co, s := x.c.coordinator(10 * time.Second); co != f || s.Epoch != cs.Epoch {
				x.Fatalf("%s (epoch %d) coordinates after the steady state, want %s (epoch %d)", co.id(), s.Epoch, f.id(), cs.Epoch)
			}
			h := x.holder
			killed := time.Now()
			h.killHAProxy()
			to := x.movedAway(h, 30*time.Second)
			x.requireFenced(h, x.firstAssoc(h))
			x.clientBack(30*time.Second, 25)
			// The coordinator with the clock off dies: another takes the
			// role over within the election's bound (the stamp unchanged
			// for lease + skew, then the election), whatever F's stamp says.
			f.eipd.killWait(x)
			died := time.Now()
			next, _ := x.newCoordinator(f, cs.Epoch, electionBound+10*time.Second)
			if took := time.Since(died); took > electionBound {
				x.Fatalf("%s took the coordinator role %s after the one with the clock %s off died, want within %s", next.id(), took.Round(time.Millisecond), off, electionBound)
			}
			n0 := len(renewals(x.c.tagHistory(alloc)))
			waitFor(x, 3*dRenew, "a renewal by the new coordinator", func() bool {
				rs := renewals(x.c.tagHistory(alloc))
				return len(rs) > n0 && rs[len(rs)-1].Caller == next.id()
			})
			x.c.clockOffsetApplied(next, alloc, 0)
			x.stays(to, 0, "after the failover")
			x.Logf("moved to %s %s after the holder's HAProxy died; %s took the role %s after %s died",
				to.id(), x.firstAssoc(h).Time.Sub(killed).Round(time.Millisecond), next.id(), time.Since(died).Round(time.Millisecond), f.id())
		},
	}
}

// electionBound: how long the group may go without a coordinator once the
// one it had dies: its stamp stays unchanged for lease + skew (11 s), then
// the election (at most 14 rank steps, a read, the claim's write and a
// probe round: leader/model_invariants_test.go electionSlack), and margin.
const electionBound = dLease + dSkew + 14*200*time.Millisecond + 2*time.Second + 2*time.Second
