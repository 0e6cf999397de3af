package main

import (
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

// Package earlyinit turns heap-profile sampling off for the whole binary,
// this test binary too; the tests keep the runtime's default, so that
// `go test -memprofile` works here as in every other package.
func init() { runtime.MemProfileRate = defaultMemProfileRate }

func TestTuneRuntime(t *testing.T) {
	rate := runtime.MemProfileRate
	prev := debug.SetGCPercent(100)
	procs := runtime.GOMAXPROCS(0)
	t.Cleanup(func() {
		runtime.MemProfileRate = rate
		debug.SetGCPercent(prev)
		runtime.GOMAXPROCS(procs)
	})
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	runtime.MemProfileRate = 0 // as package earlyinit leaves it
	tuneRuntime(env(nil), true)
	if got := debug.SetGCPercent(100); got != daemonGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, daemonGCPercent)
	}
	if runtime.MemProfileRate != defaultMemProfileRate {
		t.Errorf("with --pprof the memory profile rate is %d, want the runtime's default %d", runtime.MemProfileRate, defaultMemProfileRate)
	}
	if got := runtime.GOMAXPROCS(0); got != daemonProcs {
		t.Errorf("GOMAXPROCS unset: %d, want %d", got, daemonProcs)
	}

	runtime.GOMAXPROCS(3)
	tuneRuntime(env(map[string]string{"GOGC": "200", "GOMAXPROCS": "3"}), false)
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Errorf("GOMAXPROCS set in the environment: changed to %d", got)
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set in the environment: GC percent changed to %d", got)
	}
	if runtime.MemProfileRate != 0 {
		t.Errorf("without --pprof the memory profile rate is %d, want 0", runtime.MemProfileRate)
	}
}

// TestEarlyInitRunsFirst: package earlyinit only helps if its init runs
// before the initialisers that do the work (see the package). This test
// binary links the same packages as eipd; the runtime lists the order of
// the package initialisers that do anything with GODEBUG=inittrace=1.
func TestEarlyInitRunsFirst(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -test.run=^$: %v\n%s", os.Args[0], err, out)
	}
	const early = "github.com/eipd/eipd/internal/earlyinit"
	// The initialisers that allocate the most (inittrace) or read the
	// most of the binary: these must come after.
	later := []string{
		"runtime/metrics",
		"net/http",
		"github.com/aws/aws-sdk-go-v2/service/ec2/internal/endpoints",
		"github.com/aws/aws-sdk-go-v2/service/autoscaling/internal/endpoints",
		"github.com/prometheus/procfs",
		"github.com/prometheus/client_golang/prometheus",
		"google.golang.org/protobuf/types/known/timestamppb",
		"expvar",
	}
	pos := map[string]int{}
	for i, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 1 && f[0] == "init" {
			pos[f[1]] = i + 1
		}
	}
	if pos[early] == 0 {
		t.Fatalf("no initialiser of %s in the GODEBUG=inittrace=1 output:\n%s", early, out)
	}
	for _, p := range later {
		switch {
		case pos[p] == 0:
			t.Errorf("no initialiser of %s in the GODEBUG=inittrace=1 output (renamed? update this list)", p)
		case pos[p] < pos[early]:
			t.Errorf("%s is initialised before %s (line %d < %d): did earlyinit gain an import?", p, early, pos[p], pos[early])
		}
	}
}
