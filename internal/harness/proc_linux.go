//go:build linux

package harness

import (
	"os/exec"
	"runtime"
	"syscall"
)

var terminate = syscall.SIGTERM

// start starts cmd in its own process group, killed by the kernel when the
// parent dies (Pdeathsig).
func start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	// Pdeathsig fires when the thread that forked the child exits, not the
	// process: fork from a thread the runtime will not retire while this
	// goroutine is locked to it, and unlocked it stays in the pool.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Start()
}
