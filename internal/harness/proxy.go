package harness

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Proxy is an instance's health target, what eipd checks and what the EIP's
// traffic reaches: the built-in stand-in (WebProxy) or a real HAProxy in
// front of the instance's backend (HAProxy). Stop is the fault (the proxy
// dies: new connections are refused), Start brings it back, Close stops it
// for good.
type Proxy interface {
	Start() error
	Stop() error
	Close() error
	Describe() string
}

// WebProxy is the built-in stand-in for HAProxy: the instance's Backend
// itself is its health target (GET /healthz answers 200). It needs nothing
// installed.
type WebProxy struct {
	addr       string // private IP:port
	instanceID string
	mu         sync.Mutex
	backend    *Backend // nil while stopped
}

// NewWebProxy serves instanceID's stand-in on ln.
func NewWebProxy(ln net.Listener, instanceID string) *WebProxy {
	return &WebProxy{addr: ln.Addr().String(), instanceID: instanceID, backend: ServeBackend(ln, instanceID)}
}

// Describe says where it listens and what it is, for people.
func (p *WebProxy) Describe() string {
	return "http://" + p.addr + " (built-in HTTP server standing in for HAProxy)"
}

// Start listens again on the same address.
func (p *WebProxy) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.backend != nil {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("restart the proxy of %s on %s: %w", p.instanceID, p.addr, err)
	}
	p.backend = ServeBackend(ln, p.instanceID)
	return nil
}

// Stop closes the listener and every connection: new connections are
// refused, as when HAProxy dies.
func (p *WebProxy) Stop() error {
	p.mu.Lock()
	b := p.backend
	p.backend = nil
	p.mu.Unlock()
	if b == nil {
		return nil
	}
	return b.Close()
}

// Close is Stop: nothing else is left running.
func (p *WebProxy) Close() error { return p.Stop() }

// HAProxy is a real HAProxy, run in the foreground as a child, in front of a
// built-in Backend that names the instance.
type HAProxy struct {
	bin, dir, name string
	cfgPath        string
	addr           string
	instanceID     string
	env            []string
	backend        *Backend
	mu             sync.Mutex
	proc           *Proc
}

// NewHAProxy writes dir/name.cfg from cfg (a BackendPort of 0: one free on
// cfg.IP), serves instanceID's backend, starts HAProxy with env (log
// dir/name.log) and waits until it answers.
func NewHAProxy(bin, dir, name string, cfg HAProxyConfig, instanceID string, env []string) (*HAProxy, error) {
	bln, err := net.Listen("tcp", net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.BackendPort)))
	if err != nil {
		return nil, fmt.Errorf("backend of %s: %w", instanceID, err)
	}
	cfg.BackendPort = bln.Addr().(*net.TCPAddr).Port
	p := &HAProxy{bin: bin, dir: dir, name: name, cfgPath: filepath.Join(dir, name+".cfg"),
		addr: net.JoinHostPort(cfg.IP, strconv.Itoa(cfg.Port)), instanceID: instanceID, env: env}
	if err := os.WriteFile(p.cfgPath, []byte(cfg.String()), 0o644); err != nil {
		bln.Close()
		return nil, fmt.Errorf("haproxy config: %w", err)
	}
	p.backend = ServeBackend(bln, instanceID)
	if err := p.Start(); err != nil {
		_ = p.Close()
		return nil, err
	}
	return p, nil
}

// Describe says where it listens and its configuration, for people.
func (p *HAProxy) Describe() string {
	return "http://" + p.addr + " (HAProxy " + p.cfgPath + ")"
}

// Start runs HAProxy and waits until its /healthz answers.
func (p *HAProxy) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil && !p.proc.Exited() {
		return nil
	}
	c, err := Start("haproxy of "+p.instanceID, filepath.Join(p.dir, p.name+".log"), p.dir, p.env, p.bin, HAProxyArgs(p.cfgPath)...)
	if err != nil {
		return err
	}
	p.proc = c
	return WaitAnswers("http://"+p.addr+"/healthz", c, 15*time.Second)
}

// Stop kills HAProxy (SIGKILL, as a crash); the backend keeps running.
func (p *HAProxy) Stop() error {
	p.mu.Lock()
	c := p.proc
	p.proc = nil
	p.mu.Unlock()
	if c == nil {
		return nil
	}
	return c.KillWait(10 * time.Second)
}

// Close stops HAProxy and its backend.
func (p *HAProxy) Close() error {
	err := p.Stop()
	_ = p.backend.Close()
	return err
}
