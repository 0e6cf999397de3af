package daemon

import (
	"runtime"
	"runtime/debug"
	"testing"
)

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
