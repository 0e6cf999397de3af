package harness

import (
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// A child sees exactly the environment it is given, whatever this
// process's holds: no AWS credentials leak in.
func TestStartExactEnv(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIALEAK")
	dir := t.TempDir()
	log := filepath.Join(dir, "env.log")
	p, err := Start("env", log, dir, Env(dir, "X=1"), sh, "-c", "env; pwd")
	if err != nil {
		t.Fatal(err)
	}
	if !p.WaitExit(10*time.Second) || p.Err != nil {
		t.Fatalf("exit: %v", p.Err)
	}
	b, _ := os.ReadFile(log)
	out := string(b)
	if !strings.HasPrefix(out, "=== ") || !strings.Contains(out, "\nX=1\n") || !strings.Contains(out, "HOME="+dir) || !strings.Contains(out, "\n"+dir+"\n") {
		t.Errorf("log:\n%s", out)
	}
	if strings.Contains(out, "AKIALEAK") {
		t.Errorf("the parent's credentials leaked into the child:\n%s", out)
	}
	if p.Told() || Tail(log, 1) != dir {
		t.Errorf("told %v, tail %q", p.Told(), Tail(log, 1))
	}
}

func TestKillWait(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep")
	}
	dir := t.TempDir()
	p, err := Start("sleep", filepath.Join(dir, "sleep.log"), dir, Env(dir), sleep, "60")
	if err != nil {
		t.Fatal(err)
	}
	if p.Exited() {
		t.Fatal("exited at once")
	}
	if err := p.KillWait(10 * time.Second); err != nil || !p.Told() || p.Err == nil {
		t.Fatalf("KillWait: %v, told %v, exit %v", err, p.Told(), p.Err)
	}
}

func TestReservePort(t *testing.T) {
	ips := InstanceIPs("127.0.0.11", 3)
	if strings.Join(ips, " ") != "127.0.0.11 127.0.0.12 127.0.0.13" {
		t.Fatalf("InstanceIPs = %v", ips)
	}
	port, lns, err := ReservePort(ips)
	if err != nil {
		t.Skipf("loopback aliases: %v", err)
	}
	defer CloseAll(lns)
	if len(lns) != 3 {
		t.Fatalf("%d listeners", len(lns))
	}
	for _, ln := range lns {
		if ln.Addr().(*net.TCPAddr).Port != port {
			t.Errorf("%s is not on port %d", ln.Addr(), port)
		}
	}
}

func TestHAProxyConfig(t *testing.T) {
	c := HAProxyConfig{IP: "127.0.0.11", Port: 8080, BackendPort: 9090, CheckInterval: 100 * time.Millisecond}
	s := c.String()
	if strings.Contains(s, "stats socket") || !strings.Contains(s, "bind 127.0.0.11:8080\n") ||
		!strings.Contains(s, "server app 127.0.0.11:9090 check inter 100ms rise 1 fall 2\n") || !strings.Contains(s, "maxconn 200\ndefaults\n") {
		t.Errorf("config:\n%s", s)
	}
	c.StatsPort = 9999
	if s := c.String(); !strings.Contains(s, "maxconn 200\n    stats socket ipv4@127.0.0.11:9999 level admin\ndefaults\n") {
		t.Errorf("config with stats:\n%s", s)
	}
}

// The backend names the instance, and is a health target itself.
func TestBackend(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := ServeBackend(ln, "i-1")
	u := "http://" + ln.Addr().String()
	if !Answers(u + "/healthz") {
		t.Fatal("/healthz does not answer")
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if Answers(u + "/healthz") {
		t.Fatal("answers after Close")
	}
}

func TestRun(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	t.Setenv("AWS_SECRET_ACCESS_KEY", "leak")
	dir := t.TempDir()
	out, err := Run(context.Background(), dir, Env(dir), sh, "-c", "echo out; echo err >&2; env | grep -c AWS_SECRET; exit 3")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 || !strings.HasPrefix(err.Error(), "sh exited with 3: 0: ") {
		t.Errorf("exit: %v", err)
	}
	if string(out) != "out\nerr\n0\n" {
		t.Errorf("output %q", out)
	}
}

// A proxy dies (Stop: refused) and comes back (Start) on the same address.
func TestProxies(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + ln.Addr().String() + "/healthz"
	var p Proxy = NewWebProxy(ln, "i-1")
	check := func(what string, p Proxy, u string) {
		t.Helper()
		if !Answers(u) {
			t.Fatalf("%s: %s does not answer", what, p.Describe())
		}
		if err := p.Stop(); err != nil || Answers(u) {
			t.Fatalf("%s: Stop: %v, answers %v", what, err, Answers(u))
		}
		if err := p.Start(); err != nil || !Answers(u) {
			t.Fatalf("%s: Start: %v, answers %v", what, err, Answers(u))
		}
		if err := p.Close(); err != nil || Answers(u) {
			t.Fatalf("%s: Close: %v", what, err)
		}
	}
	check("built-in", p, u)

	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Skip("haproxy not installed")
	}
	port, lns, err := ReservePort([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	CloseAll(lns)
	dir := t.TempDir()
	hp, err := NewHAProxy(bin, dir, "haproxy-0", HAProxyConfig{IP: "127.0.0.1", Port: port, CheckInterval: 100 * time.Millisecond}, "i-1", Env(dir))
	if err != nil {
		t.Fatal(err)
	}
	check("haproxy", hp, "http://127.0.0.1:"+strconv.Itoa(port)+"/healthz")
}
