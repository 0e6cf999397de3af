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
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// Default timings of the daemon, as the tests rely on them.
const (
	dRenew = 3 * time.Second
	dLease = 10 * time.Second
	dSkew  = time.Second
)

// safetyCluster starts a cluster at default timings for a parallel test.
func safetyCluster(t *testing.T, o clusterOpts) *cluster {
	t.Helper()
	t.Parallel()
	o.flags = defaults
	return newCluster(t, o)
}

// ---- /status sampler ----

// safetyStatus is the part of /status these tests read.
type safetyStatus struct {
	InstanceID string `json:"instance_id"`
	Health     string `json:"health"`
	EIPs       []struct {
		AllocationID    string `json:"allocation_id"`
		Role            string `json:"role"`
		Holder          string `json:"holder"`
		Term            int64  `json:"term"`
		NoFreePrivateIP bool   `json:"no_free_private_ip"`
	} `json:"eips"`
}

// safetyStatus reads n's /status, giving up after timeout: a frozen
// daemon must not stall a sampling round.
func (n *node) safetyStatus(timeout time.Duration) (safetyStatus, error) {
	var s safetyStatus
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s:%d/status", n.inst.PrivateIP, n.statusPort), nil)
	if err != nil {
		return s, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return s, fmt.Errorf("GET /status of %s: %s", n.id(), resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// sampleRow is one round of the sampler: every node's /status (nil when it
// did not answer in time).
type sampleRow struct {
	at  time.Time
	sts []*safetyStatus
}

func (r sampleRow) role(i int, alloc string) string {
	if r.sts[i] == nil {
		return ""
	}
	for _, e := range r.sts[i].EIPs {
		if e.AllocationID == alloc {
			return e.Role
		}
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
				row := sampleRow{at: at, sts: make([]*safetyStatus, len(c.nodes))}
				var wg sync.WaitGroup
				for i, n := range c.nodes {
					// n.eipd is not looked at: the test goroutine
					// restarts daemons while this samples. A daemon
					// that is not running simply does not answer.
					wg.Add(1)
					go func() {
						defer wg.Done()
						if st, err := n.safetyStatus(400 * time.Millisecond); err == nil {
							row.sts[i] = &st
						}
					}()
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

// termDrops lists every lease write whose eipd:term is lower than one
// written before it.
func termDrops(h []tagWrite) []string {
	var out []string
	best, bestAt := int64(-1), ""
	for _, w := range h {
		v, ok := w.Tags["eipd:term"]
		if !ok || w.Action != "create" {
			continue
		}
		term, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		if term < best {
			out = append(out, fmt.Sprintf("%s (after term %d at %s)", w, best, bestAt))
		}
		if term > best {
			best, bestAt = term, w.Time.Format("15:04:05.000")
		}
	}
	return out
}

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
		if e.AllocationID != alloc {
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
		if e.AllocationID == alloc && !e.Time.Before(t) {
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
	b, err := os.ReadFile(n.eipd.logPath)
	if err != nil || offset > len(b) {
		return ""
	}
	return string(b[offset:])
}

func (n *node) logSize() int {
	b, _ := os.ReadFile(n.eipd.logPath)
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
			if hs[i] == nil || hs[i].eipd == nil || hs[i].eipd.exited() || hs[i].role(a) != "holder" {
				return false
			}
		}
		return true
	})
	return hs
}

// settled waits for a steady holder, every member tagged ready, and two
// renew intervals more, so that a fault does not race the first claim (the
// holder has renewed, the standbys have probed it). It returns the holder.
func (c *cluster) settled(alloc string) *node {
	c.t.Helper()
	c.steady(alloc)
	c.allReady(len(c.nodes))
	time.Sleep(2 * dRenew)
	return c.steady(alloc)
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
			c.deleteTags(x, "eipd:holder", "eipd:term", "eipd:renewed")
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
	reported := false
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if st, err := y.status(); err == nil && st.Health != "up" {
			if s, err := y.safetyStatus(5 * time.Second); err == nil {
				for _, e := range s.EIPs {
					if e.AllocationID == b && e.NoFreePrivateIP {
						reported = true
					}
				}
			}
		}
		if reported {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !reported {
		t.Errorf("the unhealthy holder %s of %s never reported no_free_private_ip in /status within 20 s", y.id(), b)
	} else if v := y.metric("eipd_no_free_private_ip", map[string]string{"allocation_id": b}); v != 1 {
		t.Errorf("eipd_no_free_private_ip{allocation_id=%q} on %s = %v, want 1", b, y.id(), v)
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

// TestSafetyHolderBlindDisassociated (item 2): the holder's EC2 calls all
// fail, and the EIP is disassociated by hand: it is associated to another
// ready member within one lease duration, and no two daemons ever report
// holder at once.
func TestSafetyHolderBlindDisassociated(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	smp := startSampler(c)
	c.startAll()
	h := c.settled(alloc)
	from := time.Now()
	c.setInstanceFaults(h.id(), map[string]any{"error_ratio": 1})
	time.Sleep(time.Second)
	tD := time.Now()
	c.disassociateByHand(alloc)
	var e simEvent
	ok := false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !ok {
		e, ok = firstAssocAfter(c.events(), alloc, "", tD)
		time.Sleep(200 * time.Millisecond)
	}
	switch {
	case !ok:
		t.Errorf("still unassociated 30 s after the disassociation by hand, want re-associated within %s", dLease)
	case e.To == h.id():
		t.Errorf("re-associated to the holder whose API fails (%s) %s after the disassociation", h.id(), e.Time.Sub(tD).Round(time.Millisecond))
	case e.Time.Sub(tD) > dLease:
		t.Errorf("re-associated to %s %s after the disassociation, want within one lease (%s)", e.To, e.Time.Sub(tD).Round(time.Millisecond), dLease)
	default:
		t.Logf("re-associated to %s %s after the disassociation", e.To, e.Time.Sub(tD).Round(time.Millisecond))
	}
	time.Sleep(2 * dRenew)
	rows := smp.requireSamples(t, from, time.Now())
	if d, at, _ := overlap(rows, alloc); d > 0 {
		t.Errorf("two daemons reported holder for %s from %s, want never", d.Round(time.Millisecond), at.Format("15:04:05.000"))
	}
}

// ---- item 3: a cut-off holder steps down; terms only grow ----

// TestSafetyCutOffHolderStepsDown (item 3): the holder loses the EC2 API
// (partition) and its proxy: a standby takes over; the old holder reports
// holder for at most one renew interval after the takeover; when its API
// comes back the term never decreases and it ends as a standby.
func TestSafetyCutOffHolderStepsDown(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	smp := startSampler(c)
	c.startAll()
	h := c.settled(alloc)
	hi := c.index(h)
	tF := time.Now()
	c.setInstanceFaults(h.id(), map[string]any{"partition": true})
	h.killHAProxy()
	var e simEvent
	ok := false
	waitFor(t, 45*time.Second, "a standby to take over", func() bool {
		e, ok = firstAssocAfter(c.events(), alloc, h.id(), tF)
		return ok
	})
	t.Logf("taken over by %s %s after the fault", e.To, e.Time.Sub(tF).Round(time.Millisecond))
	// Keep the old holder cut off for more than a lease after the takeover.
	time.Sleep(dLease + 2*time.Second)
	rows := smp.requireSamples(t, e.Time, time.Now())
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
	if drops := termDrops(hist); len(drops) > 0 {
		t.Errorf("eipd:term decreased:\n  %s", strings.Join(drops, "\n  "))
	}
	for _, w := range hist {
		if w.Caller == h.id() && w.Time.After(healed) {
			t.Errorf("the old holder wrote the lease after its API came back: %s", w)
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
	mark := c.mark()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, eipdBin, "handoff", "--control", h.controlAddr)
	cmd.Env = minimalEnv(c.dir)
	out, err := cmd.CombinedOutput()
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
	if last := lastRole(rows, hi, alloc, "holder"); !last.IsZero() {
		t.Errorf("the old holder %s reported holder again after the handoff (last at %s, %s after it)", h.id(), last.Format("15:04:05.000"), last.Sub(done).Round(time.Millisecond))
	}
	hist := c.tagHistory(alloc)
	if drops := termDrops(hist); len(drops) > 0 {
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

// TestSafetyFutureLeaseStamp (item 6): the holder's clock is 10 min fast;
// it renews (stamping the lease 10 min ahead), then freezes with its proxy
// dead: another member takes over within lease + skew + probe detection +
// margin (20 s), not 10 min.
func TestSafetyFutureLeaseStamp(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	f := c.nodes[0]
	f.env = []string{"EIPD_TEST_CLOCK_OFFSET=10m"}
	f.startDaemon()
	f.waitUp()
	waitFor(t, 30*time.Second, "the fast-clock member to hold the EIP", func() bool { return c.holder(alloc) == f.id() && f.role(alloc) == "holder" })
	for _, n := range c.others(f) {
		n.startDaemon()
		n.waitUp()
	}
	c.steady(alloc)
	n0 := len(renewals(c.tagHistory(alloc)))
	waitFor(t, 3*dRenew, "a fresh renewal by the fast-clock holder", func() bool {
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
		t.Errorf("no takeover 40 s after the fast-clock holder froze (its lease is stamped 10 min ahead), want within 20 s")
	case e.Time.Sub(tF) > 20*time.Second:
		t.Errorf("taken over by %s %s after the freeze, want within 20 s", e.To, e.Time.Sub(tF).Round(time.Millisecond))
	default:
		t.Logf("taken over by %s %s after the freeze", e.To, e.Time.Sub(tF).Round(time.Millisecond))
	}
}

// TestSafetyClockSkewCluster (item 6): members' clocks at +3 s, 0 and
// −3 s: nothing moves while all is healthy, and the EIP still fails over
// once when the holder's proxy dies.
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
	h := c.node(c.holder(alloc))
	mark = c.mark()
	tK := time.Now()
	h.killHAProxy()
	waitFor(t, 30*time.Second, "the EIP to leave the dead proxy", func() bool { return len(c.assocsSince(mark, alloc)) > 0 })
	m := c.assocsSince(mark, alloc)
	if d := m[0].Time.Sub(tK); d > 10*time.Second {
		t.Errorf("failover took %s, want within 10 s", d.Round(time.Millisecond))
	}
	to := c.node(m[0].To)
	waitFor(t, 20*time.Second, "the new holder to renew", func() bool {
		rs := renewals(c.tagHistory(alloc))
		return len(rs) > 0 && rs[len(rs)-1].Caller == to.id()
	})
	c.clockOffsetApplied(to, alloc, offsets[c.index(to)])
	time.Sleep(2 * dRenew)
	if m := c.assocsSince(mark, alloc); len(m) != 1 {
		t.Errorf("want exactly one move after the proxy died, got:%s", c.eventsSince(mark))
	}
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
	seq := []string{moves[0].From}
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

// TestSafetySlowAPIRenewals (item 8): every EC2 call answers 4 s late
// (writes land at once): over 40 s the true lease age never exceeds
// lease + skew and nothing moves.
func TestSafetySlowAPIRenewals(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	c.settled(alloc)
	mark := c.mark()
	from := time.Now()
	before := c.stats().Total
	c.setFaults(map[string]any{"latency": "4s"})
	time.Sleep(40 * time.Second)
	end := time.Now()
	if n := c.stats().Total - before; n < 10 {
		t.Fatalf("only %d EC2 calls in 40 s: the latency was not exercised", n)
	}
	gap, age, n, err := leaseAges(c.tagHistory(alloc), from, end)
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Errorf("%d renewals landed in 40 s with 4 s latency, want at least 3", n)
	}
	t.Logf("%d renewals; longest gap %s, true lease age up to %s", n, gap.Round(time.Millisecond), age.Round(time.Millisecond))
	if limit := dLease + dSkew; gap > limit || age > limit {
		t.Errorf("renewals landed up to %s apart, true lease age up to %s; want at most lease + skew (%s)", gap.Round(time.Millisecond), age.Round(time.Millisecond), limit)
	}
	if m := c.assocsSince(mark, alloc); len(m) > 0 {
		t.Errorf("%d moves with a slow API, want none:%s", len(m), c.eventsSince(mark))
	}
}

// ---- item 9 (and 10): trust after a handoff ----

// TestSafetyTakeoverAfterShutdownHandoff (item 9): the holder's eipd gets
// SIGTERM (its proxy keeps serving) and hands off to B; then B dies
// (eipd and proxy): the third member takes over within lease + skew +
// probe detection + margin (20 s). Item 10: the handoff is not mistaken
// for a blocked status port in B's log.
func TestSafetyTakeoverAfterShutdownHandoff(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	c.startAll()
	a := c.settled(alloc)
	mark := c.mark()
	logOffsets := map[*node]int{}
	for _, n := range c.others(a) {
		logOffsets[n] = n.logSize()
	}
	a.eipd.term()
	if !a.eipd.waitExit(30 * time.Second) {
		t.Fatal("the holder did not exit after SIGTERM")
	}
	m := c.assocsSince(mark, alloc)
	if len(m) != 1 || m[0].From != a.id() {
		t.Fatalf("want one handoff from %s, got:%s", a.id(), c.eventsSince(mark))
	}
	b := c.node(m[0].To)
	waitFor(t, 20*time.Second, "B to report itself holder", func() bool { return b.role(alloc) == "holder" })
	time.Sleep(2 * dRenew)
	for _, n := range c.others(a) {
		before := n.logOf(0)
		before = before[:min(len(before), logOffsets[n])]
		for _, line := range strings.Split(before, "\n") {
			if strings.Contains(line, "status port") || strings.Contains(line, "does not answer") {
				t.Logf("note: %s logged a blocked-status-port warning before the SIGTERM: %s", n.id(), line)
			}
		}
	}
	for _, line := range strings.Split(b.logOf(logOffsets[b]), "\n") {
		if strings.Contains(line, "status port") || strings.Contains(line, "does not answer") {
			t.Errorf("item 10: the new holder logged a blocked-status-port warning after a clean SIGTERM handoff: %s", line)
		}
	}
	var cn *node
	for _, n := range c.nodes {
		if n != a && n != b {
			cn = n
		}
	}
	tK := time.Now()
	b.eipd.killWait(t)
	b.killHAProxy()
	var e simEvent
	ok := false
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) && !ok {
		e, ok = firstAssocAfter(c.events(), alloc, b.id(), tK)
		time.Sleep(100 * time.Millisecond)
	}
	switch {
	case !ok:
		t.Errorf("%s did not take over within 60 s of B's death, want within 20 s", cn.id())
	case e.To != cn.id():
		t.Errorf("taken over by %s, want the third member %s", e.To, cn.id())
	case e.Time.Sub(tK) > 20*time.Second:
		t.Errorf("the third member took over %s after B died, want within 20 s", e.Time.Sub(tK).Round(time.Millisecond))
	default:
		t.Logf("the third member took over %s after B died", e.Time.Sub(tK).Round(time.Millisecond))
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
	// The old holder has seen the disassociation once it no longer
	// reports holder, or once it re-associated the EIP itself.
	waitFor(t, 30*time.Second, "a holder again, and the old holder to have seen the disassociation", func() bool {
		n := c.node(c.holder(alloc))
		if n == nil || n.role(alloc) != "holder" {
			return false
		}
		e, ok := firstAssocAfter(c.events(), alloc, "", tD)
		return ok && (e.Caller == m.id() || m.role(alloc) != "holder")
	})
	time.Sleep(dRenew)
	for _, line := range strings.Split(m.logOf(off), "\n") {
		if strings.Contains(line, "moved away") {
			t.Errorf("the holder logged a disassociation as a move: %s", line)
		}
	}
}

// TestSafetyFirstElectionHonoursPriority (item 10): with eipd:priority
// higher on one instance, the first election of three daemons started at
// once goes to it, in each of three cold starts (a different instance
// each time, so instance-ID order cannot make it pass by chance).
func TestSafetyFirstElectionHonoursPriority(t *testing.T) {
	c := safetyCluster(t, clusterOpts{instances: 3})
	alloc := c.alloc(0)
	won := 0
	for round, pri := range c.nodes {
		for _, n := range c.nodes {
			if n == pri {
				c.setInstanceTag(n.id(), "eipd:priority", "10")
			} else {
				c.deleteTags(n.id(), "eipd:priority")
			}
		}
		if c.holder(alloc) != "" {
			c.disassociateByHand(alloc)
		}
		c.deleteTags(alloc, "eipd:holder", "eipd:term", "eipd:renewed")
		mark := c.mark()
		started := time.Now()
		for _, n := range c.nodes {
			n.startDaemon()
		}
		for _, n := range c.nodes {
			n.waitUp()
		}
		c.heldBy(60*time.Second, alloc)
		first := c.assocsSince(mark, alloc)[0]
		if first.To == pri.id() {
			won++
			t.Logf("cold start %d: %s (eipd:priority=10) claimed %s after the daemons started", round+1, first.To, first.Time.Sub(started).Round(time.Millisecond))
		} else {
			t.Errorf("cold start %d: %s (no priority) won the first election, want %s (eipd:priority=10):%s", round+1, first.To, pri.id(), c.eventsSince(mark))
		}
		for _, n := range c.nodes {
			n.eipd.killWait(t)
		}
	}
	t.Logf("the priority member won %d of %d cold starts", won, len(c.nodes))
}

// TestSafetyCheckers: the checkers above on made-up histories, so that a
// check that could never fail would show here.
func TestSafetyCheckers(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	st := func(roles ...string) []*safetyStatus {
		out := make([]*safetyStatus, len(roles))
		for i, r := range roles {
			if r == "-" {
				continue
			}
			s := &safetyStatus{Health: "up"}
			s.EIPs = append(s.EIPs, struct {
				AllocationID    string `json:"allocation_id"`
				Role            string `json:"role"`
				Holder          string `json:"holder"`
				Term            int64  `json:"term"`
				NoFreePrivateIP bool   `json:"no_free_private_ip"`
			}{AllocationID: "a", Role: r})
			out[i] = s
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
		{Time: at(5), AllocationID: "a", From: "i-1", Action: "displaced"},
		{Time: at(7), AllocationID: "b", To: "i-1", Action: "associate"},
		{Time: at(8), AllocationID: "a", From: "", To: "i-2", Action: "associate"},
		{Time: at(20), AllocationID: "a", From: "i-2", Action: "disassociate"},
	}
	if u := unassociated(ev, "a", at(1), at(25)); u != 8*time.Second {
		t.Errorf("unassociated = %v, want 3 s + 5 s", u)
	}
	if u := unassociated(ev, "a", at(0), at(6)); u != 2*time.Second {
		t.Errorf("unassociated before the first association and after the displacement = %v, want 1 s + 1 s", u)
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
		w(0, "i-1", "eipd:term", "1", "eipd:holder", "i-1", "eipd:renewed", stamp(0)),
		w(3, "i-1", "eipd:holder", "i-1", "eipd:renewed", stamp(2)),
		w(11, "i-1", "eipd:holder", "i-1", "eipd:renewed", stamp(11)),
		w(12, "i-2", "eipd:term", "2", "eipd:holder", "i-2", "eipd:renewed", stamp(12)),
		w(13, "i-1", "eipd:term", "1", "eipd:holder", "i-1", "eipd:renewed", stamp(13)),
	}
	if d := termDrops(h); len(d) != 1 || !strings.Contains(d[0], "i-1") {
		t.Errorf("termDrops = %v, want the write of term 1 after term 2", d)
	}
	if d := termDrops(h[:4]); len(d) != 0 {
		t.Errorf("termDrops of growing terms = %v", d)
	}
	gap, age, n, err := leaseAges(h, at(0), at(15))
	if err != nil || gap != 8*time.Second || age != 9*time.Second || n != 4 {
		t.Errorf("leaseAges = gap %v age %v n %d err %v; want 8 s (3→11), 9 s (stamp 2 → 11), 4", gap, age, n, err)
	}
	if d, err := stampSkew(w(5, "i-1", "eipd:renewed", stamp(605))); err != nil || d != 10*time.Minute {
		t.Errorf("stampSkew = %v %v", d, err)
	}
}
