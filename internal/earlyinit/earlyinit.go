// Package earlyinit does start-up work that has to come before the
// libraries' package initialisers. Only package main imports it.
//
// Go initialises the packages in import-path order, each as soon as the
// packages it imports are done. This one imports only the runtime, so its
// init runs among the first, ahead of the SDK's endpoint tables,
// client_golang's default registry, protobuf's descriptors and the rest,
// which together are most of what eipd does before main (GODEBUG=inittrace=1
// shows the order; TestEarlyInitRunsFirst checks it). It must stay that way:
// importing os, for one, would put it behind runtime/metrics.
//
// What it saves is mostly file-backed memory. The kernel maps the binary 64
// KiB at a time, so any read of a page of the 13 MB binary brings in its
// neighbours, and a process's peak RSS is about how many such windows it
// reads. `eipd healthcheck`, which a container runtime starts every few
// seconds, does little but the initialisers; BenchmarkIdle reports its peak
// RSS.
package earlyinit

import "runtime"

func init() {
	growStack(0)
	// A heap-profile sample walks the stack through the binary's symbol
	// table, and the initialisers allocate about one sampling period (half
	// a megabyte): no samples until main says otherwise. The daemon turns
	// sampling back on when it serves /debug/pprof (tuneRuntime).
	runtime.MemProfileRate = 0
}

// stackFrame is the size of growStack's frame. The initialisers run on the
// main goroutine, whose stack starts at a few KiB and is copied to twice its
// size each time it runs out; each copy reads the frame-size tables and stack
// maps of every function on the stack, scattered over the binary's symbol
// table: about 400 KiB of it during initialisation. They need less than 32
// KiB of stack, so growing it there once, before they run, with only this
// frame on it, avoids those copies. Measured with `eipd healthcheck` (peak
// RSS): 16 KiB saves as much as 128 KiB.
const stackFrame = 16 << 10

// growStack has a stackFrame-sized frame that it never touches when n is 0:
// the stack grows to hold the frame, and its pages are not written.
//
//go:noinline
func growStack(n int) byte {
	if n > 0 {
		var b [stackFrame]byte
		b[n%len(b)] = 1
		return b[(n+1)%len(b)]
	}
	return 0
}
