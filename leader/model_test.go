package leader

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eipd/eipd/eip"
)

// The model-based test of the election (issue 8, "Prove it"): several
// daemons' real Loops against the EC2 model under faults, with docs/design.md
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
	modelRuns    = 120 // 8 with -short
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

// requireSettled fails the test unless every EIP ended on one holder.
func requireSettled(t *testing.T, s *sim) {
	t.Helper()
	if !s.settled() {
		t.Fatalf("not settled at the end: each EIP on one member that alone reports holding it\n%s", s.report(t, true))
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
	requireSettled(t, s)
}

// TestModelTwoHandoffsAtOnce: two holders fall ill in the same step and
// both hand their EIP to the one healthy member: each EIP goes to its own
// private IP there (neither knocks the other off), one move each. (The
// model steps daemons one after another, so the second sees the first
// handoff land through the target's fresh /status; the truly concurrent
// case, which the per-EIP slot order covers, is the chaos scenario
// two-eips-two-lose-health.)
func TestModelTwoHandoffsAtOnce(t *testing.T) {
	for seed := uint64(1); seed <= 8; seed++ {
		s := newScenario(t, simConfig{Seed: seed, Daemons: 3, EIPs: 2, Slots: 2, ByGroup: true})
		h1, h2 := s.holder(t, "eipalloc-1"), s.holder(t, "eipalloc-2")
		if h1 == h2 {
			t.Fatalf("seed %d: both EIPs on %s after the cold start; want them spread", seed, h1.id)
		}
		s.setSick(h1, true)
		s.setSick(h2, true)
		s.run(30 * time.Second)
		requireNoViolation(t, s)
		cur := s.world.current()
		a1, a2 := cur.addrs["eipalloc-1"], cur.addrs["eipalloc-2"]
		if a1.InstanceID != a2.InstanceID || a1.InstanceID == h1.id || a1.InstanceID == h2.id || a1.PrivateIP == a2.PrivateIP {
			t.Fatalf("seed %d: EIPs on %s %s and %s %s, want both on the healthy member on distinct private IPs\n%s",
				seed, a1.InstanceID, a1.PrivateIP, a2.InstanceID, a2.PrivateIP, s.report(t, true))
		}
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
	requireSettled(t, s)
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
	requireSettled(t, s)
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
	requireSettled(t, s)
}

// term is the eipd:term an EIP carries now.
func (s *sim) term(alloc string) int64 {
	t, _ := parseModelTerm(s.world.current().addrs[alloc].Tags)
	return t
}

// --- the test's own parts ---

// TestModelEC2 checks that the EC2 model has the semantics the invariants
// rely on.
func TestModelEC2(t *testing.T) {
	now := simEpoch
	m := newEC2Model(func() time.Time { return now }, simMaxLag)
	group := map[string]string{eip.TagGroup: "g"}
	m.addAddress("eipalloc-1", "203.0.113.1", group)
	m.addAddress("eipalloc-2", "203.0.113.2", group)
	m.addInstance("i-a", "eni-a", []string{"10.0.1.10", "10.0.1.11"}, group)
	m.addInstance("i-b", "eni-b", []string{"10.0.2.10"}, group)
	code := func(err error) string {
		if e, ok := err.(*ec2Error); ok {
			return e.Code
		}
		return fmt.Sprint(err)
	}

	a1, err := m.associateAddress("t", "eipalloc-1", "eni-a", "10.0.1.10", false)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := m.associateAddress("t", "eipalloc-1", "eni-a", "10.0.1.10", false); err != nil || again != a1 {
		t.Errorf("repeating an association = %q, %v; want %q, nil", again, err, a1)
	}
	if _, err := m.associateAddress("t", "eipalloc-1", "eni-b", "10.0.2.10", false); code(err) != codeAlreadyAssociated {
		t.Errorf("associating elsewhere without reassociation: %v, want %s", err, codeAlreadyAssociated)
	}
	if _, err := m.associateAddress("t", "eipalloc-2", "eni-a", "10.0.1.99", true); code(err) != codeInvalidParameter {
		t.Errorf("associating to a private IP not on the ENI: %v, want %s", err, codeInvalidParameter)
	}
	// One EIP per private IP: the second one knocks the first off, silently.
	now = now.Add(time.Second)
	if _, err := m.associateAddress("t", "eipalloc-2", "eni-a", "10.0.1.10", false); err != nil {
		t.Fatal(err)
	}
	if a := m.current().addrs["eipalloc-1"]; a.AssociationID != "" {
		t.Errorf("eipalloc-1 still associated (%s) after eipalloc-2 took its private IP", a.AssociationID)
	}
	if err := m.disassociateAddress("t", a1); code(err) != codeAssociationNotFound {
		t.Errorf("disassociating a stale association: %v, want %s", err, codeAssociationNotFound)
	}
	if vs := m.current().describeInstances("g"); len(vs) != 2 || vs[0].PrivateIPs[0].AllocationID != "eipalloc-2" ||
		vs[0].PrivateIPs[1].AllocationID != "" || !vs[0].PrivateIPs[0].Primary {
		t.Errorf("DescribeInstances %+v", vs)
	}
	// Reads as of the past see the world before.
	if old, _ := m.asOf(now.Add(-500*time.Millisecond)).describeAddresses([]string{"eipalloc-1"}, "", false); old[0].InstanceID != "i-a" {
		t.Errorf("a read lagging 0.5 s sees eipalloc-1 on %q, want i-a", old[0].InstanceID)
	}
	if err := m.releaseAddress("t", "eipalloc-2"); code(err) != codeInUse {
		t.Errorf("releasing an associated EIP: %v, want %s", err, codeInUse)
	}
	if err := m.releaseAddress("t", "eipalloc-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.current().describeAddresses([]string{"eipalloc-1", "eipalloc-2"}, "", false); code(err) != codeAllocationNotFound {
		t.Errorf("describing a released EIP among others: %v, want %s", err, codeAllocationNotFound)
	}
	if as, err := m.current().describeAddresses(nil, "g", false); err != nil || len(as) != 1 {
		t.Errorf("describing by group after a release: %d addresses, %v", len(as), err)
	}
	if err := m.createTags("t", []string{"eipalloc-1"}, map[string]string{eip.TagTerm: "1"}); code(err) != codeAllocationNotFound {
		t.Errorf("tagging a released EIP: %v, want %s", err, codeAllocationNotFound)
	}
	// The adapter classifies as eip does.
	for c, want := range map[string]error{
		codeAlreadyAssociated: eip.ErrAlreadyAssociated, codeAssociationNotFound: eip.ErrStaleAssociation,
		codeAllocationNotFound: eip.ErrNotFound, codeThrottled: eip.ErrThrottled, codeUnavailable: eip.ErrUnavailable,
		codeTimeout: eip.ErrUnavailable, codeInUse: eip.ErrInvalidRequest,
	} {
		if err := classifyModel(&ec2Error{Code: c}); !errors.Is(err, want) {
			t.Errorf("classifyModel(%s) = %v, want %v", c, err, want)
		}
	}
}

// TestModelInvariantsCanFail checks that each check fires on the state it
// guards against, set up by hand, so a passing TestModel means something.
func TestModelInvariantsCanFail(t *testing.T) {
	const alloc = "eipalloc-1"
	settled := func(t *testing.T) *sim {
		return newScenario(t, simConfig{Seed: 1, Daemons: 2, EIPs: 1, Slots: 1})
	}
	// idle advances true time and checks, without stepping the daemons.
	idle := func(s *sim, d time.Duration) {
		for end := s.now.Add(d); s.now.Before(end); {
			s.now = s.now.Add(simStep)
			s.steps++
			s.inv.afterStep()
		}
	}
	broke := func(t *testing.T, s *sim, inv string) {
		t.Helper()
		if s.inv.count[inv] == 0 {
			t.Fatalf("invariant %s not reported\n%s", inv, s.report(t, true))
		}
	}
	t.Run("one holder", func(t *testing.T) {
		s := settled(t)
		h := s.holder(t, alloc)
		for _, d := range s.daemons {
			if d != h {
				st := d.loop.eips[alloc]
				// A trusted holder whose instance metadata is not
				// consulted (it would show the EIP elsewhere).
				st.holding, st.verifiedAt, st.imdsIgnore = true, d.loop.cfg.Now(), true
				d.loop.publish()
			}
		}
		idle(s, simStep)
		broke(t, s, invOneHolder)
	})
	t.Run("terms only grow", func(t *testing.T) {
		s := settled(t)
		_ = s.world.createTags("rogue", []string{alloc}, map[string]string{eip.TagTerm: "0"})
		s.inv.flush()
		broke(t, s, invTermsGrow)
	})
	t.Run("no dangling EIP", func(t *testing.T) {
		s := settled(t)
		s.handDisassociate(alloc)
		idle(s, simTiming.LeaseDuration+time.Second)
		broke(t, s, invNoDangling)
	})
	t.Run("one move per fault", func(t *testing.T) {
		s := settled(t)
		for _, d := range s.daemons {
			_, _ = s.world.associateAddress("rogue", alloc, d.ident.NetworkInterfaceID, d.ident.PrivateIP, true)
		}
		s.inv.flush()
		broke(t, s, invOneMove)
	})
	t.Run("released means gone", func(t *testing.T) {
		s := settled(t)
		s.handRelease(alloc)
		idle(s, simTiming.StandbyPoll+simTiming.LeaseDuration+time.Second)
		broke(t, s, invReleasedGone)
	})
}

// TestModelPlainFailovers: the failures eipd handled before issue 8 (one
// EIP; the holder falls ill, is stopped, gets SIGTERM) break no invariant,
// so the checks are not stricter than a correct protocol can be.
func TestModelPlainFailovers(t *testing.T) {
	s := newScenario(t, simConfig{Seed: 5, Daemons: 3, EIPs: 1, Slots: 2})
	h := s.holder(t, "eipalloc-1")
	s.setSick(h, true)
	s.run(20 * time.Second)
	s.setSick(h, false)
	s.run(20 * time.Second)

	h = s.holder(t, "eipalloc-1")
	s.stopInstance(h)
	s.run(40 * time.Second)
	s.startInstance(h)
	s.run(20 * time.Second)

	h = s.holder(t, "eipalloc-1")
	s.sigterm(h)
	s.run(20 * time.Second)
	s.start(h)
	s.run(20 * time.Second)

	requireNoViolation(t, s)
	requireSettled(t, s)
	if n := s.inv.daemonMoves; n != 4 {
		t.Errorf("%d moves, want 4: the first claim and one per failure\n%s", n, s.report(t, true))
	}
}
