package leader

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// peer is another member as this one probes it: every member probes the
// coordinator it follows, and the coordinator probes every member.
type peer struct {
	id, ip string
	hist   *health.Hysteresis
	call   callState
	// fresh: the next probe asks for /status?fresh=1 (the member reads its
	// instance metadata first); freshAt is the start of the last such probe.
	fresh   bool
	freshAt time.Time
	// The last probe: when it started, whether the member was reachable as
	// healthy (its proxy, and its eipd unless it did not answer), and what
	// its /status said (nil when it did not answer).
	at       time.Time
	ok       bool
	err      error
	status   *Status
	answered time.Time // start of the last probe its eipd answered
	downAt   time.Time // when its probe last fell
	// Confirmation of a fall by the other members (groups of three or
	// more): each one's probe of it, by the member asked.
	via map[string]*viaProbe
	// viaAt: the start of the last probe through another member that
	// answered; viaEIPD and viaHolding: whether its eipd answered that
	// member, and what it said it holds.
	viaAt      time.Time
	viaEIPD    bool
	viaHolding []string
	// hbAtDown is its eipd:heartbeat as the member list showed it when the
	// probe fell (groups of two: a new one means it is alive), and
	// hbListAt the start of that list.
	hbAtDown time.Time
	hbListAt time.Time
	warned   string // the last warning logged about it (logged once)
	// protocol: the protocol version it speaks when not this one's.
	protocol int
	// eni: which managed EIPs its instance metadata listed, as last seen;
	// eniSince: since when its /status lists each public IP.
	eni      map[string]bool
	eniSince listedSince
}

// viaProbe is one member's probe of another, for the coordinator.
type viaProbe struct {
	call callState
	// at: start of its last answered probe; reached: whether it reached
	// the member then (unanswered calls leave both alone).
	at      time.Time
	reached bool
}

func (l *Loop) peer(id, ip string) *peer {
	p, ok := l.peers[id]
	if !ok {
		p = &peer{id: id, hist: health.NewHysteresis(1, l.cfg.ProbeFall), via: map[string]*viaProbe{}}
		l.peers[id] = p
	}
	p.ip = ip
	return p
}

// probe starts a probe of p: its proxy and its eipd's /status. The
// coordinator's probes carry its ID and epoch: a member that follows no
// coordinator before it takes it (Accept), and one that follows a better
// one says so in its answer, and this coordinator steps down (§7).
func (l *Loop) probe(p *peer, now time.Time) {
	if p.ip == "" || p.call.inFlight {
		return
	}
	fresh := p.fresh
	p.fresh = false
	p.call.start(now)
	var co follow
	if l.co != nil {
		co = follow{ID: l.self.InstanceID, Epoch: l.co.epoch}
	}
	ip := p.ip
	l.exec.start(op{name: "probe " + p.id, timeout: l.cfg.ProbeTimeout, run: func(ctx context.Context) func() {
		if fresh {
			ctx = health.WithFreshStatus(ctx)
		}
		ctx = health.WithFrom(ctx, l.self.InstanceID)
		if co.ID != "" {
			ctx = health.WithCoordinatorAt(ctx, co.ID, l.self.PrivateIP, co.Epoch)
		}
		r, err := l.prober.Check(ctx, ip)
		return func() { l.onProbe(p, now, fresh, r, err) }
	}})
}

func (l *Loop) onProbe(p *peer, started time.Time, fresh bool, r health.PeerReport, err error) {
	p.call.done(started, err == nil)
	if l.peers[p.id] != p {
		// No longer a member, or no longer the coordinator this member
		// follows: the answer is thrown away, yet that coordinator may
		// count the ask as this member letting go (§1), so its older word
		// no longer makes this member holder.
		if l.co == nil {
			l.dropWordsOf(p.id, l.now())
		}
		return
	}
	var st *Status
	p.protocol = 0
	if r.Answered {
		var s Status
		switch jerr := json.Unmarshal(r.Status, &s); {
		case jerr != nil:
			l.warnPeer(p, "its /status does not parse: "+jerr.Error())
		case s.Protocol != Protocol:
			p.protocol = s.Protocol
			l.warnPeer(p, "it speaks protocol "+itoa(int64(s.Protocol))+", this member "+itoa(Protocol)+"; ignoring what it says")
		case s.InstanceID != p.id:
			l.warnPeer(p, "its /status is that of "+s.InstanceID)
		default:
			st = &s
		}
	}
	status, changed := p.hist.Observe(err == nil)
	p.at, p.ok, p.err, p.status = started, err == nil, err, st
	if st != nil {
		p.answered = started
		if st.ENIPublicIPs != nil {
			p.eniSince = p.eniSince.update(slices.Collect(maps.Values(st.ENIPublicIPs)), started)
		}
		if fresh {
			p.freshAt = started
		}
	}
	if changed {
		if status == health.Down {
			p.downAt = started
			p.hbAtDown, p.hbListAt = time.Time{}, time.Time{}
			if m := l.member(p.id); m != nil {
				p.hbAtDown, p.hbListAt = m.Heartbeat, l.listedAt[p.id]
			}
			l.log.Warn("member not reachable as healthy", "instance_id", p.id, "ip", p.ip, "error", err)
			if l.co != nil {
				// Does it still run? A stopped or terminated member is
				// lost at once; the list says so.
				l.list.wanted = true
			}
		} else if status == health.Up && !p.downAt.IsZero() {
			l.log.Info("member reachable as healthy again", "instance_id", p.id, "ip", p.ip)
		}
	}
	if st == nil {
		if p.id == l.follow.ID {
			// Idle means "answers without acting": one that does not
			// answer is judged by its lease alone.
			l.idleSince, l.idleTroubled = time.Time{}, false
			if l.co == nil {
				l.dropHolderWord(l.now())
			}
		}
		return
	}
	// Whoever it follows: a coordinator that comes before the one this
	// member follows (or before itself, on the coordinator) wins.
	if st.Coordinator != "" && l.plausibleEpoch(st.Epoch) {
		l.followBetter(follow{ID: st.Coordinator, Epoch: st.Epoch}, "the /status of "+p.id)
		if st.Coordinator == l.follow.ID && st.Epoch == l.follow.Epoch && !st.LeaseRenewed.IsZero() {
			// The stamp it knows of that lease (a hand-over's, say).
			l.lease.see(eip.GroupLease{Coordinator: st.Coordinator, Epoch: st.Epoch, Renewed: st.LeaseRenewed}, started)
		}
	}
	if l.co != nil {
		l.compareENI(p, st)
	}
	if l.co == nil && p.id == l.follow.ID {
		l.hearCoordinator(started, st)
	}
}

// compareENI: when a member's instance metadata starts to list, or stops
// listing, a managed EIP differently from the coordinator's last read, the
// coordinator reads now. Metadata is a hint (it may lag, either way); the
// read is the truth.
func (l *Loop) compareENI(p *peer, st *Status) {
	if st.ENIPublicIPs == nil {
		return
	}
	m := l.member(p.id)
	if m == nil {
		return
	}
	changed := false
	for _, e := range l.eips {
		here := false
		for _, pub := range st.ENIPublicIPs {
			here = here || (pub != "" && pub == e.addr.PublicIP)
		}
		if was := p.eni[e.addr.AllocationID]; was != here {
			if p.eni == nil {
				p.eni = map[string]bool{}
			}
			p.eni[e.addr.AllocationID] = here
			onIt := e.addr.Associated() && e.addr.NetworkInterfaceID == m.NetworkInterfaceID
			changed = changed || here != onIt
		}
	}
	if changed {
		l.read.wanted = true
	}
}

func (l *Loop) warnPeer(p *peer, why string) {
	if p.warned != why {
		p.warned = why
		l.log.Warn("member's /status not usable", "instance_id", p.id, "why", why)
	}
}

// probeDue: p has not been probed for a probe interval, or a fresh probe is
// wanted.
func (l *Loop) probeDue(p *peer, now time.Time) bool {
	return !p.call.inFlight && (p.fresh || p.call.triedAt.IsZero() || now.Sub(p.call.triedAt) >= l.cfg.ProbeInterval)
}

// answering reports whether p's eipd answered its last probe.
func (p *peer) answering() bool { return p.status != nil }

// dropWordsOf ends, as of now, the words that coordinator id gave naming
// this member holder (an answer of id's that this member ignores: id may
// count the ask behind it as this member letting go).
func (l *Loop) dropWordsOf(id string, now time.Time) {
	for _, st := range l.eips {
		if st.word != nil && st.wordBy == id && st.word.Holder == l.self.InstanceID {
			st.wordUntil = minTime(st.wordUntil, now)
		}
	}
}

// dropHolderWord: a probe of the coordinator got no usable answer. The
// coordinator counts the ask itself as this member letting go of an EIP
// it no longer names (§1, naming the holder): the lost answer may have
// named nobody. So the older word no longer makes this member holder;
// the next answer that names it does again.
func (l *Loop) dropHolderWord(now time.Time) {
	for _, st := range l.eips {
		if st.word != nil && st.word.Holder == l.self.InstanceID {
			st.wordUntil = minTime(st.wordUntil, now)
		}
	}
}
