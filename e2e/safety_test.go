package e2e

// Regression tests of the safety invariants (one holder, terms only grow,
// no dangling EIP, no ping-pong, dated reads, earned trust, checked clocks,
// released means gone, renewals keep time), one per measured failure of
// issue 8. They run the real daemons at their DEFAULT timings (renew 3 s,
// lease 10 s, skew 1 s, probe 1 s × 3, health 1 s rise 2 fall 3, holder
// poll 10 s, standby poll 60 s) against `eipd sim`, and assert the
// invariant itself: from the emulator's association and tag histories and
// from a sampler that reads every daemon's /status every 100 ms.
//
// Each test has its own emulator and processes, so they run in parallel
// (go test's -parallel, GOMAXPROCS by default).

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/internal/harness"
)

// Default timings of the daemon, as the tests rely on them.
const (
	dRenew       = 3 * time.Second
	dLease       = 10 * time.Second
	dSkew        = time.Second
	dAddressPoll = 5 * time.Second  // the coordinator reads the EIPs this often
	dMemberPoll  = 60 * time.Second // and lists the members this often
)

// safetyCluster starts a cluster at default timings for a parallel test.
func safetyCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	t.Parallel()
	o.flags = defaults
	return newCluster(t, o)
}

// ---- /status sampler ----

// sampleRow is one round of the sampler: every node's /status (nil when it
// did not answer in time, even on a second try).
type sampleRow struct {
	at  time.Time
	sts []*daemonStatus
}

func (r sampleRow) role(i int, alloc string) string {
	if r.sts[i] == nil {
		return ""
	}
	if e := r.sts[i].eip(alloc); e != nil {
		return e.Role
	}
	return ""
}

func (r sampleRow) health(i int) string {
	if r.sts[i] == nil {
		return ""
	}
	return r.sts[i].Health
}

// holders are the nodes reporting role "holder" for alloc.
func (r sampleRow) holders(alloc string) []int {
	var out []int
	for i := range r.sts {
		if r.role(i, alloc) == "holder" {
			out = append(out, i)
		}
	}
	return out
}

// sampler polls every daemon's /status every 100 ms until the test ends.
type sampler struct {
	c    *cluster
	mu   sync.Mutex
	rows []sampleRow
}

// Sampling timeouts: a round gives each daemon sampleTimeout, and one that
// did not answer a second try of sampleRetry (a daemon that does not answer
// must not pass for one that is not holder).
const (
	sampleTimeout = 400 * time.Millisecond
	sampleRetry   = 1500 * time.Millisecond
)

func startSampler(c *cluster) *sampler {
	s := &sampler{c: c}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case at := <-tick.C:
				row := sampleRow{at: at, sts: make([]*daemonStatus, len(c.nodes))}
				var wg sync.WaitGroup
				for i, n := range c.nodes {
					// n.eipd is not looked at: the test goroutine
					// restarts daemons while this samples. A daemon
					// that is not running simply does not answer.
					wg.Go(func() {
						st, err := n.statusWithin(sampleTimeout)
						if err != nil && ctx.Err() == nil {
							st, err = n.statusWithin(sampleRetry)
						}
						if err == nil {
							row.sts[i] = &st
						}
					})
				}
				wg.Wait()
				s.mu.Lock()
				s.rows = append(s.rows, row)
				s.mu.Unlock()
			}
		}
	}()
	c.t.Cleanup(func() {
		cancel()
		<-done
	})
	return s
}

// between returns the rows taken in [from, to].
func (s *sampler) between(from, to time.Time) []sampleRow {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []sampleRow
	for _, r := range s.rows {
		if !r.at.Before(from) && !r.at.After(to) {
			out = append(out, r)
		}
	}
	return out
}

// answered counts rows in which at least one daemon answered: a sampler
// that saw nothing proves nothing.
func answered(rows []sampleRow) int {
	n := 0
	for _, r := range rows {
		for _, st := range r.sts {
			if st != nil {
				n++
				break
			}
		}
	}
	return n
}

// requireSamples fails the test when the window has too few answered
// rounds (at least half of the 10 per second expected).
func (s *sampler) requireSamples(t *testing.T, from, to time.Time) []sampleRow {
	t.Helper()
	rows := s.between(from, to)
	if want := int(to.Sub(from)/(100*time.Millisecond)) / 2; answered(rows) < want {
		t.Fatalf("sampler: %d answered rounds in %s, want at least %d: the /status checks would prove nothing", answered(rows), to.Sub(from).Round(time.Millisecond), want)
	}
	return rows
}

// overlap is the longest stretch of rows in which two or more daemons
// reported holder for alloc, and when it started.
func overlap(rows []sampleRow, alloc string) (longest time.Duration, at time.Time, total time.Duration) {
	var start time.Time
	in := false
	for i, r := range rows {
		two := len(r.holders(alloc)) >= 2
		switch {
		case two && !in:
			start, in = r.at, true
		case !two && in:
			d := r.at.Sub(start)
			total += d
			if d > longest {
				longest, at = d, start
			}
			in = false
		}
		if in && i == len(rows)-1 {
			d := r.at.Sub(start) + 100*time.Millisecond
			total += d
			if d > longest {
				longest, at = d, start
			}
		}
	}
	return longest, at, total
}

// The one-holder check needs every daemon's word right after each
// association: one that does not answer there could call itself holder
// unseen. answerWithin is how soon after the association it must have
// answered a sampling round; answerSettle how long a daemon must have run
// before it is expected to answer at all (its listener starting).
const (
	answerWithin = 2 * time.Second
	answerSettle = 3 * time.Second
)

// unanswered lists the associations of alloc in [from, to] after which a
// daemon that ran unfrozen throughout [event, event + answerWithin]
// (live(i, a, b)) answered no sampling round in that window: there the
// one-holder check could not judge it.
func unanswered(rows []sampleRow, ev []simEvent, alloc string, from, to time.Time, live func(i int, a, b time.Time) bool) []string {
	var out []string
	for _, e := range ev {
		if e.AllocationID != alloc || e.To == "" || e.Time.Before(from) || e.Time.After(to) {
			continue
		}
		end := e.Time.Add(answerWithin)
		if len(rows) == 0 {
			continue
		}
		for i := range rows[0].sts {
			if !live(i, e.Time, end) {
				continue
			}
			ok := false
			for _, r := range rows {
				if !r.at.Before(e.Time) && !r.at.After(end) && r.sts[i] != nil {
					ok = true
					break
				}
			}
			if !ok {
				out = append(out, fmt.Sprintf("node %d did not answer /status within %s after %s", i, answerWithin, e))
			}
		}
	}
	return out
}

// requireJudged fails the test when a running daemon did not answer the
// sampler right after an association of alloc in [from, to] (unanswered).
func (c *cluster) requireJudged(t testing.TB, rows []sampleRow, alloc string, from, to time.Time) {
	t.Helper()
	live := func(i int, a, b time.Time) bool { return c.nodes[i].daemonLiveThrough(a, b, answerSettle) }
	for _, u := range unanswered(rows, c.events(), alloc, from, to, live) {
		i, _ := strconv.Atoi(strings.Fields(u)[1])
		t.Errorf("invariant 1 (one holder) cannot be judged: %s (%s): a daemon that does not answer could call itself holder unseen", u, c.nodes[i].id())
	}
}

// lastRole is the time of the last row in which node i reported role for
// alloc (zero if none).
func lastRole(rows []sampleRow, i int, alloc, role string) time.Time {
	var t time.Time
	for _, r := range rows {
		if r.role(i, alloc) == role {
			t = r.at
		}
	}
	return t
}

// ---- emulator histories ----

type tagWrite struct {
	Time       time.Time         `json:"time"`
	ResourceID string            `json:"resource_id"`
	Caller     string            `json:"caller"`
	Action     string            `json:"action"`
	Tags       map[string]string `json:"tags"`
	// Late: EC2 applied it late (late_writes), at Time; it answered the
	// call at AcceptedAt.
	Late       bool      `json:"late"`
	AcceptedAt time.Time `json:"accepted_at"`
}

func (w tagWrite) String() string {
	keys := make([]string, 0, len(w.Tags))
	for k := range w.Tags {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var kv []string
	for _, k := range keys {
		kv = append(kv, k+"="+w.Tags[k])
	}
	return fmt.Sprintf("%s %s by %q: %s", w.Time.Format("15:04:05.000"), w.Action, w.Caller, strings.Join(kv, " "))
}

func (c *cluster) tagHistory(resource string) []tagWrite {
	c.t.Helper()
	var h []tagWrite
	if err := doJSON("GET", c.info.ControlEndpoint+"/tag-history?resource_id="+resource, nil, &h); err != nil {
		c.t.Fatalf("read the tag history of %s: %v", resource, err)
	}
	return h
}

// termDrops lists every write of eipd:term by a daemon that is lower
// than one written before it (eipd.ParseTerm's order: epoch, then
// sequence). A late write (the late_writes fault: EC2 applied it after
// newer ones) may lower it if a write by a daemon raises it again within
// repair (the coordinator rewrites a lowered term after its next read);
// the operator's hand-written terms are not eipd's.
func termDrops(h []tagWrite, repair time.Duration) []string {
	var out []string
	var best eip.Term
	bestAt := ""
	for i, w := range h {
		v, ok := w.Tags["eipd:term"]
		if !ok || w.Action != "create" || w.Caller == "" {
			continue
		}
		term, ok := eip.ParseTerm(v)
		if !ok {
			out = append(out, fmt.Sprintf("%s (a term that does not parse)", w))
			continue
		}
		if term.Less(best) {
			if !w.Late || !raisedWithin(h[i+1:], best, w.Time.Add(repair)) {
				out = append(out, fmt.Sprintf("%s (after term %s at %s)", w, best, bestAt))
			}
			continue
		}
		best, bestAt = term, w.Time.Format("15:04:05.000")
	}
	return out
}

// raisedWithin: a write by a daemon in h, before by, carries a term of at
// least best.
func raisedWithin(h []tagWrite, best eip.Term, by time.Time) bool {
	for _, w := range h {
		if w.Time.After(by) {
			return false
		}
		if t, ok := eip.ParseTerm(w.Tags["eipd:term"]); ok && w.Caller != "" && w.Action == "create" && !t.Less(best) {
			return true
		}
	}
	return false
}

// repairLimit is how soon a coordinator raises again a term that a late
// write lowered: a lease and an address poll (its next read started after
// the write returned), and 2 s for the write itself (the model test's
// bound, leader/model_invariants_test.go checkRepaired).
const repairLimit = dLease + dAddressPoll + 2*time.Second

// renewals are the writes of eipd:renewed, oldest first.
func renewals(h []tagWrite) []tagWrite {
	var out []tagWrite
	for _, w := range h {
		if _, ok := w.Tags["eipd:renewed"]; ok && w.Action == "create" {
			out = append(out, w)
		}
	}
	return out
}

// stampSkew is how far a renewal's eipd:renewed stamp is from when it
// landed (positive: the stamp is in the future).
func stampSkew(w tagWrite) (time.Duration, error) {
	st, err := time.Parse(time.RFC3339Nano, w.Tags["eipd:renewed"])
	if err != nil {
		return 0, err
	}
	return st.Sub(w.Time), nil
}

// leaseAges returns, over [from, to], the longest gap between two renewal
// writes landing and the longest true lease age (a renewal's landing time
// minus the stamp of the renewal before it, or to minus the last stamp).
func leaseAges(h []tagWrite, from, to time.Time) (gap, age time.Duration, n int, err error) {
	rs := renewals(h)
	var prev *tagWrite
	for i := range rs {
		w := rs[i]
		if w.Time.After(to) {
			break
		}
		if prev != nil && !w.Time.Before(from) {
			n++
			gap = max(gap, w.Time.Sub(prev.Time))
			st, perr := time.Parse(time.RFC3339Nano, prev.Tags["eipd:renewed"])
			if perr != nil {
				return 0, 0, 0, fmt.Errorf("renewal %s: %v", prev, perr)
			}
			age = max(age, w.Time.Sub(st))
		}
		prev = &rs[i]
	}
	if prev != nil {
		gap = max(gap, to.Sub(prev.Time))
		if st, perr := time.Parse(time.RFC3339Nano, prev.Tags["eipd:renewed"]); perr == nil {
			age = max(age, to.Sub(st))
		}
	}
	return gap, age, n, nil
}

// unassociated is the total time alloc had no association in [from, to],
// from the association history (replayed from the start).
func unassociated(ev []simEvent, alloc string, from, to time.Time) time.Duration {
	var total time.Duration
	assoc := false
	var since time.Time
	add := func(until time.Time) {
		s := since
		if s.Before(from) {
			s = from
		}
		if until.After(to) {
			until = to
		}
		if until.After(s) {
			total += until.Sub(s)
		}
	}
	for _, e := range ev {
		if e.AllocationID != alloc || !isAssocChange(e) {
			continue
		}
		now := e.To != ""
		switch {
		case now && !assoc:
			add(e.Time)
		case !now && assoc:
			since = e.Time
		}
		assoc = now
	}
	if !assoc {
		add(to)
	}
	return total
}

// isAssocChange: the event changed the EIP's association (not an
// auto-assigned public IP that left or came back, nor a late write that had
// no effect).
func isAssocChange(e simEvent) bool {
	switch e.Action {
	case "public-ip-release", "public-ip-return", "late-dropped":
		return false
	}
	return e.AllocationID != ""
}

func countAction(ev []simEvent, action string) int {
	n := 0
	for _, e := range ev {
		if e.Action == action {
			n++
		}
	}
	return n
}

func eventList(ev []simEvent) string {
	var b strings.Builder
	for _, e := range ev {
		b.WriteString("\n  " + e.String())
	}
	return b.String()
}

// changesSince are the association changes of alloc (any action) at or
// after t.
func changesSince(ev []simEvent, alloc string, t time.Time) []simEvent {
	var out []simEvent
	for _, e := range ev {
		if e.AllocationID == alloc && isAssocChange(e) && !e.Time.Before(t) {
			out = append(out, e)
		}
	}
	return out
}

// firstAssocAfter is the first association of alloc to an instance other
// than not, at or after t.
func firstAssocAfter(ev []simEvent, alloc, not string, t time.Time) (simEvent, bool) {
	for _, e := range ev {
		if e.AllocationID == alloc && e.To != "" && e.To != not && !e.Time.Before(t) {
			return e, true
		}
	}
	return simEvent{}, false
}

// ---- operator actions ----

func (c *cluster) control(method, path string, body any, out any) {
	c.t.Helper()
	if err := doJSON(method, c.info.ControlEndpoint+path, body, out); err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
}

func (c *cluster) disassociateByHand(alloc string) {
	c.t.Helper()
	c.control("POST", "/addresses/"+alloc+"/disassociate", nil, nil)
}

func (c *cluster) moveByHand(alloc, instance string) {
	c.t.Helper()
	c.control("POST", "/addresses/"+alloc+"/associate", map[string]string{"instance_id": instance}, nil)
}

// setInstanceTag writes a tag on an instance as the operator would (EC2
// API, operator keys).
func (c *cluster) setInstanceTag(instance, key, value string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.operatorEC2().CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{instance},
		Tags: []types.Tag{{Key: aws.String(key), Value: aws.String(value)}}})
	if err != nil {
		c.t.Fatalf("tag %s %s=%s: %v", instance, key, value, err)
	}
}

// eipdEIPTags are the tags eipd writes on an EIP: the group lease and the
// record of its last move. Deleting them makes a fresh start.
var eipdEIPTags = []string{"eipd:coordinator", "eipd:epoch", "eipd:renewed",
	"eipd:holder", "eipd:term", "eipd:reason", "eipd:decided", "eipd:moved", "eipd:from"}

func (c *cluster) deleteTags(resource string, keys ...string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var tags []types.Tag
	for _, k := range keys {
		tags = append(tags, types.Tag{Key: aws.String(k)})
	}
	if _, err := c.operatorEC2().DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{resource}, Tags: tags}); err != nil {
		c.t.Fatalf("delete tags %v of %s: %v", keys, resource, err)
	}
}

// ---- nodes ----

func (c *cluster) index(n *node) int {
	for i, m := range c.nodes {
		if m == n {
			return i
		}
	}
	return -1
}

// logOf is the daemon's log (its current run) from byte offset on.
func (n *node) logOf(offset int) string {
	b, err := os.ReadFile(n.eipd.LogPath)
	if err != nil || offset > len(b) {
		return ""
	}
	return string(b[offset:])
}

func (n *node) logSize() int {
	b, _ := os.ReadFile(n.eipd.LogPath)
	return len(b)
}

func (n *node) stopBackend() { _ = n.backend.Close() }

// heldBy waits until every alloc is associated and its instance's daemon
// reports holder; it returns the holders.
func (c *cluster) heldBy(timeout time.Duration, allocs ...string) []*node {
	c.t.Helper()
	hs := make([]*node, len(allocs))
	waitFor(c.t, timeout, fmt.Sprintf("%d EIP(s) held", len(allocs)), func() bool {
		for i, a := range allocs {
			hs[i] = c.node(c.holder(a))
			if hs[i] == nil || hs[i].eipd == nil || hs[i].eipd.Exited() || hs[i].role(a) != "holder" {
				return false
			}
		}
		return true
	})
	return hs
}

// settled waits for a steady holder, every member ready in the
// coordinator's view, a coordinator that holds no EIP while a ready member
// holds none (it hands the role over a lease after its claim: holding and
// coordinating then fail independently), and two renew intervals more, so
// that a fault does not race the first claim. It returns the holder.
func (c *cluster) settled(alloc string) *node {
	c.t.Helper()
	n := 0
	for _, nd := range c.nodes {
		if nd.running() {
			n++
		}
	}
	return c.settledWith(alloc, n)
}

// settledWith is settled for a coordinator that sees ready members ready
// (not every member: some may be cut off from it on purpose).
func (c *cluster) settledWith(alloc string, ready int) *node {
	c.t.Helper()
	c.steady(alloc)
	c.allReady(ready)
	c.roleHandedOver()
	time.Sleep(2 * dRenew)
	return c.steady(alloc)
}

// roleHandedOver waits until the coordinator holds no EIP, or no ready
// member it sees holds none (there is nobody to hand the role to).
func (c *cluster) roleHandedOver() {
	c.t.Helper()
	waitFor(c.t, 60*time.Second, "the coordinator to hold no EIP while a ready member holds none", func() bool {
		co, s, ok := c.tryCoordinator()
		if !ok {
			return false
		}
		self := s.member(co.id())
		if self == nil || self.Held == 0 {
			return true
		}
		for _, m := range s.Members {
			if m.InstanceID != co.id() && m.Probe == "up" && m.Health == "up" && m.Held == 0 {
				return false
			}
		}
		return true
	})
}

// metric is the sum of a metric's samples with the given labels on n (-1
// when it cannot be scraped or is absent).
func (n *node) metric(name string, labels map[string]string) float64 {
	ss, err := n.scrape()
	if err != nil {
		return -1
	}
	found := false
	for _, s := range ss {
		if s.name == name {
			found = true
		}
	}
	if !found {
		return -1
	}
	return metricSum(ss, name, labels)
}

// ---- item 1: several EIPs ----

// TestSafetySeveralEIPsOneHealthyInstance (issue 8 item 1): two EIPs,
// two private IPs per instance, two of three instances unhealthy: both
// EIPs end on the healthy instance, on different private IPs, and stay;
// no EIP ever knocks another off ("displaced"), and neither is
// unassociated for more than one lease duration in all.
func TestSafetySeveralEIPsOneHealthyInstance(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3, eips: 2, privateIPs: 2})
	a, b := c.alloc(0), c.alloc(1)
	c.startAll()
	hs := c.heldBy(60*time.Second, a, b)
	c.allReady(3)
	time.Sleep(2 * dRenew) // settled: the faults must not race the first claims
	h := hs[0]
	// Each EIP's dangling time counts from its first association.
	firstAssoc := map[string]time.Time{}
	for _, e := range c.events() {
		if _, seen := firstAssoc[e.AllocationID]; e.To != "" && !seen {
			firstAssoc[e.AllocationID] = e.Time
		}
	}
	t0 := time.Now()
	for _, n := range c.others(h) {
		n.killHAProxy()
	}
	var settled time.Duration
	ok := true
	func() {
		deadline := time.Now().Add(40 * time.Second)
		for time.Now().Before(deadline) {
			va, vb := c.address(a), c.address(b)
			if va.InstanceID == h.id() && vb.InstanceID == h.id() && va.PrivateIP != vb.PrivateIP && va.PrivateIP != "" &&
				h.role(a) == "holder" && h.role(b) == "holder" {
				settled = time.Since(t0)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
		ok = false
	}()
	ev := c.events()
	if !ok {
		t.Errorf("after 40 s the two EIPs are not both on the healthy instance %s on different private IPs: %s on %s, %s on %s; %d association changes and %d displaced since the proxies died:%s",
			h.id(), a, c.address(a).PrivateIP, b, c.address(b).PrivateIP, len(changesSince(ev, a, t0))+len(changesSince(ev, b, t0)),
			countAction(changesSince(ev, a, t0), "displaced")+countAction(changesSince(ev, b, t0), "displaced"), eventList(ev))
	} else {
		t.Logf("both EIPs on %s (%s, %s) %s after two proxies died", h.id(), c.address(a).PrivateIP, c.address(b).PrivateIP, settled.Round(time.Millisecond))
		mark := time.Now()
		time.Sleep(20 * time.Second)
		ev = c.events()
		if ch := append(changesSince(ev, a, mark), changesSince(ev, b, mark)...); len(ch) > 0 {
			t.Errorf("%d association changes in the 20 s after settling, want none:%s", len(ch), eventList(ch))
		}
	}
	end := time.Now()
	if n := countAction(ev, "displaced"); n > 0 {
		t.Errorf("%d displaced events (an EIP knocked another off its private IP), want none:%s", n, eventList(ev))
	}
	for _, x := range []string{a, b} {
		if u := unassociated(ev, x, firstAssoc[x], end); u > dLease {
			t.Errorf("%s unassociated for %s in all since the first association, want at most one lease (%s)", x, u.Round(time.Millisecond), dLease)
		}
	}
}

// TestSafetySeveralEIPsColdStart (item 1): three daemons start at once
// with two EIPs and one private IP each (capacity three slots): the EIPs go
// to two different instances and no association ever displaces another.
// Three cold starts, since the race is brief.
func TestSafetySeveralEIPsColdStart(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3, eips: 2})
	a, b := c.alloc(0), c.alloc(1)
	for round := 1; round <= 3; round++ {
		for _, x := range []string{a, b} {
			if c.holder(x) != "" {
				c.disassociateByHand(x)
			}
			c.deleteTags(x, eipdEIPTags...)
		}
		mark := c.mark()
		c.startAll()
		c.heldBy(60*time.Second, a, b)
		time.Sleep(dRenew)
		ev := c.events()[mark:]
		if n := countAction(ev, "displaced"); n > 0 {
			t.Errorf("cold start %d: %d displaced events, want none:%s", round, n, eventList(ev))
		}
		if ha, hb := c.holder(a), c.holder(b); ha == hb {
			t.Errorf("cold start %d: both EIPs on %s, want them on different instances:%s", round, ha, eventList(ev))
		}
		for _, n := range c.nodes {
			n.eipd.killWait(t)
		}
	}
}

// TestSafetySeveralEIPsNoFreeSlot (item 1): two EIPs, one private IP per
// instance, two of three instances unhealthy: the healthy instance's only
// private IP is taken, so the EIP of the unhealthy holder has nowhere to
// go: it stays where it is (no displacement, no move) and its holder says
// so (no_free_private_ip in /status, the eipd_no_free_private_ip gauge).
func TestSafetySeveralEIPsNoFreeSlot(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3, eips: 2})
	a, b := c.alloc(0), c.alloc(1)
	c.startAll()
	hs := c.heldBy(60*time.Second, a, b)
	if hs[0] == hs[1] {
		t.Fatalf("both EIPs on %s with one private IP per instance:%s", hs[0].id(), eventList(c.events()))
	}
	c.allReady(3)
	time.Sleep(2 * dRenew) // settled: the faults must not race the first claims
	x, y := hs[0], hs[1]
	t0 := time.Now()
	for _, n := range c.others(x) {
		n.killHAProxy()
	}
	// The coordinator says so, and every member repeats its word.
	reported := false
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && !reported {
		if st, err := y.status(); err == nil && st.Health != "up" {
			if e := st.eip(b); e != nil && e.NoFreePrivateIP {
				reported = true
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	co, _ := c.coordinator(10 * time.Second)
	if !reported {
		t.Errorf("the unhealthy holder %s of %s never reported no_free_private_ip in /status within 20 s", y.id(), b)
	} else if v := co.metric("eipd_no_free_private_ip", map[string]string{"allocation_id": b}); v != 1 {
		t.Errorf("eipd_no_free_private_ip{allocation_id=%q} on the coordinator %s = %v, want 1", b, co.id(), v)
	}
	if rest := 20*time.Second - time.Since(t0); rest > 0 {
		time.Sleep(rest)
	}
	ev := c.events()
	if ch := append(changesSince(ev, a, t0), changesSince(ev, b, t0)...); len(ch) > 0 {
		t.Errorf("%d association changes in the 20 s after two proxies died, want none (no free private IP anywhere):%s", len(ch), eventList(ch))
	}
	if n := countAction(ev, "displaced"); n > 0 {
		t.Errorf("%d displaced events, want none:%s", n, eventList(ev))
	}
	if c.holder(a) != x.id() || c.holder(b) != y.id() {
		t.Errorf("EIPs moved: %s on %q (was %s), %s on %q (was %s)", a, c.holder(a), x.id(), b, c.holder(b), y.id())
	}
}

// ---- item 2: trust is earned ----

// blindMembers are the members TestSafetyBlindDisassociated blinds.
var blindMembers = []string{"holder"}

// TestSafetyBlindDisassociated (item 2): a member's EC2 calls all fail, and
// the EIP is disassociated by hand: it is associated again within one
// lease duration, and no two daemons ever report holder at once. The blind
// member is the holder (which makes no EC2 call in steady state: nothing
// changes for it) or the coordinator (which must then give the role up, so
// that a member whose calls go through takes over and re-associates it).
func TestSafetyBlindDisassociated(t *testing.T) {
	t.Parallel()
	for _, who := range blindMembers {
		t.Run(who, func(t *testing.T) {
			c := safetyCluster(t, clusterOpts{instances: 3})
			alloc := c.alloc(0)
			smp := startSampler(c)
			c.startAll()
			h := c.settled(alloc)
			blind := h
			if who == "coordinator" {
				blind, _ = c.coordinator(10 * time.Second)
			}
			from := time.Now()
			c.setInstanceFaults(blind.id(), map[string]any{"error_ratio": 1})
			time.Sleep(time.Second)
			tD := time.Now()
			c.disassociateByHand(alloc)
			var e simEvent
			ok := false
			deadline := time.Now().Add(40 * time.Second)
			for time.Now().Before(deadline) && !ok {
				e, ok = firstAssocAfter(c.events(), alloc, "", tD)
				time.Sleep(200 * time.Millisecond)
			}
			switch {
			case !ok:
				t.Errorf("still unassociated 40 s after the disassociation by hand, want re-associated within %s", dLease)
			case e.Caller == blind.id():
				t.Errorf("re-associated by the member whose API fails (%s)?%s", blind.id(), eventList(c.events()))
			case e.Time.Sub(tD) > dLease:
				t.Errorf("re-associated to %s by %s %s after the disassociation, want within one lease (%s)", e.To, e.Caller, e.Time.Sub(tD).Round(time.Millisecond), dLease)
			default:
				t.Logf("re-associated to %s by %s %s after the disassociation", e.To, e.Caller, e.Time.Sub(tD).Round(time.Millisecond))
			}
			time.Sleep(2 * dRenew)
			end := time.Now()
			rows := smp.requireSamples(t, from, end)
			c.requireJudged(t, rows, alloc, from, end)
			if d, at, _ := overlap(rows, alloc); d > 0 {
				t.Errorf("two daemons reported holder for %s from %s, want never", d.Round(time.Millisecond), at.Format("15:04:05.000"))
			}
		})
	}
}

// ---- item 3: a cut-off holder steps down; terms only grow ----

// coordinatorHolds starts a cluster whose every member holds one EIP (as
// many EIPs as members, two private IPs each), so that the coordinator
// holds one too; it returns the coordinator and the EIP it holds.
func (c *cluster) coordinatorHolds() (*node, string) {
	c.t.Helper()
	var allocs []string
	for i := range c.info.EIPs {
		allocs = append(allocs, c.alloc(i))
	}
	c.heldBy(60*time.Second, allocs...)
	c.allReady(len(c.nodes))
	// The first placement may put two on one member when the others were
	// not ready yet; the coordinator spreads them (an EIP that has not
	// moved for a minute, one at a time).
	waitFor(c.t, 3*time.Minute, "every member to hold one EIP", func() bool {
		held := map[string]int{}
		for _, a := range allocs {
			held[c.holder(a)]++
		}
		for _, n := range c.nodes {
			if held[n.id()] != 1 {
				return false
			}
		}
		return true
	})
	time.Sleep(2 * dRenew)
	for _, a := range allocs {
		c.steady(a)
	}
	co, _ := c.coordinator(30 * time.Second)
	for _, a := range allocs {
		if c.holder(a) == co.id() {
			return co, a
		}
	}
	c.t.Fatalf("the coordinator %s holds none of the %d EIPs on %d members", co.id(), len(allocs), len(c.nodes))
	return nil, ""
}

// TestSafetyCutOffHolderStepsDown (item 3): the member that holds an EIP
// and coordinates (the only one that calls the EC2 API) loses the API
// (partition) and its proxy: it cannot move the EIP nor hear that it lost
// it. Another member takes over once its lease is stale; the old holder
// reports holder for at most one renew interval after the takeover; when
// its API comes back the term never decreases and it ends as a standby.
func TestSafetyCutOffHolderStepsDown(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3, eips: 3, privateIPs: 2})
	smp := startSampler(c)
	c.startAll()
	h, alloc := c.coordinatorHolds()
	hi := c.index(h)
	tF := time.Now()
	c.setInstanceFaults(h.id(), map[string]any{"partition": true})
	h.killHAProxy()
	var e simEvent
	ok := false
	waitFor(t, 60*time.Second, "another member to take over", func() bool {
		e, ok = firstAssocAfter(c.events(), alloc, h.id(), tF)
		return ok
	})
	t.Logf("taken over by %s (moved by %s) %s after the fault", e.To, e.Caller, e.Time.Sub(tF).Round(time.Millisecond))
	// Keep the old holder cut off for more than a lease after the takeover.
	time.Sleep(dLease + 2*time.Second)
	end := time.Now()
	rows := smp.requireSamples(t, e.Time, end)
	c.requireJudged(t, rows, alloc, tF, end)
	if last := lastRole(rows, hi, alloc, "holder"); !last.IsZero() && last.Sub(e.Time) > dRenew {
		t.Errorf("the cut-off old holder %s still reported holder %s after the takeover, want at most one renew interval (%s)",
			h.id(), last.Sub(e.Time).Round(time.Millisecond), dRenew)
	}
	if d, at, _ := overlap(rows, alloc); d > dRenew {
		t.Errorf("two daemons reported holder for %s from %s, want at most %s", d.Round(time.Millisecond), at.Format("15:04:05.000"), dRenew)
	}
	h.restartHAProxy()
	c.clearInstanceFaults(h.id())
	healed := time.Now()
	waitFor(t, 30*time.Second, "the old holder to end as standby", func() bool { return h.role(alloc) == "standby" })
	time.Sleep(2 * dRenew)
	hist := c.tagHistory(alloc)
	if drops := termDrops(hist, repairLimit); len(drops) > 0 {
		t.Errorf("eipd:term decreased:\n  %s", strings.Join(drops, "\n  "))
	}
	for _, w := range hist {
		if w.Caller == h.id() && w.Time.After(healed) && w.Tags["eipd:holder"] != "" {
			t.Errorf("the old holder wrote a record of the EIP after its API came back: %s", w)
		}
	}
	if m := c.assocsSince(0, alloc); m[len(m)-1].To != e.To {
		t.Errorf("the EIP did not stay with the new holder %s:%s", e.To, eventList(c.events()))
	}
	if got := h.role(alloc); got != "standby" {
		t.Errorf("the old holder ends as %q, want standby", got)
	}
}

// ---- item 4: reads are dated ----

// TestSafetyHandoffUnderDescribeLag (item 4): reads lag 5 s; a manual
// handoff (`eipd handoff`): the old holder never reports holder again,
// never writes itself back into the lease, the term never decreases, and
// the EIP moves exactly once.
func TestSafetyHandoffUnderDescribeLag(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	smp := startSampler(c)
	c.startAll()
	h := c.settled(alloc)
	hi := c.index(h)
	c.setFaults(map[string]any{"describe_lag": "5s"})
	time.Sleep(2 * time.Second)
	mark, mark0 := c.mark(), time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	out, err := harness.Run(ctx, c.dir, harness.Env(c.dir), eipdBin, "handoff", "--control", h.controlAddr)
	if err != nil {
		t.Fatalf("eipd handoff: %v\n%s", err, out)
	}
	done := time.Now()
	m := c.assocsSince(mark, alloc)
	if len(m) != 1 || m[0].From != h.id() {
		t.Fatalf("want the handoff to be one move from %s, got:%s", h.id(), c.eventsSince(mark))
	}
	to := m[0].To
	time.Sleep(20 * time.Second)
	end := time.Now()
	rows := smp.requireSamples(t, done, end)
	c.requireJudged(t, rows, alloc, mark0, end)
	if last := lastRole(rows, hi, alloc, "holder"); !last.IsZero() {
		t.Errorf("the old holder %s reported holder again after the handoff (last at %s, %s after it)", h.id(), last.Format("15:04:05.000"), last.Sub(done).Round(time.Millisecond))
	}
	hist := c.tagHistory(alloc)
	if drops := termDrops(hist, repairLimit); len(drops) > 0 {
		t.Errorf("eipd:term decreased:\n  %s", strings.Join(drops, "\n  "))
	}
	handoffWrite := -1
	for i, w := range hist {
		if !w.Time.Before(m[0].Time) && w.Tags["eipd:holder"] == to {
			handoffWrite = i
			break
		}
	}
	if handoffWrite < 0 {
		t.Errorf("no lease write naming the new holder %s after the handoff", to)
	} else {
		for _, w := range hist[handoffWrite+1:] {
			if w.Tags["eipd:holder"] == h.id() {
				t.Errorf("the lease names the old holder again after the handoff: %s", w)
			}
		}
	}
	if m := c.assocsSince(mark, alloc); len(m) != 1 {
		t.Errorf("want exactly one association change, got %d:%s", len(m), c.eventsSince(mark))
	}
}

// ---- item 5: released means gone ----

// TestSafetyReleasedEIPForgotten (item 5): EIPs A and B managed by
// --allocation-id; A is disassociated and released by hand: every daemon
// forgets A (and counts it), its former holder stops writing its tags,
// and B still fails over when its holder's proxy dies.
func TestSafetyReleasedEIPForgotten(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3, eips: 2})
	a, b := c.alloc(0), c.alloc(1)
	for _, n := range c.nodes {
		n.startDaemon("--allocation-id", a, "--allocation-id", b)
	}
	for _, n := range c.nodes {
		n.waitUp()
	}
	hs := c.heldBy(60*time.Second, a, b)
	if hs[0] == hs[1] {
		t.Fatalf("both EIPs on %s with one private IP per instance", hs[0].id())
	}
	c.allReady(3)
	time.Sleep(2 * dRenew) // settled: the faults must not race the first claims
	x, y := hs[0], hs[1]
	var released time.Time
	for try := 0; ; try++ {
		c.disassociateByHand(a)
		err := doJSON("POST", c.info.ControlEndpoint+"/addresses/"+a+"/release", nil, nil)
		if err == nil {
			released = time.Now()
			break
		}
		if try == 3 {
			t.Fatalf("release %s: %v", a, err)
		}
	}
	before := c.stats().ByOutcome["CreateTags"]["InvalidAllocationID.NotFound"]
	forgotten := map[string]bool{}
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) && len(forgotten) < len(c.nodes) {
		for _, n := range c.nodes {
			if forgotten[n.id()] {
				continue
			}
			if st, err := n.status(); err == nil {
				listed := false
				for _, e := range st.EIPs {
					listed = listed || e.AllocationID == a
				}
				if !listed {
					forgotten[n.id()] = true
					t.Logf("%s forgot %s %s after the release", n.id(), a, time.Since(released).Round(100*time.Millisecond))
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, n := range c.nodes {
		if !forgotten[n.id()] {
			t.Errorf("%s still lists the released %s in /status 40 s after the release (role %q)", n.id(), a, n.role(a))
		}
		if v := n.metric("eipd_eips_forgotten_total", nil); v < 1 {
			t.Errorf("eipd_eips_forgotten_total on %s = %v, want ≥ 1", n.id(), v)
		}
	}
	if rest := 20*time.Second - time.Since(released); rest > 0 {
		time.Sleep(rest)
	}
	if n := c.stats().ByOutcome["CreateTags"]["InvalidAllocationID.NotFound"] - before; n > 2 {
		t.Errorf("%d CreateTags on the released %s (former holder %s) in the 20 s after the release, want at most 2", n, a, x.id())
	}
	tK := time.Now()
	y.killHAProxy()
	var e simEvent
	ok := false
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !ok {
		e, ok = firstAssocAfter(c.events(), b, y.id(), tK)
		time.Sleep(100 * time.Millisecond)
	}
	switch {
	case !ok:
		t.Errorf("%s still on %s (proxy dead) 30 s after the proxy died", b, y.id())
	case e.Time.Sub(tK) > 8*time.Second:
		t.Errorf("%s left the dead proxy %s after %s, want within 8 s", b, y.id(), e.Time.Sub(tK).Round(time.Millisecond))
	default:
		t.Logf("%s failed over to %s %s after the proxy died", b, e.To, e.Time.Sub(tK).Round(time.Millisecond))
	}
}

// ---- item 6: clocks are checked ----

// clockOffsetApplied fails the test unless n's renewals carry stamps off by
// want (±1.5 s) from when they land: proof that EIPD_TEST_CLOCK_OFFSET took.
func (c *cluster) clockOffsetApplied(n *node, alloc string, want time.Duration) {
	c.t.Helper()
	var got []time.Duration
	for _, w := range renewals(c.tagHistory(alloc)) {
		if w.Caller != n.id() {
			continue
		}
		if d, err := stampSkew(w); err == nil {
			got = append(got, d)
		}
	}
	if len(got) == 0 {
		c.t.Fatalf("%s wrote no renewal of %s", n.id(), alloc)
	}
	d := got[len(got)-1]
	if diff := d - want; diff < -1500*time.Millisecond || diff > 1500*time.Millisecond {
		c.t.Fatalf("%s's renewal stamps are %s off the time they land, want %s: EIPD_TEST_CLOCK_OFFSET=%s was not applied", n.id(), d.Round(time.Millisecond), want, want)
	}
}

// TestSafetyFutureLeaseStamp (item 6): the coordinator's clock is 10 min
// fast; it renews the group lease (stamping it 10 min ahead), then freezes
// with its proxy dead while it holds an EIP: another member takes the
// coordinator role and the EIP over within lease + skew + the election +
// margin (20 s), not 10 min.
func TestSafetyFutureLeaseStamp(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3, eips: 3, privateIPs: 2})
	f := c.nodes[0]
	f.env = []string{"EIPD_TEST_CLOCK_OFFSET=10m"}
	// The best priority claims the coordinator role first.
	c.setInstanceTag(f.id(), "eipd:priority", "10")
	c.startAll()
	co, alloc := c.coordinatorHolds()
	if co != f {
		t.Fatalf("%s coordinates, want the fast-clock member %s (eipd:priority=10)", co.id(), f.id())
	}
	n0 := len(renewals(c.tagHistory(alloc)))
	waitFor(t, 3*dRenew, "a fresh renewal by the fast-clock coordinator", func() bool {
		rs := renewals(c.tagHistory(alloc))
		return len(rs) > n0 && rs[len(rs)-1].Caller == f.id()
	})
	c.clockOffsetApplied(f, alloc, 10*time.Minute)
	tF := time.Now()
	f.eipd.stop()
	f.killHAProxy()
	var e simEvent
	ok := false
	deadline := time.Now().Add(40 * time.Second)
	for time.Now().Before(deadline) && !ok {
		e, ok = firstAssocAfter(c.events(), alloc, f.id(), tF)
		time.Sleep(100 * time.Millisecond)
	}
	switch {
	case !ok:
		t.Errorf("no takeover 40 s after the fast-clock coordinator froze (its lease is stamped 10 min ahead), want within 20 s")
	case e.Time.Sub(tF) > 20*time.Second:
		t.Errorf("taken over by %s %s after the freeze, want within 20 s", e.To, e.Time.Sub(tF).Round(time.Millisecond))
	default:
		t.Logf("taken over by %s (moved by %s) %s after the freeze", e.To, e.Caller, e.Time.Sub(tF).Round(time.Millisecond))
	}
}

// TestSafetyClockSkewCluster (item 6): members' clocks at +3 s, 0 and
// −3 s; the +3 s member starts first and coordinates, then hands the role
// on: nothing moves while all is healthy, every coordinator's lease stamps
// are off by its own clock's offset, and the EIP still fails over once
// when the holder's proxy dies.
func TestSafetyClockSkewCluster(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	offsets := []time.Duration{3 * time.Second, 0, -3 * time.Second}
	for i, n := range c.nodes {
		n.env = []string{"EIPD_TEST_CLOCK_OFFSET=" + offsets[i].String()}
	}
	first := c.nodes[0]
	first.startDaemon()
	first.waitUp()
	waitFor(t, 30*time.Second, "the +3 s member to hold the EIP", func() bool { return c.holder(alloc) == first.id() && first.role(alloc) == "holder" })
	for _, n := range c.others(first) {
		n.startDaemon()
		n.waitUp()
	}
	c.steady(alloc)
	c.clockOffsetApplied(first, alloc, offsets[0])
	c.allReady(3)
	mark := c.mark()
	time.Sleep(20 * time.Second)
	if m := c.assocsSince(mark, alloc); len(m) > 0 {
		t.Errorf("%d moves in 20 s of health with clocks at −3/0/+3 s, want none:%s", len(m), c.eventsSince(mark))
	}
	co, _ := c.coordinator(10 * time.Second)
	c.clockOffsetApplied(co, alloc, offsets[c.index(co)])
	t.Logf("coordinators: %s first, %s 20 s later", first.id(), co.id())
	h := c.node(c.holder(alloc))
	mark = c.mark()
	tK := time.Now()
	h.killHAProxy()
	waitFor(t, 30*time.Second, "the EIP to leave the dead proxy", func() bool { return len(c.assocsSince(mark, alloc)) > 0 })
	m := c.assocsSince(mark, alloc)
	if d := m[0].Time.Sub(tK); d > 10*time.Second {
		t.Errorf("failover took %s, want within 10 s", d.Round(time.Millisecond))
	}
	time.Sleep(dAddressPoll + dLease)
	if m := c.assocsSince(mark, alloc); len(m) != 1 {
		t.Errorf("want exactly one move after the proxy died, got:%s", c.eventsSince(mark))
	}
	co, _ = c.coordinator(10 * time.Second)
	c.clockOffsetApplied(co, alloc, offsets[c.index(co)])
}

// ---- item 7: no ping-pong ----

// TestSafetyFlappingHealth (item 7): for 45 s the holder's backend is
// killed whenever it holds, and restored 3 s or more after it lost the
// EIP: no move goes to a member that was unhealthy in the last minute
// while a member with no unhealthy period in that minute is ready, and the
// EIP never goes back to the member it just came from.
func TestSafetyFlappingHealth(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	smp := startSampler(c)
	c.startAll()
	c.settled(alloc)
	from := time.Now()
	mark := c.mark()
	down := map[*node]time.Time{}
	kills := 0
	for time.Since(from) < 45*time.Second {
		h := c.node(c.holder(alloc))
		for n, since := range down {
			if n != h && time.Since(since) >= 3*time.Second {
				n.startBackend()
				delete(down, n)
			}
		}
		if _, isDown := down[h]; h != nil && !isDown {
			h.stopBackend()
			down[h] = time.Now()
			kills++
		}
		time.Sleep(3 * time.Second)
	}
	end := time.Now()
	rows := smp.requireSamples(t, from, end)
	moves := c.assocsSince(mark, alloc)
	if kills < 4 || len(moves) < 3 {
		t.Fatalf("%d backend kills and %d moves in 45 s: the flapping was not exercised:%s", kills, len(moves), c.eventsSince(mark))
	}
	// unhealthy: node i reported a health other than "up" in [a, b].
	unhealthy := func(i int, a, b time.Time) bool {
		for _, r := range rows {
			if !r.at.Before(a) && !r.at.After(b) && r.sts[i] != nil && r.health(i) != "up" {
				return true
			}
		}
		return false
	}
	// readyAt: node i's last answer at or before t said "up".
	readyAt := func(i int, t time.Time) bool {
		st := ""
		for _, r := range rows {
			if r.at.After(t) {
				break
			}
			if r.sts[i] != nil {
				st = r.health(i)
			}
		}
		return st == "up"
	}
	// A fenced takeover is a disassociation, then an association from
	// nowhere: the member an association left is the previous one's
	// target.
	prev := ""
	for _, e := range c.events()[:mark] {
		if e.AllocationID == alloc && e.To != "" {
			prev = e.To
		}
	}
	seq := []string{prev}
	for i := range moves {
		moves[i].From = prev
		prev = moves[i].To
	}
	for _, m := range moves {
		seq = append(seq, m.To)
		ti := c.index(c.node(m.To))
		win := m.Time.Add(-time.Minute)
		if win.Before(from) {
			win = from
		}
		if !unhealthy(ti, win, m.Time) {
			continue
		}
		for i, n := range c.nodes {
			if n.id() == m.To || n.id() == m.From {
				continue
			}
			if readyAt(i, m.Time) && !unhealthy(i, win, m.Time) {
				t.Errorf("%s: moved to %s, unhealthy within the last minute, while %s was ready with no unhealthy period", m.Time.Format("15:04:05.000"), m.To, n.id())
			}
		}
	}
	for i := 2; i < len(seq); i++ {
		if seq[i] == seq[i-2] {
			t.Errorf("back and forth between %s and %s (holders in order: %s)", seq[i-1], seq[i], strings.Join(seq, " → "))
			break
		}
	}
	t.Logf("%d kills, %d moves; holders in order: %s", kills, len(moves), strings.Join(seq, " → "))
}

// ---- item 8: renewals keep time ----

// dRenewTimeout is the default renewal's timeout: three quarters of the
// renew interval (leader renewTimeout).
const dRenewTimeout = dRenew * 3 / 4

// renewalGapBound bounds the gap between two renewals landing: a renew
// interval, a renewal's timeout (the previous one may have been answered
// only then), and half a second for the coordinator's tick and a loaded
// machine.
const renewalGapBound = dRenew + dRenewTimeout + 500*time.Millisecond

// TestSafetySlowAPIRenewals (item 8): renewals run on their own timer,
// never behind a slow call. Every EC2 call answers 1.5 s late (the action
// lands at once; under the renewal's timeout of 2.25 s, so that renewals
// are answered), or every write lands 2 s after EC2 answered it
// (late_writes): over 40 s the group lease's renewals land at most a renew
// interval plus a renewal's timeout apart, its true age never exceeds
// lease + skew, the coordinator keeps acting, and nothing moves.
func TestSafetySlowAPIRenewals(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults map[string]any
		// lag: how much later than its stamp a renewal may land.
		lag time.Duration
	}{
		{"latency", map[string]any{"latency": "1500ms"}, 0},
		{"late-writes", map[string]any{"late_writes": "2s"}, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := safetyCluster(t, clusterOpts{instances: 3})
			alloc := c.alloc(0)
			c.startAll()
			c.settled(alloc)
			co, cs := c.coordinator(10 * time.Second)
			mark := c.mark()
			from := time.Now()
			before := c.stats().Total
			c.setFaults(tc.faults)
			time.Sleep(40 * time.Second)
			end := time.Now()
			if n := c.stats().Total - before; n < 10 {
				t.Fatalf("only %d EC2 calls in 40 s: the fault was not exercised", n)
			}
			hist := c.tagHistory(alloc)
			if tc.lag > 0 {
				late := 0
				for _, w := range renewals(hist) {
					if w.Late && !w.Time.Before(from) {
						late++
					}
				}
				if late < 3 {
					t.Fatalf("%d renewals landed late in 40 s of late_writes: the fault was not exercised", late)
				}
			}
			gap, age, n, err := leaseAges(hist, from, end)
			if err != nil {
				t.Fatal(err)
			}
			if n < 5 {
				t.Errorf("%d renewals landed in 40 s, want at least 5", n)
			}
			t.Logf("%d renewals; longest gap %s, true lease age up to %s", n, gap.Round(time.Millisecond), age.Round(time.Millisecond))
			if gap > renewalGapBound {
				t.Errorf("renewals landed up to %s apart, want at most renew interval + renewal timeout + 0.5 s (%s)", gap.Round(time.Millisecond), renewalGapBound)
			}
			if limit := dLease + dSkew; age > limit {
				t.Errorf("true lease age up to %s; want at most lease + skew (%s)", age.Round(time.Millisecond), limit)
			}
			if limit := renewalGapBound + tc.lag; age > limit {
				t.Errorf("true lease age up to %s; want at most a renewal gap and the lag (%s)", age.Round(time.Millisecond), limit)
			}
			if m := c.assocsSince(mark, alloc); len(m) > 0 {
				t.Errorf("%d moves with a slow API, want none:%s", len(m), c.eventsSince(mark))
			}
			if drops := termDrops(c.tagHistory(alloc), repairLimit); len(drops) > 0 {
				t.Errorf("eipd:term decreased:\n  %s", strings.Join(drops, "\n  "))
			}
			if co2, cs2 := c.coordinator(10 * time.Second); co2 != co || cs2.Epoch != cs.Epoch {
				t.Errorf("the coordinator changed from %s (epoch %d) to %s (epoch %d) with a slow API", co.id(), cs.Epoch, co2.id(), cs2.Epoch)
			}
		})
	}
}

// ---- item 10 ----

// TestSafetyMovedByHandAndDisassociated (item 10): an EIP moved by hand to
// another member gives at most 1.5 s of two daemons reporting holder; an
// EIP disassociated by hand is associated again within one lease, and its
// holder does not log the disassociation as "the EIP was moved away".
func TestSafetyMovedByHandAndDisassociated(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	smp := startSampler(c)
	c.startAll()
	h := c.settled(alloc)
	to := c.others(h)[0]
	t1 := time.Now()
	c.moveByHand(alloc, to.id())
	waitFor(t, 30*time.Second, "the target to adopt the EIP and the old holder to step down", func() bool {
		return to.role(alloc) == "holder" && h.role(alloc) != "holder"
	})
	time.Sleep(time.Second)
	rows := smp.requireSamples(t, t1, time.Now())
	if d, at, _ := overlap(rows, alloc); d > 1500*time.Millisecond {
		t.Errorf("moved by hand: two daemons reported holder for %s from %s, want at most 1.5 s", d.Round(time.Millisecond), at.Format("15:04:05.000"))
	} else {
		t.Logf("moved by hand: longest overlap of two holders %s", d.Round(time.Millisecond))
	}
	m := c.steady(alloc)
	off := m.logSize()
	tD := time.Now()
	c.disassociateByHand(alloc)
	var e simEvent
	ok := false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !ok {
		e, ok = firstAssocAfter(c.events(), alloc, "", tD)
		time.Sleep(100 * time.Millisecond)
	}
	if !ok || e.Time.Sub(tD) > dLease {
		t.Errorf("disassociated by hand: associated again %v (after %s), want within one lease (%s):%s", ok, e.Time.Sub(tD).Round(time.Millisecond), dLease, eventList(c.events()))
	}
	// The coordinator re-associates it (to m, unless m was not fit).
	waitFor(t, 30*time.Second, "a holder again", func() bool {
		n := c.node(c.holder(alloc))
		return n != nil && n.role(alloc) == "holder"
	})
	time.Sleep(dRenew)
	// The record says what happened: a re-association of an unassociated
	// EIP, not a move away from a member.
	if r := c.address(alloc).Tags["eipd:reason"]; r != "takeover-unassociated" {
		t.Errorf("after the re-association the EIP's eipd:reason is %q, want takeover-unassociated", r)
	}
	for _, line := range strings.Split(m.logOf(off), "\n") {
		if strings.Contains(line, "moved away") {
			t.Errorf("the holder logged a disassociation as a move: %s", line)
		}
	}
}

// TestSafetyCheckers: the checkers above on made-up histories, so that a
// check that could never fail would show here.
func TestSafetyCheckers(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	st := func(roles ...string) []*daemonStatus {
		out := make([]*daemonStatus, len(roles))
		for i, r := range roles {
			if r == "-" {
				continue
			}
			out[i] = &daemonStatus{Health: "up", EIPs: []eipStatus{{AllocationID: "a", Role: r}}}
		}
		return out
	}
	rows := []sampleRow{
		{at(0), st("holder", "standby", "standby")},
		{at(0.1), st("holder", "holder", "standby")},
		{at(0.2), st("holder", "holder", "-")},
		{at(0.3), st("unverified", "holder", "standby")},
		{at(0.4), st("holder", "holder", "standby")},
	}
	if d, when, total := overlap(rows, "a"); d != 200*time.Millisecond || !when.Equal(at(0.1)) || total != 300*time.Millisecond {
		t.Errorf("overlap = %v at %v, total %v; want 200ms at 0.1 s, total 300ms", d, when, total)
	}
	if last := lastRole(rows, 0, "a", "holder"); !last.Equal(at(0.4)) {
		t.Errorf("lastRole = %v", last)
	}
	if n := answered(append(rows, sampleRow{at(0.5), st("-", "-", "-")})); n != 5 {
		t.Errorf("answered = %d, want 5", n)
	}

	ev := []simEvent{
		{Time: at(1), AllocationID: "a", To: "i-1", Action: "associate"},
		{Time: at(2), AllocationID: "a", From: "i-1", Action: "public-ip-release"},
		{Time: at(5), AllocationID: "a", From: "i-1", Action: "displaced"},
		{Time: at(7), AllocationID: "b", To: "i-1", Action: "associate"},
		{Time: at(8), AllocationID: "a", From: "", To: "i-2", Action: "associate"},
		{Time: at(9), To: "i-1", Action: "public-ip-return"},
		{Time: at(20), AllocationID: "a", From: "i-2", Action: "disassociate"},
	}
	if u := unassociated(ev, "a", at(1), at(25)); u != 8*time.Second {
		t.Errorf("unassociated = %v, want 3 s + 5 s (a public IP's release is no disassociation)", u)
	}
	if u := unassociated(ev, "a", at(0), at(6)); u != 2*time.Second {
		t.Errorf("unassociated before the first association and after the displacement = %v, want 1 s + 1 s", u)
	}
	if ch := changesSince(ev, "a", at(0)); len(ch) != 4 {
		t.Errorf("changesSince = %v, want the 4 association changes of a", ch)
	}

	// unanswered: node 1 answers no round after the association at 0.1 s
	// (the rows end 2 s later); node 2 is not live then; node 0 answers.
	quiet := []sampleRow{{at(0), st("holder", "standby", "-")}}
	for x := 0.1; x <= 2.2; x += 0.1 {
		quiet = append(quiet, sampleRow{at(x), st("standby", "-", "-")})
	}
	assoc := []simEvent{{Time: at(0.1), AllocationID: "a", From: "i-0", To: "i-1", Action: "move"}}
	live := func(i int, _, _ time.Time) bool { return i != 2 }
	if u := unanswered(quiet, assoc, "a", at(0), at(3), live); len(u) != 1 || !strings.HasPrefix(u[0], "node 1 ") {
		t.Errorf("unanswered = %q, want node 1 only", u)
	}
	quiet[15].sts[1] = &daemonStatus{Health: "up", EIPs: []eipStatus{{AllocationID: "a", Role: "holder"}}}
	if u := unanswered(quiet, assoc, "a", at(0), at(3), live); len(u) != 0 {
		t.Errorf("unanswered = %q once node 1 answered 1.5 s after the move, want none", u)
	}
	if u := unanswered(quiet, assoc, "a", at(0.2), at(3), func(int, time.Time, time.Time) bool { return true }); len(u) != 0 {
		t.Errorf("unanswered = %q for an association outside the window, want none", u)
	}

	w := func(s float64, caller string, kv ...string) tagWrite {
		m := map[string]string{}
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return tagWrite{Time: at(s), Caller: caller, Action: "create", Tags: m}
	}
	stamp := func(s float64) string { return at(s).Format("2006-01-02T15:04:05.000Z07:00") }
	h := []tagWrite{
		w(0, "i-1", "eipd:term", "1.1", "eipd:holder", "i-1", "eipd:renewed", stamp(0)),
		w(3, "i-1", "eipd:renewed", stamp(2)),
		w(11, "i-1", "eipd:renewed", stamp(11)),
		w(12, "i-2", "eipd:term", "2.1", "eipd:holder", "i-2", "eipd:renewed", stamp(12)),
		w(13, "i-1", "eipd:term", "1.7", "eipd:holder", "i-1", "eipd:renewed", stamp(13)),
	}
	if d := termDrops(h, repairLimit); len(d) != 1 || !strings.Contains(d[0], "i-1") {
		t.Errorf("termDrops = %v, want the write of term 1.7 after term 2.1", d)
	}
	if d := termDrops(h[:4], repairLimit); len(d) != 0 {
		t.Errorf("termDrops of growing terms = %v", d)
	}
	// A late write (EC2 applied it after a newer one) lowers the term; a
	// coordinator writes it again within repairLimit: allowed. Not
	// repaired, or not late: a drop. The operator's terms do not count.
	late := w(13, "i-1", "eipd:term", "1.7")
	late.Late = true
	repaired := append(append([]tagWrite{}, h[:4]...), late, w(20, "i-2", "eipd:term", "2.1"))
	if d := termDrops(repaired, repairLimit); len(d) != 0 {
		t.Errorf("termDrops of a late write repaired 7 s later = %v, want none", d)
	}
	tooLate := append(append([]tagWrite{}, h[:4]...), late, w(13+repairLimit.Seconds()+1, "i-2", "eipd:term", "2.2"))
	if d := termDrops(tooLate, repairLimit); len(d) != 1 {
		t.Errorf("termDrops of a late write repaired after %s = %v, want one drop", repairLimit, d)
	}
	byHand := append(append([]tagWrite{}, h[:4]...), w(14, "", "eipd:term", "0.1"), w(15, "i-2", "eipd:term", "2.2"))
	if d := termDrops(byHand, repairLimit); len(d) != 0 {
		t.Errorf("termDrops with the operator's term = %v, want none", d)
	}
	if d := termDrops([]tagWrite{w(1, "i-1", "eipd:term", "3")}, repairLimit); len(d) != 1 {
		t.Errorf("termDrops of a term without epoch = %v, want it reported", d)
	}
	gap, age, n, err := leaseAges(h, at(0), at(15))
	if err != nil || gap != 8*time.Second || age != 9*time.Second || n != 4 {
		t.Errorf("leaseAges = gap %v age %v n %d err %v; want 8 s (3→11), 9 s (stamp 2 → 11), 4", gap, age, n, err)
	}
	if d, err := stampSkew(w(5, "i-1", "eipd:renewed", stamp(605))); err != nil || d != 10*time.Minute {
		t.Errorf("stampSkew = %v %v", d, err)
	}
}
