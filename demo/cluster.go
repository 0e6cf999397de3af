package demo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eipd/eipd/ec2sim"
	"github.com/eipd/eipd/internal/harness"
)

// proxy is an instance's health target: what eipd checks and what the
// EIP's traffic reaches.
type proxy interface {
	start() error
	stop() error
	describe() string
}

// webProxy is the built-in stand-in for HAProxy: the instance's backend
// itself is its health target (GET /healthz answers 200).
type webProxy struct {
	addr       string // private IP:target port
	instanceID string
	mu         sync.Mutex
	backend    *harness.Backend // nil while stopped
}

func newWebProxy(ln net.Listener, instanceID string) *webProxy {
	return &webProxy{addr: ln.Addr().String(), instanceID: instanceID, backend: harness.ServeBackend(ln, instanceID)}
}

func (p *webProxy) describe() string {
	return "http://" + p.addr + " (built-in HTTP server standing in for HAProxy)"
}

func (p *webProxy) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.backend != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("restart the proxy of %s on %s: %w", p.instanceID, p.addr, err)
	}
	p.backend = harness.ServeBackend(ln, p.instanceID)
	return nil
}

// stop closes the listener and every connection: new connections are
// refused, as when HAProxy dies.
func (p *webProxy) stop() error {
	p.mu.Lock()
	b := p.backend
	p.backend = nil
	p.mu.Unlock()
	if b == nil {
		return nil
	}
	return b.Close()
}

// haproxyProxy is a real HAProxy in front of a built-in backend that names
// the instance.
type haproxyProxy struct {
	bin, dir, cfgPath, logPath string
	addr                       string
	instanceID                 string
	env                        []string
	backend                    *harness.Backend
	mu                         sync.Mutex
	proc                       *harness.Proc
}

func newHAProxy(bin, dir string, idx int, ip string, port int, instanceID string, env []string) (*haproxyProxy, error) {
	bln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, fmt.Errorf("backend of %s: %w", instanceID, err)
	}
	p := &haproxyProxy{bin: bin, dir: dir, addr: net.JoinHostPort(ip, strconv.Itoa(port)), instanceID: instanceID, env: env,
		cfgPath: filepath.Join(dir, fmt.Sprintf("haproxy-%d.cfg", idx)), logPath: filepath.Join(dir, fmt.Sprintf("haproxy-%d.log", idx))}
	cfg := harness.HAProxyConfig{IP: ip, Port: port, BackendPort: bln.Addr().(*net.TCPAddr).Port, CheckInterval: 200 * time.Millisecond}
	if err := os.WriteFile(p.cfgPath, []byte(cfg.String()), 0o644); err != nil {
		bln.Close()
		return nil, fmt.Errorf("haproxy config: %w", err)
	}
	p.backend = harness.ServeBackend(bln, instanceID)
	if err := p.start(); err != nil {
		_ = p.close()
		return nil, err
	}
	return p, nil
}

func (p *haproxyProxy) describe() string {
	return "http://" + p.addr + " (HAProxy " + p.cfgPath + ")"
}

// start runs HAProxy in the foreground and waits until it answers.
func (p *haproxyProxy) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil && !p.proc.Exited() {
		return nil
	}
	c, err := harness.Start("haproxy of "+p.instanceID, p.logPath, p.dir, p.env, p.bin, harness.HAProxyArgs(p.cfgPath)...)
	if err != nil {
		return err
	}
	p.proc = c
	return harness.WaitAnswers("http://"+p.addr+"/healthz", c, 15*time.Second)
}

// stop kills HAProxy (SIGKILL, as a crash).
func (p *haproxyProxy) stop() error {
	p.mu.Lock()
	c := p.proc
	p.proc = nil
	p.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.KillWait(10 * time.Second)
}

// close stops HAProxy and its backend.
func (p *haproxyProxy) close() error {
	err := p.stop()
	_ = p.backend.Close()
	return err
}

// node is one simulated instance: its health target and its eipd.
type node struct {
	idx     int
	inst    ec2sim.InstanceInfo
	control string // unix:/path of the daemon's control socket
	logPath string // the daemon's log
	proxy   proxy
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
	b, err := harness.Run(ctx, logDir, harness.Env(dir), exe, "handoff", "--control", control)
	out := string(b)
	_ = os.WriteFile(filepath.Join(logDir, "handoff.log"), b, 0o644)
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out, fmt.Errorf("eipd handoff exited with %d: %s", ee.ExitCode(), lastLine(out))
		}
		return out, err
	}
	return out, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
