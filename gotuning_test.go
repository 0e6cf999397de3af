package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestTuneRuntime(t *testing.T) {
	rate := runtime.MemProfileRate
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() {
		runtime.MemProfileRate = rate
		debug.SetGCPercent(prev)
	})
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	tuneRuntime(env(nil), true)
	if got := debug.SetGCPercent(100); got != daemonGCPercent {
		t.Errorf("GOGC unset: GC percent %d, want %d", got, daemonGCPercent)
	}
	if runtime.MemProfileRate != rate {
		t.Errorf("with --pprof the memory profile rate changed to %d", runtime.MemProfileRate)
	}

	tuneRuntime(env(map[string]string{"GOGC": "200"}), false)
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("GOGC set in the environment: GC percent changed to %d", got)
	}
	if runtime.MemProfileRate != 0 {
		t.Errorf("without --pprof the memory profile rate is %d, want 0", runtime.MemProfileRate)
	}
}
