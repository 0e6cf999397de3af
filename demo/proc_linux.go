//go:build linux

package demo

import "syscall"

// procAttr puts a child in its own process group, so that a Ctrl-C on the
// terminal reaches the demo alone (which then stops every child itself),
// and has the kernel kill it if the demo dies without cleaning up.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
