//go:build unix && !linux

package harness

import (
	"os/exec"
	"syscall"
)

var terminate = syscall.SIGTERM

// start starts cmd in its own process group. There is no Pdeathsig here:
// the parent stops every child itself.
func start(cmd *exec.Cmd) error {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd.Start()
}
