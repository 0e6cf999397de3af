package daemon

import (
	"runtime"
	"runtime/debug"
)

// daemonGCPercent is the daemon's GOGC when the environment sets none.
//
// The daemon's live heap is under 1 MiB (a heap profile shows mostly the
// libraries' package-level tables) and it allocates some 50-80 KB/s
// (probes, checks, the SDK's middleware). At GOGC=100 the heap goal never
// falls below the runtime's 4 MiB minimum, so garbage piles up to 4 MiB
// between collections and idle RSS swung between 15 and 17.5 MiB. The
// minimum goal scales with GOGC: at 25 it is 1 MiB, a collection every few
// seconds, each a fraction of a millisecond of CPU on a heap this small.
// Measured with BenchmarkIdle (holder / standby RSS, holder CPU): at 100
// 16.1-17.4 MiB; at 50 15.95-16.19 / 15.82-15.85 MiB, 0.27-0.32 %; at 25
// 15.61-15.85 / 15.56-15.60 MiB, 0.30 %. A GOGC set in the environment wins.
const daemonGCPercent = 25

// daemonProcs is the daemon's GOMAXPROCS when the environment sets none.
//
// The daemon waits on timers and the network and uses well under 1 % of a
// core; one P is plenty. With one P per CPU, every wake-up may spin other
// Ps looking for work to steal, each P keeps its own cache of spans, and
// both grow with the instance size. Measured on 2 CPUs (e2e-style cluster,
// 60-90 s windows): holder idle CPU 0.28-0.30 % with one P against
// 0.34-0.37 % with two, standby 0.20-0.21 % against 0.23-0.27 %, RSS about
// 0.2 MiB lower. A GOMAXPROCS set in the environment wins.
const daemonProcs = 1

// tuneRuntime sets the daemon's runtime knobs; getenv is os.Getenv.
func tuneRuntime(getenv func(string) string, pprof bool) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
	}
	if getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(daemonProcs)
	}
	// Nobody can read a heap profile without --pprof: no sampling of
	// allocations (nor filling the profiler's 1.4 MiB bucket table).
	// Package earlyinit already stopped it before the package initialisers
	// ran; with --pprof the heap profile covers what the daemon allocates
	// from here on.
	runtime.MemProfileRate = 0
	if pprof {
		runtime.MemProfileRate = defaultMemProfileRate
	}
}

// defaultMemProfileRate is the runtime's own default for
// runtime.MemProfileRate (one sample per 512 KiB allocated).
const defaultMemProfileRate = 512 * 1024
