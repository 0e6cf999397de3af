// Package e2e runs the real eipd binary, real HAProxy and the EC2 emulator
// (`eipd sim`) as separate processes on loopback, injects failures, and
// asserts on what the emulator recorded (association history, API calls)
// and on what a client sees through the EIP.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
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
	"syscall"
	"testing"
	"time"

	"github.com/eipd/eipd/internal/harness"
)

// eipdBin is the binary built once by TestMain.
var eipdBin string

// raceBuild: the daemons are built with -race (E2E_RACE=1, what make
// chaos sets).
var raceBuild = os.Getenv("E2E_RACE") == "1"

// children is every process started by this package, so TestMain can
// prove that none outlives the run.
var children struct {
	sync.Mutex
	procs []*proc
}

func TestMain(m *testing.M) { os.Exit(testMain(m)) }

func testMain(m *testing.M) int {
	if os.Getenv(orphanParentEnv) == "1" {
		return orphanParent()
	}
	dir, err := os.MkdirTemp("", "eipd-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: temp dir:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	eipdBin = filepath.Join(dir, "eipd")
	// The release build's flags (make dist): the processes under test are the
	// static binary that ships, and TestMakeDist then finds every package of
	// the native build already compiled. With E2E_RACE=1 (make chaos) the
	// daemons are built with the race detector instead: a data race in any
	// of them is then reported in its log, and the run fails on it.
	args, env := []string{"build", "-trimpath", "-o", eipdBin}, append(os.Environ(), "CGO_ENABLED=0")
	if raceBuild {
		args, env = []string{"build", "-race", "-o", eipdBin}, append(os.Environ(), "CGO_ENABLED=1")
	}
	build := exec.Command("go", append(args, "github.com/eipd/eipd")...)
	build.Env = env
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "e2e: go %s github.com/eipd/eipd failed: %v\n%s", strings.Join(args, " "), err, out)
		return 1
	}
	code := m.Run()
	if line, ok := chaosSummary(); ok {
		fmt.Println(line)
	}
	if left := unreaped(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "e2e: %d child processes were not reaped: %s\n", len(left), strings.Join(left, ", "))
		code = 1
	}
	return code
}

// moduleRoot is the directory of go.mod, found with `go env GOMOD`.
func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside the module")
	}
	return filepath.Dir(gomod), nil
}

// unreaped names the children still running (killing them), if any.
func unreaped() []string {
	children.Lock()
	defer children.Unlock()
	var left []string
	for _, p := range children.procs {
		if !p.Exited() {
			left = append(left, fmt.Sprintf("%s (pid %d)", p.Name, p.Pid()))
			p.Kill()
		}
	}
	return left
}

// needHAProxy fails under CI and skips elsewhere when haproxy is missing.
func needHAProxy(t testing.TB) string {
	t.Helper()
	path, err := harness.FindHAProxy()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("haproxy is required under CI: %v", err)
		}
		t.Skip(err)
	}
	return path
}

// proc is one child process (harness.Proc) with what the chaos judges
// need on top: when the harness held it frozen.
type proc struct {
	*harness.Proc
	// frozen are the spans the harness kept it SIGSTOPped (to zero: not
	// thawed yet).
	mu     sync.Mutex
	frozen []span
}

// span is a stretch of time; a zero to means "not over yet".
type span struct{ from, to time.Time }

// startProc starts bin with exactly env (nothing inherited), output in
// dir/name.log. Cleanup kills it, reaps it and, when the test failed,
// logs the tail of its output.
func startProc(t testing.TB, dir, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	cp, err := harness.Start(name, logPath, dir, env, bin, args...)
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{Proc: cp}
	children.Lock()
	children.procs = append(children.procs, p)
	children.Unlock()
	t.Cleanup(func() {
		p.Kill()
		if !p.WaitExit(15 * time.Second) {
			t.Errorf("%s (pid %d) did not exit after SIGKILL", name, p.Pid())
		}
		if t.Failed() {
			t.Logf("--- tail of %s ---\n%s", name, tail(logPath, 60))
			keepLog(t, logPath)
		}
	})
	return p
}

// unexpectedExit says how the process ended when it exited without the
// harness telling it to (a crash, a fatal error, an exit of its own); ""
// while it runs or when the harness stopped it.
func (p *proc) unexpectedExit() string {
	if !p.Exited() || p.Told() {
		return ""
	}
	return fmt.Sprintf("%s (pid %d) exited on its own at %s: %v\n%s", p.Name, p.Pid(), p.ExitAt.Format("15:04:05.000"), p.Err, tail(p.LogPath, 15))
}

// stop freezes the process (SIGSTOP) and notes when.
func (p *proc) stop() {
	p.mu.Lock()
	p.frozen = append(p.frozen, span{from: time.Now()})
	p.mu.Unlock()
	p.Signal(syscall.SIGSTOP)
}

// cont thaws it (SIGCONT).
func (p *proc) cont() {
	p.Signal(syscall.SIGCONT)
	p.mu.Lock()
	if n := len(p.frozen); n > 0 && p.frozen[n-1].to.IsZero() {
		p.frozen[n-1].to = time.Now()
	}
	p.mu.Unlock()
}

// isFrozen reports whether the harness holds it SIGSTOPped now.
func (p *proc) isFrozen() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.frozen)
	return n > 0 && p.frozen[n-1].to.IsZero()
}

// liveThrough reports whether the process ran, started at least settle
// before from and neither exited nor was frozen, throughout [from, to]:
// its status listener should have answered then.
func (p *proc) liveThrough(from, to time.Time, settle time.Duration) bool {
	if p.Started.After(from.Add(-settle)) || (p.Exited() && !p.ExitAt.After(to)) {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.frozen {
		if f.from.Before(to) && (f.to.IsZero() || f.to.After(from)) {
			return false
		}
	}
	return true
}

// killWait kills the process and waits until it is reaped.
func (p *proc) killWait(t testing.TB) {
	t.Helper()
	if err := p.KillWait(15 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// keepLog copies a failed test's process log to $E2E_LOGS/<test>/ when
// that is set (the test's temporary directory goes with it).
func keepLog(t testing.TB, path string) {
	dir := os.Getenv("E2E_LOGS")
	if dir == "" {
		return
	}
	dir = filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	b, err := os.ReadFile(path)
	if err == nil {
		err = os.MkdirAll(dir, 0o755)
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(dir, filepath.Base(path)), b, 0o644)
	}
	if err != nil {
		t.Logf("keep %s: %v", path, err)
	}
}

// tail is the end of a log, for a failed test's output.
func tail(path string, n int) string { return harness.Tail(path, n) }

// waitFor polls cond every 50ms until it holds or timeout passes. Timeouts
// are generous: a slow machine must not fail a test.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// during checks that cond holds at every poll for d (a "nothing happens"
// assertion); it fails at the first poll where it does not.
func during(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if err := cond(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := cond(); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// freePort returns a TCP port that was free a moment ago on 127.0.0.1 and
// on every address the emulator gives instances (127.0.0.11 onwards). The
// kernel picks an ephemeral port free on 127.0.0.1 only: a port that another
// run's cluster holds on 127.0.0.11 (the same instance IPs, since every
// emulator starts there) would be handed out again, and the instance
// listeners of two concurrent runs would then collide.
func freePort(t testing.TB) int {
	t.Helper()
	ports, release := reservePorts(t, 1)
	release()
	return ports[0]
}

// reservePorts is freePort for n ports that stay bound on 127.0.0.1 and
// every instance address until release is called. A cluster picks its
// instance ports before the emulator starts, and the emulator binds its
// per-instance metadata listeners to port 0 on those same addresses: a
// port picked and closed could be handed to one of them (a chaos run's
// backend failed to bind that way), one still held cannot.
func reservePorts(t testing.TB, n int) (ports []int, release func()) {
	t.Helper()
	var held []net.Listener
	release = func() {
		for _, ln := range held {
			ln.Close()
		}
		held = nil
	}
	for len(ports) < n {
		port, lns, err := harness.ReservePort(reservedIPs)
		if err != nil {
			release()
			t.Fatalf("free port: %v", err)
		}
		ports, held = append(ports, port), append(held, lns...)
	}
	return ports, release
}

// reservedIPs are 127.0.0.1 and the addresses the emulator gives instances.
var reservedIPs = append([]string{"127.0.0.1"}, harness.InstanceIPs("127.0.0.11", instanceIPs)...)

// instanceIPs is how many emulator addresses reservePorts binds: 127.0.0.11
// up to the largest cluster of the benchmarks (100 instances) plus their
// secondary IPs.
const instanceIPs = 130

// fastFlags are the daemon timings of the tests: failures are seen in
// hundreds of milliseconds, leases last one second.
var fastFlags = []string{
	"--health-interval", "100ms", "--health-timeout", "100ms", "--health-rise", "2", "--health-fall", "3",
	"--probe-interval", "100ms", "--probe-fall", "3",
	"--renew-interval", "300ms", "--lease-duration", "1s", "--max-clock-skew", "100ms",
	// The defaults (5 s, 60 s) scaled like the lease (10 s → 1 s); the
	// address poll must stay under lease − skew.
	"--address-poll", "500ms", "--member-poll", "6s", "--lifecycle-poll", "500ms", "--stop-timeout", "5s",
}

// fastLease is --lease-duration + --max-clock-skew of fastFlags.
const fastLease = 1100 * time.Millisecond

// ---- emulator ----

type simInfo struct {
	EC2Endpoint     string     `json:"ec2_endpoint"`
	ControlEndpoint string     `json:"control_endpoint"`
	Region          string     `json:"region"`
	Group           string     `json:"group"`
	Instances       []instInfo `json:"instances"`
	EIPs            []eipInfo  `json:"eips"`
}

type instInfo struct {
	InstanceID   string   `json:"instance_id"`
	PrivateIP    string   `json:"private_ip"`
	PrivateIPs   []string `json:"private_ips"`
	AZ           string   `json:"az"`
	ENIID        string   `json:"eni_id"`
	IMDSEndpoint string   `json:"imds_endpoint"`
}

type eipInfo struct {
	AllocationID string `json:"allocation_id"`
	PublicIP     string `json:"public_ip"`
	ForwardAddr  string `json:"forward_addr"`
}

type simEvent struct {
	Time         time.Time `json:"time"`
	AllocationID string    `json:"allocation_id"`
	From         string    `json:"from"`
	To           string    `json:"to"`
	Caller       string    `json:"caller"`
	Action       string    `json:"action"`
	// Late: EC2 applied it late (late_writes), at Time.
	Late bool `json:"late"`
}

func (e simEvent) String() string {
	return fmt.Sprintf("%s %s %s %q→%q by %q", e.Time.Format("15:04:05.000"), e.AllocationID, e.Action, e.From, e.To, e.Caller)
}

type simStats struct {
	Total     int64                       `json:"total"`
	ByAction  map[string]int64            `json:"by_action"`
	ByCaller  map[string]map[string]int64 `json:"by_caller"`
	ByOutcome map[string]map[string]int64 `json:"by_outcome"`
	// ByCallerOutcome: caller ("" the operator) → outcome → calls.
	ByCallerOutcome map[string]map[string]int64 `json:"by_caller_outcome"`
}

type simAddress struct {
	AllocationID  string            `json:"allocation_id"`
	AssociationID string            `json:"association_id"`
	InstanceID    string            `json:"instance_id"`
	PrivateIP     string            `json:"private_ip"`
	Tags          map[string]string `json:"tags"`
}

// simOpts configure startSim.
type simOpts struct {
	instances, eips, targetPort int
	group                       string
	// asg and hook: an Auto Scaling group holding every instance and its
	// termination lifecycle hook (eipd sim --asg, --lifecycle-hook).
	asg, hook string
	// privateIPs per instance (eipd sim --private-ips); 0 = the emulator's default.
	privateIPs int
	// autoAssignPublicIP: instances get auto-assigned public IPv4
	// addresses (eipd sim --auto-assign-public-ip).
	autoAssignPublicIP bool
}

// startSim runs `eipd sim` and reads the JSON line it prints.
func startSim(t testing.TB, dir string, o simOpts) (*proc, simInfo) {
	t.Helper()
	if o.group == "" {
		o.group = "e2e"
	}
	// stdout goes to the log with stderr; the first line starting with {
	// is the info line.
	args := []string{"sim", "--instances", strconv.Itoa(o.instances), "--eips", strconv.Itoa(o.eips),
		"--group", o.group, "--target-port", strconv.Itoa(o.targetPort), "--log-level", "info"}
	if o.asg != "" {
		args = append(args, "--asg", o.asg)
	}
	if o.hook != "" {
		args = append(args, "--lifecycle-hook", o.hook)
	}
	if o.privateIPs > 0 {
		args = append(args, "--private-ips", strconv.Itoa(o.privateIPs))
	}
	if o.autoAssignPublicIP {
		args = append(args, "--auto-assign-public-ip")
	}
	p := startProc(t, dir, "sim", harness.Env(dir), eipdBin, args...)
	var info simInfo
	waitFor(t, 20*time.Second, "eipd sim to print its endpoints", func() bool {
		if p.Exited() {
			t.Fatalf("eipd sim exited early: %v\n%s", p.Err, tail(p.LogPath, 30))
		}
		f, err := os.Open(p.LogPath)
		if err != nil {
			return false
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if line := sc.Bytes(); bytes.HasPrefix(line, []byte("{")) {
				return json.Unmarshal(line, &info) == nil
			}
		}
		return false
	})
	if len(info.Instances) != o.instances || len(info.EIPs) != o.eips {
		t.Fatalf("sim info: %d instances and %d EIPs, want %d and %d", len(info.Instances), len(info.EIPs), o.instances, o.eips)
	}
	return p, info
}

// httpc is used for every control and status request; no keep-alives, so
// nothing lingers between tests.
var httpc = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}

func doJSON(method, url string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

// ---- cluster ----

// clusterOpts configure newCluster.
type clusterOpts struct {
	instances, eips int
	// flags are the daemon's timing flags; nil = fastFlags.
	flags []string
	// tcpTarget: each instance's health target is a plain TCP listener
	// (tcp://ip:port) instead of HAProxy, to spare a 2-core machine when
	// many instances run.
	tcpTarget bool
	// spares are further instances created in the emulator (running, in
	// the group) on which nothing is started until node.activate: fresh
	// members for benchmarks that terminate instances.
	spares int
	// privateIPs per instance in the emulator; 0 = its default.
	privateIPs int
	// alt marks instances that use the alternate HAProxy and status ports
	// (the partition scenario).
	alt func(i int) bool
	// asg and hook: see simOpts.
	asg, hook string
	// runtimeCheck: the daemons check HAProxy through its runtime API (the
	// stats socket, haproxy://ip:port?backend=be) instead of monitor-uri.
	runtimeCheck bool
	// autoAssignPublicIP: see simOpts.
	autoAssignPublicIP bool
}

type cluster struct {
	t     testing.TB
	dir   string
	sim   *proc
	info  simInfo
	flags []string
	nodes []*node
}

// node is one simulated instance: backend web server, HAProxy (or plain
// TCP target), eipd.
type node struct {
	c           *cluster
	idx         int
	inst        instInfo
	hapPort     int
	statusPort  int
	backendPort int
	// statsPort is HAProxy's runtime API (stats socket) on the instance's IP.
	statsPort    int
	controlAddr  string
	tcpTarget    bool
	runtimeCheck bool
	// spare: an instance of the emulator with nothing started on it yet
	// (clusterOpts.spares); activate brings it in.
	spare bool
	// env is added to the daemon's environment (e.g. a test clock offset).
	env []string

	backend  *harness.Backend
	tcpLn    net.Listener
	haproxy  *proc
	eipd     *proc
	restarts int
	// daemons: every eipd process started for this instance, oldest first
	// (eipd is the last); only the test goroutine touches it.
	daemons []*proc
}

func (n *node) id() string { return n.inst.InstanceID }

func (n *node) healthURL() string {
	if n.tcpTarget {
		return fmt.Sprintf("tcp://%s:%d", n.inst.PrivateIP, n.hapPort)
	}
	if n.runtimeCheck {
		return fmt.Sprintf("haproxy://%s:%d?backend=be", n.inst.PrivateIP, n.statsPort)
	}
	return fmt.Sprintf("http://%s:%d/healthz", n.inst.PrivateIP, n.hapPort)
}

// newCluster starts the emulator and, for every instance, its backend and
// HAProxy (or TCP target). Daemons are started by the caller.
func newCluster(t testing.TB, o clusterOpts) *cluster {
	t.Helper()
	if !o.tcpTarget {
		needHAProxy(t)
	}
	if o.eips == 0 {
		o.eips = 1
	}
	dir := t.TempDir()
	// Held until the emulator has bound its own listeners on the same
	// instance addresses (see reservePorts).
	ports, release := reservePorts(t, 6)
	t.Cleanup(release) // when startSim fails
	hap, hapAlt, status, statusAlt, backendPort, statsPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]
	sim, info := startSim(t, dir, simOpts{instances: o.instances + o.spares, eips: o.eips, targetPort: hap,
		asg: o.asg, hook: o.hook, privateIPs: o.privateIPs, autoAssignPublicIP: o.autoAssignPublicIP})
	release()
	c := &cluster{t: t, dir: dir, sim: sim, info: info, flags: o.flags}
	if c.flags == nil {
		c.flags = fastFlags
	}
	for i, in := range info.Instances {
		n := &node{c: c, idx: i, inst: in, hapPort: hap, statusPort: status, backendPort: backendPort, statsPort: statsPort,
			controlAddr: fmt.Sprintf("127.0.0.1:%d", freePort(t)), tcpTarget: o.tcpTarget, runtimeCheck: o.runtimeCheck}
		if o.alt != nil && o.alt(i) {
			n.hapPort, n.statusPort = hapAlt, statusAlt
			// The EIP's traffic must still reach its HAProxy.
			c.control("PUT", "/instances/"+in.InstanceID+"/target-port", map[string]int{"port": hapAlt}, nil)
		}
		c.nodes = append(c.nodes, n)
		if i >= o.instances {
			n.spare = true
			continue
		}
		n.startTarget()
	}
	for _, n := range c.nodes {
		if !o.tcpTarget && !n.spare {
			n.waitHAProxy()
		}
	}
	return c
}

// startTarget starts the instance's health target: backend and HAProxy, or
// the plain TCP listener.
func (n *node) startTarget() {
	if n.tcpTarget {
		n.startTCPTarget()
		return
	}
	n.startBackend()
	n.startHAProxy()
}

// activate brings a spare instance into the cluster: its health target,
// then its daemon, and waits until the daemon serves /status.
func (n *node) activate() {
	if !n.spare {
		n.c.t.Fatalf("%s is not a spare", n.id())
	}
	n.spare = false
	n.startTarget()
	if !n.tcpTarget {
		n.waitHAProxy()
	}
	n.startDaemon()
	n.waitUp()
}

// spare returns the first instance still kept in reserve, or nil.
func (c *cluster) spare() *node {
	for _, n := range c.nodes {
		if n.spare {
			return n
		}
	}
	return nil
}

// startBackend runs the web server behind this instance's HAProxy; it
// answers with the instance ID so a client can tell who served it.
func (n *node) startBackend() {
	t := n.c.t
	ln, err := net.Listen("tcp", net.JoinHostPort(n.inst.PrivateIP, strconv.Itoa(n.backendPort)))
	if err != nil {
		t.Fatalf("backend of %s: %v", n.id(), err)
	}
	b := harness.ServeBackend(ln, n.id())
	n.backend = b
	t.Cleanup(func() { _ = b.Close() })
}

// startTCPTarget is the cheap health target: accept and close.
func (n *node) startTCPTarget() {
	t := n.c.t
	ln, err := net.Listen("tcp", net.JoinHostPort(n.inst.PrivateIP, strconv.Itoa(n.hapPort)))
	if err != nil {
		t.Fatalf("tcp target of %s: %v", n.id(), err)
	}
	n.tcpLn = ln
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
}

// startHAProxy runs a real HAProxy in the foreground on the instance's IP.
func (n *node) startHAProxy() {
	t := n.c.t
	cfg := filepath.Join(n.c.dir, fmt.Sprintf("haproxy-%d.cfg", n.idx))
	conf := harness.HAProxyConfig{IP: n.inst.PrivateIP, Port: n.hapPort, BackendPort: n.backendPort, StatsPort: n.statsPort, CheckInterval: 100 * time.Millisecond}
	if err := os.WriteFile(cfg, []byte(conf.String()), 0o644); err != nil {
		t.Fatalf("haproxy config: %v", err)
	}
	n.haproxy = startProc(t, n.c.dir, fmt.Sprintf("haproxy-%d", n.idx), harness.Env(n.c.dir), needHAProxy(t), harness.HAProxyArgs(cfg)...)
}

// waitHAProxy waits until the instance's /healthz answers 200.
func (n *node) waitHAProxy() {
	url := n.healthURL()
	if n.runtimeCheck {
		url = fmt.Sprintf("http://%s:%d/healthz", n.inst.PrivateIP, n.hapPort)
	}
	waitFor(n.c.t, 20*time.Second, "haproxy of "+n.id()+" to answer "+url, func() bool {
		if n.haproxy.Exited() {
			n.c.t.Fatalf("haproxy of %s exited: %v\n%s", n.id(), n.haproxy.Err, tail(n.haproxy.LogPath, 20))
		}
		return doJSON("GET", url, nil, nil) == nil
	})
}

// killHAProxy kills the instance's health target (SIGKILL) and waits
// until it is gone.
func (n *node) killHAProxy() {
	if n.tcpTarget {
		n.tcpLn.Close()
		return
	}
	n.haproxy.killWait(n.c.t)
}

func (n *node) restartHAProxy() {
	n.startHAProxy()
	n.waitHAProxy()
}

// startDaemon starts eipd for this instance with the cluster's timings and
// extra flags, and waits until its status listener answers.
func (n *node) startDaemon(extra ...string) {
	t := n.c.t
	args := append([]string{"run", "--group", n.c.info.Group, "--health-check", n.healthURL(),
		"--listen", fmt.Sprintf("%s:%d", n.inst.PrivateIP, n.statusPort), "--control", n.controlAddr},
		n.c.flags...)
	args = append(args, extra...)
	env := harness.DaemonEnv(n.c.dir, n.c.info.EC2Endpoint, n.inst.IMDSEndpoint, n.c.info.Region, n.env...)
	name := fmt.Sprintf("eipd-%d", n.idx)
	if n.restarts > 0 {
		name = fmt.Sprintf("eipd-%d.%d", n.idx, n.restarts)
	}
	n.restarts++
	n.eipd = startProc(t, n.c.dir, name, env, eipdBin, args...)
	n.daemons = append(n.daemons, n.eipd)
}

// daemonLiveThrough reports whether one of n's daemons ran unfrozen
// throughout [from, to], started at least settle before.
func (n *node) daemonLiveThrough(from, to time.Time, settle time.Duration) bool {
	for _, p := range n.daemons {
		if p.liveThrough(from, to, settle) {
			return true
		}
	}
	return false
}

// waitUp waits until the daemon's /status answers.
func (n *node) waitUp() {
	waitFor(n.c.t, 30*time.Second, "eipd of "+n.id()+" to serve /status", func() bool {
		if n.eipd.Exited() {
			n.c.t.Fatalf("eipd of %s exited: %v\n%s", n.id(), n.eipd.Err, tail(n.eipd.LogPath, 30))
		}
		_, err := n.status()
		return err == nil
	})
}

func (c *cluster) startAll() {
	for _, n := range c.nodes {
		if !n.spare {
			n.startDaemon()
		}
	}
	for _, n := range c.nodes {
		if !n.spare {
			n.waitUp()
		}
	}
}

// daemonStatus is the part of /status the tests read (leader.Status and
// statusDoc in view.go: the JSON contract, spelled out here so that a
// renamed field fails the tests).
type daemonStatus struct {
	Protocol         int     `json:"protocol"`
	InstanceID       string  `json:"instance_id"`
	Health           string  `json:"health"`
	UpForSeconds     float64 `json:"up_for_seconds"`
	Draining         string  `json:"draining"`
	NoNewEIPs        bool    `json:"no_new_eips"`
	AWSStateKnown    bool    `json:"aws_state_known"`
	AWSTrouble       string  `json:"aws_trouble"`
	Coordinator      string  `json:"coordinator"`
	IsCoordinator    bool    `json:"is_coordinator"`
	Epoch            int64   `json:"epoch"`
	LeaseRenewed     string  `json:"lease_renewed"`
	ValidForSeconds  float64 `json:"valid_for_seconds"`
	HeartbeatWritten bool    `json:"heartbeat_written"`
	// Members: the coordinator's view of the group (on the coordinator).
	Members        []memberStatus  `json:"members"`
	AWSUnreachable *awsUnreachable `json:"aws_unreachable"`
	Waiting        string          `json:"waiting"`
	EIPs           []eipStatus     `json:"eips"`
}

type memberStatus struct {
	InstanceID string `json:"instance_id"`
	PrivateIP  string `json:"private_ip"`
	Probe      string `json:"probe"`
	Health     string `json:"health"`
	Held       int    `json:"held"`
}

type awsUnreachable struct {
	Since time.Time `json:"since"`
	Cause string    `json:"cause"`
	Hint  string    `json:"hint"`
}

type eipStatus struct {
	AllocationID        string   `json:"allocation_id"`
	Role                string   `json:"role"`
	Holder              string   `json:"holder"`
	Term                string   `json:"term"`
	AssociatedTo        string   `json:"associated_to"`
	Moving              bool     `json:"moving"`
	ConfirmedAgoSeconds *float64 `json:"confirmed_ago_seconds"`
	HandoffBlocked      bool     `json:"handoff_blocked"`
	NoFreePrivateIP     bool     `json:"no_free_private_ip"`
	Denied              string   `json:"denied"`
	Why                 string   `json:"why"`
}

// eip is the entry of alloc, or nil.
func (s *daemonStatus) eip(alloc string) *eipStatus {
	for i := range s.EIPs {
		if s.EIPs[i].AllocationID == alloc {
			return &s.EIPs[i]
		}
	}
	return nil
}

// acting: this daemon says it coordinates and may act now.
func (s *daemonStatus) acting() bool { return s.IsCoordinator && s.ValidForSeconds > 0 }

// member is the coordinator's view of member id, or nil.
func (s *daemonStatus) member(id string) *memberStatus {
	for i := range s.Members {
		if s.Members[i].InstanceID == id {
			return &s.Members[i]
		}
	}
	return nil
}

func (n *node) status() (daemonStatus, error) { return n.statusWithin(5 * time.Second) }

// statusWithin reads n's /status, giving up after timeout: a frozen daemon
// must not stall a sampling round.
func (n *node) statusWithin(timeout time.Duration) (daemonStatus, error) {
	var s daemonStatus
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s:%d/status", n.inst.PrivateIP, n.statusPort), nil)
	if err != nil {
		return s, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return s, fmt.Errorf("GET /status of %s: %s", n.id(), resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return s, fmt.Errorf("GET /status of %s: %w", n.id(), err)
	}
	return s, nil
}

// role is the daemon's role for alloc, "" when unknown.
func (n *node) role(alloc string) string {
	s, err := n.status()
	if err != nil {
		return ""
	}
	if e := s.eip(alloc); e != nil {
		return e.Role
	}
	return ""
}

// running reports whether n's daemon was started and has not exited.
func (n *node) running() bool { return n.eipd != nil && !n.eipd.Exited() }

// coordinator waits until exactly one running daemon says it coordinates
// and may act, and every other running daemon follows it (same
// coordinator, same epoch); it returns that daemon and its /status.
func (c *cluster) coordinator(timeout time.Duration) (*node, daemonStatus) {
	c.t.Helper()
	var co *node
	var cs daemonStatus
	waitFor(c.t, timeout, "one coordinator that every running daemon follows", func() bool {
		var ok bool
		co, cs, ok = c.tryCoordinator()
		return ok
	})
	return co, cs
}

// coordinatorWord is the acting coordinator's /status entry of alloc
// (its word on the EIP: why it moves or not), nil when none is found.
func (c *cluster) coordinatorWord(alloc string) *eipStatus {
	for _, n := range c.nodes {
		if !n.running() {
			continue
		}
		if s, err := n.status(); err == nil && s.acting() {
			return s.eip(alloc)
		}
	}
	return nil
}

// waitBlocked waits until the coordinator reports that alloc should leave
// the member it is on but no member is ready to take it (handoff_blocked
// on its /status); marks are the daemons' log sizes before the fault.
func (c *cluster) waitBlocked(t testing.TB, alloc string, marks map[*node]int, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, "the coordinator to report the handoff of "+alloc+" blocked", func() bool {
		if e := c.coordinatorWord(alloc); e != nil && e.HandoffBlocked {
			return true
		}
		return c.blockedLogged(alloc, marks)
	})
}

// logMarks are the running daemons' log sizes now.
func (c *cluster) logMarks() map[*node]int {
	m := map[*node]int{}
	for _, n := range c.nodes {
		if n.running() {
			m[n] = n.logSize()
		}
	}
	return m
}

// blockedLogged: a daemon logged since marks that alloc cannot move for
// want of a fit member. The coordinator does not set handoff_blocked for
// an unhealthy member's EIP (a fenced takeover: leader/plan.go place);
// until it does, only its log says so.
func (c *cluster) blockedLogged(alloc string, marks map[*node]int) bool {
	for n, off := range marks {
		if n.running() && len(linesWith(n.logOf(off), "an EIP cannot move", alloc, "no fit member with a free private IP")) > 0 {
			return true
		}
	}
	return false
}

// tryCoordinator is one look for what coordinator waits for.
func (c *cluster) tryCoordinator() (*node, daemonStatus, bool) {
	var co *node
	var cs daemonStatus
	var sts []daemonStatus
	for _, n := range c.nodes {
		if !n.running() || n.eipd.isFrozen() {
			continue // a frozen daemon answers nobody
		}
		s, err := n.status()
		if err != nil {
			return nil, cs, false
		}
		sts = append(sts, s)
		if s.acting() {
			if co != nil {
				return nil, cs, false
			}
			co, cs = n, s
		}
	}
	if co == nil {
		return nil, cs, false
	}
	for _, s := range sts {
		if s.Coordinator != co.id() || s.Epoch != cs.Epoch {
			return nil, cs, false
		}
	}
	return co, cs, true
}

func (c *cluster) node(id string) *node {
	for _, n := range c.nodes {
		if n.id() == id {
			return n
		}
	}
	return nil
}

func (c *cluster) alloc(i int) string { return c.info.EIPs[i].AllocationID }

// address is the true state of an EIP in the emulator.
func (c *cluster) address(alloc string) simAddress {
	var a simAddress
	if err := doJSON("GET", c.info.ControlEndpoint+"/addresses/"+alloc, nil, &a); err != nil {
		c.t.Fatalf("read address %s: %v", alloc, err)
	}
	return a
}

func (c *cluster) holder(alloc string) string { return c.address(alloc).InstanceID }

func (c *cluster) events() []simEvent {
	var ev []simEvent
	if err := doJSON("GET", c.info.ControlEndpoint+"/events", nil, &ev); err != nil {
		c.t.Fatalf("read events: %v", err)
	}
	return ev
}

func (c *cluster) stats() simStats {
	var s simStats
	if err := doJSON("GET", c.info.ControlEndpoint+"/stats", nil, &s); err != nil {
		c.t.Fatalf("read stats: %v", err)
	}
	return s
}

// mark is a position in the association history.
func (c *cluster) mark() int { return len(c.events()) }

// assocsSince lists the events since mark that associated alloc with an
// instance: the moves.
func (c *cluster) assocsSince(mark int, alloc string) []simEvent {
	var out []simEvent
	for _, e := range c.events()[mark:] {
		if e.AllocationID == alloc && e.To != "" {
			out = append(out, e)
		}
	}
	return out
}

func (c *cluster) eventsSince(mark int) string {
	var b strings.Builder
	for _, e := range c.events()[mark:] {
		b.WriteString("\n  " + e.String())
	}
	return b.String()
}

// noMoves is a during() condition: alloc was not associated anywhere new
// since mark.
func (c *cluster) noMoves(mark int, alloc string) func() error {
	return func() error {
		if m := c.assocsSince(mark, alloc); len(m) > 0 {
			return fmt.Errorf("%d unexpected move(s):%s", len(m), c.eventsSince(mark))
		}
		return nil
	}
}

// onlyMoveTo checks that exactly one association change of alloc happened
// since mark, and that it went to the instance to.
func (c *cluster) onlyMoveTo(mark int, alloc, to, what string) func() error {
	return func() error {
		if m := c.assocsSince(mark, alloc); len(m) != 1 || m[0].To != to {
			return fmt.Errorf("want one move to %s (%s), got:%s", to, what, c.eventsSince(mark))
		}
		return nil
	}
}

// steady waits until alloc is associated, the instance it points at
// reports itself holder, every other running daemon is a standby with its
// health up, and all of them follow one coordinator that may act. It
// returns the holder's node.
func (c *cluster) steady(alloc string) *node {
	c.t.Helper()
	var h *node
	waitFor(c.t, 45*time.Second, "a steady holder of "+alloc+" and one coordinator", func() bool {
		h = c.node(c.holder(alloc))
		if h == nil || !h.running() {
			return false
		}
		coord, epoch, acting := "", int64(-1), 0
		for _, n := range c.nodes {
			if !n.running() {
				continue
			}
			s, err := n.status()
			if err != nil || s.Health != "up" {
				return false
			}
			e := s.eip(alloc)
			want := "standby"
			if n == h {
				want = "holder"
			}
			if e == nil || e.Role != want {
				return false
			}
			if epoch >= 0 && (s.Coordinator != coord || s.Epoch != epoch) {
				return false
			}
			coord, epoch = s.Coordinator, s.Epoch
			if s.acting() {
				acting++
			}
		}
		return acting == 1
	})
	return h
}

// others are the nodes other than n.
func (c *cluster) others(n *node) []*node {
	var out []*node
	for _, o := range c.nodes {
		if o != n {
			out = append(out, o)
		}
	}
	return out
}

func (c *cluster) setFaults(f map[string]any) {
	c.t.Helper()
	if err := doJSON("PUT", c.info.ControlEndpoint+"/faults", f, nil); err != nil {
		c.t.Fatalf("set faults: %v", err)
	}
}

func (c *cluster) clearFaults() {
	c.t.Helper()
	if err := doJSON("DELETE", c.info.ControlEndpoint+"/faults", nil, nil); err != nil {
		c.t.Fatalf("clear faults: %v", err)
	}
}

func (c *cluster) setInstanceFaults(id string, f map[string]any) {
	c.t.Helper()
	if err := doJSON("PUT", c.info.ControlEndpoint+"/instances/"+id+"/faults", f, nil); err != nil {
		c.t.Fatalf("set faults of %s: %v", id, err)
	}
}

func (c *cluster) clearInstanceFaults(id string) {
	c.t.Helper()
	if err := doJSON("DELETE", c.info.ControlEndpoint+"/instances/"+id+"/faults", nil, nil); err != nil {
		c.t.Fatalf("clear faults of %s: %v", id, err)
	}
}

func (c *cluster) instanceOp(id, op string) {
	c.t.Helper()
	if err := doJSON("POST", c.info.ControlEndpoint+"/instances/"+id+"/"+op, nil, nil); err != nil {
		c.t.Fatalf("%s %s: %v", op, id, err)
	}
}

// viaEIP fetches / through the EIP's forwarder: the instance ID of the
// backend that answered, or an error.
func (c *cluster) viaEIP(i int) (string, error) { return c.viaEIPWithin(i, 3*time.Second) }

// viaEIPWithin is viaEIP giving up after timeout.
func (c *cluster) viaEIPWithin(i int, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+c.info.EIPs[i].ForwardAddr+"/", nil)
	if err != nil {
		return "", err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %s: %s", resp.Status, b)
	}
	return string(b), nil
}

// ---- metrics ----

// sample is one line of the Prometheus text format.
type sample struct {
	name   string
	labels map[string]string
	value  float64
}

// scrape reads the daemon's /metrics and parses the text format.
func (n *node) scrape() ([]sample, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", fmt.Sprintf("http://%s:%d/metrics", n.inst.PrivateIP, n.statusPort), nil)
	if err != nil {
		return nil, err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("GET /metrics: %s", resp.Status)
	}
	return parseMetrics(resp.Body)
}

// parseMetrics parses the Prometheus text exposition format (no escapes
// in label values are needed for eipd's labels beyond \" and \\).
func parseMetrics(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		s := sample{labels: map[string]string{}}
		rest := line
		if i := strings.IndexAny(line, "{ "); i >= 0 && line[i] == '{' {
			s.name = line[:i]
			j := strings.LastIndex(line, "}")
			if j < i {
				return nil, fmt.Errorf("metrics line %q: unterminated labels", line)
			}
			for _, kv := range splitLabels(line[i+1 : j]) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					return nil, fmt.Errorf("metrics line %q: bad label %q", line, kv)
				}
				uq, err := strconv.Unquote(v)
				if err != nil {
					return nil, fmt.Errorf("metrics line %q: label %q: %v", line, kv, err)
				}
				s.labels[k] = uq
			}
			rest = strings.TrimSpace(line[j+1:])
		} else {
			name, v, _ := strings.Cut(line, " ")
			s.name, rest = name, v
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: value: %v", line, err)
		}
		s.value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

func splitLabels(s string) []string {
	var out []string
	inQ, esc, start := false, false, 0
	for i, r := range s {
		switch {
		case esc:
			esc = false
		case r == '\\':
			esc = true
		case r == '"':
			inQ = !inQ
		case r == ',' && !inQ:
			out = append(out, strings.TrimSpace(s[start:i]))
			start = i + 1
		}
	}
	if last := strings.TrimSpace(s[start:]); last != "" {
		out = append(out, last)
	}
	return out
}

// metricSum adds the samples named name whose labels include want.
func metricSum(ss []sample, name string, want map[string]string) float64 {
	sum := 0.0
	for _, s := range ss {
		if s.name != name {
			continue
		}
		ok := true
		for k, v := range want {
			if s.labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			sum += s.value
		}
	}
	return sum
}
