package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eipd/eipd/ec2sim"
)

// child is a process started by the demo, its output in a log file.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // valid once done is closed
}

// startChild starts exe with exactly env (nothing inherited from the
// user's environment: no AWS profile or credentials can leak in).
func startChild(name, logPath string, env []string, exe string, args ...string) (*child, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("log file of %s: %w", name, err)
	}
	fmt.Fprintf(f, "=== %s %s %s\n", time.Now().Format(time.RFC3339Nano), exe, strings.Join(args, " "))
	cmd := exec.Command(exe, args...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Dir = filepath.Dir(logPath)
	cmd.SysProcAttr = procAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		f.Close()
		close(c.done)
	}()
	return c, nil
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// kill stops the process at once (SIGKILL: the demo wants no handoff on
// the way out) and waits until it is reaped.
func (c *child) kill() error {
	if !c.exited() {
		_ = c.cmd.Process.Kill()
	}
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
		return fmt.Errorf("%s (pid %d) did not exit after SIGKILL", c.name, c.cmd.Process.Pid)
	}
}

// proxy is an instance's health target: what eipd checks and what the
// EIP's traffic reaches.
type proxy interface {
	start() error
	stop() error
	describe() string
}

// webProxy is the built-in stand-in for HAProxy: GET /healthz answers 200,
// any other path names the instance that served it.
type webProxy struct {
	addr       string // private IP:target port
	instanceID string
	mu         sync.Mutex
	srv        *http.Server
	done       chan struct{}
}

func newWebProxy(ln net.Listener, instanceID string) *webProxy {
	p := &webProxy{addr: ln.Addr().String(), instanceID: instanceID}
	p.serve(ln)
	return p
}

func (p *webProxy) describe() string {
	return "http://" + p.addr + " (built-in HTTP server standing in for HAProxy)"
}

func (p *webProxy) serve(ln net.Listener) {
	id := p.instanceID
	srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: servedBy(id)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	p.mu.Lock()
	p.srv, p.done = srv, done
	p.mu.Unlock()
}

func servedBy(id string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			fmt.Fprintln(w, "ok")
			return
		}
		fmt.Fprintln(w, id)
	})
}

func (p *webProxy) start() error {
	p.mu.Lock()
	running := p.srv != nil
	p.mu.Unlock()
	if running {
		return nil
	}
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		return fmt.Errorf("restart the proxy of %s on %s: %w", p.instanceID, p.addr, err)
	}
	p.serve(ln)
	return nil
}

// stop closes the listener and every connection: new connections are
// refused, as when HAProxy dies.
func (p *webProxy) stop() error {
	p.mu.Lock()
	srv, done := p.srv, p.done
	p.srv = nil
	p.mu.Unlock()
	if srv == nil {
		return nil
	}
	err := srv.Close()
	<-done
	return err
}

// haproxyProxy is a real HAProxy in front of a built-in backend that names
// the instance.
type haproxyProxy struct {
	bin, cfgPath, logPath string
	addr                  string
	instanceID            string
	env                   []string
	backend               *http.Server
	backendDone           chan struct{}
	mu                    sync.Mutex
	proc                  *child
}

const haproxyConfig = `global
    maxconn 200
defaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
frontend fe
    bind %[1]s:%[2]d
    monitor-uri /healthz
    monitor fail if { nbsrv(be) lt 1 }
    default_backend be
backend be
    option httpchk GET /
    server app %[1]s:%[3]d check inter 200ms rise 1 fall 2
`

func newHAProxy(bin, dir string, idx int, ip string, port int, instanceID string, env []string) (*haproxyProxy, error) {
	bln, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		return nil, fmt.Errorf("backend of %s: %w", instanceID, err)
	}
	p := &haproxyProxy{bin: bin, addr: net.JoinHostPort(ip, strconv.Itoa(port)), instanceID: instanceID, env: env,
		cfgPath: filepath.Join(dir, fmt.Sprintf("haproxy-%d.cfg", idx)), logPath: filepath.Join(dir, fmt.Sprintf("haproxy-%d.log", idx))}
	cfg := fmt.Sprintf(haproxyConfig, ip, port, bln.Addr().(*net.TCPAddr).Port)
	if err := os.WriteFile(p.cfgPath, []byte(cfg), 0o644); err != nil {
		bln.Close()
		return nil, fmt.Errorf("haproxy config: %w", err)
	}
	p.backend = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: servedBy(instanceID)}
	p.backendDone = make(chan struct{})
	go func() {
		defer close(p.backendDone)
		_ = p.backend.Serve(bln)
	}()
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
	if p.proc != nil && !p.proc.exited() {
		return nil
	}
	c, err := startChild("haproxy of "+p.instanceID, p.logPath, p.env, p.bin, "-f", p.cfgPath, "-db")
	if err != nil {
		return err
	}
	p.proc = c
	hc := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := hc.Get("http://" + p.addr + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if c.exited() {
			return fmt.Errorf("haproxy of %s exited at start (%v); see %s", p.instanceID, c.err, p.logPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("haproxy of %s does not answer on %s after 15s; see %s", p.instanceID, p.addr, p.logPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
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
	return c.kill()
}

// close stops HAProxy and its backend.
func (p *haproxyProxy) close() error {
	err := p.stop()
	_ = p.backend.Close()
	<-p.backendDone
	return err
}

// node is one simulated instance: its health target and its eipd.
type node struct {
	idx     int
	inst    ec2sim.InstanceInfo
	control string // unix:/path of the daemon's control socket
	logPath string // the daemon's log
	proxy   proxy
	daemon  *child
	mu      sync.Mutex
	gone    bool // terminated: its processes are gone for good
}

func (n *node) id() string { return n.inst.InstanceID }

func (n *node) isGone() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gone
}

// instanceIPs are the private IPs ec2sim gives n instances from firstIP.
func instanceIPs(firstIP string, n int) []string {
	base := net.ParseIP(firstIP).To4()
	out := make([]string, n)
	for i := range out {
		ip := make(net.IP, 4)
		copy(ip, base)
		ip[3] += byte(i)
		out[i] = ip.String()
	}
	return out
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

// commonPort finds a TCP port free on every address and returns it with
// the listeners still bound (the caller keeps or closes them).
func commonPort(ips []string) (int, []net.Listener, error) {
	var lastErr error
	for attempt := 0; attempt < 50; attempt++ {
		first, err := net.Listen("tcp", net.JoinHostPort(ips[0], "0"))
		if err != nil {
			return 0, nil, err
		}
		port := first.Addr().(*net.TCPAddr).Port
		lns := []net.Listener{first}
		for _, ip := range ips[1:] {
			ln, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				lastErr = err
				break
			}
			lns = append(lns, ln)
		}
		if len(lns) == len(ips) {
			return port, lns, nil
		}
		closeAll(lns)
	}
	return 0, nil, fmt.Errorf("no TCP port free on all of %s after 50 tries: %w", strings.Join(ips, ", "), lastErr)
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// daemonEnv is the whole environment of a daemon: the emulator's EC2 and
// IMDS endpoints and nothing that could reach real AWS. Credentials come
// from the instance's (emulated) instance profile, so the emulator counts
// each daemon's calls under its instance.
func daemonEnv(dir, ec2Endpoint, imdsEndpoint, region string) []string {
	empty := filepath.Join(dir, "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	return []string{
		"HOME=" + dir, "AWS_CONFIG_FILE=" + empty, "AWS_SHARED_CREDENTIALS_FILE=" + empty,
		"AWS_REGION=" + region, "AWS_ENDPOINT_URL_EC2=" + ec2Endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT=" + imdsEndpoint,
	}
}

// handoff runs `eipd handoff` against a daemon's control socket, as an
// operator would, and returns its output.
func handoff(ctx context.Context, exe, dir, logDir, control string) (string, error) {
	logPath := filepath.Join(logDir, "handoff.log")
	c, err := startChild("eipd handoff", logPath, []string{"HOME=" + dir}, exe, "handoff", "--control", control)
	if err != nil {
		return "", err
	}
	select {
	case <-c.done:
	case <-ctx.Done():
		_ = c.kill()
		return "", ctx.Err()
	}
	b, _ := os.ReadFile(logPath)
	// The output of this run: after the last header startChild wrote.
	out := string(b)
	if i := strings.LastIndex(out, "=== "); i >= 0 {
		if j := strings.IndexByte(out[i:], '\n'); j >= 0 {
			out = out[i+j+1:]
		}
	}
	if c.err != nil {
		var ee *exec.ExitError
		if errors.As(c.err, &ee) {
			return out, fmt.Errorf("eipd handoff exited with %d: %s", ee.ExitCode(), lastLine(out))
		}
		return out, c.err
	}
	return out, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// logTail is the end of a log file, for error messages.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return err.Error()
	}
	defer f.Close()
	b, _ := io.ReadAll(io.LimitReader(f, 4<<20))
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
