package leader

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/eipd/eipd/eip"
)

// eipState is what this member knows of one EIP. Only the loop goroutine
// touches it.
type eipState struct {
	// addr is the EIP as the last dated read showed it, or as this
	// coordinator's own move left it. readAt is when the state addr shows
	// held at the latest (a read's start; a move's answer); confirmedAt is
	// the evidence for the association it shows (a read's start; the start
	// of the move's call), for Trust.
	addr        eip.Address
	readAt      time.Time
	confirmedAt time.Time
	// missing counts successive reads that did not list the EIP (§8: two
	// and it is forgotten); goneAt is when a call naming it failed because
	// it does not exist (reads started before say nothing).
	missing int
	goneAt  time.Time
	// dead are association IDs this coordinator replaced or removed: EC2
	// never reuses one, so a read showing one of them lags behind a move
	// and is ignored (§5).
	dead []string

	// Member side: the coordinator's word on the EIP, until when it is
	// trusted, and the local estimate of when its evidence was gathered.
	word      *EIPStatus
	wordUntil time.Time
	wordAt    time.Time
	wordBy    string // the coordinator that gave it
	// namedAt: a trusted word first named this member as the EIP's holder
	// (zero when the last word did not). leftAt: the start of the last
	// instance metadata read that saw the EIP go (no longer listed after
	// a read that listed it; kept when it is listed again; zero if it
	// never went).
	namedAt time.Time
	eniSeen bool
	leftAt  time.Time
	// counted: the term whose move to this member was counted as a
	// failover; disagreed: a disagreement between metadata and the
	// coordinator's reads was counted for the current holding.
	counted   string
	disagreed bool
	role, why string

	// Coordinator side.
	moved time.Time // end of this coordinator's last move call of the EIP: earlier reads say nothing (§5)
	// made is the association this coordinator's last move created: for
	// an address poll after the move, a read that does not show it may
	// lag behind it (EC2's reads are eventually consistent) and is not
	// believed.
	made     string
	madeAt   time.Time
	lastMove time.Time // when a move of it was last confirmed (monotonic)
	lastFrom string    // the member it left then
	doubt    *doubt    // a move whose outcome is unknown
	repaired time.Time // start of the last record write made to repair it
	seq      int64     // the last sequence this coordinator wrote in its epoch
	// wrote is the last term this coordinator wrote on the record, for
	// the holder wroteHolder, and wroteAt when that write returned.
	wrote       eip.Term
	wroteHolder string
	wroteAt     time.Time
	// avoid: the target of a move of it abandoned while being prepared,
	// not picked again before avoidUntil.
	avoid      string
	avoidUntil time.Time
	// recording: a record write of it is under way (one at a time).
	recording bool
	note      Note
	denied    string
	notedWhy  string
}

// doubt is a move call whose answer never came: it may have happened.
// No other move of the EIP starts until a read started after the call
// ended shows where the EIP is, or the target's instance metadata does,
// or a lease has passed (EC2's reads are eventually consistent).
type doubt struct {
	ended  time.Time
	target string // the member an association aimed at ("" for a disassociation)
	eni    string // its ENI
	slot   string // and private IP
	// anyRead: any read started after ended settles it (the view was
	// out of date, nothing is in doubt).
	anyRead bool
	// What the move's record says once it is known to have landed.
	reason  string
	decided time.Time
	from    string
}

func (st *eipState) isDead(assoc string) bool {
	return assoc != "" && slices.Contains(st.dead, assoc)
}

// bury records an association ID as gone. A handful is plenty: a lagging
// read can only show recent ones.
func (st *eipState) bury(assoc string) {
	if assoc == "" || st.isDead(assoc) {
		return
	}
	const keep = 8
	st.dead = append(st.dead, assoc)
	if len(st.dead) > keep {
		st.dead = st.dead[len(st.dead)-keep:]
	}
}

// readAddresses reads every managed EIP in one call.
func (l *Loop) readAddresses(now time.Time, deadline time.Time) {
	if l.read.inFlight {
		l.read.wanted = true
		return
	}
	var ids []string
	for _, id := range l.cfg.AllocationIDs {
		if !l.forgotten[id] {
			ids = append(ids, id)
		}
	}
	if len(l.cfg.AllocationIDs) > 0 && len(ids) == 0 {
		return // every configured EIP is gone
	}
	l.read.start(now)
	l.exec.start(op{name: "read", deadline: deadline, run: func(ctx context.Context) func() {
		addrs, err := l.cloud.Addresses(ctx, ids)
		return func() { l.onRead(now, addrs, err) }
	}})
}

// onRead takes in a read of the EIPs that started at started.
func (l *Loop) onRead(started time.Time, addrs []eip.Address, err error) {
	l.read.done(started, err == nil)
	if err != nil {
		l.troubled(err)
		if !l.read.failed || l.read.at.IsZero() {
			l.log.Warn("cannot read the EIPs; AWS state unknown, nothing moves until it is known", "error", err)
		}
		return
	}
	if l.read.failed {
		l.log.Info("the EIPs are readable again")
	}
	l.callOK()
	seen := map[string]bool{}
	var leases []eip.GroupLease
	for _, a := range addrs {
		if l.forgotten[a.AllocationID] {
			continue
		}
		seen[a.AllocationID] = true
		leases = append(leases, a.Lease)
		st := l.track(a.AllocationID)
		if !started.After(st.goneAt) {
			continue // EC2 said it is gone after this read started
		}
		st.missing = 0
		if started.Before(st.moved) || st.isDead(a.AssociationID) ||
			(st.made != "" && a.AssociationID != st.made && started.Before(st.madeAt.Add(l.cfg.AddressPoll))) {
			// Started before this coordinator's own last move of the EIP,
			// shows an association it replaced, or, shortly after its
			// move, not the association it made: it lags (§5).
			if st.made != "" && a.AssociationID != st.made && !started.Before(st.moved) && !st.isDead(a.AssociationID) {
				if again := st.madeAt.Add(l.cfg.AddressPoll); l.readAgainAt.IsZero() || again.Before(l.readAgainAt) {
					l.readAgainAt = again
				}
			}
			continue
		}
		if a.AssociationID == st.made {
			st.made = ""
		}
		if st.addr.AssociationID != "" && a.AssociationID != st.addr.AssociationID && !started.After(st.readAt) {
			continue // an older state than the one already known
		}
		if a.Associated() && a.AssociationID != st.addr.AssociationID {
			// An association this coordinator has not seen: the EIP moved
			// (by another coordinator, by hand, or before this one took
			// over) no later than this read. Its cooldowns count from here
			// unless its record says when (view).
			if st.addr.Associated() {
				st.lastFrom = st.addr.InstanceID
			}
			st.lastMove = maxTime(st.lastMove, started)
		}
		st.addr, st.readAt = a, started
		if a.Associated() {
			st.confirmedAt = started
		}
		l.settleDoubt(st, started)
	}
	for id, st := range l.eips {
		if seen[id] {
			continue
		}
		st.missing++
		if st.missing >= 2 {
			l.forget(id, st)
		}
	}
	if len(addrs) == 0 && len(l.eips) == 0 {
		l.log.Warn("no EIP found to manage; tag an EIP with eipd:group or pass --allocation-id")
	}
	l.seeLeases(leases, started)
	l.settleClaim(leases)
	l.repairRecords(started)
}

// seeLeases takes in the copies of the group lease a read showed: the
// member follows the best one (§7), and learns the stamps of the one it
// follows.
func (l *Loop) seeLeases(leases []eip.GroupLease, now time.Time) {
	for _, ls := range leases {
		if ls.Coordinator == "" || len(ls.Invalid) > 0 {
			continue
		}
		l.followBetter(follow{ID: ls.Coordinator, Epoch: ls.Epoch}, "the group lease")
	}
	for _, ls := range leases {
		if ls.Coordinator == l.follow.ID && ls.Epoch == l.follow.Epoch {
			l.lease.see(ls, now)
		}
	}
}

// followBetter makes f the coordinator this member follows when it comes
// before the current one. A coordinator that learns of one before itself
// stops coordinating at once.
func (l *Loop) followBetter(f follow, from string) bool {
	if !f.precedes(l.follow) {
		return false
	}
	l.log.Info("following a coordinator", "coordinator", f.ID, "epoch", f.Epoch, "learnt_from", from)
	prev := l.follow
	l.follow = f
	if a := l.accepted.Load(); a == nil || f.precedes(*a) {
		l.accepted.Store(&f)
	}
	// A new coordinator gets a chance to confirm before this member
	// judges its lease: the rank delay starts again.
	l.rankSince = time.Time{}
	if l.co != nil && f.ID != l.self.InstanceID {
		l.stepDown("a coordinator with precedence exists: " + f.ID + " epoch " + itoa(f.Epoch))
	}
	if prev.ID != f.ID {
		l.lease = LeaseSeen{}
	}
	l.idleSince, l.idleTroubled = time.Time{}, false
	return true
}

// forget drops an EIP that the API no longer lists (§8): released, or no
// longer tagged for the group.
func (l *Loop) forget(id string, st *eipState) {
	l.log.Warn("EIP no longer exists or is no longer tagged for this group; forgetting it",
		"allocation_id", id, "public_ip", st.addr.PublicIP)
	if l.obs != nil {
		l.obs.SetHolder(id, false)
		l.obs.SetHandoffBlocked(id, false)
		l.obs.SetNoFreePrivateIP(id, false)
		l.obs.Forgotten(id)
	}
	delete(l.eips, id)
	if len(l.cfg.AllocationIDs) > 0 {
		// A configured ID that is gone stays out of every later read.
		l.forgotten[id] = true
	}
}

// listMembers reads the group's running instances.
func (l *Loop) listMembers(now time.Time, deadline time.Time) {
	if l.list.inFlight {
		l.list.wanted = true
		return
	}
	l.list.start(now)
	l.exec.start(op{name: "members", deadline: deadline, run: func(ctx context.Context) func() {
		ms, err := l.cloud.Members(ctx)
		return func() { l.onMembers(now, ms, err) }
	}})
}

func (l *Loop) onMembers(started time.Time, ms []eip.Instance, err error) {
	l.list.done(started, err == nil)
	if err != nil {
		l.troubled(err)
		if !errors.Is(err, context.Canceled) {
			l.log.Warn("cannot list group members", "error", err)
		}
		return
	}
	l.members = l.mergeMembers(started, ms)
	l.callOK()
}

// mergeMembers is the running members after a list that started at
// started. Lists lag too (EC2's reads are eventually consistent): a member
// that an earlier list showed running and this one does not show at all
// stays for two leases after it was last listed; one this list shows in
// another state (stopping, stopped, shutting down) is gone at once.
func (l *Loop) mergeMembers(started time.Time, ms []eip.Instance) []eip.Instance {
	var out []eip.Instance
	listed := map[string]bool{}
	for _, m := range ms {
		listed[m.InstanceID] = true
		if m.State == "" || m.State == "running" {
			out = append(out, m)
			l.listedAt[m.InstanceID] = started
		} else {
			delete(l.listedAt, m.InstanceID)
		}
	}
	for _, m := range l.members {
		at, ok := l.listedAt[m.InstanceID]
		if listed[m.InstanceID] || !ok {
			continue
		}
		if started.Sub(at) > 2*l.cfg.LeaseDuration {
			delete(l.listedAt, m.InstanceID)
			continue
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b eip.Instance) int { return strings.Compare(a.InstanceID, b.InstanceID) })
	return out
}

// troubled notes a failed AWS call: a member whose calls fail ranks after
// the others as coordinator, and one that IAM refuses does not claim it at
// all for a while.
func (l *Loop) troubled(err error) {
	now := l.now()
	l.troubledAt, l.troubleWhy = now, err.Error()
	if errors.Is(err, eip.ErrUnauthorized) {
		l.unfitUntil = now.Add(deniedPause)
	}
	// Only unanswered calls count towards giving up: they may be this
	// member's own path to the API. Throttling is not: EC2 throttles the
	// whole account in a Region, every member alike, and a hand-over in the
	// middle of a failover would only delay it.
	if co := l.co; co != nil && errors.Is(err, eip.ErrUnavailable) {
		if co.failing++; co.failing >= failingGiveUp && co.giveUp == "" {
			co.giveUp = "its AWS calls keep failing: " + err.Error()
		}
	}
}

// failingGiveUp: a coordinator whose AWS calls went unanswered this many
// times in a row gives the role up.
const failingGiveUp = 3

// callOK notes an AWS call that went through.
func (l *Loop) callOK() {
	if l.co != nil {
		l.co.failing = 0
	}
}

// awsTrouble says why this member's AWS calls are in trouble now, or "":
// one failed within the last minute, or a read hangs past a probe
// interval (a member cut off from the API says so before its first call
// times out).
func (l *Loop) awsTrouble(now time.Time) string {
	switch {
	case !l.troubledAt.IsZero() && now.Sub(l.troubledAt) < recentDown:
		return l.troubleWhy
	case l.read.inFlight && now.Sub(l.read.triedAt) > 2*l.cfg.ProbeInterval,
		l.list.inFlight && now.Sub(l.list.triedAt) > 2*l.cfg.ProbeInterval:
		return "an EC2 read has been under way for more than two probe intervals"
	}
	return ""
}

// deniedPause: a member that IAM refused does not claim the coordinator
// role for this long (and a coordinator refused gives it up): its
// permissions will not fix themselves in seconds.
const deniedPause = 5 * time.Minute

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
