package groupstate

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/eipd/eipd/groupview"
	"github.com/eipd/eipd/leader"
)

const alloc = "eipalloc-1"

func serveStatus(t *testing.T, s leader.Status) (host string, port int) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(s)
	}))
	t.Cleanup(srv.Close)
	h, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	port, _ = strconv.Atoi(p)
	return h, port
}

func TestFetchAllAndMember(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	st := leader.Status{InstanceID: "i-a", AvailabilityZone: "us-east-1a", Health: "up", Draining: "handoff-draining",
		Coordinator: "i-a", IsCoordinator: true, Epoch: 4,
		EIPs: []leader.EIPStatus{{AllocationID: alloc, PublicIP: "198.51.100.10", Role: "holder", Term: "4.2",
			LastFailover: &leader.FailoverRecord{Time: at, Reason: "handoff-manual", From: "i-b", To: "i-a", DurationSeconds: 0.25}}}}
	host, port := serveStatus(t, st)
	// A free port with nothing listening: connection refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := ln.Addr().(*net.TCPAddr).Port
	ln.Close()

	c := NewHTTPClient(2 * time.Second)
	res := FetchAll(context.Background(), c, []string{host, host}, port)
	if res[0].Err != nil || res[0].Status.InstanceID != "i-a" {
		t.Fatalf("FetchAll = %+v", res)
	}
	if _, err := Fetch(context.Background(), c, "127.0.0.1", deadPort); err == nil || Problem(err) != "connection refused" {
		t.Errorf("dead port: %v (%q)", err, Problem(err))
	}

	m := Member(groupview.Member{InstanceID: "i-a", PrivateIP: host}, res[0])
	if !m.Answered || m.Health != "up" || m.AZ != "us-east-1a" || m.Draining != "handoff-draining" || m.Roles[alloc] != "holder" ||
		!m.Coordinator {
		t.Errorf("Member = %+v", m)
	}
	// A member that follows a coordinator is not one.
	follower := st
	follower.IsCoordinator = false
	if m := Member(groupview.Member{InstanceID: "i-a"}, Result{Status: follower}); m.Coordinator {
		t.Errorf("Member of a follower = %+v", m)
	}
	down := Member(groupview.Member{InstanceID: "i-a"}, Result{Err: context.DeadlineExceeded})
	if down.Answered || down.Problem != "timeout" || down.Coordinator {
		t.Errorf("Member of a timeout = %+v", down)
	}

	moves := Moves([]Result{res[0], res[1], {Err: context.Canceled}})
	want := []groupview.Move{{Time: at, AllocationID: alloc, Reason: "handoff-manual", From: "i-b", To: "i-a", Duration: 250 * time.Millisecond}}
	if !slices.Equal(moves, want) {
		t.Errorf("Moves = %+v, want %+v", moves, want)
	}
}

func TestEIPs(t *testing.T) {
	role := func(r string, term string) Result {
		return Result{Status: leader.Status{EIPs: []leader.EIPStatus{{AllocationID: alloc, PublicIP: "198.51.100.10", Role: r, Term: term}}}}
	}
	cases := []struct {
		name    string
		results []Result
		holders []string
		term    string
	}{
		{"one holder", []Result{role("standby", "3.1"), role("holder", "4.1"), {Err: context.Canceled}}, []string{"i-b"}, "4.1"},
		{"holder's term, even below another's", []Result{role("standby", "5.1"), role("holder", "4.1"), role("standby", "4.1")}, []string{"i-b"}, "4.1"},
		{"none: highest term", []Result{role("standby", "3.1"), role("unverified", "5.1"), role("standby", "4.9")}, nil, "5.1"},
		// Ordered as numbers, epoch first: not as strings.
		{"none: a later epoch", []Result{role("standby", "9.5"), role("standby", "10.1"), role("standby", "9.12")}, nil, "10.1"},
		{"none: a later seq", []Result{role("standby", "2.9"), role("standby", "2.10"), role("standby", "")}, nil, "2.10"},
		{"none: unknown and garbled terms", []Result{role("standby", ""), role("standby", "x"), role("standby", "7")}, nil, ""},
		{"none: garbled first", []Result{role("standby", "x"), role("standby", "1.1")}, nil, "1.1"},
		{"split", []Result{role("holder", "6.1"), role("holder", "5.3"), role("standby", "7.1")}, []string{"i-a", "i-b"}, "6.1"},
		{"split: the later holder's", []Result{role("holder", "5.3"), role("holder", "6.1"), role("standby", "7.1")}, []string{"i-a", "i-b"}, "6.1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := EIPs([]string{"i-a", "i-b", "i-c"}, c.results)
			if len(got) != 1 || got[0].AllocationID != alloc || got[0].PublicIP != "198.51.100.10" ||
				!slices.Equal(got[0].Holders, c.holders) || got[0].Term != c.term {
				t.Errorf("EIPs = %+v, want holders %v term %q", got, c.holders, c.term)
			}
		})
	}
}

// TestMovesOneHandoffOnce: the old and the new holder both report a
// handoff, a moment apart; the group view shows it once. A later move of
// the same kind is another move.
func TestMovesOneHandoffOnce(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	rec := func(from string, when time.Time, d float64) Result {
		return Result{Status: leader.Status{EIPs: []leader.EIPStatus{{AllocationID: alloc,
			LastFailover: &leader.FailoverRecord{Time: when, Reason: "handoff-manual", From: from, To: "i-b", DurationSeconds: d}}}}}
	}
	old, adopter := rec("i-a", at.Add(700*time.Millisecond), 0.02), rec("i-a", at, 0.01)
	if got := Moves([]Result{old, adopter}); len(got) != 1 || !got[0].Time.Equal(at) {
		t.Errorf("one handoff reported by both holders = %+v, want one move", got)
	}
	later := rec("i-a", at.Add(time.Minute), 0.01)
	if got := Moves([]Result{old, later}); len(got) != 2 {
		t.Errorf("two handoffs a minute apart = %+v, want two moves", got)
	}
}
