package leader

import (
	"context"
	"sync"
	"time"

	"github.com/eipd/eipd/health"
)

// probePeers probes, for every EIP this instance does not hold, the member
// the EIP points at (DESIGN: watch the holder over the network, read the
// API as a fallback).
func (l *Loop) probePeers(ctx context.Context) {
	var wg sync.WaitGroup
	for _, st := range l.eips {
		if st.peerIP == "" || (st.holding && st.letGo == "") {
			continue
		}
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, l.cfg.ProbeTimeout)
			defer cancel()
			report, err := l.prober.Check(pctx, st.peerIP)
			if ctx.Err() != nil {
				return
			}
			st.peerResult(report, err, l.cfg.Now())
		})
	}
	wg.Wait()
	for id, st := range l.eips {
		if st.holding {
			// Let go: its eipd says it does not hold the EIP, or its eipd
			// does not answer at all (its proxy's fate does not matter).
			if st.letGo != "" && st.peerAt.After(st.holderSince) && !st.peerSaid.Holds(id) {
				l.log.Debug("the former holder let go", "allocation_id", id, "instance_id", st.letGo)
				st.letGo = ""
				l.watchPeer(st)
			}
			continue
		}
		l.notePeerSilence(id, st)
		if r := st.peerReport; r.Holds(id) {
			// The holder vouches for its lease, and says so only while
			// AWS confirms it (§9.6): that is as good as reading the
			// stamp from the tags.
			st.seeStamp(r.Renewed[id], st.peerAt)
		}
		if st.peerChanged {
			st.peerChanged = false
			up := st.peer.Status() != health.Down
			if up && st.peerWasDown {
				l.log.Info("holder reachable as healthy again", "allocation_id", id, "peer_ip", st.peerIP)
			} else if !up {
				l.log.Warn("holder not reachable as healthy", "allocation_id", id, "peer_ip", st.peerIP, "error", st.peerErr)
				st.peerDownAt = st.peerAt
				// Does it still run? A stopped or terminated holder will
				// never renew: list members now rather than wait out
				// its lease.
				l.membersNow, l.refreshNow = true, true
			}
			st.peerWasDown = !up
			if l.obs != nil {
				l.obs.SetPeerProbeUp(id, up)
			}
		}
	}
}

// notePeerSilence explains, once, a holder whose proxy answers while its
// eipd does not. Never having answered points at a blocked status port
// (security group); having answered before means its daemon stopped.
func (l *Loop) notePeerSilence(id string, st *eipState) {
	silent := st.peerIP != "" && st.peerErr == nil && !st.peerReport.Answered
	if st.peerReport.Answered {
		st.peerEverAnswered = true
	}
	if silent == st.peerSilent {
		return
	}
	st.peerSilent = silent
	if !silent {
		return
	}
	if st.peerEverAnswered {
		l.log.Info("the holder's proxy answers but its eipd no longer does; reading the API until a fresh lease shows",
			"allocation_id", id, "peer_ip", st.peerIP)
		return
	}
	l.log.Warn("the holder's proxy answers but its eipd /status never did; falling back to reading the API (allow the status port between members)",
		"allocation_id", id, "peer_ip", st.peerIP, "standby_poll", l.cfg.StandbyPoll)
}

func (st *eipState) peerResult(report health.PeerReport, err error, now time.Time) {
	if _, changed := st.peer.Observe(err == nil); changed {
		st.peerChanged = true
	}
	st.peerErr = err
	st.peerReport, st.peerSaid, st.peerAt = report, report, now
	if err != nil {
		st.peerReport = health.PeerReport{}
	}
	switch {
	case !st.peerDenies() || st.peerReport.HandingOff[st.addr.AllocationID]:
		st.peerLetGoAt = time.Time{}
	case st.peerLetGoAt.IsZero():
		st.peerLetGoAt = now
	}
}

// peerDenies: the last probe's eipd answered and names a role other than
// holder for this EIP. Only a peer that manages the EIP denies; one that
// does not list it (other --allocation-id) says nothing, and the standby
// poll covers it.
func (st *eipState) peerDenies() bool {
	role, listed := st.peerReport.Roles[st.addr.AllocationID]
	return st.peerReport.Answered && listed && role != RoleHolder
}
