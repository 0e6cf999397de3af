package leader

import (
	"strings"
	"testing"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// TestModelInvariantsCanFail feeds every check of model_invariants_test.go
// a state or a change that breaks its invariant, and asserts that it says
// so, under the invariant's name: no check is vacuous. Each case also runs
// the check on the same state without the fault first, and asserts it is
// quiet, so a check that always fires would not pass either.
//
// The sims are built by newSim and their daemons started (a Loop each) but
// never run: their statuses, the invariants' records and the clock are set
// by hand, and the checks are called directly.
func TestModelInvariantsCanFail(t *testing.T) {
	cases := []struct {
		name    string
		inv     string
		msg     string // a part of the violation's message
		daemons int
		// quiet sets up the state the check must accept, then breaks it
		// for the check to reject; both call the check themselves.
		quiet, broken func(s *sim)
	}{
		{name: "checkOneHolder", inv: invOneHolder, msg: "reported holder by", daemons: 2,
			quiet: func(s *sim) {
				cfStatus(s.daemons[0], Status{EIPs: []EIPStatus{{AllocationID: s.allocs[0], Role: RoleHolder}}})
				cfStatus(s.daemons[1], Status{EIPs: []EIPStatus{{AllocationID: s.allocs[0], Role: RoleUnverified}}})
				s.inv.checkOneHolder()
			},
			broken: func(s *sim) {
				cfStatus(s.daemons[1], Status{EIPs: []EIPStatus{{AllocationID: s.allocs[0], Role: RoleHolder}}})
				s.inv.checkOneHolder()
			}},
		{name: "checkTrust: a coordinator past its trust window", inv: invEarnedTrust, msg: "acts as coordinator", daemons: 1,
			quiet: func(s *sim) {
				s.inv.leaseOK[s.daemons[0].id] = s.now
				cfAdvance(s, simTiming.trustWindow())
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				s.inv.checkTrust()
			},
			broken: func(s *sim) {
				cfAdvance(s, 100*time.Millisecond)
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				s.inv.checkTrust()
			}},
		{name: "checkTrust: a coordinator that never wrote its lease", inv: invEarnedTrust, msg: "acts as coordinator", daemons: 1,
			quiet: func(s *sim) {
				s.inv.checkTrust() // its status does not say it acts
			},
			broken: func(s *sim) {
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				s.inv.checkTrust()
			}},
		{name: "checkTrust: a holder on the word of a coordinator past its trust window", inv: invEarnedTrust,
			msg: "reports holder", daemons: 2,
			quiet: func(s *sim) {
				d, co := s.daemons[0], s.daemons[1]
				d.loop.track(s.allocs[0]).wordBy = co.id
				s.inv.leaseOK[co.id] = s.now
				cfAdvance(s, simTiming.trustWindow())
				cfStatus(d, Status{EIPs: []EIPStatus{{AllocationID: s.allocs[0], Role: RoleHolder}}})
				s.inv.checkTrust()
			},
			broken: func(s *sim) {
				cfAdvance(s, 100*time.Millisecond)
				cfStatus(s.daemons[0], Status{EIPs: []EIPStatus{{AllocationID: s.allocs[0], Role: RoleHolder}}})
				s.inv.checkTrust()
			}},
		{name: "leaseWritten: a renewal gap with no fault on the calls", inv: invRenewals, msg: "renewed the group lease",
			daemons: 1,
			quiet: func(s *sim) {
				d := cfCoordinator(s, s.daemons[0])
				lease := eip.GroupLease{Coordinator: d.id, Epoch: 1}
				s.inv.leaseWritten(d, lease, &ticket{arrive: s.now})
				s.inv.leaseWritten(d, lease, &ticket{arrive: s.now.Add(simTiming.RenewInterval + d.loop.renewTimeout())})
			},
			broken: func(s *sim) {
				d := s.daemons[0]
				from := s.now.Add(simTiming.RenewInterval + d.loop.renewTimeout())
				gap := simTiming.RenewInterval + d.loop.renewTimeout() + 300*time.Millisecond
				s.inv.leaseWritten(d, eip.GroupLease{Coordinator: d.id, Epoch: 1}, &ticket{arrive: from.Add(gap)})
			}},
		{name: "renewCall: a renewal over a move's call", inv: invRenewals, msg: "while its move of it is under way", daemons: 1,
			quiet: func(s *sim) {
				d := cfCoordinator(s, s.daemons[0])
				d.loop.co.moves[s.allocs[0]] = &move{Move: Move{AllocationID: s.allocs[0]}, co: d.loop.co, stage: stagePrepare,
					inFlight: true}
				s.inv.renewCall(d, s.allocs)
			},
			broken: func(s *sim) {
				d := s.daemons[0]
				d.loop.co.moves[s.allocs[0]].stage = stageDisassociate
				s.inv.renewCall(d, s.allocs)
			}},
		{name: "checkCoordinators: two act at once beyond a trust window", inv: invClocks, msg: "act as coordinator at once",
			daemons: 2,
			quiet: func(s *sim) {
				for i := range 2 {
					if i > 0 {
						cfAdvance(s, simTiming.trustWindow())
					}
					for _, d := range s.daemons {
						cfStatus(d, cfCoordinating(d))
					}
					s.inv.checkCoordinators()
				}
			},
			broken: func(s *sim) {
				cfAdvance(s, 100*time.Millisecond)
				for _, d := range s.daemons {
					cfStatus(d, cfCoordinating(d))
				}
				s.inv.checkCoordinators()
			}},
		{name: "checkCoordinators: none acts while members are fit", inv: invClocks, msg: "no coordinator acted", daemons: 2,
			quiet: func(s *sim) {
				s.inv.checkCoordinators()
				cfAdvance(s, simTiming.staleAfter()+electionSlack)
				s.inv.checkCoordinators()
			},
			broken: func(s *sim) {
				cfAdvance(s, 100*time.Millisecond)
				s.inv.checkCoordinators()
			}},
		{name: "checkCoordinators: none acts, nobody fit, is no violation", inv: invClocks, msg: "no coordinator acted", daemons: 2,
			quiet: func(s *sim) {
				for _, d := range s.daemons {
					d.health = health.Down
				}
				s.inv.checkCoordinators()
				cfAdvance(s, time.Hour)
				s.inv.checkCoordinators()
			},
			broken: func(s *sim) {
				s.daemons[1].health = health.Up
				s.inv.checkCoordinators()
				cfAdvance(s, simTiming.staleAfter()+electionSlack+100*time.Millisecond)
				s.inv.checkCoordinators()
			}},
		{name: "checkTermsOnlyGrow: an acknowledged write lowers a term", inv: invTermsGrow, msg: "wrote term 1.5", daemons: 1,
			quiet: func(s *sim) {
				id := s.daemons[0].id
				s.inv.onChange(cfTerm(id, s.allocs[0], "", "2.1", true, false))
				s.inv.onChange(cfTerm(id, s.allocs[0], "2.1", "1.9", true, true))   // late: repaired later
				s.inv.onChange(cfTerm(id, s.allocs[0], "1.9", "1.8", false, false)) // unanswered: same
				s.inv.onChange(cfTerm("", s.allocs[0], "1.8", "0.1", true, false))  // the operator's
				s.inv.flush()
			},
			broken: func(s *sim) {
				s.inv.onChange(cfTerm(s.daemons[0].id, s.allocs[0], "0.1", "1.5", true, false))
				s.inv.flush()
			}},
		{name: "checkRepaired: a lowered term nobody repairs", inv: invTermsGrow, msg: "no coordinator rewrote it", daemons: 2,
			quiet: func(s *sim) {
				s.inv.onChange(cfTerm(s.daemons[0].id, s.allocs[0], "", "2.1", true, false))
				s.inv.onChange(cfTerm(s.daemons[1].id, s.allocs[0], "2.1", "1.9", true, true))
				s.inv.flush()
				cfAdvance(s, time.Hour) // no coordinator acts: the clock does not run
				s.inv.checkRepaired()
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				cfAdvance(s, simTiming.LeaseDuration+simTiming.AddressPoll+2*time.Second)
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				s.inv.checkRepaired()
			},
			broken: func(s *sim) {
				cfAdvance(s, 100*time.Millisecond)
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				s.inv.checkRepaired()
			}},
		{name: "checkNoDangling: unassociated for longer than a lease", inv: invNoDangling, msg: "unassociated for", daemons: 2,
			quiet: func(s *sim) {
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				s.inv.checkNoDangling()
				cfAdvance(s, simTiming.LeaseDuration)
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				s.inv.checkNoDangling()
			},
			broken: func(s *sim) {
				cfAdvance(s, 100*time.Millisecond)
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				s.inv.checkNoDangling()
			}},
		{name: "checkNoDangling: not while no member is ready", inv: invNoDangling, msg: "unassociated for", daemons: 2,
			quiet: func(s *sim) {
				for _, d := range s.daemons {
					d.health = health.Down
				}
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				s.inv.checkNoDangling()
				cfAdvance(s, time.Hour)
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				s.inv.checkNoDangling()
			},
			broken: func(s *sim) {
				s.daemons[1].health = health.Up
				s.inv.checkNoDangling()
				cfAdvance(s, simTiming.LeaseDuration+100*time.Millisecond)
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				s.inv.checkNoDangling()
			}},
		{name: "checkOneMovePerFault: two moves with no fault between", inv: invOneMove, msg: "moved 2 times", daemons: 3,
			quiet: func(s *sim) {
				co, a, b := s.daemons[0].id, cfSlot(s.daemons[1]), cfSlot(s.daemons[2])
				alloc := s.allocs[0]
				// A takeover (disassociation, then association from
				// nothing) is one move; a fault allows the next.
				s.inv.onChange(ec2Change{Caller: co, Op: "AssociateAddress", Resource: alloc, To: a})
				s.inv.flush()
				s.inv.faultOn(alloc)
				s.inv.onChange(ec2Change{Caller: co, Op: "DisassociateAddress", Resource: alloc, From: a})
				s.inv.onChange(ec2Change{Caller: co, Op: "AssociateAddress", Resource: alloc, To: b})
				s.inv.flush()
			},
			broken: func(s *sim) {
				s.inv.onChange(ec2Change{Caller: s.daemons[0].id, Op: "AssociateAddress", Resource: s.allocs[0],
					From: cfSlot(s.daemons[2]), To: cfSlot(s.daemons[1])})
				s.inv.flush()
			}},
		{name: "moveCall: a move planned from a read older than the last move call", inv: invDatedReads,
			msg:     "before its previous move of it ended",
			daemons: 1,
			quiet: func(s *sim) {
				d := cfCoordinator(s, s.daemons[0])
				alloc := s.allocs[0]
				d.loop.co.moves[alloc] = &move{Move: Move{AllocationID: alloc}, co: d.loop.co, basis: d.loop.now()}
				s.inv.moveCall(d, alloc, &ticket{deliverAt: s.now.Add(time.Second)})
				// The next move of it, planned from a read started after
				// that call's answer.
				d.loop.co.moves[alloc] = &move{Move: Move{AllocationID: alloc}, co: d.loop.co, basis: d.loop.now().Add(time.Second)}
				s.inv.moveCall(d, alloc, &ticket{deliverAt: s.now.Add(2 * time.Second)})
			},
			broken: func(s *sim) {
				d, alloc := s.daemons[0], s.allocs[0]
				d.loop.co.moves[alloc] = &move{Move: Move{AllocationID: alloc}, co: d.loop.co, basis: d.loop.now().Add(time.Second)}
				s.inv.moveCall(d, alloc, &ticket{deliverAt: s.now.Add(3 * time.Second)})
			}},
		{name: "checkNeeded: a move off a member that serves and that the coordinator reaches", inv: invDeadDaemon,
			msg: "which serves and which it reaches", daemons: 3,
			quiet: func(s *sim) {
				co, m := s.daemons[0], s.daemons[1]
				m.proxyOff = true // its proxy died: moving off it is the point
				s.inv.trackServing()
				cfAdvance(s, neededWindow+time.Second)
				s.inv.trackServing()
				s.inv.onChange(ec2Change{Caller: co.id, Op: "DisassociateAddress", Resource: s.allocs[0], From: cfSlot(m)})
				s.inv.flush()
			},
			broken: func(s *sim) {
				co, m := s.daemons[0], s.daemons[1]
				m.proxyOff, m.eipd = false, false // only its eipd is dead
				s.inv.faultOn(s.allocs[0])
				s.inv.serving = map[string]time.Time{}
				s.inv.trackServing()
				cfAdvance(s, neededWindow+time.Second)
				s.inv.onChange(ec2Change{Caller: co.id, Op: "DisassociateAddress", Resource: s.allocs[0], From: cfSlot(m)})
				s.inv.flush()
			}},
		{name: "checkNeeded: a move off a member that serves and that another member reaches", inv: invCutOff,
			msg: "which serves and which", daemons: 3,
			quiet: func(s *sim) {
				co, m, x := s.daemons[0], s.daemons[1], s.daemons[2]
				s.setCut(co, m, true)
				s.setCut(x, m, true) // nobody reaches it: it may be down
				s.inv.trackServing()
				cfAdvance(s, neededWindow+time.Second)
				s.inv.onChange(ec2Change{Caller: co.id, Op: "DisassociateAddress", Resource: s.allocs[0], From: cfSlot(m)})
				s.inv.flush()
			},
			broken: func(s *sim) {
				co, m, x := s.daemons[0], s.daemons[1], s.daemons[2]
				s.setCut(x, m, false)
				s.inv.faultOn(s.allocs[0])
				s.inv.seen = map[string]time.Time{}
				s.inv.trackServing()
				cfAdvance(s, neededWindow+time.Second)
				s.inv.onChange(ec2Change{Caller: co.id, Op: "DisassociateAddress", Resource: s.allocs[0], From: cfSlot(m)})
				s.inv.flush()
			}},
		{name: "checkReleased: a released EIP still listed", inv: invReleased, msg: "still lists released", daemons: 2,
			quiet: func(s *sim) {
				s.inv.onChange(ec2Change{Op: "ReleaseAddress", Resource: s.allocs[0]})
				s.inv.flush()
				cfAdvance(s, 2*simTiming.AddressPoll+4*simTiming.ProbeInterval+simCallTimeout)
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				cfStatus(s.daemons[1], Status{EIPs: []EIPStatus{{AllocationID: s.allocs[0], Role: RoleStandby}}})
				s.inv.checkReleased()
			},
			broken: func(s *sim) {
				cfAdvance(s, 100*time.Millisecond)
				cfStatus(s.daemons[0], cfCoordinating(s.daemons[0]))
				cfStatus(s.daemons[1], Status{EIPs: []EIPStatus{{AllocationID: s.allocs[0], Role: RoleStandby}}})
				s.inv.checkReleased()
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := cfSim(tc.daemons)
			tc.quiet(s)
			if len(s.inv.violations) > 0 {
				t.Fatalf("the check fires on the state it must accept:\n%s", s.report(t, true))
			}
			tc.broken(s)
			var got []string
			for _, v := range s.inv.violations {
				got = append(got, v.String())
				if v.Invariant == tc.inv && strings.Contains(v.Msg, tc.msg) {
					return
				}
			}
			t.Fatalf("no violation of invariant %q (%q) on a state that breaks it; got %q", tc.inv, tc.msg, got)
		})
	}
}

// cfSim is a group of started but idle daemons (their Loops never run a
// pass), one EIP, everyone healthy, with the clock a minute in.
func cfSim(daemons int) *sim {
	s := newSim(simConfig{Seed: 1, Daemons: daemons, EIPs: 1, Slots: 1})
	for _, d := range s.daemons {
		s.start(d)
		d.health = health.Up
	}
	cfAdvance(s, time.Minute)
	return s
}

// cfAdvance moves the simulated clock without running any event.
func cfAdvance(s *sim, d time.Duration) { s.now = s.now.Add(d) }

// cfStatus makes d's /status say st, as published now.
func cfStatus(d *simDaemon, st Status) {
	st.InstanceID = d.id
	d.loop.mu.Lock()
	d.loop.snap = snapshot{Status: st, at: d.loop.now()}
	d.loop.mu.Unlock()
}

// cfCoordinating is the status of a coordinator that says it acts.
func cfCoordinating(d *simDaemon) Status {
	return Status{Coordinator: d.id, IsCoordinator: true, ValidForSeconds: 5, Epoch: 1}
}

// cfCoordinator makes d coordinate, accepted by every member.
func cfCoordinator(s *sim, d *simDaemon) *simDaemon {
	d.loop.becomeCoordinator(d.loop.now(), 1)
	d.loop.co.accepted = true
	return d
}

// cfTerm is a CreateTags of a record's term on alloc.
func cfTerm(caller, alloc, from, to string, acked, late bool) ec2Change {
	old := map[string]string{}
	if from != "" {
		old[eip.TagTerm] = from
	}
	return ec2Change{Caller: caller, Op: "CreateTags", Resource: alloc, OldTags: old,
		NewTags: map[string]string{eip.TagTerm: to}, Acked: acked, Late: late}
}

// cfSlot is where an EIP on d's primary private IP is, as ec2Change says.
func cfSlot(d *simDaemon) string { return d.id + "/" + d.ips[0] }
