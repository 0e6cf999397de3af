package e2e

// Helpers shared by the chaos scenarios: what moved, who moved it, how,
// and what the daemons say about it.

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"

	"github.com/eipd/eipd/eip"
)

// Bounds shared by several scenarios, from the daemon's default timings
// (renew 3 s, lease 10 s, skew 1 s, address poll 5 s, health 1 s × fall 3,
// probe 1 s × fall 3); each bound on a client's downtime is about 1.5 to
// 2 times the p99 measured on the coordinator design (docs/CHAOS.md,
// `make chaos RUNS=3`), and says so where it is defined.
const (
	// dProbe is how long the coordinator takes to see a member dead:
	// probe interval 1 s × fall 3.
	dProbe = 3 * time.Second
	// dTrust is how long a daemon acts on, or calls itself holder by, a
	// confirmation: lease − skew (design invariant 6).
	dTrust = dLease - dSkew
	// lagChaos is the read lag (and the instance metadata lag) of the lag
	// scenarios.
	lagChaos = 5 * time.Second
)

// byDaemon: the emulator recorded e as made by one of the cluster's
// instances (a daemon), not by the operator.
func (x *chaosRun) byDaemon(e simEvent) bool { return e.Caller != "" && x.c.node(e.Caller) != nil }

// changes are the client's EIP's association changes since the fault.
func (x *chaosRun) changes() []simEvent { return changesSince(x.c.events(), x.alloc(), x.faultAt) }

// firstAssoc is the first association of the client's EIP to an instance
// other than from since the fault.
func (x *chaosRun) firstAssoc(from *node) simEvent {
	x.Helper()
	e, ok := firstAssocAfter(x.c.events(), x.alloc(), from.id(), x.faultAt)
	if !ok {
		x.Fatalf("no association away from %s since the fault:%s", from.id(), eventList(x.changes()))
	}
	return e
}

// waitFirstAssoc waits for the first association away from `from` since
// the fault and returns it.
func (x *chaosRun) waitFirstAssoc(from *node, timeout time.Duration) simEvent {
	x.Helper()
	var e simEvent
	waitFor(x, timeout, "the EIP to be associated away from "+from.id(), func() bool {
		var ok bool
		e, ok = firstAssocAfter(x.c.events(), x.alloc(), from.id(), x.faultAt)
		return ok
	})
	return e
}

// requireFenced asserts that the move e away from h was a fenced takeover
// made by a daemon (the coordinator): it first disassociated the
// association it read on h, then associated, both calls its own (design:
// a takeover never associates over another association).
func (x *chaosRun) requireFenced(h *node, e simEvent) {
	x.Helper()
	var prev *simEvent
	for _, c := range x.changes() {
		if c.Time.After(e.Time) || (c.Time.Equal(e.Time) && c.Action == e.Action && c.To == e.To) {
			break
		}
		prev = &c
	}
	if !x.byDaemon(e) || e.Action != "associate" || prev == nil || prev.Action != "disassociate" || prev.Caller != e.Caller || prev.From != h.id() {
		x.Fatalf("want a fenced takeover (a daemon disassociates %s's association, then associates), got:%s", h.id(), eventList(x.changes()))
	}
}

// requireHandoff asserts that e is a handoff away from h made by a daemon
// (one AssociateAddress with reassociation: make before break), and that
// the EIP's record gives reason.
func (x *chaosRun) requireHandoff(h *node, e simEvent, reason string) {
	x.Helper()
	if e.Action != "move" || e.From != h.id() || !x.byDaemon(e) {
		x.Fatalf("want a handoff (a move from %s made by a daemon), got:%s", h.id(), eventList(x.changes()))
	}
	waitFor(x, 10*time.Second, "the EIP's record to say "+reason, func() bool {
		return x.c.address(x.alloc()).Tags["eipd:reason"] == reason
	})
}

// onlyMove asserts that the client's EIP changed hands exactly once since
// the fault, away from `from` (a handoff, or a fenced takeover), and
// returns the association.
func (x *chaosRun) onlyMove(from *node) simEvent {
	x.Helper()
	m := assocsIn(x.c.events(), x.alloc(), x.faultAt)
	if len(m) != 1 || m[0].To == from.id() || (m[0].From != from.id() && m[0].From != "") {
		x.Fatalf("want one move away from %s since the fault, got:%s", from.id(), eventList(x.changes()))
	}
	if m[0].From == "" {
		x.requireFenced(from, m[0])
	}
	return m[0]
}

// failoverReason asserts that n counted exactly one move of alloc to
// itself with reason (eipd_failovers_total, counted by the new holder).
func (x *chaosRun) failoverReason(n *node, alloc, reason string) {
	x.Helper()
	var got float64
	waitFor(x, 10*time.Second, n.id()+" to count the move with reason "+reason, func() bool {
		got = n.metric("eipd_failovers_total", map[string]string{"allocation_id": alloc, "reason": reason})
		return got >= 1
	})
	if got != 1 {
		x.Fatalf("%s counted %v moves of %s with reason %s, want 1", n.id(), got, alloc, reason)
	}
}

// onHolder is a during() condition: the client's EIP is associated with n.
func (x *chaosRun) onHolder(n *node) func() error {
	return func() error {
		if h := x.c.holder(x.alloc()); h != n.id() {
			return fmt.Errorf("the EIP moved to %q:%s", h, eventList(x.changes()))
		}
		return nil
	}
}

// staysOn asserts that the client's EIP stays associated with n for d,
// whatever n's daemon reports (it may be dead).
func (x *chaosRun) staysOn(n *node, d time.Duration, what string) {
	x.Helper()
	during(x, d, what, x.onHolder(n))
}

// term is alloc's eipd:term now; the run fails when it does not parse.
func (x *chaosRun) term(alloc string) eip.Term {
	x.Helper()
	v := x.c.address(alloc).Tags["eipd:term"]
	t, ok := eip.ParseTerm(v)
	if !ok {
		x.Fatalf("eipd:term of %s is %q, want epoch.seq", alloc, v)
	}
	return t
}

// newCoordinator waits until one coordinator other than old acts with a
// higher epoch than oldEpoch, and every running daemon follows it; it
// returns it.
func (x *chaosRun) newCoordinator(old *node, oldEpoch int64, timeout time.Duration) (*node, daemonStatus) {
	x.Helper()
	var co *node
	var cs daemonStatus
	waitFor(x, timeout, "another member to coordinate with a higher epoch", func() bool {
		var ok bool
		co, cs, ok = x.c.tryCoordinator()
		return ok && co != old && cs.Epoch > oldEpoch
	})
	return co, cs
}

// neverCoordinated fails the run if n ever said it coordinates and may act
// since the run began.
func (x *chaosRun) neverCoordinated(n *node) {
	x.Helper()
	i := x.c.index(n)
	for _, r := range x.s.between(time.Time{}, time.Now()) {
		if s := r.sts[i]; s != nil && s.acting() {
			x.Fatalf("%s coordinated at %s", n.id(), r.at.Format("15:04:05.000"))
		}
	}
}

// operatorReadShows reads the client's EIP as the operator (a Describe,
// subject to the emulator's read lag) and returns the instance it shows
// it on.
func (x *chaosRun) operatorReadShows() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, err := x.c.operatorEC2().DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{x.alloc()}})
	if err != nil {
		return "", err
	}
	if len(out.Addresses) != 1 {
		return "", fmt.Errorf("DescribeAddresses %s: %d addresses", x.alloc(), len(out.Addresses))
	}
	return aws.ToString(out.Addresses[0].InstanceId), nil
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

// coordinatorsEIP picks the EIP the coordinator holds (scenarios with as
// many EIPs as members, one each): chaosScenario.pick.
func coordinatorsEIP(x *chaosRun) int {
	x.Helper()
	var held map[string]int
	waitFor(x, 3*time.Minute, "every member to hold one EIP", func() bool {
		held = map[string]int{}
		for i := range x.c.info.EIPs {
			held[x.c.holder(x.c.alloc(i))]++
		}
		for _, n := range x.c.nodes {
			if held[n.id()] != 1 {
				return false
			}
		}
		return true
	})
	co, _ := x.c.coordinator(30 * time.Second)
	for i := range x.c.info.EIPs {
		if x.c.holder(x.c.alloc(i)) == co.id() {
			return i
		}
	}
	x.Fatalf("the coordinator %s holds none of the EIPs", co.id())
	return 0
}
