package demo

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/eipd/eipd/ec2sim"
	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/groupview"
	"github.com/eipd/eipd/internal/harness"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestValidate(t *testing.T) {
	ok := Options{Exe: "/bin/eipd", Instances: 3, Duration: MinDuration}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	bad := Options{Instances: 2, Duration: 20 * time.Second}
	err := bad.Validate()
	for _, want := range []string{"--instances 2: want 3 to 9", "--duration 20s is too short: the timeline needs at least 40s", "executable"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate(%+v) = %v, want it to say %q", bad, err, want)
		}
	}
}

func TestLengthsStretchEveryPhase(t *testing.T) {
	d := &demo{o: Options{Duration: 2 * MinDuration}}
	var total time.Duration
	for i, l := range d.lengths() {
		if l != 2*phases[i].weight {
			t.Errorf("phase %s: %s, want %s", phases[i].name, l, 2*phases[i].weight)
		}
		total += l
	}
	if total != 2*MinDuration {
		t.Errorf("phases add up to %s, want %s", total, 2*MinDuration)
	}
}

// moves names the previous holder across a disassociation, and takes
// reason, term and decision time from the first record naming the new
// instance written after the association, with a term after the last
// move's (a new coordinator's epoch comes after every earlier term).
func TestMovesFromHistory(t *testing.T) {
	const alloc = "eipalloc-1"
	events := []ec2sim.Event{
		{Time: at(1000), AllocationID: alloc, To: "i-a", Action: "associate"},
		{Time: at(5000), AllocationID: "eipalloc-other", From: "i-x", To: "i-y", Action: "move"},
		{Time: at(9000), AllocationID: alloc, From: "i-a", To: "i-b", Action: "move"},
		{Time: at(20000), AllocationID: alloc, From: "i-b", Action: "terminate"},
		{Time: at(26000), AllocationID: alloc, To: "i-c", Action: "associate"},
		{Time: at(31000), AllocationID: alloc, From: "i-c", To: "i-a", Action: "move"},
	}
	leases := []leaseRecord{
		{seen: at(1010), holder: "i-a", term: eip.Term{Epoch: 1, Seq: 1}, reason: "takeover-unassociated", decided: at(998)},
		// The same record seen again is not another move.
		{seen: at(3000), holder: "i-a", term: eip.Term{Epoch: 1, Seq: 1}, reason: "takeover-unassociated", decided: at(998)},
		{seen: at(9020), holder: "i-b", term: eip.Term{Epoch: 1, Seq: 2}, reason: "handoff-unhealthy", decided: at(8990)},
		// A new coordinator (epoch 2) after i-b's instance went.
		{seen: at(26030), holder: "i-c", term: eip.Term{Epoch: 2, Seq: 1}, reason: "takeover-unassociated"},
		// A record naming i-a again, but of a term before the last move:
		// a late write of the old coordinator, not the move to i-a.
		{seen: at(31005), holder: "i-a", term: eip.Term{Epoch: 1, Seq: 3}, reason: "handoff-manual", decided: at(30990)},
		{seen: at(31020), holder: "i-a", term: eip.Term{Epoch: 2, Seq: 2}, reason: "handoff-rebalance", decided: at(30950)},
	}
	got := moves(events, leases, alloc)
	want := []groupview.Move{
		{Time: at(1000), AllocationID: alloc, Reason: "takeover-unassociated", To: "i-a", Term: "1.1", Duration: 2 * time.Millisecond},
		{Time: at(9000), AllocationID: alloc, Reason: "handoff-unhealthy", From: "i-a", To: "i-b", Term: "1.2", Duration: 10 * time.Millisecond},
		{Time: at(26000), AllocationID: alloc, Reason: "takeover-unassociated", From: "i-b", To: "i-c", Term: "2.1", Duration: -1},
		{Time: at(31000), AllocationID: alloc, Reason: "handoff-rebalance", From: "i-c", To: "i-a", Term: "2.2", Duration: 50 * time.Millisecond},
	}
	if len(got) != len(want) {
		t.Fatalf("moves = %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("move %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	// A move whose lease was never seen keeps an unknown reason.
	if m := moves(events[:1], nil, alloc); len(m) != 1 || m[0].Reason != "" || m[0].Duration >= 0 {
		t.Errorf("move without lease = %+v", m)
	}
}

func TestDangling(t *testing.T) {
	const alloc = "eipalloc-1"
	ready := func(ms ...int) []readiness {
		var out []readiness
		for i := 0; i <= 40000; i += 500 {
			r := false
			for _, m := range ms {
				r = r || i >= m
			}
			out = append(out, readiness{at: at(i), ready: r})
		}
		return out
	}
	events := []ec2sim.Event{
		{Time: at(4000), AllocationID: alloc, To: "i-a"},
		{Time: at(10000), AllocationID: alloc, From: "i-a", Action: "terminate"},
		{Time: at(16500), AllocationID: alloc, To: "i-b"},
	}
	// Members ready from 3 s: start-up span 3 → 4 s, then 10 → 16.5 s.
	if got, from := dangling(events, ready(3000), alloc, t0, at(40000)); got != 6500*time.Millisecond || !from.Equal(at(10000)) {
		t.Errorf("dangling = %s from %s, want 6.5s from 10s", got, from)
	}
	// Nobody ready until 15 s: only 1.5 s of it counts.
	if got, _ := dangling(events, ready(15000), alloc, t0, at(40000)); got != 1500*time.Millisecond {
		t.Errorf("dangling with late readiness = %s, want 1.5s", got)
	}
	// Still unassociated at the end: counts until now.
	if got, _ := dangling(events[:2], ready(0), alloc, t0, at(40000)); got != 30*time.Second {
		t.Errorf("open span = %s, want 30s", got)
	}
}

func TestFailureRuns(t *testing.T) {
	r := func(start int, ok bool, phase int) request {
		return request{start: at(start), end: at(start + 5), ok: ok, phase: phase, problem: "connection refused"}
	}
	reqs := []request{r(0, true, 0), r(50, false, 1), r(100, false, 1), r(150, false, 1), r(200, true, 1), r(250, false, 2)}
	runs := failureRuns(reqs)
	if len(runs) != 2 || runs[0].count != 3 || runs[0].length() != 150*time.Millisecond || runs[0].phase != 1 ||
		runs[1].count != 1 || runs[1].length() != 5*time.Millisecond {
		t.Errorf("runs = %+v", runs)
	}
}

// The client counts what the EIP's address answers, and stops with its
// context without leaving a goroutine behind.
func TestClient(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1)%2 == 0 {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("i-a\n"))
	}))
	defer srv.Close()
	c := newClient(strings.TrimPrefix(srv.URL, "http://"))
	c.setPhase(2)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	c.run(ctx)
	reqs := c.requests()
	if len(reqs) < 3 {
		t.Fatalf("%d requests in 300ms, want about 6", len(reqs))
	}
	var ok, failed int
	for _, r := range reqs {
		if r.phase != 2 {
			t.Errorf("request counted for phase %d", r.phase)
		}
		if r.ok {
			ok++
			if r.servedBy != "i-a" {
				t.Errorf("served by %q", r.servedBy)
			}
		} else {
			failed++
			if r.problem != "503 Service Unavailable" {
				t.Errorf("problem %q", r.problem)
			}
		}
	}
	v := c.view(time.Now())
	if ok == 0 || failed == 0 || v.TotalOK != ok || v.TotalFailed != failed {
		t.Errorf("ok %d failed %d, view %+v", ok, failed, v)
	}
}

func TestInstanceIPsAndLoopbackHint(t *testing.T) {
	ips := harness.InstanceIPs("127.0.0.11", 3)
	if strings.Join(ips, " ") != "127.0.0.11 127.0.0.12 127.0.0.13" {
		t.Fatalf("InstanceIPs = %v", ips)
	}
	// 192.0.2.1 (TEST-NET-1) is on no interface here: binding it fails
	// like 127.0.0.12 on a Mac without aliases.
	err := checkLoopback([]string{"127.0.0.1", "192.0.2.1"})
	if err == nil || !strings.Contains(err.Error(), "sudo ifconfig lo0 alias $ip up") || !strings.Contains(err.Error(), "cannot bind 192.0.2.1") {
		t.Errorf("checkLoopback = %v", err)
	}
}
