// Package groupstate reads the /status of every member of an eipd group and
// turns the answers into a groupview.View's members, EIPs and moves. It is
// shared by `eipd demo` and `eipd status --watch`.
package groupstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/groupview"
	"github.com/eipd/eipd/leader"
)

// Result is one member's answer.
type Result struct {
	Status leader.Status
	Err    error
}

// NewHTTPClient is a client for status reads: short timeout, no
// keep-alives (a member that dies must not leave a connection behind).
func NewHTTPClient(timeout time.Duration) *http.Client {
	return &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}
}

// Fetch reads http://host:port/status.
func Fetch(ctx context.Context, c *http.Client, host string, port int) (leader.Status, error) {
	var s leader.Status
	u := "http://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/status"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return s, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return s, fmt.Errorf("read %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("decode %s: %w", u, err)
	}
	return s, nil
}

// FetchAll reads the /status of every host at once; results are in the
// order of hosts.
func FetchAll(ctx context.Context, c *http.Client, hosts []string, port int) []Result {
	out := make([]Result, len(hosts))
	var wg sync.WaitGroup
	for i, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := Fetch(ctx, c, h, port)
			out[i] = Result{Status: s, Err: err}
		}()
	}
	wg.Wait()
	return out
}

// Member fills the /status part of a member: whether it answered (and why
// not), health, draining and its role per EIP.
func Member(m groupview.Member, r Result) groupview.Member {
	if r.Err != nil {
		m.Answered, m.Problem = false, Problem(r.Err)
		return m
	}
	m.Answered, m.Problem = true, ""
	m.Health, m.Draining, m.Coordinator = r.Status.Health, r.Status.Draining, r.Status.IsCoordinator
	if m.AZ == "" {
		m.AZ = r.Status.AvailabilityZone
	}
	m.Roles = map[string]string{}
	for _, e := range r.Status.EIPs {
		m.Roles[e.AllocationID] = e.Role
	}
	return m
}

// Problem is a short reason for a failed read, for a table cell.
func Problem(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var op *net.OpError
	if errors.As(err, &op) {
		return op.Err.Error()
	}
	return err.Error()
}

// EIPs lists every EIP the answering members report, sorted by allocation
// ID, with the members that report role holder (sorted) and the term: the
// holder's, or the highest any member reports when none holds it.
func EIPs(ids []string, results []Result) []groupview.EIP {
	byID := map[string]*groupview.EIP{}
	holderTerm := map[string]bool{}
	for i, r := range results {
		if r.Err != nil {
			continue
		}
		for _, e := range r.Status.EIPs {
			g := byID[e.AllocationID]
			if g == nil {
				g = &groupview.EIP{AllocationID: e.AllocationID}
				byID[e.AllocationID] = g
			}
			if g.PublicIP == "" {
				g.PublicIP = e.PublicIP
			}
			if e.Role == leader.RoleHolder {
				g.Holders = append(g.Holders, ids[i])
				if !holderTerm[e.AllocationID] || termAfter(e.Term, g.Term) {
					g.Term = e.Term
				}
				holderTerm[e.AllocationID] = true
			} else if !holderTerm[e.AllocationID] && termAfter(e.Term, g.Term) {
				g.Term = e.Term
			}
		}
	}
	out := make([]groupview.EIP, 0, len(byID))
	for _, g := range byID {
		sort.Strings(g.Holders)
		out = append(out, *g)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].AllocationID < out[j].AllocationID })
	return out
}

// termAfter reports whether term a ("epoch.seq") comes after b; a term
// that does not parse comes after nothing.
func termAfter(a, b string) bool {
	ta, ok := eip.ParseTerm(a)
	if !ok {
		return false
	}
	tb, ok := eip.ParseTerm(b)
	return !ok || tb.Less(ta)
}

// Moves are the last moves the members report (each member's
// last_failover per EIP), without duplicates, oldest first. They are the
// daemons' own records.
func Moves(results []Result) []groupview.Move {
	var out []groupview.Move
	for _, r := range results {
		if r.Err != nil {
			continue
		}
		for _, e := range r.Status.EIPs {
			f := e.LastFailover
			if f == nil {
				continue
			}
			m := groupview.Move{Time: f.Time, AllocationID: e.AllocationID, Reason: f.Reason, From: f.From, To: f.To,
				Duration: time.Duration(f.DurationSeconds * float64(time.Second))}
			// The old and the new holder of a handoff both report it,
			// each with its own clock reading of the same association:
			// one move, whatever the few milliseconds between them.
			// The earlier reading is kept: it is nearer the association.
			if i := slices.IndexFunc(out, func(o groupview.Move) bool { return sameMove(o, m) }); i >= 0 {
				if m.Time.Before(out[i].Time) {
					out[i] = m
				}
				continue
			}
			out = append(out, m)
		}
	}
	slices.SortStableFunc(out, func(a, b groupview.Move) int { return a.Time.Compare(b.Time) })
	return out
}

// sameMove reports whether two members' records describe one move: same
// EIP, reason and destination, the same origin where both name one, and
// times within a few seconds.
func sameMove(a, b groupview.Move) bool {
	const near = 5 * time.Second
	d := a.Time.Sub(b.Time)
	return a.AllocationID == b.AllocationID && a.Reason == b.Reason && a.To == b.To &&
		(a.From == "" || b.From == "" || a.From == b.From) && d < near && d > -near
}
