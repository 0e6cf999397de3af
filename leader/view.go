package leader

import (
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// view is what Plan looks at, built from the coordinator's reads, member
// list and probes.
func (l *Loop) view(now time.Time) View {
	co := l.co
	v := View{Now: now}
	reach, total, selfListed := 1, 1, false
	for _, m := range l.members {
		if m.InstanceID == l.self.InstanceID {
			selfListed = true
		} else {
			total++
			if p := l.peers[m.InstanceID]; p != nil && p.hist.Status() != health.Down {
				reach++
			}
		}
		v.Members = append(v.Members, l.memberView(m, now))
	}
	if !selfListed {
		// Not (yet) in its own member list: it still serves and may hold.
		self := eip.Instance{InstanceID: l.self.InstanceID, NetworkInterfaceID: l.self.NetworkInterfaceID, PrivateIP: l.self.PrivateIP}
		v.Members = append(v.Members, l.memberView(self, now))
	}
	v.Quorum = 2*reach >= total
	if l.obs != nil {
		l.obs.SetMembers(reach, total)
	}
	for _, id := range l.sortedIDs() {
		st := l.eips[id]
		a := st.addr
		e := EIPView{AllocationID: id, PublicIP: a.PublicIP, Associated: a.Associated(),
			Busy: co.moves[id] != nil || st.doubt != nil, LastMove: st.lastMove, LastFrom: st.lastFrom}
		if now.Before(st.avoidUntil) {
			e.Avoid = st.avoid
		}
		if d := st.doubt; d != nil {
			v.Moving = true
			e.To, e.ToSlot = d.target, d.slot
		}
		if m := co.moves[id]; m != nil {
			v.Moving = true
			e.To, e.ToSlot = m.To, m.Slot
		}
		if !a.Record.Moved.IsZero() {
			// A move made by another coordinator (or before this one took
			// over): its record says when, by the mover's clock.
			// A stamp in the future (the mover's clock runs ahead) counts
			// as just now: the cooldowns it feeds only delay planned moves.
			if ago := max(0, l.wall().Sub(a.Record.Moved)); ago < recentDown && now.Add(-ago).After(e.LastMove) {
				e.LastMove, e.LastFrom = now.Add(-ago), a.Record.From
			}
		}
		if a.Associated() {
			if m := l.memberByENI(a.NetworkInterfaceID); m != nil {
				e.On, e.OnSlot = m.InstanceID, a.PrivateIP
			} else if a.NetworkInterfaceID == l.self.NetworkInterfaceID {
				e.On, e.OnSlot = l.self.InstanceID, a.PrivateIP
			} else {
				// A member list read after the association was read does
				// not show that instance running.
				e.Foreign = l.list.at.After(st.readAt)
				if !e.Foreign {
					l.list.wanted = true
				}
			}
		}
		v.EIPs = append(v.EIPs, e)
	}
	return v
}

// memberView is one member as Plan sees it.
func (l *Loop) memberView(m eip.Instance, now time.Time) MemberView {
	mv := MemberView{InstanceID: m.InstanceID, Priority: m.Priority, Coordinator: m.InstanceID == l.self.InstanceID}
	var eni map[string]string
	var since listedSince
	if mv.Coordinator {
		h := l.health.Status()
		mv.Fit = h == health.Up && l.drain == "" && !l.noticed[eip.NoticeRebalance] && !l.stopping
		switch {
		case l.stopping:
			mv.Leaving = ReasonHandoffShutdown
		case l.drain != "":
			mv.Leaving, mv.HandoffTo = l.drain, l.handoffTo
		case h == health.Down:
			mv.Leaving = ReasonHandoffUnhealthy
		}
		mv.DownRecently = l.own.downRecently(now)
		if h == health.Up && !l.own.upSince.IsZero() {
			mv.UpFor = now.Sub(l.own.upSince)
		}
		if l.eni.ok {
			since = l.eni.since
			eni = map[string]string{}
			for _, a := range l.eni.assocs {
				eni[a.PrivateIP] = a.PublicIP
			}
		}
	} else if p := l.peers[m.InstanceID]; p != nil {
		s := p.status
		down := p.hist.Status() == health.Down
		mv.Unreachable = down && s == nil
		mv.Confirmed = mv.Unreachable && l.fallConfirmed(p, m)
		mv.Silent = p.ok && !down && s == nil
		mv.DownRecently = !p.downAt.IsZero() && now.Sub(p.downAt) < recentDown
		if s != nil {
			// A member that does not follow this coordinator refuses its
			// moves' fresh probes: not a target until it does.
			follows := s.Coordinator == l.self.InstanceID && l.co != nil && s.Epoch == l.co.epoch
			mv.Fit = p.ok && follows && s.Health == health.Up.String() && s.Draining == "" && !s.NoNewEIPs
			switch {
			case s.Draining != "":
				mv.Leaving, mv.HandoffTo = s.Draining, s.HandoffTo
			case s.Health == health.Down.String():
				mv.Leaving = ReasonHandoffUnhealthy
			}
			mv.UpFor = seconds(s.UpForSeconds)
			if s.DownAgoSeconds != nil && seconds(*s.DownAgoSeconds) < recentDown {
				mv.DownRecently = true
			}
			eni, since = s.ENIPublicIPs, p.eniSince
		}
	}
	for _, s := range m.Slots() {
		pub := s.PublicIP
		if st := l.managed(pub); st != nil && st.readAt.After(l.list.at) &&
			!(st.addr.NetworkInterfaceID == m.NetworkInterfaceID && st.addr.PrivateIP == s.Address) {
			pub = "" // the list lags: a later read shows that EIP elsewhere
		}
		if eni != nil {
			if p, ok := eni[s.Address]; ok && p != s.AutoPublicIP && !l.readsOverrule(p, since, m, s.Address) {
				pub = p
			} else if !ok {
				pub = ""
			}
		}
		mv.Slots = append(mv.Slots, Slot{IP: s.Address, PublicIP: pub})
	}
	return mv
}

// readsOverrule says whether the coordinator's dated reads overrule a
// member's instance metadata that lists public IP pub on private IP slot
// of m: pub is a managed EIP, and a read started a lease after metadata
// began to list it there shows it elsewhere. Reads are consistent within
// a lease (§6); metadata that still disagrees is stuck (an instance
// metadata service that stopped answering shows its last listing), and
// trusting it would keep the private IP taken forever.
func (l *Loop) readsOverrule(pub string, since listedSince, m eip.Instance, slot string) bool {
	st := l.managed(pub)
	first, ok := since[pub]
	if st == nil || !ok || st.readAt.Before(first.Add(l.cfg.LeaseDuration)) {
		return false
	}
	return !(st.addr.NetworkInterfaceID == m.NetworkInterfaceID && st.addr.PrivateIP == slot)
}

// managed is the EIP whose public IP is pub, or nil.
func (l *Loop) managed(pub string) *eipState {
	if pub == "" {
		return nil
	}
	for _, st := range l.eips {
		if st.addr.PublicIP == pub {
			return st
		}
	}
	return nil
}

// fallConfirmed: no other member that answers this coordinator reaches p
// either (groups of three or more), or, in a group of two, p wrote no heartbeat since its probe
// fell, by a member list read long enough after that (§3).
func (l *Loop) fallConfirmed(p *peer, m eip.Instance) bool {
	if len(l.members) >= 3 {
		// Every other member that answers was asked since the fall, and
		// none reaches it (one whose own probe went unanswered is not
		// counted; at least one must have answered).
		asked := 0
		for id, q := range l.peers {
			if id == p.id || !q.answering() {
				continue
			}
			vp := p.via[id]
			switch {
			case vp == nil || !vp.call.triedAt.After(p.downAt):
				return false // not asked yet
			case vp.at.After(p.downAt) && vp.reached:
				return false
			case vp.at.After(p.downAt):
				asked++
			case vp.call.inFlight:
				return false
			}
		}
		return asked > 0
	}
	return !l.list.at.Before(l.heartbeatDue(p)) && m.Heartbeat.Equal(p.hbAtDown)
}
