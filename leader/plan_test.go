package leader

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// What the Plan property test must see at least once over its runs,
// besides every failover reason: proof that the generator covers each
// branch the properties judge.
const (
	reachSilent  = "silent-target takeover"
	reachBlocked = "blocked note"
	reachNoSlot  = "no-free-slot note"
)

// failer is what the Plan checks need of *testing.T and *rapid.T.
type failer interface {
	Fatalf(format string, args ...any)
}

// TestPlanProperties checks Plan's rules (§3, §4, docs/design.md
// "Placement") on random views: members fit, silent, leaving (each
// reason, a manual handoff naming a target or not), unhealthy, unfit,
// unreachable (confirmed or not), gone; with priorities, one to three
// private IPs, public IPs listed on them (the EIP's own, another's, an
// unmanaged one); EIPs on members, unassociated, foreign or on an
// instance not judged yet, busy with a move under way or in doubt,
// moved lately, with a target to avoid; with and without quorum.
func TestPlanProperties(t *testing.T) {
	reach := map[string]int{}
	views := rapid.Custom(genView)
	// A few views a run: reach counts each branch some tens of times in
	// the default 100 runs (20 with -short), so that none goes missing
	// by chance.
	perRun, n := 3, 0
	if testing.Short() {
		perRun = 15
	}
	rapid.Check(t, func(rt *rapid.T) {
		for range perRun {
			v := views.Draw(rt, "view")
			n++
			checkPlan(rt, v, Plan(v), reach)
		}
	})
	t.Logf("%d views reached: %v", n, reach)
	if n < 300 {
		t.Logf("too few views (-rapid.checks) to judge what the generator reaches")
		return
	}
	for _, k := range append(slices.Clone(Reasons), reachSilent, reachBlocked, reachNoSlot) {
		if reach[k] == 0 {
			t.Errorf("no generated view led to a %s: the generator does not cover it (reached %v)", k, reach)
		}
	}
}

var planLeavingReasons = []string{ReasonHandoffDraining, ReasonHandoffShutdown, ReasonHandoffManual}

// genView draws a view the coordinator's loop can build (view.go): the
// coordinator is never silent, unreachable or gone; a member is fit only
// when it answers, is up and not leaving; it is leaving or unhealthy only
// when it answers; silent or unreachable only when it does not.
//
// A focus shapes most views around a branch, so that 100 runs reach each
// of them (TestPlanProperties counts): calm (everyone answers, no
// move under way: rebalances), leaving (one member per leaving reason),
// lost (a gone, a confirmed unreachable and an unhealthy member, and an
// EIP unassociated or outside the group) and silent (a lost member and a
// silent one). Everything else is drawn all the same.
func genView(t *rapid.T) View {
	focus := rapid.SampledFrom([]string{"random", "calm", "calm", "leaving", "leaving", "lost", "lost", "silent"}).Draw(t, "focus")
	v := View{Now: unitNow, Quorum: focus == "lost" || rapid.IntRange(0, 3).Draw(t, "quorum") > 0}
	var forced []string // the states of the first members
	n := rapid.IntRange(0, 5).Draw(t, "members")
	switch focus {
	case "calm":
		forced, n = []string{"fit:roomy"}, max(n, 2)
	case "leaving":
		forced, n = []string{"leaving:" + ReasonHandoffDraining, "leaving:" + ReasonHandoffShutdown, "leaving:" + ReasonHandoffManual,
			"fit:roomy", "fit:roomy"}, 5
	case "lost":
		forced, n = []string{"gone", "unreachable:confirmed", "unhealthy", "fit:roomy", "fit:roomy"}, 5
	case "silent":
		forced, n = []string{"gone", "silent", rapid.SampledFrom([]string{"unfit", "full"}).Draw(t, "third")}, max(n, 3)
	}
	var ids []string
	for i := range n {
		ids = append(ids, fmt.Sprintf("i-%d", i+1))
	}
	for i, id := range ids {
		m := MemberView{InstanceID: id,
			Priority:     rapid.IntRange(0, 2).Draw(t, id+".priority"),
			DownRecently: rapid.IntRange(0, 3).Draw(t, id+".downRecently") == 0,
			UpFor:        time.Duration(rapid.IntRange(0, 3600).Draw(t, id+".upFor")) * time.Second,
		}
		slots := rapid.IntRange(1, 3).Draw(t, id+".slots")
		state := ""
		switch {
		case i < len(forced):
			state = forced[i]
		case focus == "calm":
			state = rapid.SampledFrom([]string{"fit", "fit", "fit", "unfit"}).Draw(t, id+".state")
		case focus == "silent":
			state = rapid.SampledFrom([]string{"unfit", "silent", "gone", "leaving", "full"}).Draw(t, id+".state")
		default:
			state = rapid.SampledFrom([]string{"fit", "fit", "fit", "leaving", "unhealthy", "unfit", "silent", "unreachable",
				"gone"}).Draw(t, id+".state")
		}
		if state == "full" { // fit, its one private IP taken (below)
			state, slots = "fit", 1
			m.Slots = append(m.Slots, Slot{IP: fmt.Sprintf("10.0.0.%d", i+1), PublicIP: "203.0.113.9"})
		}
		state, detail, _ := strings.Cut(state, ":")
		if detail == "roomy" {
			slots = 3
		}
		for k := len(m.Slots); k < slots; k++ {
			m.Slots = append(m.Slots, Slot{IP: fmt.Sprintf("10.0.%d.%d", k, i+1)})
		}
		switch state {
		case "fit":
			m.Fit = true
		case "leaving":
			m.Leaving = detail
			if detail == "" {
				m.Leaving = rapid.SampledFrom(planLeavingReasons).Draw(t, id+".leaving")
			}
			switch {
			case m.Leaving != ReasonHandoffManual:
			case detail != "":
				// A fit member of the leaving focus, a leaving one, or none.
				m.HandoffTo = rapid.SampledFrom([]string{"", "i-4", "i-5", "i-1"}).Draw(t, id+".handoffTo")
			default:
				m.HandoffTo = rapid.SampledFrom(append([]string{"", ""}, ids...)).Draw(t, id+".handoffTo")
			}
		case "unhealthy":
			m.Leaving = ReasonHandoffUnhealthy
		case "silent":
			m.Silent = true
		case "unreachable":
			m.Unreachable = true
			m.Confirmed = detail == "confirmed" || rapid.Bool().Draw(t, id+".confirmed")
		case "gone":
			m.Gone = true
			m.Unreachable = rapid.Bool().Draw(t, id+".unreachable")
			m.Confirmed = m.Unreachable && rapid.Bool().Draw(t, id+".confirmed")
		}
		v.Members = append(v.Members, m)
	}
	// The coordinator answers: never silent, unreachable or gone.
	var coordinators []int
	for i, m := range v.Members {
		if !m.Silent && !m.Unreachable && !m.Gone {
			coordinators = append(coordinators, i)
		}
	}
	if len(coordinators) > 0 {
		v.Members[rapid.SampledFrom(coordinators).Draw(t, "coordinator")].Coordinator = true
	}
	taken := map[string]bool{}
	for i, m := range v.Members {
		for _, s := range m.Slots {
			taken[m.InstanceID+"|"+s.IP] = s.PublicIP != "" && i < len(forced) // a full member's
		}
	}
	nEIPs := rapid.IntRange(0, 4).Draw(t, "eips")
	switch focus {
	case "calm", "silent":
		nEIPs = max(nEIPs, 2)
	case "leaving":
		nEIPs = max(nEIPs, 3)
	case "lost":
		nEIPs = 4
	}
	calm := focus == "calm"
	for k := range nEIPs {
		e := EIPView{AllocationID: fmt.Sprintf("eipalloc-%d", k+1), PublicIP: fmt.Sprintf("198.51.100.%d", k+1)}
		pre := e.AllocationID + "."
		where := "member"
		switch {
		case focus == "lost" && k == 3:
			where = rapid.SampledFrom([]string{"unassociated", "unassociated", "foreign"}).Draw(t, pre+"where")
		case (focus == "leaving" || focus == "lost") && k < 3, focus == "silent" && k == 0:
			// on its forced member, below
		case !calm:
			where = rapid.SampledFrom([]string{"member", "member", "member", "unassociated", "foreign", "unknown"}).Draw(t, pre+"where")
		}
		if where == "member" && n > 0 {
			i := rapid.IntRange(0, n-1).Draw(t, pre+"on")
			switch {
			case calm && rapid.IntRange(0, 3).Draw(t, pre+"pile") > 0:
				i = 0 // one member over its share
			case (focus == "leaving" || focus == "lost") && k < 3, focus == "silent" && k == 0:
				i = k // one EIP on each forced member
			}
			m := &v.Members[i]
			start := rapid.IntRange(0, len(m.Slots)-1).Draw(t, pre+"slot")
			for j := range m.Slots {
				s := &m.Slots[(start+j)%len(m.Slots)]
				if taken[m.InstanceID+"|"+s.IP] {
					continue
				}
				taken[m.InstanceID+"|"+s.IP] = true
				e.Associated, e.On, e.OnSlot = true, m.InstanceID, s.IP
				if rapid.IntRange(0, 4).Draw(t, pre+"listed") > 0 {
					s.PublicIP = e.PublicIP
				}
				break
			}
		}
		switch where {
		case "foreign":
			e.Associated, e.Foreign = true, true
		case "unknown":
			e.Associated = true
		}
		if !calm && n > 0 && rapid.IntRange(0, 5).Draw(t, pre+"busy") == 0 {
			e.Busy = true
			if rapid.IntRange(0, 3).Draw(t, pre+"toNothing") > 0 {
				to := &v.Members[rapid.IntRange(0, n-1).Draw(t, pre+"to")]
				e.To = to.InstanceID
				e.ToSlot = to.Slots[rapid.IntRange(0, len(to.Slots)-1).Draw(t, pre+"toSlot")].IP
			}
		}
		if rapid.IntRange(0, 2).Draw(t, pre+"moved") > 0 {
			e.LastMove = unitNow.Add(-time.Duration(rapid.IntRange(0, 120).Draw(t, pre+"movedAgo")) * time.Second)
			e.LastFrom = rapid.SampledFrom(append([]string{""}, ids...)).Draw(t, pre+"lastFrom")
		}
		if n > 0 && rapid.IntRange(0, 4).Draw(t, pre+"avoids") == 0 {
			e.Avoid = rapid.SampledFrom(ids).Draw(t, pre+"avoid")
		}
		v.EIPs = append(v.EIPs, e)
		v.Moving = v.Moving || e.Busy
	}
	// Public IPs listed on private IPs that carry no EIP: none, an
	// unmanaged one, or a managed EIP's (a listing that lags its move).
	for i := range v.Members {
		for j := range v.Members[i].Slots {
			s := &v.Members[i].Slots[j]
			if s.PublicIP != "" || taken[v.Members[i].InstanceID+"|"+s.IP] {
				continue
			}
			label := v.Members[i].InstanceID + "." + s.IP
			switch rapid.IntRange(0, 7).Draw(t, label+".listed") {
			case 0:
				s.PublicIP = "203.0.113.9"
			case 1:
				if nEIPs > 0 {
					s.PublicIP = v.EIPs[rapid.IntRange(0, nEIPs-1).Draw(t, label+".which")].PublicIP
				}
			}
		}
	}
	if !calm && rapid.IntRange(0, 9).Draw(t, "moving") == 0 {
		v.Moving = true
	}
	return v
}

// wantMove is why e must move and how, by the table of docs/design.md
// ("When an EIP must move, and how"), rebalance aside; "" when it stays.
func wantMove(v View, e EIPView) (string, MoveKind) {
	if !e.Associated {
		return ReasonTakeoverUnassociated, Takeover
	}
	if e.Foreign {
		return ReasonTakeoverStale, Takeover
	}
	i := slices.IndexFunc(v.Members, func(m MemberView) bool { return m.InstanceID == e.On })
	if i < 0 {
		return "", Handoff // on an instance the loop has not judged yet
	}
	m := v.Members[i]
	switch {
	case m.Gone:
		return ReasonTakeoverStale, Takeover
	case m.Unreachable:
		if m.Confirmed && v.Quorum {
			return ReasonTakeoverStale, Takeover
		}
		return "", Handoff
	case m.Leaving == ReasonHandoffUnhealthy:
		return ReasonHandoffUnhealthy, Takeover
	case m.Leaving != "":
		return m.Leaving, Handoff
	}
	return "", Handoff
}

// planState is what the checks derive from a view and its placement.
type planState struct {
	v       View
	p       Placement
	members map[string]*MemberView
	// taken: member|private IP carrying an EIP, or where a move under way
	// or one of the placement's moves may put one (by allocation ID).
	taken   map[string]string
	held    map[string]int // EIPs on each member before the placement, moves under way included
	maxHold int
}

func newPlanState(v View, p Placement) *planState {
	s := &planState{v: v, p: p, members: map[string]*MemberView{}, taken: map[string]string{}, held: map[string]int{}}
	fit := 0
	for i := range v.Members {
		s.members[v.Members[i].InstanceID] = &v.Members[i]
		if v.Members[i].Fit {
			fit++
		}
	}
	if fit > 0 {
		s.maxHold = (len(v.EIPs) + fit - 1) / fit
	}
	for _, e := range v.EIPs {
		if e.Associated && e.On != "" {
			s.held[e.On]++
			if e.OnSlot != "" {
				s.taken[e.On+"|"+e.OnSlot] = e.AllocationID
			}
		}
		if e.Busy && e.To != "" {
			s.held[e.To]++
			s.taken[e.To+"|"+e.ToSlot] = e.AllocationID
		}
	}
	return s
}

// freeFor says whether m has a private IP e may take: listing no public IP
// but e's, carrying no other EIP, and no move goes there (moves of the
// placement included: a private IP of a member that may be a target is
// never freed by another move, so free at the end means free throughout).
func (s *planState) freeFor(m *MemberView, e EIPView, targets map[string]string) bool {
	for _, sl := range m.Slots {
		k := m.InstanceID + "|" + sl.IP
		if (sl.PublicIP == "" || sl.PublicIP == e.PublicIP) && (s.taken[k] == "" || s.taken[k] == e.AllocationID) &&
			(targets[k] == "" || targets[k] == e.AllocationID) {
			return true
		}
	}
	return false
}

// justLeft: m is the member e left within the last minute.
func justLeft(v View, e EIPView, m string) bool {
	return m == e.LastFrom && !e.LastMove.IsZero() && v.Now.Sub(e.LastMove) < time.Minute
}

// candidates are the fit members a failover of e may pick, with a private
// IP free for it at the end of the placement.
func (s *planState) candidates(e EIPView, targets map[string]string) []*MemberView {
	only := ""
	if src := s.members[e.On]; src != nil && src.Leaving == ReasonHandoffManual {
		only = src.HandoffTo
	}
	var out []*MemberView
	for i := range s.v.Members {
		m := &s.v.Members[i]
		if m.Fit && m.InstanceID != e.On && m.InstanceID != e.Avoid && (only == "" || m.InstanceID == only) &&
			s.freeFor(m, e, targets) {
			out = append(out, m)
		}
	}
	return out
}

// checkPlan checks a placement against the rules, and counts what it
// reached.
func checkPlan(t failer, v View, p Placement, reach map[string]int) {
	s := newPlanState(v, p)
	eips := map[string]EIPView{}
	for _, e := range v.EIPs {
		eips[e.AllocationID] = e
	}
	moved := map[string]Move{}
	targets := map[string]string{}
	for _, mv := range p.Moves {
		if _, ok := eips[mv.AllocationID]; !ok {
			t.Fatalf("a move of %s, which is not in the view: %+v", mv.AllocationID, mv)
		}
		if prev, ok := moved[mv.AllocationID]; ok {
			t.Fatalf("two moves of %s: %+v and %+v", mv.AllocationID, prev, mv)
		}
		moved[mv.AllocationID] = mv
		k := mv.To + "|" + mv.Slot
		if other, ok := targets[k]; ok {
			t.Fatalf("%s and %s both go to %s", other, mv.AllocationID, k)
		}
		targets[k] = mv.AllocationID
	}
	rebalances := 0
	for _, mv := range p.Moves {
		e := eips[mv.AllocationID]
		src, to := s.members[e.On], s.members[mv.To]
		switch {
		case e.Busy:
			t.Fatalf("moves %s, whose move is under way or in doubt: %+v", e.AllocationID, mv)
		case to == nil:
			t.Fatalf("moves %s to %s, not a member", e.AllocationID, mv.To)
		case mv.To == e.On:
			t.Fatalf("moves %s to the member it is on: %+v", e.AllocationID, mv)
		case mv.To == e.Avoid:
			t.Fatalf("moves %s to %s, which it should avoid now", e.AllocationID, mv.To)
		case mv.From != e.On:
			t.Fatalf("moves %s from %q, but it is on %q", e.AllocationID, mv.From, e.On)
		}
		i := slices.IndexFunc(to.Slots, func(sl Slot) bool { return sl.IP == mv.Slot })
		if i < 0 {
			t.Fatalf("moves %s to %s, not a private IP of %s (%+v)", e.AllocationID, mv.Slot, mv.To, to.Slots)
		}
		if pub := to.Slots[i].PublicIP; pub != "" && pub != e.PublicIP {
			t.Fatalf("moves %s (%s) to %s|%s, which carries %s", e.AllocationID, e.PublicIP, mv.To, mv.Slot, pub)
		}
		if other := s.taken[mv.To+"|"+mv.Slot]; other != "" && other != e.AllocationID {
			t.Fatalf("moves %s to %s|%s, where %s is or may be going", e.AllocationID, mv.To, mv.Slot, other)
		}
		if src != nil && src.Unreachable && !src.Gone && !(src.Confirmed && v.Quorum) {
			t.Fatalf("moves %s off unreachable %s (confirmed %v, quorum %v): %+v", e.AllocationID, src.InstanceID,
				src.Confirmed, v.Quorum, mv)
		}
		if mv.Reason == ReasonHandoffRebalance {
			rebalances++
			s.checkRebalance(t, e, mv)
			reach[mv.Reason]++
			continue
		}
		want, kind := wantMove(v, e)
		switch {
		case want == "":
			t.Fatalf("moves %s, which stays (on %q: %+v): %+v", e.AllocationID, e.On, src, mv)
		case mv.Reason != want || mv.Kind != kind:
			t.Fatalf("moves %s as %s %s, want %s %s", e.AllocationID, mv.Kind, mv.Reason, kind, want)
		case mv.Kind == Handoff && (src == nil || src.Leaving != mv.Reason || src.Unreachable):
			t.Fatalf("hands %s off a member that is not leaving: %+v", e.AllocationID, src)
		case mv.Reason == ReasonHandoffManual && src.HandoffTo != "" && mv.To != src.HandoffTo:
			t.Fatalf("manual handoff of %s naming %s goes to %s", e.AllocationID, src.HandoffTo, mv.To)
		}
		cs := s.candidates(e, targets)
		switch {
		case to.Fit:
		case to.Silent && mv.Kind == Takeover:
			if len(cs) > 0 {
				t.Fatalf("takes %s over to silent %s though fit %s has a free private IP", e.AllocationID, mv.To, cs[0].InstanceID)
			}
			reach[reachSilent]++
		default:
			t.Fatalf("moves %s to %s, neither fit nor (for a takeover) silent: %+v", e.AllocationID, mv.To, to)
		}
		// Ranking: the member it just left, then one down lately, only
		// when no better candidate has a free private IP.
		for _, c := range cs {
			if justLeft(v, e, mv.To) && !justLeft(v, e, c.InstanceID) {
				t.Fatalf("moves %s back to %s, which it just left, though %s could take it", e.AllocationID, mv.To, c.InstanceID)
			}
			if to.Fit && to.DownRecently && !c.DownRecently && justLeft(v, e, mv.To) == justLeft(v, e, c.InstanceID) {
				t.Fatalf("moves %s to %s, down lately, though %s could take it", e.AllocationID, mv.To, c.InstanceID)
			}
		}
		reach[mv.Reason]++
	}
	if rebalances > 0 && (len(p.Moves) > 1 || v.Moving) {
		t.Fatalf("a rebalance beside other moves (%d) or while a move is under way (%v): %+v", len(p.Moves), v.Moving, p.Moves)
	}
	for _, e := range v.EIPs {
		want, kind := wantMove(v, e)
		n, noted := p.Notes[e.AllocationID]
		_, hasMove := moved[e.AllocationID]
		switch {
		case noted && (hasMove || want == "" || e.Busy):
			t.Fatalf("a note on %s, which moves (%v), need not move (%q) or is busy (%v): %+v",
				e.AllocationID, hasMove, want, e.Busy, n)
		case want != "" && !e.Busy && !hasMove && !noted:
			t.Fatalf("%s must move (%s) and neither moves nor says why", e.AllocationID, want)
		case !noted:
			continue
		}
		if cs := s.candidates(e, targets); len(cs) > 0 {
			t.Fatalf("%s must move (%s) and does not, though fit %s has a free private IP: %+v", e.AllocationID, want,
				cs[0].InstanceID, n)
		}
		if kind == Takeover {
			for i := range v.Members {
				m := &v.Members[i]
				if m.Silent && m.InstanceID != e.On && m.InstanceID != e.Avoid && s.freeFor(m, e, targets) {
					t.Fatalf("%s must be taken over (%s) and is not, though silent %s has a free private IP", e.AllocationID,
						want, m.InstanceID)
				}
			}
		}
		if blocked := e.On != "" && !e.Foreign; n.Blocked != blocked {
			t.Fatalf("note on %s (on %q, foreign %v): blocked %v, want %v", e.AllocationID, e.On, e.Foreign, n.Blocked, blocked)
		}
		// No free slot: the members that could take it (the one a manual
		// handoff names, else any fit one) are fit and none has a private
		// IP free for it.
		only := ""
		for _, m := range v.Members {
			if m.InstanceID == e.On && want == ReasonHandoffManual {
				only = m.HandoffTo
			}
		}
		candidates := slices.DeleteFunc(slices.Clone(v.Members), func(m MemberView) bool {
			return !m.Fit || m.InstanceID == e.On || (only != "" && m.InstanceID != only)
		})
		// Plan judges when it places the EIP, before the moves placed after
		// it: "no free slot" must hold after all of them, and its absence
		// needs a candidate with a free private IP before them.
		noSlotAfter := len(candidates) > 0 && !slices.ContainsFunc(candidates, func(m MemberView) bool { return s.freeFor(&m, e, targets) })
		noSlotBefore := len(candidates) > 0 && !slices.ContainsFunc(candidates, func(m MemberView) bool { return s.freeFor(&m, e, nil) })
		if n.NoFreeSlot && !noSlotAfter || !n.NoFreeSlot && noSlotBefore {
			t.Fatalf("note on %s: no free slot %v (candidates %v)", e.AllocationID, n.NoFreeSlot, candidates)
		}
		if n.Why == "" {
			t.Fatalf("note on %s says nothing", e.AllocationID)
		}
		if n.Blocked {
			reach[reachBlocked]++
		}
		if n.NoFreeSlot {
			reach[reachNoSlot]++
		}
	}
}

// checkRebalance: one EIP off a member over the cap, not moved within the
// last minute, handed to a fit member that stays within the cap, was not
// down lately and is not the one it just left.
func (s *planState) checkRebalance(t failer, e EIPView, mv Move) {
	src, to := s.members[e.On], s.members[mv.To]
	switch {
	case mv.Kind != Handoff:
		t.Fatalf("a rebalance of %s as a %s", e.AllocationID, mv.Kind)
	case !e.Associated || src == nil || src.Gone || src.Unreachable || src.Leaving != "":
		t.Fatalf("rebalances %s off %+v", e.AllocationID, src)
	case s.held[e.On] <= s.maxHold:
		t.Fatalf("rebalances %s off %s, which holds %d, within the cap %d", e.AllocationID, e.On, s.held[e.On], s.maxHold)
	case !e.LastMove.IsZero() && s.v.Now.Sub(e.LastMove) < time.Minute:
		t.Fatalf("rebalances %s, moved %v ago", e.AllocationID, s.v.Now.Sub(e.LastMove))
	case !to.Fit:
		t.Fatalf("rebalances %s to %s, not fit", e.AllocationID, mv.To)
	case to.DownRecently:
		t.Fatalf("rebalances %s to %s, down lately", e.AllocationID, mv.To)
	case justLeft(s.v, e, mv.To):
		t.Fatalf("rebalances %s back to %s, which it just left", e.AllocationID, mv.To)
	case s.held[mv.To]+1 > s.maxHold:
		t.Fatalf("rebalances %s to %s, which holds %d, over the cap %d", e.AllocationID, mv.To, s.held[mv.To], s.maxHold)
	}
}

// --- named scenarios ---

func member(id string, fit bool, slots ...string) MemberView {
	m := MemberView{InstanceID: id, Fit: fit}
	for _, ip := range slots {
		m.Slots = append(m.Slots, Slot{IP: ip})
	}
	return m
}

func on(alloc, pub, id, slot string) EIPView {
	return EIPView{AllocationID: alloc, PublicIP: pub, Associated: true, On: id, OnSlot: slot}
}

func unassociated(alloc, pub string) EIPView {
	return EIPView{AllocationID: alloc, PublicIP: pub}
}

// carry lists e's public IP on the private IP it is on, as the member
// list would.
func carry(v *View) {
	for _, e := range v.EIPs {
		for i := range v.Members {
			for j := range v.Members[i].Slots {
				if e.Associated && v.Members[i].InstanceID == e.On && v.Members[i].Slots[j].IP == e.OnSlot {
					v.Members[i].Slots[j].PublicIP = e.PublicIP
				}
			}
		}
	}
}

func movesOf(p Placement) string {
	var b []string
	for _, m := range p.Moves {
		b = append(b, fmt.Sprintf("%s %s %s %s->%s|%s", m.AllocationID, m.Kind, m.Reason, m.From, m.To, m.Slot))
	}
	return strings.Join(b, "; ")
}

func TestPlanScenarios(t *testing.T) {
	minute := time.Minute
	cases := []struct {
		name  string
		view  func() View
		moves string // movesOf the placement
		notes map[string]Note
	}{
		{name: "priority: the leaving member's EIP goes to the highest priority",
			view: func() View {
				a, b, c := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2"), member("i-c", true, "10.0.0.3")
				a.Leaving, b.Priority, c.Priority = ReasonHandoffShutdown, 1, 2
				return View{Members: []MemberView{a, b, c}, EIPs: []EIPView{on("e1", "198.51.100.1", "i-a", "10.0.0.1")}, Quorum: true}
			},
			moves: "e1 handoff handoff-shutdown i-a->i-c|10.0.0.3"},
		{name: "priority comes after the coordinator: a member that does not coordinate first",
			view: func() View {
				a, b, c := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2"), member("i-c", true, "10.0.0.3")
				a.Leaving, c.Priority, c.Coordinator = ReasonHandoffDraining, 5, true
				return View{Members: []MemberView{a, b, c}, EIPs: []EIPView{on("e1", "198.51.100.1", "i-a", "10.0.0.1")}, Quorum: true}
			},
			moves: "e1 handoff handoff-draining i-a->i-b|10.0.0.2"},
		{name: "sticky: no preemption by a recovered member of higher priority",
			view: func() View {
				a, b := member("i-a", true, "10.0.0.1"), member("i-b", true, "10.0.0.2")
				b.Priority, b.UpFor = 9, time.Hour
				return View{Members: []MemberView{a, b}, EIPs: []EIPView{on("e1", "198.51.100.1", "i-a", "10.0.0.1")}, Quorum: true}
			}},
		{name: "sticky: an unreachable member without confirmation keeps its EIP",
			view: func() View {
				a, b := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2")
				a.Unreachable = true
				return View{Members: []MemberView{a, b}, EIPs: []EIPView{on("e1", "198.51.100.1", "i-a", "10.0.0.1")}, Quorum: true}
			}},
		{name: "sticky: a confirmed fall without quorum keeps its EIP",
			view: func() View {
				a, b := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2")
				a.Unreachable, a.Confirmed = true, true
				return View{Members: []MemberView{a, b}, EIPs: []EIPView{on("e1", "198.51.100.1", "i-a", "10.0.0.1")}}
			}},
		{name: "a confirmed fall with quorum is taken over",
			view: func() View {
				a, b := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2")
				a.Unreachable, a.Confirmed = true, true
				return View{Members: []MemberView{a, b}, EIPs: []EIPView{on("e1", "198.51.100.1", "i-a", "10.0.0.1")}, Quorum: true}
			},
			moves: "e1 takeover takeover-stale i-a->i-b|10.0.0.2"},
		{name: "cap: a takeover prefers a member under ceil(EIPs/fit) to one of higher priority at it",
			view: func() View {
				a, b, c := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2", "10.0.1.2"), member("i-c", true, "10.0.0.3")
				a.Gone, b.Priority = true, 5
				return View{Members: []MemberView{a, b, c}, Quorum: true, EIPs: []EIPView{
					on("e1", "198.51.100.1", "i-a", "10.0.0.1"), on("e2", "198.51.100.2", "i-b", "10.0.0.2")}}
			},
			moves: "e1 takeover takeover-stale i-a->i-c|10.0.0.3"},
		{name: "cap: a member over ceil(EIPs/fit) gives one EIP, the one that moved longest ago",
			view: func() View {
				a, b, c := member("i-a", true, "10.0.0.1", "10.0.1.1", "10.0.2.1"), member("i-b", true, "10.0.0.2"), member("i-c", true, "10.0.0.3")
				v := View{Now: unitNow, Members: []MemberView{a, b, c}, Quorum: true, EIPs: []EIPView{
					on("e1", "198.51.100.1", "i-a", "10.0.0.1"), on("e2", "198.51.100.2", "i-a", "10.0.1.1"),
					on("e3", "198.51.100.3", "i-a", "10.0.2.1")}}
				v.EIPs[0].LastMove = unitNow.Add(-2 * minute)
				v.EIPs[1].LastMove = unitNow.Add(-3 * minute)
				v.EIPs[2].LastMove = unitNow.Add(-30 * time.Second) // too recent
				return v
			},
			moves: "e2 handoff handoff-rebalance i-a->i-b|10.0.0.2"},
		{name: "cap: no rebalance within ceil(EIPs/fit)",
			view: func() View {
				a, b := member("i-a", true, "10.0.0.1", "10.0.1.1"), member("i-b", true, "10.0.0.2", "10.0.1.2")
				return View{Members: []MemberView{a, b}, Quorum: true, EIPs: []EIPView{
					on("e1", "198.51.100.1", "i-a", "10.0.0.1"), on("e2", "198.51.100.2", "i-a", "10.0.1.1"),
					on("e3", "198.51.100.3", "i-b", "10.0.0.2")}}
			}},
		{name: "cap: no rebalance to a member down lately",
			view: func() View {
				a, b := member("i-a", true, "10.0.0.1", "10.0.1.1"), member("i-b", true, "10.0.0.2")
				b.DownRecently = true
				return View{Members: []MemberView{a, b}, Quorum: true, EIPs: []EIPView{
					on("e1", "198.51.100.1", "i-a", "10.0.0.1"), on("e2", "198.51.100.2", "i-a", "10.0.1.1")}}
			}},
		{name: "cap: no rebalance while a move is under way",
			view: func() View {
				a, b := member("i-a", true, "10.0.0.1", "10.0.1.1"), member("i-b", true, "10.0.0.2")
				return View{Members: []MemberView{a, b}, Quorum: true, Moving: true, EIPs: []EIPView{
					on("e1", "198.51.100.1", "i-a", "10.0.0.1"), on("e2", "198.51.100.2", "i-a", "10.0.1.1")}}
			}},
		{name: "cap: the same view rebalances once nothing moves",
			view: func() View {
				a, b := member("i-a", true, "10.0.0.1", "10.0.1.1"), member("i-b", true, "10.0.0.2")
				return View{Members: []MemberView{a, b}, Quorum: true, EIPs: []EIPView{
					on("e1", "198.51.100.1", "i-a", "10.0.0.1"), on("e2", "198.51.100.2", "i-a", "10.0.1.1")}}
			},
			moves: "e1 handoff handoff-rebalance i-a->i-b|10.0.0.2"},
		{name: "cap: a rebalance never takes a member to the cap",
			view: func() View {
				a := member("i-a", true, "10.0.0.1", "10.0.1.1", "10.0.2.1", "10.0.3.1")
				b := member("i-b", true, "10.0.0.2", "10.0.1.2", "10.0.2.2", "10.0.3.2")
				c := member("i-c", true, "10.0.0.3")
				c.DownRecently = true // refused as a rebalance's target
				// ceil(7/3) = 3: i-a holds 4, over it; i-b holds 3, at it.
				return View{Members: []MemberView{a, b, c}, Quorum: true, EIPs: []EIPView{
					on("e1", "198.51.100.1", "i-a", "10.0.0.1"), on("e2", "198.51.100.2", "i-a", "10.0.1.1"),
					on("e3", "198.51.100.3", "i-a", "10.0.2.1"), on("e4", "198.51.100.4", "i-a", "10.0.3.1"),
					on("e5", "198.51.100.5", "i-b", "10.0.0.2"), on("e6", "198.51.100.6", "i-b", "10.0.1.2"),
					on("e7", "198.51.100.7", "i-b", "10.0.2.2")}}
			}},
		{name: "cap: no rebalance of an EIP whose manual handoff is blocked",
			view: func() View {
				a := member("i-a", false, "10.0.0.1", "10.0.1.1", "10.0.2.1")
				a.Leaving, a.HandoffTo = ReasonHandoffManual, "i-c"
				b, c, d := member("i-b", true, "10.0.0.2"), member("i-c", false, "10.0.0.3"), member("i-d", true, "10.0.0.4")
				return View{Members: []MemberView{a, b, c, d}, Quorum: true, EIPs: []EIPView{
					on("e1", "198.51.100.1", "i-a", "10.0.0.1"), on("e2", "198.51.100.2", "i-a", "10.0.1.1"),
					on("e3", "198.51.100.3", "i-a", "10.0.2.1")}}
			},
			// i-c is not fit: private IPs are not what is missing.
			notes: map[string]Note{"e1": {Blocked: true}, "e2": {Blocked: true}, "e3": {Blocked: true}}},
		{name: "one EIP per free private IP: two unassociated EIPs, one free private IP",
			view: func() View {
				return View{Members: []MemberView{member("i-a", true, "10.0.0.1")}, Quorum: true,
					EIPs: []EIPView{unassociated("e1", "198.51.100.1"), unassociated("e2", "198.51.100.2")}}
			},
			moves: "e1 takeover takeover-unassociated ->i-a|10.0.0.1",
			notes: map[string]Note{"e2": {NoFreeSlot: true}}},
		{name: "one EIP per free private IP: two EIPs spread over a member's private IPs",
			view: func() View {
				return View{Members: []MemberView{member("i-a", true, "10.0.0.1", "10.0.1.1")}, Quorum: true,
					EIPs: []EIPView{unassociated("e1", "198.51.100.1"), unassociated("e2", "198.51.100.2")}}
			},
			moves: "e1 takeover takeover-unassociated ->i-a|10.0.0.1; e2 takeover takeover-unassociated ->i-a|10.0.1.1"},
		{name: "one EIP per free private IP: a private IP listing another public IP is not free",
			view: func() View {
				a := member("i-a", true, "10.0.0.1", "10.0.1.1")
				a.Slots[0].PublicIP = "203.0.113.9"
				return View{Members: []MemberView{a}, Quorum: true, EIPs: []EIPView{unassociated("e1", "198.51.100.1")}}
			},
			moves: "e1 takeover takeover-unassociated ->i-a|10.0.1.1"},
		{name: "one EIP per free private IP: nowhere to go while a move under way may land there",
			view: func() View {
				b := member("i-b", true, "10.0.0.2")
				e1 := unassociated("e1", "198.51.100.1")
				e1.Busy, e1.To, e1.ToSlot = true, "i-b", "10.0.0.2"
				return View{Members: []MemberView{b}, Quorum: true, Moving: true, EIPs: []EIPView{e1, unassociated("e2", "198.51.100.2")}}
			},
			notes: map[string]Note{"e2": {NoFreeSlot: true}}},
		{name: "never back to the member it just left while another can take it",
			view: func() View {
				a, b, c := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2"), member("i-c", true, "10.0.0.3")
				a.Leaving, b.Priority = ReasonHandoffUnhealthy, 5
				e := on("e1", "198.51.100.1", "i-a", "10.0.0.1")
				e.LastMove, e.LastFrom = unitNow.Add(-10*time.Second), "i-b"
				return View{Now: unitNow, Members: []MemberView{a, b, c}, Quorum: true, EIPs: []EIPView{e}}
			},
			moves: "e1 takeover handoff-unhealthy i-a->i-c|10.0.0.3"},
		{name: "back to the member it just left when it is the only choice",
			view: func() View {
				a, b := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2")
				a.Leaving = ReasonHandoffUnhealthy
				e := on("e1", "198.51.100.1", "i-a", "10.0.0.1")
				e.LastMove, e.LastFrom = unitNow.Add(-10*time.Second), "i-b"
				return View{Now: unitNow, Members: []MemberView{a, b}, Quorum: true, EIPs: []EIPView{e}}
			},
			moves: "e1 takeover handoff-unhealthy i-a->i-b|10.0.0.2"},
		{name: "the member it left over a minute ago ranks like any other",
			view: func() View {
				a, b, c := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2"), member("i-c", true, "10.0.0.3")
				a.Leaving, b.Priority = ReasonHandoffUnhealthy, 5
				e := on("e1", "198.51.100.1", "i-a", "10.0.0.1")
				e.LastMove, e.LastFrom = unitNow.Add(-minute), "i-b"
				return View{Now: unitNow, Members: []MemberView{a, b, c}, Quorum: true, EIPs: []EIPView{e}}
			},
			moves: "e1 takeover handoff-unhealthy i-a->i-b|10.0.0.2"},
		{name: "a manual handoff goes only to the member it names",
			view: func() View {
				a, b, c := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2"), member("i-c", true, "10.0.0.3")
				a.Leaving, a.HandoffTo, b.Priority = ReasonHandoffManual, "i-c", 5
				return View{Members: []MemberView{a, b, c}, Quorum: true, EIPs: []EIPView{on("e1", "198.51.100.1", "i-a", "10.0.0.1")}}
			},
			moves: "e1 handoff handoff-manual i-a->i-c|10.0.0.3"},
		{name: "a manual handoff naming an unfit member is blocked",
			view: func() View {
				a, c := member("i-a", false, "10.0.0.1"), member("i-c", false, "10.0.0.3")
				a.Leaving, a.HandoffTo = ReasonHandoffManual, "i-c"
				return View{Members: []MemberView{a, c}, Quorum: true, EIPs: []EIPView{on("e1", "198.51.100.1", "i-a", "10.0.0.1")}}
			},
			notes: map[string]Note{"e1": {Blocked: true}}},
		{name: "a handoff never goes to a silent member: blocked",
			view: func() View {
				a, s := member("i-a", false, "10.0.0.1"), member("i-s", false, "10.0.0.9")
				a.Leaving, s.Silent = ReasonHandoffDraining, true
				return View{Members: []MemberView{a, s}, Quorum: true, EIPs: []EIPView{on("e1", "198.51.100.1", "i-a", "10.0.0.1")}}
			},
			notes: map[string]Note{"e1": {Blocked: true}}},
		{name: "a takeover goes to a silent member as a last resort",
			view: func() View {
				a, b, s := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2"), member("i-s", false, "10.0.0.9")
				a.Gone, s.Silent = true, true
				return View{Members: []MemberView{a, b, s}, Quorum: true, EIPs: []EIPView{
					on("e1", "198.51.100.1", "i-a", "10.0.0.1"), on("e2", "198.51.100.2", "i-b", "10.0.0.2")}}
			},
			moves: "e1 takeover takeover-stale i-a->i-s|10.0.0.9"},
		{name: "an EIP outside the group is taken over",
			view: func() View {
				e := EIPView{AllocationID: "e1", PublicIP: "198.51.100.1", Associated: true, Foreign: true}
				return View{Members: []MemberView{member("i-b", true, "10.0.0.2")}, Quorum: true, EIPs: []EIPView{e}}
			},
			moves: "e1 takeover takeover-stale ->i-b|10.0.0.2"},
		{name: "an EIP on an instance not judged yet waits",
			view: func() View {
				e := EIPView{AllocationID: "e1", PublicIP: "198.51.100.1", Associated: true}
				return View{Members: []MemberView{member("i-b", true, "10.0.0.2")}, Quorum: true, EIPs: []EIPView{e}}
			}},
		{name: "cut off clients first: the unassociated EIP gets the only free private IP",
			view: func() View {
				a, b := member("i-a", false, "10.0.0.1"), member("i-b", true, "10.0.0.2")
				a.Leaving = ReasonHandoffShutdown
				return View{Members: []MemberView{a, b}, Quorum: true, EIPs: []EIPView{
					on("e1", "198.51.100.1", "i-a", "10.0.0.1"), unassociated("e2", "198.51.100.2")}}
			},
			moves: "e2 takeover takeover-unassociated ->i-b|10.0.0.2",
			notes: map[string]Note{"e1": {Blocked: true, NoFreeSlot: true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			v := tc.view()
			if v.Now.IsZero() {
				v.Now = unitNow
			}
			carry(&v)
			p := Plan(v)
			if got := movesOf(p); got != tc.moves {
				t.Fatalf("moves:\n got %s\nwant %s", got, tc.moves)
			}
			if len(p.Notes) != len(tc.notes) {
				t.Fatalf("notes %+v, want %+v", p.Notes, tc.notes)
			}
			for id, want := range tc.notes {
				got, ok := p.Notes[id]
				if !ok || got.Blocked != want.Blocked || got.NoFreeSlot != want.NoFreeSlot || got.Why == "" {
					t.Fatalf("note on %s: %+v, want %+v", id, got, want)
				}
			}
			checkPlan(t, v, p, map[string]int{})
		})
	}
}
