package demo

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/eipd/eipd/ec2sim"
	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/groupview"
	"github.com/eipd/eipd/internal/groupstate"
	"github.com/eipd/eipd/leader"
)

// Sampling periods: the EIP's tags are read in-process (cheap, and fast
// enough to catch every lease a move writes); the daemons' /status over
// HTTP, as often as a person can follow.
const (
	truthEvery  = 25 * time.Millisecond
	statusEvery = 200 * time.Millisecond
)

// leaseRecord is one lease written on the EIP, as first seen.
type leaseRecord struct {
	seen    time.Time
	holder  string
	term    eip.Term
	reason  string
	decided time.Time
}

// readiness says whether, at a sample, some member was ready and some
// member said it coordinates: invariant 3 of docs/design.md bounds an
// unassociated EIP only then (when the coordinator itself dies, invariant 7
// bounds how long until another acts).
type readiness struct {
	at    time.Time
	ready bool
}

// observer watches the emulator (the truth) and the daemons (what they
// report), checks the invariants on every sample and feeds the view.
type observer struct {
	sim   *ec2sim.Sim
	alloc string
	nodes []*node
	port  int
	hc    *http.Client

	mu        sync.Mutex
	leases    []leaseRecord
	maxTerm   eip.Term
	termDrops []string
	samples   int
	splits    []string
	ready     []readiness
	results   map[string]groupstate.Result // instance ID → last /status
}

func newObserver(sim *ec2sim.Sim, alloc string, nodes []*node, statusPort int) *observer {
	return &observer{sim: sim, alloc: alloc, nodes: nodes, port: statusPort, hc: groupstate.NewHTTPClient(time.Second),
		results: map[string]groupstate.Result{}}
}

// watchTruth samples the EIP's tags until ctx ends.
func (o *observer) watchTruth(ctx context.Context) {
	t := time.NewTicker(truthEvery)
	defer t.Stop()
	for {
		o.sampleTruth(time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (o *observer) sampleTruth(now time.Time) {
	a, ok := o.sim.Address(o.alloc)
	if !ok {
		return
	}
	term, _ := eip.ParseTerm(a.Tags[eip.TagTerm])
	decided, _ := time.Parse(time.RFC3339Nano, a.Tags[eip.TagDecided])
	rec := leaseRecord{seen: now, holder: a.Tags[eip.TagHolder], term: term, reason: a.Tags[eip.TagReason], decided: decided}
	o.mu.Lock()
	defer o.mu.Unlock()
	if term.Less(o.maxTerm) {
		o.termDrops = append(o.termDrops, fmt.Sprintf("%s: eipd:term %s after %s", now.Format(groupview.Clock), term, o.maxTerm))
	}
	if o.maxTerm.Less(term) {
		o.maxTerm = term
	}
	if n := len(o.leases); n == 0 || o.leases[n-1].holder != rec.holder || o.leases[n-1].term != rec.term ||
		o.leases[n-1].reason != rec.reason || !o.leases[n-1].decided.Equal(rec.decided) {
		o.leases = append(o.leases, rec)
	}
}

// watchDaemons reads every live daemon's /status until ctx ends, calling
// show after each sample.
func (o *observer) watchDaemons(ctx context.Context, show func()) {
	t := time.NewTicker(statusEvery)
	defer t.Stop()
	for {
		o.sampleDaemons(ctx)
		show()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (o *observer) sampleDaemons(ctx context.Context) {
	var live []*node
	var hosts []string
	for _, n := range o.nodes {
		if !n.isGone() {
			live = append(live, n)
			hosts = append(hosts, n.inst.PrivateIP)
		}
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	res := groupstate.FetchAll(cctx, o.hc, hosts, o.port)
	cancel()
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	var holders []string
	anyReady, anyCoordinator := false, false
	for i, r := range res {
		if r.Err != nil {
			continue
		}
		for _, e := range r.Status.EIPs {
			if e.AllocationID == o.alloc && e.Role == leader.RoleHolder {
				holders = append(holders, live[i].id())
			}
		}
		if iv, ok := o.sim.Instance(live[i].id()); ok && iv.State == "running" && r.Status.Health == "up" && r.Status.Draining == "" {
			anyReady = true
		}
		if r.Status.IsCoordinator {
			anyCoordinator = true
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.samples++
	if len(holders) > 1 {
		o.splits = append(o.splits, fmt.Sprintf("%s: %s all report holder", now.Format(groupview.Clock), strings.Join(holders, ", ")))
	}
	o.ready = append(o.ready, readiness{at: now, ready: anyReady && anyCoordinator})
	o.results = map[string]groupstate.Result{}
	for i, r := range res {
		o.results[live[i].id()] = r
	}
}

// role is the role a daemon reported for the EIP in the last sample, ""
// when it did not answer.
func (o *observer) role(id string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	r, ok := o.results[id]
	if !ok || r.Err != nil {
		return ""
	}
	for _, e := range r.Status.EIPs {
		if e.AllocationID == o.alloc {
			return e.Role
		}
	}
	return ""
}

// isReady reports whether the daemon answered with health up, not
// draining, and its instance is running: a possible target.
func (o *observer) isReady(id string) bool {
	o.mu.Lock()
	r, ok := o.results[id]
	o.mu.Unlock()
	if !ok || r.Err != nil || r.Status.Health != "up" || r.Status.Draining != "" {
		return false
	}
	iv, ok := o.sim.Instance(id)
	return ok && iv.State == "running"
}

// view is the group as the emulator and the daemons show it now.
func (o *observer) view() groupview.View {
	a, _ := o.sim.Address(o.alloc)
	term := a.Tags[eip.TagTerm]
	o.mu.Lock()
	results := o.results
	leases := append([]leaseRecord(nil), o.leases...)
	o.mu.Unlock()

	e := groupview.EIP{AllocationID: o.alloc, PublicIP: a.PublicIP, Term: term, AssociatedTo: a.InstanceID,
		Unassociated: a.AssociationID == ""}
	var v groupview.View
	for _, n := range o.nodes {
		m := groupview.Member{InstanceID: n.id(), AZ: n.inst.AZ, PrivateIP: n.inst.PrivateIP}
		if iv, ok := o.sim.Instance(n.id()); ok {
			if iv.State != "running" {
				m.EC2State = iv.State
			}
		}
		if r, ok := results[n.id()]; ok && m.EC2State == "" {
			m = groupstate.Member(m, r)
			if m.Roles[o.alloc] == leader.RoleHolder {
				e.Holders = append(e.Holders, n.id())
			}
		} else if m.EC2State == "" {
			m.Problem = "not read yet"
		}
		v.Members = append(v.Members, m)
	}
	v.EIPs = []groupview.EIP{e}
	v.Moves = moves(o.sim.Events(), leases, o.alloc)
	return v
}

// moves are the associations of the EIP with an instance, from the
// emulator's history (ec2sim.Associations).
// Reason, term and decision time come from the first lease naming the new
// instance that was written after the association: the tags the mover
// wrote with the move.
func moves(events []ec2sim.Event, leases []leaseRecord, alloc string) []groupview.Move {
	var out []groupview.Move
	var lastTerm eip.Term
	for _, a := range ec2sim.Associations(events, alloc) {
		m := groupview.Move{Time: a.Time, AllocationID: alloc, From: a.From, To: a.To, Duration: -1}
		for _, l := range leases {
			if l.holder == a.To && lastTerm.Less(l.term) && !l.seen.Before(a.Time) {
				m.Reason, m.Term = l.reason, l.term.String()
				if !l.decided.IsZero() {
					m.Duration = a.Time.Sub(l.decided)
				}
				lastTerm = l.term
				break
			}
		}
		out = append(out, m)
	}
	return out
}
