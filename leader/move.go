package leader

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// stage is where a move is.
type stage int

const (
	// stagePrepare: the target (and, for a handoff, the source) is probed
	// fresh: its instance metadata read just now, and it must follow this
	// coordinator.
	stagePrepare stage = iota
	stageDisassociate
	stageAssociate
	stageRecord
)

// move is one move under way. Each stage is one AWS call, made off the
// loop and bounded by the coordinator's deadline.
type move struct {
	Move
	co       *coordinator
	observed eip.Address // the EIP as read when the move was planned: the fence
	basis    time.Time   // when the state it was planned from held (§5)
	decided  time.Time   // wall clock, for the record
	started  time.Time
	stage    stage
	inFlight bool
	retried  bool
	// mutating: a call that changes AWS state was sent; /status says the
	// EIP is moving from then on, and nobody is its holder.
	mutating bool
}

// startMove begins a move Plan asked for.
func (l *Loop) startMove(mv Move, now time.Time) {
	co := l.co
	st := l.eips[mv.AllocationID]
	if st == nil || co.moves[mv.AllocationID] != nil || now.Before(co.dryRunNext[mv.AllocationID]) {
		return
	}
	m := &move{Move: mv, co: co, observed: st.addr, basis: st.readAt, decided: l.wall(), started: now}
	co.moves[mv.AllocationID] = m
	l.log.Info("moving the EIP", "allocation_id", mv.AllocationID, "public_ip", st.addr.PublicIP, "kind", mv.Kind.String(),
		"reason", mv.Reason, "from", mv.From, "target_instance_id", mv.To, "private_ip", mv.Slot)
	l.askFresh(mv.To)
	if mv.Kind == Handoff {
		l.askFresh(mv.From)
	}
	l.advance(m, now)
}

// askFresh asks for a probe of a member that reads its instance metadata
// first (this coordinator itself: its own metadata, now).
func (l *Loop) askFresh(id string) {
	if id == l.self.InstanceID {
		l.eniCall.wanted = true
		return
	}
	if p := l.peers[id]; p != nil {
		p.fresh = true
		l.probe(p, l.now())
	}
}

func (l *Loop) abort(m *move, why string) {
	if m.co.moves[m.AllocationID] == m {
		delete(m.co.moves, m.AllocationID)
	}
	if st := l.eips[m.AllocationID]; st != nil && m.stage == stagePrepare {
		// The target said no (or did not answer): Plan picks another,
		// or this one again only a probe interval later.
		st.avoid, st.avoidUntil = m.To, l.now().Add(l.cfg.ProbeInterval)
	}
	l.log.Info("move abandoned", "allocation_id", m.AllocationID, "target_instance_id", m.To, "why", why)
}

// advance takes a move as far as it can go now.
func (l *Loop) advance(m *move, now time.Time) {
	co := m.co
	if m.inFlight || l.co != co || co.moves[m.AllocationID] != m {
		return
	}
	st := l.eips[m.AllocationID]
	if st == nil {
		l.abort(m, "the EIP is gone")
		return
	}
	if !now.Before(co.deadline) {
		l.abort(m, "the coordinator's deadline passed")
		return
	}
	switch m.stage {
	case stagePrepare:
		done, why := l.prepared(m, now)
		switch {
		case why != "":
			l.abort(m, why)
		case done && m.Kind == Takeover && m.observed.Associated():
			m.stage = stageDisassociate
			l.advance(m, now)
		case done:
			m.stage = stageAssociate
			l.advance(m, now)
		case now.Sub(m.started) > l.cfg.ProbeInterval+2*l.cfg.ProbeTimeout:
			l.abort(m, "no fresh answer from the members the move concerns")
		}
	case stageDisassociate, stageAssociate:
		if !m.mutating && slices.Contains(co.renewing, m.AllocationID) {
			return // a renewal covering it is under way: it ends within its timeout
		}
		if other := l.readOn(m.To, m.Slot, m.AllocationID); other != "" {
			// A read since the move was prepared shows another EIP there.
			l.abort(m, "a read shows "+other+" on the target's private IP "+m.Slot)
			return
		}
		if m.stage == stageDisassociate {
			l.disassociate(m, now)
		} else {
			l.associate(m, now)
		}
	case stageRecord:
		l.record(m, now)
	}
}

// prepared checks, from probes made since the move began, that the target
// is fit with the private IP still free and follows this coordinator and,
// for a handoff, that the source's instance metadata still lists the EIP:
// a handoff has no fence, so it moves only what both ends confirm now.
func (l *Loop) prepared(m *move, now time.Time) (done bool, why string) {
	st := l.eips[m.AllocationID]
	pub := st.addr.PublicIP
	if other := l.readOn(m.To, m.Slot, m.AllocationID); other != "" {
		return false, "a read shows " + other + " on the target's private IP " + m.Slot
	}
	p := l.peers[m.To]
	blind := m.To == l.self.InstanceID && l.eniCall.failed && !l.eniCall.triedAt.Before(m.started)
	if m.Kind == Takeover && p != nil && p.status == nil {
		blind = true // its eipd does not answer (a blocked status port, or it is down)
	}
	var tgt *Status
	if !blind {
		var ok bool
		if tgt, ok, why = l.freshView(m.To, m.started); why != "" || !ok {
			return false, why
		}
		if tgt.Health != health.Up.String() || tgt.Draining != "" {
			return false, "the target is no longer fit (health " + tgt.Health + ")"
		}
		if !l.metadataCurrent(tgt) {
			if m.Kind == Handoff {
				return false, "the target's instance metadata could not be read just now"
			}
			blind = true
		}
	}
	if blind {
		// No instance metadata to ask (its eipd never answers, or its
		// metadata does not): a takeover is fenced anyway; a member list
		// read now must show the private IP free, and the member's proxy
		// must answer a probe made now.
		if l.list.at.Before(m.started) || (p != nil && p.at.Before(m.started)) {
			if !l.list.inFlight && l.list.triedAt.Before(m.started) {
				l.list.wanted = true
			}
			if p != nil && !p.call.inFlight && p.at.Before(m.started) {
				l.probe(p, now)
			}
			return false, ""
		}
		if p != nil && !p.ok {
			return false, "its proxy no longer answers"
		}
		if in := l.member(m.To); in != nil {
			for _, s := range in.Slots() {
				if s.Address == m.Slot && s.PublicIP != "" && s.PublicIP != pub && s.PublicIP != s.AutoPublicIP {
					return false, "the member list shows " + s.PublicIP + " on " + m.Slot
				}
			}
		}
		return l.sourceConfirms(m)
	}
	if p, ok := tgt.ENIPublicIPs[m.Slot]; ok && p != "" && p != pub && !l.autoAssigned(m.To, m.Slot, p) {
		return false, "the target's private IP " + m.Slot + " carries " + p + " now"
	}
	return l.sourceConfirms(m)
}

// metadataCurrent: a member's /status carries an instance metadata
// listing read within a probe timeout (a fresh probe's own read).
func (l *Loop) metadataCurrent(s *Status) bool {
	return s.ENIPublicIPs != nil && s.ENIAgeSeconds != nil && seconds(*s.ENIAgeSeconds) < l.cfg.ProbeTimeout
}

// readOn names another managed EIP that the coordinator's reads (or its
// own moves) show on member id's private IP slot, or "": EC2 allows one
// EIP per private IP, and associating a second knocks the first off.
func (l *Loop) readOn(id, slot, except string) string {
	m := l.member(id)
	eni := l.self.NetworkInterfaceID
	if m != nil {
		eni = m.NetworkInterfaceID
	} else if id != l.self.InstanceID {
		return ""
	}
	for aid, st := range l.eips {
		if aid != except && st.addr.Associated() && st.addr.NetworkInterfaceID == eni && st.addr.PrivateIP == slot {
			return st.addr.PublicIP
		}
	}
	return ""
}

// sourceConfirms: for a handoff, the source's instance metadata, read
// since the move began, still lists the EIP.
func (l *Loop) sourceConfirms(m *move) (done bool, why string) {
	pub := l.eips[m.AllocationID].addr.PublicIP
	if m.Kind != Handoff || m.From == "" {
		return true, ""
	}
	src, ok, why := l.freshView(m.From, m.started)
	if why != "" || !ok {
		return false, why
	}
	if !l.metadataCurrent(src) {
		return false, "the source's instance metadata could not be read just now"
	}
	for _, p := range src.ENIPublicIPs {
		if p == pub {
			return true, ""
		}
	}
	l.unsure(l.eips[m.AllocationID], l.now())
	return false, "the source's instance metadata does not list the EIP (it left, or metadata lags)"
}

// freshView is a member's /status from a probe started at or after since
// (this coordinator: its own view). ok is false while none has come;
// why is set when one came and the member may not take part.
func (l *Loop) freshView(id string, since time.Time) (s *Status, ok bool, why string) {
	if id == l.self.InstanceID {
		if l.eni.at.Before(since) {
			return nil, false, ""
		}
		own := Status{Health: l.health.Status().String(), Draining: l.drain, ENIPublicIPs: map[string]string{},
			ENIAgeSeconds: secondsPtr(0)} // read since the move began: current
		for _, a := range l.eni.assocs {
			own.ENIPublicIPs[a.PrivateIP] = a.PublicIP
		}
		return &own, true, ""
	}
	p := l.peers[id]
	if p == nil {
		return nil, false, "not a member any more"
	}
	if p.at.Before(since) || p.call.inFlight && p.freshAt.Before(since) {
		if !p.call.inFlight && p.at.Before(since) {
			l.askFresh(id)
		}
		return nil, false, ""
	}
	if p.status == nil || p.freshAt.Before(since) {
		return nil, false, "it did not answer a fresh probe"
	}
	if p.status.Coordinator != l.self.InstanceID || p.status.Epoch != l.co.epoch {
		return nil, false, "it does not follow this coordinator"
	}
	return p.status, true, ""
}

// autoAssigned reports whether publicIP is the auto-assigned public IP of
// a member's private IP (an EIP associated there replaces it harmlessly).
func (l *Loop) autoAssigned(id, ip, publicIP string) bool {
	if m := l.member(id); m != nil {
		for _, s := range m.PrivateIPs {
			if s.Address == ip && s.AutoPublicIP == publicIP {
				return true
			}
		}
	}
	return false
}

func (l *Loop) disassociate(m *move, now time.Time) {
	co, assoc := m.co, m.observed.AssociationID
	m.inFlight, m.mutating = true, true
	l.exec.start(op{name: "disassociate", mutates: true, deadline: co.deadline, run: func(ctx context.Context) func() {
		err := l.cloud.Disassociate(ctx, assoc)
		return func() { l.onDisassociate(m, now, err) }
	}})
}

func (l *Loop) onDisassociate(m *move, started time.Time, err error) {
	m.inFlight = false
	end := l.now()
	st := l.eips[m.AllocationID]
	if st == nil {
		l.abort(m, "the EIP is gone")
		return
	}
	switch {
	case err == nil:
		l.callOK()
		if !l.cfg.DryRun {
			st.bury(m.observed.AssociationID)
			st.addr.AssociationID, st.addr.NetworkInterfaceID, st.addr.PrivateIP, st.addr.InstanceID = "", "", "", ""
			st.readAt, st.moved = end, end
		}
		m.stage = stageAssociate
		l.advance(m, end)
		return
	case errors.Is(err, eip.ErrStaleAssociation):
		st.bury(m.observed.AssociationID)
		l.unsure(st, end)
		l.abort(m, "the association changed since it was read: someone moved the EIP first")
	case errors.Is(err, eip.ErrNoAnswer):
		st.doubt = &doubt{ended: end, reason: m.Reason, decided: m.decided}
		st.moved = end
		l.abort(m, "no answer: the disassociation may have happened; reading")
	default:
		l.moveFailed(m, err)
	}
	l.read.wanted = true
}

func (l *Loop) associate(m *move, now time.Time) {
	co := m.co
	tgt := l.member(m.To)
	if tgt == nil && m.To == l.self.InstanceID {
		tgt = &eip.Instance{InstanceID: l.self.InstanceID, NetworkInterfaceID: l.self.NetworkInterfaceID}
	}
	if tgt == nil || tgt.NetworkInterfaceID == "" {
		l.abort(m, "the target is not in the member list")
		return
	}
	alloc, eni, slot, reassociate := m.AllocationID, tgt.NetworkInterfaceID, m.Slot, m.Kind == Handoff
	m.inFlight, m.mutating = true, true
	if m.Kind == Handoff {
		l.notifyMember(m.From) // it stops calling itself holder at its next probe
	}
	l.exec.start(op{name: "associate", mutates: true, deadline: co.deadline, run: func(ctx context.Context) func() {
		assoc, err := l.cloud.Associate(ctx, alloc, eni, slot, reassociate)
		return func() { l.onAssociate(m, now, eni, assoc, err) }
	}})
}

func (l *Loop) onAssociate(m *move, started time.Time, eni, assoc string, err error) {
	m.inFlight = false
	end := l.now()
	st := l.eips[m.AllocationID]
	if st == nil {
		l.abort(m, "the EIP is gone")
		return
	}
	switch {
	case err == nil && l.cfg.DryRun:
		l.log.Info("dry-run: would have moved the EIP", "allocation_id", m.AllocationID, "target_instance_id", m.To,
			"reason", m.Reason, "kind", m.Kind.String())
		m.co.dryRunNext[m.AllocationID] = end.Add(l.cfg.AddressPoll)
		l.abort(m, "dry run")
		return
	case err == nil:
		l.callOK()
		if m.observed.Associated() {
			st.bury(m.observed.AssociationID)
		}
		st.addr.AssociationID, st.addr.NetworkInterfaceID, st.addr.PrivateIP, st.addr.InstanceID = assoc, eni, m.Slot, m.To
		st.readAt, st.confirmedAt, st.moved, st.made, st.madeAt = end, started, end, assoc, end
		st.lastMove, st.lastFrom, st.doubt = end, m.From, nil
		l.log.Info("moved the EIP", "allocation_id", m.AllocationID, "association_id", assoc, "target_instance_id", m.To,
			"reason", m.Reason, "took", end.Sub(m.started).String())
		m.stage = stageRecord
		l.notifyMember(m.To)
		l.advance(m, end)
		return
	case errors.Is(err, eip.ErrAlreadyAssociated):
		l.unsure(st, end)
		l.abort(m, "the EIP is associated elsewhere: someone moved it first")
	case errors.Is(err, eip.ErrNoAnswer) && m.Kind == Takeover && !m.retried:
		// The EIP may be unassociated: ask again at once rather than
		// leave it dangling; if the first attempt won, this one fails
		// with Resource.AlreadyAssociated and a read settles it.
		m.retried = true
		l.advance(m, end)
		return
	case errors.Is(err, eip.ErrNoAnswer) || (errors.Is(err, eip.ErrAlreadyAssociated) && m.retried):
		st.doubt = &doubt{ended: end, target: m.To, eni: eni, slot: m.Slot, reason: m.Reason, decided: m.decided, from: m.From}
		st.moved = end
		l.abort(m, "no answer: the association may have happened; reading")
	default:
		l.moveFailed(m, err)
	}
	l.read.wanted = true
}

// moveFailed handles a refused move call.
func (l *Loop) moveFailed(m *move, err error) {
	l.troubled(err)
	st := l.eips[m.AllocationID]
	if errors.Is(err, eip.ErrUnauthorized) {
		st.denied = err.Error()
		m.co.giveUp = "IAM refused a move: " + err.Error()
	}
	if errors.Is(err, eip.ErrInvalidState) || errors.Is(err, eip.ErrNotFound) {
		l.list.wanted = true
	}
	if slices.Contains(eip.Gone(eip.GoneIn(err, []string{m.AllocationID})), m.AllocationID) {
		st.missing, st.goneAt = max(st.missing, 1), l.now()
	}
	// A refused call says the view it was planned on may be out of date
	// (and a 5xx may even have taken effect): the next move of the EIP
	// waits for a read started after it (§5).
	l.unsure(st, l.now())
	l.abort(m, err.Error())
}

// unsure: a move call failed in a way that says this coordinator's view of
// the EIP is out of date (someone moved it; an earlier call of its own
// landed late). Nothing moves it until a read started after end (§5).
func (l *Loop) unsure(st *eipState, end time.Time) {
	st.moved = end
	st.made = "" // the view is out of date: the next read is the truth
	if st.doubt == nil {
		st.doubt = &doubt{ended: end, anyRead: true}
	}
	l.read.wanted = true
}

// record writes the move's record: the target, the next term, why and
// when. The move ends when it returns (a renewal skips the EIP until then).
func (l *Loop) record(m *move, now time.Time) {
	co := m.co
	st := l.eips[m.AllocationID]
	rec := eip.Record{Holder: m.To, Term: l.nextTerm(st), Reason: m.Reason, Decided: m.decided, Moved: l.wall(), From: m.From}
	alloc := m.AllocationID
	m.inFlight = true
	st.recording = true
	l.exec.start(op{name: "record", mutates: true, deadline: co.deadline, run: func(ctx context.Context) func() {
		err := l.cloud.WriteRecord(ctx, alloc, rec)
		return func() {
			m.inFlight = false
			if st := l.eips[alloc]; st != nil {
				st.recording = false
				st.wroteAt = l.now()
			}
			if co.moves[alloc] == m {
				delete(co.moves, alloc)
			}
			st := l.eips[alloc]
			if st == nil {
				return
			}
			if err != nil {
				l.troubled(err)
				l.log.Warn("moved the EIP but could not write its record; it is rewritten after the next read",
					"allocation_id", alloc, "error", err)
				return
			}
			st.denied = ""
			st.wrote, st.wroteHolder, st.wroteAt = rec.Term, rec.Holder, l.now()
			if st.addr.Record.Term.Less(rec.Term) {
				st.addr.Record = rec
			}
		}
	}})
}

// notifyMember asks a member to probe this coordinator now (a move
// concerns it), so that it reports its new role within a round trip.
func (l *Loop) notifyMember(id string) {
	p := l.peers[id]
	if p == nil || p.ip == "" {
		return
	}
	ip := p.ip
	l.exec.start(op{name: "notify " + id, timeout: l.cfg.ProbeTimeout, run: func(ctx context.Context) func() {
		err := l.prober.Notify(ctx, ip, l.self.InstanceID)
		return func() {
			if err != nil {
				l.log.Debug("cannot notify a member; it probes this coordinator anyway", "instance_id", id, "error", err)
			}
		}
	}})
}

// settleDoubt ends the doubt over a move whose answer never came, from a
// read that started after the call ended: when it shows the outcome the
// move aimed at, or once a lease has passed (EC2's reads are eventually
// consistent: a read that late shows whatever happened).
func (l *Loop) settleDoubt(st *eipState, started time.Time) {
	d := st.doubt
	if d == nil || started.Before(d.ended) {
		return
	}
	a := st.addr
	landed := d.target != "" && a.Associated() && a.NetworkInterfaceID == d.eni
	cleared := d.target == "" && !a.Associated()
	if !landed && !cleared && !d.anyRead && started.Sub(d.ended) < l.cfg.LeaseDuration {
		return
	}
	st.doubt = nil
	l.log.Info("the outcome of a move without answer is known", "allocation_id", a.AllocationID, "landed", landed || cleared,
		"associated_to", a.InstanceID)
	if landed {
		st.lastMove, st.lastFrom = started, d.from
		if l.co != nil && l.co.accepted {
			rec := eip.Record{Holder: d.target, Term: l.nextTerm(st), Reason: d.reason, Decided: d.decided, Moved: l.wall(), From: d.from}
			st.repaired = started
			l.writeRecord(st, rec, "move without answer")
		}
	}
}
