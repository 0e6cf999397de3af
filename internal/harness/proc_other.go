//go:build !unix

package harness

import (
	"os"
	"os/exec"
)

// terminate: no SIGTERM here; a stop is a kill.
var terminate = os.Kill

// start starts cmd as it is: no process groups here; the parent stops
// every child itself.
func start(cmd *exec.Cmd) error { return cmd.Start() }
