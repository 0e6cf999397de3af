//go:build !unix

package demo

import "syscall"

// procAttr: no process groups here; the demo stops every child itself.
func procAttr() *syscall.SysProcAttr { return nil }
