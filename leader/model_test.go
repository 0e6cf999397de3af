package leader

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eipd/eipd/eip"
)

// The model-based test of the election (issue 8, "Prove it"): several
// daemons' real Loops against the EC2 model under faults, with the DESIGN.md
// §9 invariants checked after every step. The driver is in
// model_sim_test.go, the EC2 model in model_ec2_test.go, the Cloud adapter
// in model_cloud_test.go and the invariants in model_invariants_test.go.
//
// Replay one seed of TestModel, with its trail of events:
//
//	EIPD_MODEL_SEED=123 go test ./leader -run 'TestModel$' -v
//
// EIPD_MODEL_RUNS sets how many seeds TestModel tries (seeds 1..N),
// EIPD_MODEL_MINUTES how long each run lasts in simulated minutes, and
// EIPD_MODEL_EVENTS how many events a failure shows.

const (
	modelRuns    = 48 // 8 with -short
	modelMinutes = 5
	modelEvents  = 40
)

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		t.Fatalf("%s=%q: want a non-negative integer", name, v)
	}
	return n
}

// TestModel runs random clusters (2–4 daemons, 1–3 EIPs, 1–2 private IPs
// each) under random faults, one seed each, and fails on any violation of
// the invariants, naming the invariant, the seed and the last events. Each
// run goes on after a violation, so the summary shows every invariant it
// broke; the details are those of the first violation of the first
// failing run.
func TestModel(t *testing.T) {
	seeds := []uint64{}
	if v := os.Getenv("EIPD_MODEL_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("EIPD_MODEL_SEED=%q: want an unsigned integer", v)
		}
		seeds = append(seeds, seed)
	} else {
		runs := modelRuns
		if testing.Short() {
			runs = 8
		}
		for i := range envInt(t, "EIPD_MODEL_RUNS", runs) {
			seeds = append(seeds, uint64(i+1))
		}
	}
	length := time.Duration(envInt(t, "EIPD_MODEL_MINUTES", modelMinutes)) * time.Minute

	var failed []*sim
	bySeed := map[string][]string{}
	steps, faults, moves := 0, 0, 0
	for _, seed := range seeds {
		s := newSim(randomSimConfig(seed))
		s.startAll()
		s.run(length)
		steps, faults, moves = steps+s.steps, faults+s.faults, moves+s.inv.daemonMoves
		if len(s.inv.violations) > 0 {
			failed = append(failed, s)
		}
		for _, v := range s.inv.violations {
			bySeed[v.Invariant] = append(bySeed[v.Invariant], strconv.FormatUint(seed, 10))
		}
	}
	t.Logf("%d runs, %d steps of %v (%v simulated), %d faults injected, %d moves by daemons",
		len(seeds), steps, simStep, time.Duration(steps)*simStep, faults, moves)
	if moves == 0 || faults < len(seeds) {
		t.Fatalf("the runs did nothing worth checking: %d moves, %d faults", moves, faults)
	}
	if len(failed) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d runs broke an invariant:\n", len(failed), len(seeds))
	for _, inv := range []string{invOneHolder, invTermsGrow, invNoDangling, invOneMove, invReleasedGone} {
		if ss := bySeed[inv]; len(ss) > 0 {
			fmt.Fprintf(&b, "  invariant %-22s broken in %2d runs: seeds %s\n", inv, len(ss), strings.Join(ss, " "))
		}
	}
	s := failed[0]
	fmt.Fprintf(&b, "\nfirst failing run, %s", s.report(t, len(seeds) == 1))
	fmt.Fprintf(&b, "replay: EIPD_MODEL_SEED=%d go test ./leader -run 'TestModel$' -v\n", s.cfg.Seed)
	t.Error(b.String())
}

func writeTrail(b *strings.Builder, trail []simEvent, n int) {
	if n > len(trail) {
		n = len(trail)
	}
	fmt.Fprintf(b, "last %d events:\n", n)
	for _, e := range trail[len(trail)-n:] {
		fmt.Fprintf(b, "  %v\n", e)
	}
}

// --- deterministic scenarios: issue 8, items 1–4 ---

// newScenario starts a cluster with no random faults and runs it until
// every EIP has settled on one holder and every member has published its
// state.
func newScenario(t *testing.T, cfg simConfig) *sim {
	t.Helper()
	s := newSim(cfg)
	s.startAll()
	if !s.runUntil(60*time.Second, s.settled) {
		t.Fatalf("the cluster never settled:\n%s", s.report(t, true))
	}
	s.run(5 * time.Second)
	return s
}

// settled reports whether every EIP is associated to a running eipd that
// alone reports holding it, and every running eipd has tagged its state.
func (s *sim) settled() bool {
	cur := s.world.current()
	for _, d := range s.daemons {
		if d.live() && cur.insts[d.id].Tags[eip.TagState] == "" {
			return false
		}
	}
	for _, alloc := range s.allocs {
		if s.released[alloc] {
			continue
		}
		owner := s.inv.ownerOf(alloc)
		for _, d := range s.daemons {
			holds := d.live() && d.roleOf(alloc) == RoleHolder
			if holds != (d.id == owner) {
				return false
			}
		}
		if d := s.daemon(owner); d == nil || !d.live() {
			return false
		}
	}
	return true
}

// holder is the daemon EC2 associates alloc with.
func (s *sim) holder(t *testing.T, alloc string) *simDaemon {
	t.Helper()
	d := s.daemon(s.inv.ownerOf(alloc))
	if d == nil {
		t.Fatalf("%s is not associated to a member", alloc)
	}
	return d
}

// report lists every violation of the run, with the events that led to
// the first one, or to each one when all is set.
func (s *sim) report(t *testing.T, all bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%v\n", s.cfg)
	n := envInt(t, "EIPD_MODEL_EVENTS", modelEvents)
	if len(s.inv.violations) == 0 {
		fmt.Fprintf(&b, "no violation\n")
		writeTrail(&b, s.log.last(n), n)
		return b.String()
	}
	for i, v := range s.inv.violations {
		fmt.Fprintf(&b, "%v (in %d checks)\n", v, s.inv.count[v.Invariant])
		if all || i == len(s.inv.violations)-1 {
			trail := v.Trail
			if !all {
				trail = s.inv.violations[0].Trail
				fmt.Fprintf(&b, "\nbefore the first one:\n")
			}
			writeTrail(&b, trail, n)
			fmt.Fprintln(&b)
		}
	}
	return b.String()
}

// requireNoViolation fails the test with every invariant the run broke.
func requireNoViolation(t *testing.T, s *sim) {
	t.Helper()
	if len(s.inv.violations) > 0 {
		t.Fatalf("invariants broken:\n%s", s.report(t, true))
	}
}

// TestModelItem1: two EIPs on one instance must not knock each other off.
// Three members with two private IPs each; two of them hold one EIP each
// and fall ill one after the other: both EIPs go to the third member, one
// on each of its private IPs, and move once each (issue 8, item 1).
func TestModelItem1(t *testing.T) {
	s := newScenario(t, simConfig{Seed: 1, Daemons: 3, EIPs: 2, Slots: 2, ByGroup: true})
	h1, h2 := s.holder(t, "eipalloc-1"), s.holder(t, "eipalloc-2")
	if h1 == h2 {
		t.Fatalf("both EIPs on %s after the cold start; want them spread", h1.id)
	}
	s.setSick(h1, true)
	s.run(20 * time.Second)
	s.setSick(h2, true)
	s.run(70 * time.Second)
	requireNoViolation(t, s)
	var survivor *simDaemon
	for _, d := range s.daemons {
		if d != h1 && d != h2 {
			survivor = d
		}
	}
	cur := s.world.current()
	a1, a2 := cur.addrs["eipalloc-1"], cur.addrs["eipalloc-2"]
	if a1.InstanceID != survivor.id || a2.InstanceID != survivor.id || a1.PrivateIP == a2.PrivateIP {
		t.Fatalf("EIPs on %s %s and %s %s, want both on %s on distinct private IPs\n%s",
			a1.InstanceID, a1.PrivateIP, a2.InstanceID, a2.PrivateIP, survivor.id, s.report(t, true))
	}
}

// TestModelItem2: standbys must not trust a holder that cannot see AWS.
// The holder's API calls all fail, then the EIP is disassociated by hand:
// a standby must take it within a lease (issue 8, item 2).
func TestModelItem2(t *testing.T) {
	s := newScenario(t, simConfig{Seed: 2, Daemons: 3, EIPs: 1, Slots: 1})
	h := s.holder(t, "eipalloc-1")
	s.setPartition(h, true)
	s.handDisassociate("eipalloc-1")
	s.run(60 * time.Second)
	requireNoViolation(t, s)
	if owner := s.inv.ownerOf("eipalloc-1"); owner == "" || owner == h.id {
		t.Fatalf("EIP on %q after 60 s, want a standby\n%s", owner, s.report(t, true))
	}
}

// TestModelItem3: a holder cut off from the API must step down, and must
// not roll the term back when the API returns. The holder loses the API
// and its proxy; a standby takes over; the proxy comes back, then the API
// (issue 8, item 3).
func TestModelItem3(t *testing.T) {
	s := newScenario(t, simConfig{Seed: 3, Daemons: 3, EIPs: 1, Slots: 1})
	h := s.holder(t, "eipalloc-1")
	term := s.term("eipalloc-1")
	s.setPartition(h, true)
	s.setProxyOff(h, true)
	s.run(40 * time.Second)
	s.setProxyOff(h, false)
	s.run(10 * time.Second)
	s.setPartition(h, false)
	s.run(30 * time.Second)
	requireNoViolation(t, s)
	if owner := s.inv.ownerOf("eipalloc-1"); owner == "" || owner == h.id || s.term("eipalloc-1") != term+1 {
		t.Fatalf("EIP on %q term %d, want a standby with term %d\n%s", owner, s.term("eipalloc-1"), term+1, s.report(t, true))
	}
}

// TestModelItem4: read lag must not make the old holder take the EIP back
// after a handoff. The holder's reads lag 5 s behind; it is asked to hand
// off (issue 8, item 4).
func TestModelItem4(t *testing.T) {
	s := newScenario(t, simConfig{Seed: 4, Daemons: 3, EIPs: 1, Slots: 1})
	h := s.holder(t, "eipalloc-1")
	term := s.term("eipalloc-1")
	s.setReadLag(h, simMaxLag, simMaxLag)
	s.run(10 * time.Second)
	s.manualHandoff(h, "")
	s.run(60 * time.Second)
	requireNoViolation(t, s)
	if owner := s.inv.ownerOf("eipalloc-1"); owner == "" || owner == h.id || s.term("eipalloc-1") != term+1 {
		t.Fatalf("EIP on %q term %d, want another member with term %d\n%s", owner, s.term("eipalloc-1"), term+1, s.report(t, true))
	}
}

// term is the eipd:term an EIP carries now.
func (s *sim) term(alloc string) int64 {
	t, _ := parseModelTerm(s.world.current().addrs[alloc].Tags)
	return t
}
