package leader

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// The safety invariants of docs/design.md as the model test checks them:
// on every change EC2 applies (terms, moves, renewals), on every call a
// daemon makes (dated reads), and every simCheck (holders, coordinators,
// trust, dangling and released EIPs).
const (
	invOneHolder   = "1 one holder"
	invTermsGrow   = "2 terms only grow"
	invNoDangling  = "3 no dangling EIP"
	invOneMove     = "4 one move per fault"
	invDatedReads  = "5 reads are dated"
	invEarnedTrust = "6 trust is earned"
	invClocks      = "7 clocks are checked"
	invReleased    = "8 released means gone"
	invRenewals    = "9 renewals keep time"
	invDeadDaemon  = "10 dead daemon, live proxy"
	invCutOff      = "11 cut off is not down"
	trailKept      = 200
)

// allInvariants lists them in order, for summaries.
var allInvariants = []string{invOneHolder, invTermsGrow, invNoDangling, invOneMove, invDatedReads, invEarnedTrust,
	invClocks, invReleased, invRenewals, invDeadDaemon, invCutOff}

// violation is one broken invariant and the events that led to it.
type violation struct {
	Invariant string
	At        time.Duration
	Msg       string
	Trail     []string
}

func (v violation) String() string {
	return fmt.Sprintf("invariant %s broken at %.1fs: %s", v.Invariant, v.At.Seconds(), v.Msg)
}

type invariants struct {
	s          *sim
	violations []violation // the first of each invariant
	count      map[string]int

	pending []ec2Change
	// 2: the highest term each EIP carried by an acknowledged write, and
	// late or unacknowledged writes that lowered it, waiting for a repair.
	terms   map[string]eip.Term
	lowered map[string]time.Time
	// 3: since when each EIP is unassociated while a member is ready.
	danglingSince map[string]time.Time
	// 4: moves by daemons of each EIP since the last fault concerning it.
	moves map[string][]string
	fence map[string]string // a daemon's disassociation: the first half of a takeover
	// 5: the end of each daemon's last move call of each EIP (true time),
	// and the move it belonged to.
	moveEnd map[string]time.Time
	moveOf  map[string]*move
	// 6, 9: the start (true time) of each daemon's last acknowledged
	// write of the group lease naming itself, and the last renewal start
	// while its calls were free of faults.
	leaseOK   map[string]time.Time
	cleanFrom map[string]time.Time
	// 7: the last moment a coordinator acted, and since when a member was
	// fit with no coordinator acting.
	actedAt     time.Time
	actingSince map[string]time.Time
	// claimedAt: when each daemon last wrote a new epoch into the lease;
	// faultAt: when a fault last hit each daemon. A claimant hit by a
	// fault before it acts makes the others wait a lease again: a new
	// fault, and the liveness bound restarts from it.
	claimedAt, faultAt map[string]time.Time
	// serving: since when each daemon's instance serves and stays
	// (running, proxy up, own check up, not leaving); seen: since when
	// each pair of daemons (a|b) could reach each other, and since when
	// each daemon reaches the API with its eipd running (the heartbeat).
	serving, seen, witness map[string]time.Time
	// lastMove: when a daemon last moved each EIP; rebalance: whether a
	// daemon's last move call of an EIP (daemon|EIP) was a rebalance.
	lastMove  map[string]time.Time
	rebalance map[string]bool
	// handMoved: when the operator last moved each EIP by hand;
	// handoffAsked: when the operator last ran eipd handoff on a member.
	handMoved    map[string]time.Time
	handoffAsked map[string]time.Time
	overlapFrom  time.Time
	noCoordFrom  time.Time
	// 8: released EIPs; when each daemon's calls last had a fault.
	released map[string]time.Time
	dirtyAt  map[string]time.Time

	daemonMoves int
}

func newInvariants(s *sim) *invariants {
	return &invariants{s: s, count: map[string]int{}, terms: map[string]eip.Term{}, lowered: map[string]time.Time{},
		danglingSince: map[string]time.Time{}, moves: map[string][]string{}, fence: map[string]string{},
		moveEnd: map[string]time.Time{}, moveOf: map[string]*move{}, leaseOK: map[string]time.Time{}, cleanFrom: map[string]time.Time{},
		actingSince: map[string]time.Time{}, released: map[string]time.Time{}, dirtyAt: map[string]time.Time{},
		claimedAt: map[string]time.Time{}, faultAt: map[string]time.Time{}, lastMove: map[string]time.Time{}, rebalance: map[string]bool{}, handMoved: map[string]time.Time{}, handoffAsked: map[string]time.Time{},
		serving: map[string]time.Time{}, seen: map[string]time.Time{}, witness: map[string]time.Time{}}
}

// violate records a broken invariant: the first of each with its trail,
// later ones counted.
func (v *invariants) violate(inv, format string, args ...any) {
	v.count[inv]++
	if v.count[inv] > 1 {
		return
	}
	msg := fmt.Sprintf(format, args...)
	v.s.event("CHECK", "VIOLATION of invariant %s: %s", inv, msg)
	v.violations = append(v.violations, violation{Invariant: inv, At: v.s.elapsed(), Msg: msg, Trail: v.s.log.last(trailKept)})
}

// onChange sees every change EC2 applies; flush checks them.
func (v *invariants) onChange(c ec2Change) { v.pending = append(v.pending, c) }

func (v *invariants) flush() {
	changes := v.pending
	v.pending = nil
	for _, c := range changes {
		if c.Op == opFault {
			v.faultOn(c.Resource)
			continue
		}
		v.s.event("EC2", "%s", describeChange(c))
		switch c.Op {
		case "CreateTags":
			if strings.HasPrefix(c.Resource, "eipalloc-") {
				v.checkTermsOnlyGrow(c)
				if c.Caller != "" && (c.NewTags[eip.TagEpoch] != c.OldTags[eip.TagEpoch] ||
					c.NewTags[eip.TagCoordinator] != c.OldTags[eip.TagCoordinator]) {
					v.claimedAt[c.Caller] = c.At // not the check's step: a fault may come in between
				}
			}
		case "AssociateAddress", "DisassociateAddress":
			if c.Caller != "" {
				v.checkOneMovePerFault(c)
			}
		case "ReleaseAddress":
			v.released[c.Resource] = v.s.now
		}
	}
}

func describeChange(c ec2Change) string {
	late := ""
	if c.Late {
		late = " (late)"
	}
	switch c.Op {
	case "CreateTags":
		diff := map[string]string{}
		for k, val := range c.NewTags {
			if c.OldTags[k] != val {
				diff[k] = val
			}
		}
		return fmt.Sprintf("%s CreateTags %s %v%s", orOperator(c.Caller), c.Resource, diff, late)
	case "AssociateAddress":
		if c.DisplacedBy != "" {
			return fmt.Sprintf("%s knocked %s off %s by associating %s", orOperator(c.Caller), c.Resource, c.From, c.DisplacedBy)
		}
		return fmt.Sprintf("%s AssociateAddress %s %s -> %s%s", orOperator(c.Caller), c.Resource, orNone(c.From), c.To, late)
	}
	return fmt.Sprintf("%s %s %s %s%s", orOperator(c.Caller), c.Op, c.Resource, orNone(c.From), late)
}

func orOperator(s string) string {
	if s == "" {
		return "operator"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "nothing"
	}
	return s
}

// afterStep runs the checks on the state now.
func (v *invariants) afterStep() {
	v.trackServing()
	v.flush()
	for _, d := range v.s.daemons {
		if !v.clean(d) || d.loop == nil || d.loop.co == nil {
			delete(v.cleanFrom, d.id) // renewal gaps count only while all is well
		}
		if !v.clean(d) {
			v.dirtyAt[d.id] = v.s.now
		}
	}
	v.checkOneHolder()
	v.checkTrust()
	v.checkCoordinators()
	v.checkNoDangling()
	v.checkReleased()
	v.checkRepaired()
}

// status is what a daemon's /status says now, if it answers.
func (v *invariants) status(d *simDaemon) (Status, bool) {
	if !d.live() {
		return Status{}, false
	}
	return d.loop.Status(), true
}

// checkOneHolder (§1): for each EIP, at most one daemon reports holder.
func (v *invariants) checkOneHolder() {
	for _, alloc := range v.s.allocs {
		var holders []string
		for _, d := range v.s.daemons {
			if st, ok := v.status(d); ok {
				if e := st.eipOf(alloc); e != nil && e.Role == RoleHolder {
					holders = append(holders, d.id)
				}
			}
		}
		if len(holders) > 1 {
			v.violate(invOneHolder, "%s reported holder by %s (EC2 associates it with %q)", alloc,
				strings.Join(holders, " and "), v.ownerOf(alloc))
		}
	}
}

// checkTrust (§6): a daemon calls itself coordinator, or holder of an
// EIP, only within lease − skew of the start of an acknowledged write of
// the group lease by the coordinator whose word it relies on.
func (v *invariants) checkTrust() {
	tw := simTiming.trustWindow() + 50*time.Millisecond // a call's own network delay
	for _, d := range v.s.daemons {
		st, ok := v.status(d)
		if !ok {
			continue
		}
		if st.IsCoordinator && st.ValidForSeconds > 0 {
			if ok := v.leaseOK[d.id]; ok.IsZero() || v.s.now.Sub(ok) > tw {
				v.violate(invEarnedTrust, "%s acts as coordinator %.1fs after its last acknowledged lease write", d.id,
					v.s.now.Sub(ok).Seconds())
			}
		}
		for _, e := range st.EIPs {
			if e.Role != RoleHolder {
				continue
			}
			by := d.loop.eips[e.AllocationID].wordBy
			if ok := v.leaseOK[by]; ok.IsZero() || v.s.now.Sub(ok) > tw {
				v.violate(invEarnedTrust, "%s reports holder of %s on the word of %s, %.1fs after that coordinator's last acknowledged lease write",
					d.id, e.AllocationID, by, v.s.now.Sub(ok).Seconds())
			}
		}
	}
}

// leaseWritten sees every acknowledged write of the group lease.
func (v *invariants) leaseWritten(d *simDaemon, l eip.GroupLease, tk *ticket) {
	if tk == nil || l.Coordinator != d.id {
		return
	}
	if tk.arrive.After(v.leaseOK[d.id]) {
		v.leaseOK[d.id] = tk.arrive
	}
	// §9: renewals keep time while the coordinator and its calls are well.
	if d.loop.co != nil && d.loop.co.accepted && v.clean(d) {
		if from, ok := v.cleanFrom[d.id]; ok {
			limit := simTiming.RenewInterval + d.loop.renewTimeout() + 200*time.Millisecond
			if gap := tk.arrive.Sub(from); gap > limit {
				v.violate(invRenewals, "%s renewed the group lease %.1fs after its previous renewal (bound %v) with no fault on its calls",
					d.id, gap.Seconds(), limit)
			}
		}
		v.cleanFrom[d.id] = tk.arrive
	} else {
		delete(v.cleanFrom, d.id)
	}
}

// renewCall sees the EIPs a renewal is sent to (§9).
func (v *invariants) renewCall(d *simDaemon, ids []string) {
	co := d.loop.co
	if co == nil {
		return
	}
	for _, id := range ids {
		if m := co.moves[id]; m != nil && m.inFlight && m.stage >= stageDisassociate {
			v.violate(invRenewals, "%s renews the group lease on %s while its move of it is under way", d.id, id)
		}
	}
}

// clean: nothing hampers d's calls or its scheduling.
func (v *invariants) clean(d *simDaemon) bool {
	a := d.api
	return d.live() && !a.partition && a.errRatio == 0 && a.throttleRatio == 0 && a.lostRatio == 0 && a.latMax <= 100*time.Millisecond
}

// checkCoordinators (§7): at most one daemon acts as coordinator at a
// time, except within one deadline window (two that claimed at once), and
// one acts within lease + skew + an election of the last one's end while a
// member is fit to.
func (v *invariants) checkCoordinators() {
	var acting []string
	for _, d := range v.s.daemons {
		if st, ok := v.status(d); ok && st.IsCoordinator && st.ValidForSeconds > 0 {
			acting = append(acting, d.id)
			if _, ok := v.actingSince[d.id]; !ok {
				v.actingSince[d.id] = v.s.now
			}
		} else {
			delete(v.actingSince, d.id)
		}
	}
	if len(acting) > 1 {
		// Two members that claimed at once both act until the one that
		// gives way hears of the other (its next probe of a member that
		// follows it): never for longer than a coordinator's deadline.
		if v.overlapFrom.IsZero() {
			v.overlapFrom = v.s.now
		}
		if d := v.s.now.Sub(v.overlapFrom); d > simTiming.trustWindow() {
			v.violate(invClocks, "%s act as coordinator at once for %.1fs", strings.Join(acting, " and "), d.Seconds())
		}
	} else {
		v.overlapFrom = time.Time{}
	}
	if len(acting) > 0 {
		v.actedAt, v.noCoordFrom = v.s.now, time.Time{}
		return
	}
	if len(v.fitMembers()) == 0 {
		v.noCoordFrom = time.Time{}
		return
	}
	if v.noCoordFrom.IsZero() {
		v.noCoordFrom = v.s.now
	}
	from := v.noCoordFrom
	if v.actedAt.After(from) {
		from = v.actedAt
	}
	base := from
	for id, claimed := range v.claimedAt {
		if f := v.faultAt[id]; claimed.After(base) && f.After(claimed) && f.After(from) {
			from = f
		}
	}
	if limit := simTiming.staleAfter() + electionSlack; v.s.now.Sub(from) > limit {
		v.violate(invClocks, "no coordinator acted for %.1fs (bound %v) while %v were fit to",
			v.s.now.Sub(from).Seconds(), limit, v.fitMembers())
	}
}

// electionSlack is what a claim takes once the lease is stale: the rank
// delay (at most 14 steps), a read, the claim's write and a probe round;
// plus, once, the idle bound of a claimant whose own claim failed (a
// member with faulty calls that claimed first, at the same epoch and with
// precedence, makes the others wait that long before claiming again).
var electionSlack = 14*200*time.Millisecond + 2*time.Second + simTiming.idleAfter(true)

// fitMembers could coordinate now: eipd runs, its check is up, it is not
// leaving, IAM lets it write, and its calls are free of faults.
func (v *invariants) fitMembers() []string {
	var ids []string
	for _, d := range v.s.daemons {
		if d.live() && d.health == health.Up && !d.spot && !d.loop.stopping && d.loop.drain == "" && v.clean(d) &&
			!d.loop.now().Before(d.loop.unfitUntil) {
			ids = append(ids, d.id)
		}
	}
	return ids
}

// checkTermsOnlyGrow (§2): the term an EIP's record carries never goes down
// by a write the caller saw succeed. A write EC2 applied late, or whose
// answer was lost, may carry an older term: the coordinator repairs it
// (checkRepaired).
func (v *invariants) checkTermsOnlyGrow(c ec2Change) {
	val, ok := c.NewTags[eip.TagTerm]
	if !ok || val == c.OldTags[eip.TagTerm] {
		return
	}
	t, ok := eip.ParseTerm(val)
	if !ok {
		return // a hand-written value that does not parse: it counts as absent
	}
	top := v.terms[c.Resource]
	switch {
	case c.Caller == "":
		// The operator's hand-written terms are not eipd's: the
		// invariant is about what eipd writes (a coordinator seeing a
		// later epoch steps down, and the next one starts above it).
	case !t.Less(top):
		v.terms[c.Resource] = t
		delete(v.lowered, c.Resource)
	case c.Caller == "":
		// The operator wrote a term by hand: not eipd's doing.
	case c.Late || !c.Acked:
		if _, ok := v.lowered[c.Resource]; !ok {
			v.lowered[c.Resource] = v.s.now
		}
	default:
		v.violate(invTermsGrow, "%s wrote term %s on %s after %s", c.Caller, t, c.Resource, top)
	}
}

// checkRepaired: a term lowered by a late write is raised again within a
// lease and a read.
func (v *invariants) checkRepaired() {
	limit := simTiming.LeaseDuration + simTiming.AddressPoll + 2*time.Second
	for alloc, at := range v.lowered {
		if v.s.released[alloc] || v.acting() == nil {
			v.lowered[alloc] = v.s.now
			continue
		}
		if d := v.s.now.Sub(at); d > limit {
			v.violate(invTermsGrow, "a late write lowered the term of %s %.1fs ago and no coordinator rewrote it", alloc, d.Seconds())
			delete(v.lowered, alloc)
		}
	}
}

// acting is the daemon that acts as coordinator now, or nil.
func (v *invariants) acting() *simDaemon {
	for _, d := range v.s.daemons {
		if st, ok := v.status(d); ok && st.IsCoordinator && st.ValidForSeconds > 0 {
			return d
		}
	}
	return nil
}

// checkNoDangling (§3): while a coordinator acts with its calls going
// through and a member is ready, an EIP is unassociated for at most one
// lease duration. (A coordinator whose calls fail gives the role up; the
// election's own bound is checkCoordinators'.)
func (v *invariants) checkNoDangling() {
	now := v.s.now
	co := v.acting()
	ready := v.readyMembers(co)
	addrs := v.s.world.current().addrs
	for _, alloc := range slices.Sorted(maps.Keys(addrs)) {
		if addrs[alloc].AssociationID != "" || len(ready) == 0 || co == nil || !v.clean(co) {
			delete(v.danglingSince, alloc)
			continue
		}
		since, ok := v.danglingSince[alloc]
		if !ok {
			since = now
			v.danglingSince[alloc] = now
		}
		if d := now.Sub(since); d > simTiming.LeaseDuration {
			v.violate(invNoDangling, "%s unassociated for %.1fs, longer than the lease (%v), while %s coordinates and %v are ready",
				alloc, d.Seconds(), simTiming.LeaseDuration, co.id, ready)
		}
	}
}

// readyMembers could take an EIP now: fit, reachable from the coordinator,
// and with a private IP that carries no EIP.
func (v *invariants) readyMembers(co *simDaemon) []string {
	var ids []string
	for _, id := range v.fitMembers() {
		d := v.s.daemon(id)
		if d.loop.noticed[eip.NoticeRebalance] || (co != nil && co != d && !v.s.reachable(co, d)) || !v.freeSlot(d) {
			continue
		}
		ids = append(ids, id)
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

// faultOn marks a fault that concerns the given EIPs (§4). It takes its
// place after the changes EC2 applied before it that the checks have not
// seen yet (they see them at the end of the step): a move that landed
// before the fault comes before it, not after.
func (v *invariants) faultOn(allocs ...string) {
	for _, a := range allocs {
		if len(v.pending) > 0 {
			v.pending = append(v.pending, ec2Change{Op: opFault, Resource: a})
			continue
		}
		delete(v.moves, a)
		delete(v.fence, a)
	}
}

// opFault marks, among the changes waiting for the checks, a fault that
// concerns the EIP (faultOn).
const opFault = "fault"

// trackServing keeps, for invariants 10 and 11, since when each member
// serves, each pair reaches each other and each member could witness for
// itself (eipd running, API reachable).
func (v *invariants) trackServing() {
	since := func(m map[string]time.Time, k string, on bool) {
		if !on {
			delete(m, k)
		} else if _, ok := m[k]; !ok {
			m[k] = v.s.now
		}
	}
	for _, d := range v.s.daemons {
		leaving := d.spot || d.manual != nil || (d.loop != nil && (d.loop.stopping || d.loop.drain != ""))
		since(v.serving, d.id, d.proxyServes() && d.health == health.Up && !leaving)
		since(v.witness, d.id, d.live() && !d.api.partition && d.api.errRatio == 0 && d.api.throttleRatio == 0 && d.api.lostRatio == 0)
		for _, e := range v.s.daemons {
			if d.id < e.id {
				since(v.seen, d.id+"|"+e.id, v.s.reachable(d, e))
			}
		}
	}
}

// steady: the condition held for the whole window before now.
func (v *invariants) steady(m map[string]time.Time, k string) bool {
	at, ok := m[k]
	return ok && v.s.now.Sub(at) >= neededWindow
}

func (v *invariants) pairSteady(a, b *simDaemon) bool {
	k := a.id + "|" + b.id
	if b.id < a.id {
		k = b.id + "|" + a.id
	}
	return v.steady(v.seen, k)
}

// neededWindow: how long a member must have served (and been reachable)
// before a move off it counts against invariants 10 and 11: a probe fall,
// the confirmation, and a move's calls.
var neededWindow = time.Duration(simTiming.ProbeFall+2)*simTiming.ProbeInterval + 2*time.Second

// checkNeeded (§10, §11), on every move of an EIP off a member: nothing
// moves off a member that serves (its eipd may be dead or paused) while
// the coordinator reaches it, nor, when the coordinator does not, while
// another live member reaches it (three or more) or, in a group of two,
// while it reaches the API to write its heartbeat. Rebalances and manual
// handoffs are planned and exempt; a group of two whose reads lag is exempt (a lagging member
// list may miss a heartbeat: two faults).
func (v *invariants) checkNeeded(c ec2Change) {
	m, co := v.s.daemon(strings.Split(c.From, "/")[0]), v.s.daemon(c.Caller)
	if m == nil || co == nil || m == co || v.rebalance[c.Caller+"|"+c.Resource] || !v.steady(v.serving, m.id) {
		return
	}
	if at, ok := v.handoffAsked[m.id]; ok && v.s.now.Sub(at) < neededWindow {
		// The operator asked for it (eipd handoff on m): a planned move,
		// even when the request ended before the check saw the move.
		return
	}
	if v.pairSteady(co, m) {
		v.violate(invDeadDaemon, "%s moved %s off %s, which serves and which it reaches (%s)",
			co.id, c.Resource, m.id, describeDaemon(m))
		return
	}
	running := 0
	for _, x := range v.s.daemons {
		if x.state == "running" {
			running++
		}
	}
	for _, x := range v.s.daemons {
		if x != co && x != m && x.live() && x.statusAnswers() && v.pairSteady(co, x) && v.pairSteady(x, m) {
			v.violate(invCutOff, "%s moved %s off %s, which serves and which %s reaches", co.id, c.Resource, m.id, x.id)
			return
		}
	}
	if running == 2 && v.s.readLag == 0 && v.steady(v.witness, m.id) {
		v.violate(invCutOff, "%s moved %s off %s, which serves and reaches the API (group of two)", co.id, c.Resource, m.id)
	}
}

func describeDaemon(d *simDaemon) string {
	return fmt.Sprintf("eipd running %v, paused %v, status port blocked %v", d.eipd, d.paused, d.statusBlocked)
}

// checkOneMovePerFault (§4), on every association change a daemon makes:
// each EIP moves at most once between two faults concerning it. A takeover
// (a daemon's DisassociateAddress, then the AssociateAddress from nothing
// that follows, by the same coordinator or the next) is one move; an EIP knocked off its private IP moved too; an
// association to where the EIP already is moves nothing.
func (v *invariants) checkOneMovePerFault(c ec2Change) {
	if from := v.s.daemon(strings.Split(c.From, "/")[0]); from != nil && c.DisplacedBy == "" && from.faulty() {
		// Moved off a member that is failing or leaving now (a fault
		// may reach it after the EIP arrived): that fault concerns it.
		v.faultOn(c.Resource)
	}
	if at, ok := v.handMoved[c.Resource]; ok && c.DisplacedBy != "" && v.s.now.Sub(at) < simMaxLag {
		// The operator moved this EIP onto a private IP a moment before a
		// coordinator's move there, planned before any read could show
		// it: the knock is that fault's doing, not a second move.
		v.faultOn(c.Resource)
		return
	}
	if c.DisplacedBy == "" && c.From != "" {
		v.checkNeeded(c)
	}
	what := fmt.Sprintf("%.1fs %s %s -> %s", v.s.elapsed().Seconds(), c.Caller, orNone(c.From), orNone(c.To))
	if c.DisplacedBy != "" {
		what = fmt.Sprintf("%.1fs %s associated %s to %s, which knocked it off", v.s.elapsed().Seconds(), c.Caller, c.DisplacedBy, c.From)
	}
	switch {
	case c.Op == "DisassociateAddress":
		v.fence[c.Resource] = c.Caller
	case c.DisplacedBy == "" && v.fence[c.Resource] != "" && c.From == "":
		// The association that completes a takeover's disassociation,
		// by the same coordinator or by the next one: one outage.
		delete(v.fence, c.Resource)
		if ms := v.moves[c.Resource]; len(ms) > 0 {
			ms[len(ms)-1] += ", then -> " + c.To
			return
		}
	default:
		delete(v.fence, c.Resource)
	}
	v.daemonMoves++
	if c.DisplacedBy == "" && c.Op == "AssociateAddress" && c.From != "" && v.rebalance[c.Caller+"|"+c.Resource] {
		{
			// A rebalance is a planned move, not a fault's: allowed once
			// the EIP has stayed put for recentDown; it starts the count
			// afresh.
			if last, ok := v.lastMove[c.Resource]; ok && v.s.now.Sub(last) < recentDown-time.Second {
				v.violate(invOneMove, "%s rebalanced %.1fs after its last move (less than %v)", c.Resource, v.s.now.Sub(last).Seconds(), recentDown)
			}
			v.lastMove[c.Resource] = v.s.now
			v.moves[c.Resource] = []string{what + " (rebalance)"}
			return
		}
	}
	v.lastMove[c.Resource] = v.s.now
	v.moves[c.Resource] = append(v.moves[c.Resource], what)
	if ms := v.moves[c.Resource]; len(ms) > 1 {
		v.violate(invOneMove, "%s moved %d times by daemons with no fault concerning it in between: %s",
			c.Resource, len(ms), strings.Join(ms, "; "))
	}
}

// moveCall sees every move call (AssociateAddress, DisassociateAddress)
// as it reaches EC2 (§5): the state it was planned from held after the
// same daemon's previous move call of that EIP ended.
func (v *invariants) moveCall(d *simDaemon, alloc string, tk *ticket) {
	key := d.id + "|" + alloc
	var m *move
	if co := d.loop.co; co != nil {
		m = co.moves[alloc]
	}
	if m != nil && v.moveOf[key] != m {
		basis := d.startedAt.Add(m.basis.Sub(d.loop.t0))
		if prev, ok := v.moveEnd[key]; ok && basis.Before(prev.Add(-time.Millisecond)) {
			v.violate(invDatedReads, "%s moves %s on a state from %.2fs, before its previous move of it ended (%.2fs)",
				d.id, alloc, basis.Sub(simEpoch).Seconds(), prev.Sub(simEpoch).Seconds())
		}
	}
	if tk != nil {
		v.moveEnd[key], v.moveOf[key] = tk.deliverAt, m
	}
	v.rebalance[key] = m != nil && m.Reason == ReasonHandoffRebalance
}

// checkReleased (§8): a released EIP is dropped by every daemon within two
// address polls and a couple of probes with the API reachable, and a
// daemon sends at most a few writes naming it.
func (v *invariants) checkReleased() {
	grace := 2*simTiming.AddressPoll + 4*simTiming.ProbeInterval + simCallTimeout
	for _, alloc := range slices.Sorted(maps.Keys(v.released)) {
		if v.s.now.Sub(v.released[alloc]) <= grace || v.acting() == nil {
			if v.acting() == nil {
				v.released[alloc] = v.s.now
			}
			continue
		}
		for _, d := range v.s.daemons {
			st, ok := v.status(d)
			if !ok || v.s.now.Sub(d.liveSince) <= grace || v.s.now.Sub(v.dirtyAt[d.id]) <= grace {
				continue
			}
			if e := st.eipOf(alloc); e != nil {
				v.violate(invReleased, "%s still lists released %s (role %s) %.0fs after its release",
					d.id, alloc, e.Role, v.s.now.Sub(v.released[alloc]).Seconds())
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
