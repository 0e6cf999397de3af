package leader

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The model test: several daemons' real Loops against the EC2 model under
// random faults, with every invariant of docs/design.md checked as they
// run. The driver is in model_sim_test.go, the faults in
// model_faults_test.go, the EC2 model in model_ec2_test.go and the checks
// in model_invariants_test.go.
//
// Replay one seed with its trail of events:
//
//	EIPD_MODEL_SEED=123 go test ./leader -run 'TestModel$' -v
//
// EIPD_MODEL_RUNS sets how many seeds TestModel tries (seeds 1..N; make
// model SEEDS=N runs the long search), EIPD_MODEL_MINUTES how long each
// run lasts in simulated minutes, EIPD_MODEL_EVENTS how many events a
// failure shows.

const (
	modelRuns    = 200 // 10 with -short
	modelMinutes = 5
	modelEvents  = 60
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

// TestModel runs random groups (2–5 daemons, 1–3 EIPs, 1–2 private IPs
// each) under random faults, one seed each, and fails on any violation,
// naming the invariant, the seeds and the events before the first one.
// It prints "model: N seeds, M violations" (make model reads it).
func TestModel(t *testing.T) {
	var seeds []uint64
	if v := os.Getenv("EIPD_MODEL_SEED"); v != "" {
		seed, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("EIPD_MODEL_SEED=%q: want an unsigned integer", v)
		}
		seeds = append(seeds, seed)
	} else {
		runs := modelRuns
		if testing.Short() {
			runs = 10
		}
		for i := range envInt(t, "EIPD_MODEL_RUNS", runs) {
			seeds = append(seeds, uint64(i+1))
		}
	}
	length := time.Duration(envInt(t, "EIPD_MODEL_MINUTES", modelMinutes)) * time.Minute

	// Seeds run in parallel (each sim is self-contained), and are taken
	// in seed order afterwards.
	sims := make([]*sim, len(seeds))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := newSim(randomSimConfig(seeds[i]))
				s.startAll()
				s.run(length)
				if len(s.inv.violations) == 0 {
					s.log = nil // keep no trail of a passing run
				}
				sims[i] = s
			}
		}()
	}
	for i := range seeds {
		next <- i
	}
	close(next)
	wg.Wait()

	var failed []*sim
	bySeed := map[string][]string{}
	faults, moves := 0, 0
	for _, s := range sims {
		faults, moves = faults+s.faults, moves+s.inv.daemonMoves
		if len(s.inv.violations) > 0 {
			failed = append(failed, s)
		}
		for _, v := range s.inv.violations {
			bySeed[v.Invariant] = append(bySeed[v.Invariant], strconv.FormatUint(s.cfg.Seed, 10))
		}
	}
	fmt.Printf("model: %d seeds, %d violations\n", len(seeds), len(failed))
	t.Logf("%d runs of %v simulated, %d faults injected, %d moves by daemons", len(seeds), length, faults, moves)
	if moves == 0 || faults < len(seeds) {
		t.Fatalf("the runs did nothing worth checking: %d moves, %d faults", moves, faults)
	}
	if len(failed) == 0 {
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d runs broke an invariant:\n", len(failed), len(seeds))
	for _, inv := range allInvariants {
		if ss := bySeed[inv]; len(ss) > 0 {
			fmt.Fprintf(&b, "  invariant %-22s broken in %2d runs: seeds %s\n", inv, len(ss), strings.Join(ss, " "))
		}
	}
	s := failed[0]
	fmt.Fprintf(&b, "\nfirst failing run, %s", s.report(t, len(seeds) == 1))
	fmt.Fprintf(&b, "replay: EIPD_MODEL_SEED=%d go test ./leader -run 'TestModel$' -v\n", s.cfg.Seed)
	t.Error(b.String())
}

// report lists every violation of the run, with the events that led to
// the first one (or to each, when all is set).
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
		if all || i == 0 {
			writeTrail(&b, v.Trail, n)
			fmt.Fprintln(&b)
		}
	}
	return b.String()
}

func writeTrail(b *strings.Builder, trail []string, n int) {
	if n > len(trail) {
		n = len(trail)
	}
	fmt.Fprintf(b, "last %d events:\n", n)
	for _, e := range trail[len(trail)-n:] {
		fmt.Fprintf(b, "  %s\n", e)
	}
}

// requireNoViolation fails the test with every invariant the run broke.
func requireNoViolation(t *testing.T, s *sim) {
	t.Helper()
	if len(s.inv.violations) > 0 {
		t.Fatalf("%s", s.report(t, true))
	}
}
