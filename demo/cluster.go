package demo

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/eipd/eipd/ec2sim"
	"github.com/eipd/eipd/internal/harness"
)

// node is one simulated instance: its health target and its eipd.
type node struct {
	idx     int
	inst    ec2sim.InstanceInfo
	control string // unix:/path of the daemon's control socket
	logPath string // the daemon's log
	proxy   harness.Proxy
	daemon  *harness.Proc
	mu      sync.Mutex
	gone    bool // terminated: its processes are gone for good
}

func (n *node) id() string { return n.inst.InstanceID }

func (n *node) isGone() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gone
}

// checkLoopback binds each instance address once, so that a system
// without 127.0.0.x aliases gets told what to do before anything starts.
func checkLoopback(ips []string) error {
	for _, ip := range ips {
		ln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
		if err != nil {
			return fmt.Errorf("cannot bind %s, the private IP of a simulated instance: %w\n"+
				"eipd demo gives each instance its own loopback address (%s to %s). Linux routes all of 127.0.0.0/8 to the\n"+
				"loopback interface; macOS and the BSDs have only 127.0.0.1 until you add aliases, e.g. on macOS:\n"+
				"  for ip in %s; do sudo ifconfig lo0 alias $ip up; done\n"+
				"(remove them afterwards with: sudo ifconfig lo0 -alias <ip>)",
				ip, err, ips[0], ips[len(ips)-1], strings.Join(ips, " "))
		}
		ln.Close()
	}
	return nil
}

// handoff runs `eipd handoff` against a daemon's control socket, as an
// operator would, and returns its output (also kept in handoff.log).
func handoff(ctx context.Context, exe, dir, logDir, control string) (string, error) {
	out, err := harness.Run(ctx, logDir, harness.Env(dir), exe, "handoff", "--control", control)
	_ = os.WriteFile(filepath.Join(logDir, "handoff.log"), out, 0o644)
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	return string(out), err
}
