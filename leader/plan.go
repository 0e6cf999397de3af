package leader

import (
	"cmp"
	"slices"
	"time"
)

// Plan decides where each EIP should be: a pure function of the
// coordinator's view, with no I/O and no clock of its own. The loop carries
// the moves out; it never moves an EIP that Plan did not name.
//
// The rules (§3, §4):
//   - Sticky: an EIP stays on a member that can serve it. No preemption.
//   - A member that answers and wants its EIPs gone (its own check fell, it
//     is draining, stopping, or asked to hand off) hands them over, make
//     before break.
//   - An EIP on a member that is lost (not running; or unreachable, the
//     failure confirmed by another member or by the absence of its
//     heartbeat, and the coordinator reaching at least half of the group),
//     on an instance outside the group, or on nothing, is taken over,
//     fenced on the association it was read with.
//   - A target is fit (its eipd answered lately: health up, not leaving),
//     and gets the EIP on a private IP that carries nothing (EC2 allows one
//     EIP per private IP; a second silently knocks the first off).
//   - Targets rank: not the member the EIP just left, not unhealthy within
//     the last minute, under ceil(EIPs / fit members), not the coordinator,
//     higher eipd:priority, fewer EIPs, up longest, instance ID.
//   - At most one move per EIP, and one rebalance at a time, only when
//     nothing else moves, an EIP that did not move within the last minute,
//     never to a member that was unhealthy lately or that it just left.
func Plan(v View) Placement {
	p := planner{v: v, held: map[string]int{}, used: map[string]bool{}, out: Placement{Notes: map[string]Note{}}}
	for _, e := range v.EIPs {
		if e.Associated && e.On != "" {
			p.held[e.On]++
		}
		if e.Associated && e.OnSlot != "" {
			p.used[e.On+"|"+e.OnSlot] = true
		}
		if e.Busy && e.To != "" {
			// Where a move under way (or one whose outcome is unknown)
			// may put it: taken too.
			p.held[e.To]++
			p.used[e.To+"|"+e.ToSlot] = true
		}
	}
	fit := 0
	for _, m := range v.Members {
		if m.Fit {
			fit++
		}
	}
	if fit > 0 {
		p.maxHold = (len(v.EIPs) + fit - 1) / fit
	}
	var urgent, leaving []EIPView
	for _, e := range v.EIPs {
		if e.Busy {
			continue
		}
		switch reason, kind := p.need(e); {
		case reason == "":
		case kind == Takeover && reason != ReasonHandoffUnhealthy:
			urgent = append(urgent, e)
		default:
			leaving = append(leaving, e)
		}
	}
	// EIPs whose clients are cut off first; then members that leave, the
	// unhealthy ones first (they serve nothing), then the planned ones.
	slices.SortStableFunc(leaving, func(a, b EIPView) int {
		ra, _ := p.need(a)
		rb, _ := p.need(b)
		return cmp.Compare(leaveOrder(ra), leaveOrder(rb))
	})
	for _, e := range append(urgent, leaving...) {
		reason, kind := p.need(e)
		p.place(e, reason, kind)
	}
	if len(p.out.Moves) == 0 && !v.Moving {
		p.rebalance()
	}
	return p.out
}

// View is what Plan looks at: every managed EIP and every running member,
// as the coordinator knows them now.
type View struct {
	Now     time.Time // monotonic
	EIPs    []EIPView
	Members []MemberView
	// Quorum: the coordinator reaches at least half of the running members
	// (itself included). Without it, it moves nothing off members it cannot
	// reach: more likely it is the one cut off.
	Quorum bool
	// Moving: a move of some EIP is under way or its outcome unknown; no
	// rebalance starts meanwhile.
	Moving bool
}

// EIPView is one EIP as the coordinator's last dated read (or its own
// move since) shows it.
type EIPView struct {
	AllocationID string
	PublicIP     string
	Associated   bool
	// On is the member the EIP is associated with ("" when unassociated,
	// or associated with an instance that is not a running member); OnSlot
	// the private IP it is on.
	On, OnSlot string
	// Foreign: associated with an instance that a member list read after
	// the association does not show as a running member (moved by hand out
	// of the group, or a terminated instance's ENI).
	Foreign bool
	// Busy: a move of this EIP is under way, or the last one's outcome is
	// unknown until a later read: Plan leaves it alone. To and ToSlot:
	// where that move may put it.
	Busy   bool
	To     string
	ToSlot string
	// LastMove (monotonic) and LastFrom: the last move of the EIP this
	// coordinator knows of, and the member it left.
	LastMove time.Time
	LastFrom string
	// Avoid: a member not to pick as target now (a move of the EIP to it
	// was just abandoned: it did not confirm).
	Avoid string
}

// MemberView is one running member as the coordinator knows it.
type MemberView struct {
	InstanceID string
	Priority   int
	// Slots are the private IPs of its primary ENI, primary first, each
	// with the public IP on it ("" when none; an auto-assigned public IP,
	// which an EIP replaces harmlessly, counts as none).
	Slots       []Slot
	Coordinator bool
	// Fit: its eipd answered lately, its check is up, it is not leaving,
	// and it speaks this protocol: it may take an EIP. Silent: its proxy
	// answers the coordinator's probes but its eipd does not (a blocked
	// status port, or eipd is down): the last choice of a takeover, on the
	// word of a member list read for the move (its proxy serves the EIP).
	Fit, Silent bool
	// Leaving: it answers and wants its EIPs gone, and why (a failover
	// reason); HandoffTo names the target of a manual handoff.
	Leaving   string
	HandoffTo string
	// Gone: the member list says it is not running (stopped, terminated).
	Gone bool
	// Unreachable: probes of it (its proxy, its eipd) failed fall times;
	// Confirmed: another member failed to reach it too, or (with no other
	// member to ask) it wrote no heartbeat since.
	Unreachable, Confirmed bool
	// DownRecently: unhealthy within the last minute, by its own word or
	// by the coordinator's probes.
	DownRecently bool
	UpFor        time.Duration
}

// Slot is one private IP of a member and the public IP on it.
type Slot struct {
	IP       string
	PublicIP string
}

// MoveKind is how a move is made.
type MoveKind int

const (
	// Handoff: make before break. AssociateAddress with
	// AllowReassociation=true straight to the target, sent only after the
	// source's and the target's instance metadata, read just before, confirm
	// the EIP and the free private IP (the one unfenced move).
	Handoff MoveKind = iota
	// Takeover: fenced. DisassociateAddress of the association the move
	// was planned from (when associated), then AssociateAddress with
	// AllowReassociation=false: a move made by anyone since fails.
	Takeover
)

func (k MoveKind) String() string {
	if k == Handoff {
		return "handoff"
	}
	return "takeover"
}

// Move is one move Plan asks for.
type Move struct {
	AllocationID string
	Kind         MoveKind
	From         string // member the EIP leaves; "" when unassociated or foreign
	To, Slot     string
	Reason       string
}

// Note says why an EIP that should move does not.
type Note struct {
	// Blocked: it should leave the member it is on (that member is
	// leaving, or its check fell), but no member is fit with a free
	// private IP (handoff_blocked).
	Blocked bool
	// NoFreeSlot: fit members exist but none has a private IP free for it.
	NoFreeSlot bool
	Why        string
}

// Placement is Plan's answer.
type Placement struct {
	Moves []Move
	Notes map[string]Note // by allocation ID, for EIPs that should move and cannot
}

type planner struct {
	v       View
	held    map[string]int  // EIPs on each member, planned moves included
	used    map[string]bool // member|private IP carrying an EIP, planned moves included
	maxHold int
	out     Placement
}

func (p *planner) member(id string) *MemberView {
	for i := range p.v.Members {
		if p.v.Members[i].InstanceID == id {
			return &p.v.Members[i]
		}
	}
	return nil
}

// need says whether e must move now, why, and how.
func (p *planner) need(e EIPView) (reason string, kind MoveKind) {
	if !e.Associated {
		return ReasonTakeoverUnassociated, Takeover
	}
	if e.Foreign {
		return ReasonTakeoverStale, Takeover
	}
	m := p.member(e.On)
	switch {
	case m == nil:
		return "", Takeover // not judged yet: the loop reads the member list first
	case m.Gone:
		return ReasonTakeoverStale, Takeover
	case m.Unreachable && m.Confirmed && p.v.Quorum:
		return ReasonTakeoverStale, Takeover
	case m.Leaving == ReasonHandoffUnhealthy && !m.Unreachable:
		// It serves nothing: fenced, like any takeover, so that a stale
		// view can never move the EIP twice.
		return m.Leaving, Takeover
	case m.Leaving != "" && !m.Unreachable:
		return m.Leaving, Handoff
	}
	return "", Handoff
}

func leaveOrder(reason string) int {
	switch reason {
	case ReasonHandoffUnhealthy:
		return 0
	case ReasonHandoffShutdown, ReasonHandoffDraining:
		return 1
	}
	return 2
}

// place picks the target of one EIP that must move.
func (p *planner) place(e EIPView, reason string, kind MoveKind) {
	var only string
	if src := p.member(e.On); src != nil && reason == ReasonHandoffManual {
		only = src.HandoffTo
	}
	best, slot := p.target(e, false, only)
	if best == nil {
		// Blocked: it should leave the member it is on (a handoff, or the
		// fenced move off a member whose check fell) and cannot.
		n := Note{Blocked: e.On != "" && !e.Foreign, Why: "no fit member with a free private IP to move it to (" + reason + ")"}
		if only != "" {
			n.Why = "the member the handoff names (" + only + ") is not fit or has no free private IP"
		}
		// NoFreeSlot: private IPs are what is missing (the remedy is to
		// add some), not fit members.
		if only != "" {
			m := p.member(only)
			n.NoFreeSlot = m != nil && m.Fit && p.freeSlot(m, e) == ""
		} else {
			n.NoFreeSlot = p.anyFit(e.On) && !p.anyFreeFit(e)
		}
		p.out.Notes[e.AllocationID] = n
		return
	}
	p.add(Move{AllocationID: e.AllocationID, Kind: kind, From: e.On, To: best.InstanceID, Slot: slot, Reason: reason}, e)
}

func (p *planner) anyFit(except string) bool {
	for _, m := range p.v.Members {
		if m.Fit && m.InstanceID != except {
			return true
		}
	}
	return false
}

// anyFreeFit: some fit member other than the one e is on has a private IP
// free for it (then what blocks the move is not a lack of private IPs).
func (p *planner) anyFreeFit(e EIPView) bool {
	for i := range p.v.Members {
		m := &p.v.Members[i]
		if m.Fit && m.InstanceID != e.On && p.freeSlot(m, e) != "" {
			return true
		}
	}
	return false
}

func (p *planner) add(mv Move, e EIPView) {
	if e.On != "" {
		p.held[e.On]--
		delete(p.used, e.On+"|"+e.OnSlot)
	}
	p.held[mv.To]++
	p.used[mv.To+"|"+mv.Slot] = true
	p.out.Moves = append(p.out.Moves, mv)
}

// freeSlot is a private IP of m free for e: nothing on it, or e itself (a
// listing that still shows e there lags behind its move away). Slots are
// tried from e's place among the EIPs, so two EIPs spread over a member's
// private IPs the same way whichever moves first.
func (p *planner) freeSlot(m *MemberView, e EIPView) string {
	n := len(m.Slots)
	if n == 0 {
		return ""
	}
	start := 0
	for i, x := range p.v.EIPs {
		if x.AllocationID == e.AllocationID {
			start = i % n
		}
	}
	for i := range n {
		s := m.Slots[(start+i)%n]
		if (s.PublicIP == "" || s.PublicIP == e.PublicIP) && !p.used[m.InstanceID+"|"+s.IP] {
			return s.IP
		}
	}
	return ""
}

// target ranks the fit members for e and returns the best with a free
// private IP. strict (a rebalance) refuses what a failover only ranks last:
// the member e just left, one unhealthy lately, one at the cap. only, when
// set, is the one member allowed (a manual handoff that names it).
func (p *planner) target(e EIPView, strict bool, only string) (*MemberView, string) {
	type cand struct {
		m                            *MemberView
		slot                         string
		justLeft, overCap, downRecen bool
	}
	var cs []cand
	for i := range p.v.Members {
		m := &p.v.Members[i]
		if !m.Fit || m.InstanceID == e.On || m.InstanceID == e.Avoid || (only != "" && m.InstanceID != only) {
			continue
		}
		slot := p.freeSlot(m, e)
		if slot == "" {
			continue
		}
		c := cand{m: m, slot: slot,
			justLeft:  m.InstanceID == e.LastFrom && !e.LastMove.IsZero() && p.v.Now.Sub(e.LastMove) < recentDown,
			overCap:   p.maxHold > 0 && p.held[m.InstanceID]+1 > p.maxHold,
			downRecen: m.DownRecently,
		}
		if strict && (c.justLeft || c.overCap || c.downRecen) {
			continue
		}
		cs = append(cs, c)
	}
	if len(cs) == 0 {
		return p.silentTarget(e, strict || only != "")
	}
	b2i := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	slices.SortStableFunc(cs, func(a, b cand) int {
		return cmp.Or(
			cmp.Compare(b2i(a.justLeft), b2i(b.justLeft)),
			cmp.Compare(b2i(a.downRecen), b2i(b.downRecen)),
			cmp.Compare(b2i(a.overCap), b2i(b.overCap)),
			cmp.Compare(b2i(a.m.Coordinator), b2i(b.m.Coordinator)),
			cmp.Compare(b.m.Priority, a.m.Priority),
			cmp.Compare(p.held[a.m.InstanceID], p.held[b.m.InstanceID]),
			cmp.Compare(b.m.UpFor, a.m.UpFor),
			cmp.Compare(a.m.InstanceID, b.m.InstanceID),
		)
	})
	return cs[0].m, cs[0].slot
}

// silentTarget is the last resort of a takeover: a member whose proxy
// answers but whose eipd does not, with a free private IP; never for a
// handoff or a rebalance, which need the target's own word.
func (p *planner) silentTarget(e EIPView, strict bool) (*MemberView, string) {
	if strict {
		return nil, ""
	}
	if reason, kind := p.need(e); kind != Takeover || reason == "" {
		return nil, ""
	}
	for i := range p.v.Members {
		m := &p.v.Members[i]
		if m.Silent && m.InstanceID != e.On && m.InstanceID != e.Avoid {
			if slot := p.freeSlot(m, e); slot != "" {
				return m, slot
			}
		}
	}
	return nil, ""
}

// rebalance moves one EIP off a member that holds more than its share,
// when the EIP has not moved for a minute.
func (p *planner) rebalance() {
	if p.maxHold == 0 {
		return
	}
	var pick *EIPView
	for i := range p.v.EIPs {
		e := &p.v.EIPs[i]
		m := p.member(e.On)
		// The source must answer: a rebalance is a handoff, which needs
		// its own fresh word.
		if !e.Associated || e.Busy || m == nil || p.held[e.On] <= p.maxHold || m.Leaving != "" || m.Unreachable || m.Silent ||
			(!e.LastMove.IsZero() && p.v.Now.Sub(e.LastMove) < recentDown) {
			continue
		}
		// The EIP that moved longest ago goes first (never moved: first).
		if pick == nil || e.LastMove.Before(pick.LastMove) {
			pick = e
		}
	}
	if pick == nil {
		return
	}
	if best, slot := p.target(*pick, true, ""); best != nil {
		p.add(Move{AllocationID: pick.AllocationID, Kind: Handoff, From: pick.On, To: best.InstanceID, Slot: slot,
			Reason: ReasonHandoffRebalance}, *pick)
	}
}
