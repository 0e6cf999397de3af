package leader

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// The safety invariants of docs/design.md (Safety invariants) as the model-based test checks
// them: on every change EC2 applies (terms, moves) and after every step
// (holders, dangling EIPs, released EIPs).
const (
	invOneHolder     = "1 one holder"
	invTermsGrow     = "2 terms only grow"
	invNoDangling    = "3 no dangling EIP"
	invOneMove       = "4 one move per fault"
	invReleasedGone  = "8 released means gone"
	releasedAttempts = 3   // CreateTags a daemon may still send to a released EIP
	trailKept        = 200 // events kept with a violation
)

// violation is one broken invariant and the events that led to it.
type violation struct {
	Invariant string
	At        time.Duration
	Msg       string
	Trail     []simEvent
}

func (v violation) String() string {
	return fmt.Sprintf("invariant %s broken at %.1fs: %s", v.Invariant, v.At.Seconds(), v.Msg)
}

type invariants struct {
	s *sim
	// violations holds the first violation of each invariant; count how
	// often each was seen.
	violations []violation
	count      map[string]int

	overlapSince  map[string]time.Time // EIP → since when several daemons report holder
	terms         map[string]termMark  // EIP → the last term written, and by whom
	danglingSince map[string]time.Time // EIP → since when unassociated while a member is ready
	moveEpoch     int                  // s.faults when moves was last cleared
	moves         map[string][]string  // EIP → daemon moves since the last fault
	fence         map[string]fenceMark // EIP → a daemon's DisassociateAddress this step (a claim's first half)
	released      map[string]*releaseWatch
	pending       []ec2Change // changes EC2 applied, not yet checked
	daemonMoves   int         // every move by a daemon, for the test's own sanity check
}

type termMark struct {
	term int64
	by   string
	at   time.Duration
}

type fenceMark struct {
	caller string
	step   int
}

type releaseWatch struct {
	attempts  map[string]int           // CreateTags naming it, per daemon, since the release
	reachable map[string]time.Duration // time each daemon ran with the API reachable since
}

func newInvariants(s *sim) *invariants {
	return &invariants{s: s, count: map[string]int{}, overlapSince: map[string]time.Time{}, terms: map[string]termMark{},
		danglingSince: map[string]time.Time{}, moves: map[string][]string{}, fence: map[string]fenceMark{},
		released: map[string]*releaseWatch{}}
}

// violate records a broken invariant (the first of each kind with its
// trail; later ones only counted).
func (v *invariants) violate(inv, format string, args ...any) {
	v.count[inv]++
	if v.count[inv] > 1 {
		return
	}
	msg := fmt.Sprintf(format, args...)
	v.s.event("CHECK", "VIOLATION of invariant %s: %s", inv, msg)
	v.violations = append(v.violations, violation{Invariant: inv, At: v.s.elapsed(), Msg: msg, Trail: v.s.log.last(trailKept)})
}

// onChange sees every change EC2 applies. It is checked by flush, once
// the call that made it is in the trail.
func (v *invariants) onChange(c ec2Change) { v.pending = append(v.pending, c) }

// flush checks the changes EC2 applied since the last flush.
func (v *invariants) flush() {
	changes := v.pending
	v.pending = nil
	for _, c := range changes {
		v.checkChange(c)
	}
}

func (v *invariants) checkChange(c ec2Change) {
	switch c.Op {
	case "CreateTags":
		if strings.HasPrefix(c.Resource, "eipalloc-") {
			v.checkTermsOnlyGrow(c)
		}
	case "AssociateAddress", "DisassociateAddress":
		if c.Caller != "operator" {
			v.checkOneMovePerFault(c)
		}
	case "ReleaseAddress":
		v.released[c.Resource] = &releaseWatch{attempts: map[string]int{}, reachable: map[string]time.Duration{}}
	}
}

// afterStep runs the checks on the state the step left.
func (v *invariants) afterStep() {
	v.flush()
	v.checkOneHolder()
	v.checkNoDangling()
	v.checkReleasedForgotten()
}

// checkOneHolder (§9.1): for each EIP, at most one running, scheduled
// daemon reports role holder. Two may for at most one renew interval, and
// only while each one that EC2 does not associate the EIP with is cut off
// from the API (partitioned, or its last call failed): a daemon that can
// read the API has no excuse for believing an EIP is its own.
func (v *invariants) checkOneHolder() {
	now := v.s.now
	for _, alloc := range v.s.allocs {
		if v.s.released[alloc] {
			continue
		}
		var holders []*simDaemon
		for _, d := range v.s.daemons {
			if d.live() && d.roleOf(alloc) == RoleHolder {
				holders = append(holders, d)
			}
		}
		if len(holders) < 2 {
			delete(v.overlapSince, alloc)
			continue
		}
		since, ok := v.overlapSince[alloc]
		if !ok {
			since = now
			v.overlapSince[alloc] = now
		}
		owner := v.ownerOf(alloc)
		ids := daemonIDs(holders)
		for _, d := range holders {
			if d.id != owner && !d.conn.cutOff() {
				v.violate(invOneHolder, "%s report holder of %s; EC2 has it on %s, and %s can reach the API",
					ids, alloc, orNone(owner), d.id)
				break
			}
		}
		if d := now.Sub(since); d > simTiming.RenewInterval {
			v.violate(invOneHolder, "%s report holder of %s for %.1fs, longer than the renew interval (%v); EC2 has it on %s",
				ids, alloc, d.Seconds(), simTiming.RenewInterval, orNone(owner))
		}
	}
}

// checkTermsOnlyGrow (§9.2), on every CreateTags on an EIP: the eipd:term
// it carries never decreases.
func (v *invariants) checkTermsOnlyGrow(c ec2Change) {
	newTerm, ok := parseModelTerm(c.NewTags)
	if !ok {
		return
	}
	if oldTerm, ok := parseModelTerm(c.OldTags); ok && newTerm < oldTerm {
		prev := v.terms[c.Resource]
		v.violate(invTermsGrow, "eipd:term of %s went %d -> %d, written by %s (holder=%s); term %d was first written by %s at %.1fs",
			c.Resource, oldTerm, newTerm, c.Caller, c.NewTags[eip.TagHolder], oldTerm, orNone(prev.by), prev.at.Seconds())
	}
	if newTerm != v.terms[c.Resource].term || v.terms[c.Resource].by == "" {
		v.terms[c.Resource] = termMark{term: newTerm, by: c.Caller, at: v.s.elapsed()}
	}
}

func parseModelTerm(tags map[string]string) (int64, bool) {
	t, err := strconv.ParseInt(tags[eip.TagTerm], 10, 64)
	return t, err == nil
}

// checkNoDangling (§9.3): while at least one member is ready, an EIP is
// unassociated for at most one lease duration in a row.
func (v *invariants) checkNoDangling() {
	now := v.s.now
	ready := v.readyMembers()
	addrs := v.s.world.current().addrs
	for _, alloc := range slices.Sorted(maps.Keys(addrs)) {
		if addrs[alloc].AssociationID != "" || len(ready) == 0 {
			delete(v.danglingSince, alloc)
			continue
		}
		since, ok := v.danglingSince[alloc]
		if !ok {
			since = now
			v.danglingSince[alloc] = now
		}
		if d := now.Sub(since); d > simTiming.LeaseDuration {
			v.violate(invNoDangling, "%s unassociated for %.1fs, longer than the lease (%v), while %v ready",
				alloc, d.Seconds(), simTiming.LeaseDuration, ready)
		}
	}
}

// readyMembers are the instances that could take an EIP now: eipd runs
// and is scheduled, own health up, not draining (lifecycle notice,
// SIGTERM), the API reachable without faults (read lag allowed), and a
// private IP with no EIP on it.
func (v *invariants) readyMembers() []string {
	var ids []string
	for _, d := range v.s.daemons {
		if d.live() && (simHealth{d}).Status() == health.Up && !d.notice && d.stopBy.IsZero() &&
			!d.conn.impaired() && v.freeSlot(d) {
			ids = append(ids, d.id)
		}
	}
	return ids
}

func (v *invariants) freeSlot(d *simDaemon) bool {
	for _, ip := range d.ips {
		if v.s.world.current().addressOn(d.ident.NetworkInterfaceID, ip) == nil {
			return true
		}
	}
	return false
}

// checkOneMovePerFault (§9.4), on every association change a daemon makes:
// each EIP changes association at most once between two injected faults.
// A claim (DisassociateAddress then AssociateAddress by the same daemon,
// with no other change of that EIP between: a lost answer may split them
// over two passes) is one move; an EIP knocked off its private IP by another
// EIP's association moved too.
func (v *invariants) checkOneMovePerFault(c ec2Change) {
	if v.moveEpoch != v.s.faults {
		v.moveEpoch = v.s.faults
		clear(v.moves)
		clear(v.fence)
	}
	what := fmt.Sprintf("%.1fs %s %s -> %s", v.s.elapsed().Seconds(), c.Caller, orNone(c.From), orNone(c.To))
	if c.DisplacedBy != "" {
		what = fmt.Sprintf("%.1fs %s associated %s to %s, which knocked it off", v.s.elapsed().Seconds(), c.Caller, c.DisplacedBy, c.From)
	}
	switch {
	case c.Op == "DisassociateAddress":
		v.fence[c.Resource] = fenceMark{caller: c.Caller, step: v.s.steps}
	case c.DisplacedBy == "" && v.fence[c.Resource].caller == c.Caller:
		// The second half of a claim: the same move.
		delete(v.fence, c.Resource)
		ms := v.moves[c.Resource]
		ms[len(ms)-1] += ", then -> " + c.To
		return
	default:
		delete(v.fence, c.Resource)
	}
	v.daemonMoves++
	v.moves[c.Resource] = append(v.moves[c.Resource], what)
	if ms := v.moves[c.Resource]; len(ms) > 1 {
		v.violate(invOneMove, "%s moved %d times by daemons with no fault in between: %s",
			c.Resource, len(ms), strings.Join(ms, "; "))
	}
}

// checkReleasedForgotten (§9.8): a daemon sends at most a couple of
// CreateTags to a released EIP, and drops it from /status once it had a
// standby poll and a lease with the API reachable to notice.
func (v *invariants) checkReleasedForgotten() {
	grace := simTiming.StandbyPoll + simTiming.LeaseDuration
	for _, alloc := range slices.Sorted(maps.Keys(v.released)) {
		w := v.released[alloc]
		for _, d := range v.s.daemons {
			if !d.live() || d.conn.impaired() {
				continue
			}
			w.reachable[d.id] += simStep
			if role := d.roleOf(alloc); role != "" && w.reachable[d.id] > grace {
				v.violate(invReleasedGone, "%s still lists released %s (role %s) after %.0fs with the API reachable",
					d.id, alloc, role, w.reachable[d.id].Seconds())
			}
		}
	}
}

// tagsAttempted sees every CreateTags that reached EC2.
func (v *invariants) tagsAttempted(caller string, resources []string, err error) {
	if err == nil {
		return
	}
	for _, r := range resources {
		if w := v.released[r]; w != nil {
			w.attempts[caller]++
			if n := w.attempts[caller]; n > releasedAttempts {
				v.violate(invReleasedGone, "%s sent CreateTags to released %s %d times", caller, r, n)
			}
		}
	}
}

// ownerOf is the instance EC2 associates alloc with now, or "".
func (v *invariants) ownerOf(alloc string) string {
	if a := v.s.world.current().addrs[alloc]; a != nil {
		return a.InstanceID
	}
	return ""
}

func daemonIDs(ds []*simDaemon) string {
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.id
	}
	return strings.Join(ids, " and ")
}
