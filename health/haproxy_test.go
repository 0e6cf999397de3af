package health

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestParseShowStat(t *testing.T) {
	const reply = `# pxname,svname,qcur,status,check_desc,
fe,FRONTEND,,OPEN,,
app,web1,0,UP,"Layer7 check passed, all good",
app,web2,0,UP 1/3,,
app,web3,0,DOWN,"Layer4 connection problem, info: ""Connection refused""",
app,web4,0,DOWN 1/2,,
app,web5,0,MAINT,,
app,web6,0,MAINT (via app/web5),,
app,web7,0,DRAIN,,
app,web8,0,NOLB,,
app,web9,0,no check,,
app,BACKEND,0,UP,,
empty,BACKEND,0,DOWN,,
onlyfe,FRONTEND,,OPEN,,

`
	servers, err := parseShowStat(strings.NewReader(reply), "app")
	if err != nil {
		t.Fatal(err)
	}
	if len(servers) != 9 {
		t.Fatalf("got %d servers, want 9: %v", len(servers), servers)
	}
	var up []string
	for _, s := range servers {
		if serverUp(s.status) {
			up = append(up, s.name)
		}
	}
	if got, want := strings.Join(up, ","), "web1,web2,web9"; got != want {
		t.Errorf("UP servers = %s, want %s (UP, UP going down, no check)", got, want)
	}

	c := &haproxyCheck{backend: "app", minUp: 3}
	if err := c.judge(servers); err != nil {
		t.Errorf("min-up=3 with 3 UP: %v", err)
	}
	c.minUp = 4
	err = c.judge(servers)
	if err == nil || !strings.Contains(err.Error(), `backend "app": 3 of 9 servers UP, need 4`) {
		t.Errorf("min-up=4: got %v", err)
	}

	if s, err := parseShowStat(strings.NewReader(reply), "empty"); err != nil || len(s) != 0 {
		t.Errorf("backend without servers: %v, %v", s, err)
	}
	if err := (&haproxyCheck{backend: "empty", minUp: 1}).judge(nil); err == nil {
		t.Error("backend without servers must fail min-up=1")
	}
	for _, name := range []string{"nope", "onlyfe"} {
		if _, err := parseShowStat(strings.NewReader(reply), name); !errors.Is(err, errNoBackend) {
			t.Errorf("backend %q: got %v, want errNoBackend", name, err)
		}
	}
	for _, bad := range []string{"", "Unknown command.\n", "Permission denied\n", "# foo,bar\nx,y\n"} {
		if _, err := parseShowStat(strings.NewReader(bad), "app"); err == nil {
			t.Errorf("reply %q: want error", bad)
		}
	}
}

// A socket that accepts and never answers must not hold the check past its
// deadline; one that answers garbage must fail clearly.
func TestHAProxyCheckBadSocket(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "silent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	acceptLoop(t, l)
	start := time.Now()
	err = checkWithin(mustParse(t, "haproxy://"+sock+"?backend=app"), 200*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "deadline") && !strings.Contains(err.Error(), "timeout") {
		t.Errorf("silent socket: want a timeout, got %v", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %v: deadline not honoured", el)
	}

	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		c, err := tl.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		buf := make([]byte, 64)
		_, _ = c.Read(buf)
		_, _ = c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
	})
	t.Cleanup(func() { tl.Close(); wg.Wait() })
	err = checkWithin(mustParse(t, "haproxy://"+tl.Addr().String()+"?backend=app"), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "unexpected reply") {
		t.Errorf("non-HAProxy socket: got %v", err)
	}
}

// backendServer is a loopback listener that HAProxy health-checks; it
// accepts and closes connections until stopped.
type backendServer struct {
	l    net.Listener
	once sync.Once
	wg   sync.WaitGroup
}

func startBackend(t *testing.T) *backendServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backendServer{l: l}
	b.wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	})
	t.Cleanup(b.stop)
	return b
}

func (b *backendServer) port() int { return b.l.Addr().(*net.TCPAddr).Port }

func (b *backendServer) stop() {
	b.once.Do(func() { b.l.Close(); b.wg.Wait() })
}

func haproxyBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("haproxy not installed (apt-get install haproxy); required in CI")
	}
	t.Skip("haproxy not installed")
	return ""
}

type haproxyEnv struct {
	unixSock string // admin socket path
	tcpStats string // host:port of the TCP stats socket
	frontend string // host:port of the frontend with monitor-uri
}

// startHAProxy runs a real HAProxy in the foreground with the given backend
// server ports and returns its sockets once the runtime API answers.
func startHAProxy(t *testing.T, web1, web2 int) haproxyEnv {
	t.Helper()
	bin := haproxyBinary(t)
	dir := t.TempDir()
	env := haproxyEnv{
		unixSock: filepath.Join(dir, "admin.sock"),
		tcpStats: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
		frontend: fmt.Sprintf("127.0.0.1:%d", freePort(t)),
	}
	cfg := fmt.Sprintf(`global
    stats socket %s level admin
    stats socket %s level admin

defaults
    mode http
    timeout connect 1s
    timeout client 5s
    timeout server 5s

frontend fe
    bind %s
    monitor-uri /haproxy-health
    monitor fail if { nbsrv(app) lt 1 }
    default_backend app

backend app
    server web1 127.0.0.1:%d check inter 100ms fall 1 rise 1
    server web2 127.0.0.1:%d check inter 100ms fall 1 rise 1
    server web3 127.0.0.1:%d disabled

backend nocheck
    server s1 127.0.0.1:%d
`, env.unixSock, env.tcpStats, env.frontend, web1, web2, web2, freePort(t))
	cfgPath := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(dir, "haproxy.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-f", cfgPath, "-db")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start haproxy: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("haproxy output:\n%s", out)
		}
	})
	probe := mustParse(t, "haproxy://"+env.unixSock+"?backend=app")
	eventually(t, "haproxy runtime API to answer", func() bool {
		err := checkWithin(probe, 2*time.Second)
		return err == nil || !strings.Contains(err.Error(), "connect:")
	})
	return env
}

func TestHAProxyReal(t *testing.T) {
	web1, web2 := startBackend(t), startBackend(t)
	env := startHAProxy(t, web1.port(), web2.port())

	type sock struct{ name, base string }
	socks := []sock{
		{"unix", "haproxy://" + env.unixSock},
		{"tcp", "haproxy://" + env.tcpStats},
	}
	check := func(base, query string) error {
		return checkWithin(mustParse(t, base+"?"+query), 5*time.Second)
	}
	monitor := mustParse(t, "http://"+env.frontend+"/haproxy-health")

	// Both servers up.
	for _, s := range socks {
		eventually(t, s.name+": min-up=2 passes", func() bool { return check(s.base, "backend=app&min-up=2") == nil })
		// web3 is disabled (MAINT) and must not count.
		err := check(s.base, "backend=app&min-up=3")
		if err == nil || !strings.Contains(err.Error(), "2 of 3 servers UP, need 3") || !strings.Contains(err.Error(), "web3 MAINT") {
			t.Errorf("%s: min-up=3 with web3 in MAINT: got %v", s.name, err)
		}
		err = check(s.base, "backend=nosuch")
		if err == nil || !strings.Contains(err.Error(), `backend "nosuch"`) {
			t.Errorf("%s: unknown backend: got %v", s.name, err)
		}
		// A server without checks counts as UP (documented decision).
		if err := check(s.base, "backend=nocheck"); err != nil {
			t.Errorf("%s: backend with an unchecked server: %v", s.name, err)
		}
	}
	if err := checkWithin(monitor, 5*time.Second); err != nil {
		t.Errorf("monitor-uri with servers up: %v", err)
	}

	// One server down.
	web2.stop()
	for _, s := range socks {
		eventually(t, s.name+": min-up=2 fails after web2 stopped", func() bool {
			err := check(s.base, "backend=app&min-up=2")
			return err != nil && strings.Contains(err.Error(), "1 of 3 servers UP, need 2")
		})
		if err := check(s.base, "backend=app&min-up=1"); err != nil {
			t.Errorf("%s: min-up=1 with web1 up: %v", s.name, err)
		}
	}
	if err := checkWithin(monitor, 5*time.Second); err != nil {
		t.Errorf("monitor-uri with one server up: %v", err)
	}

	// No server left: the proxy accepts connections but is not healthy.
	web1.stop()
	for _, s := range socks {
		eventually(t, s.name+": min-up=1 fails with no server", func() bool {
			err := check(s.base, "backend=app&min-up=1")
			return err != nil && strings.Contains(err.Error(), "0 of 3 servers UP")
		})
	}
	eventually(t, "monitor-uri to answer 503", func() bool {
		err := checkWithin(monitor, 5*time.Second)
		return err != nil && strings.Contains(err.Error(), "503")
	})
	if err := checkWithin(mustParse(t, "tcp://"+env.frontend), 5*time.Second); err != nil {
		t.Errorf("tcp check of the frontend: %v (it should still accept; that is why haproxy:// exists)", err)
	}

	// The peer form of the TCP stats socket check reaches the same HAProxy.
	c := mustParse(t, "haproxy://"+strings.Replace(env.tcpStats, "127.0.0.1", "127.0.0.2", 1)+"?backend=nocheck")
	pc, ok := ForPeer(c, "127.0.0.1")
	if !ok {
		t.Fatal("TCP stats socket check should be aimable at a peer")
	}
	if err := checkWithin(pc, 5*time.Second); err != nil {
		t.Errorf("peer form of the TCP stats check: %v", err)
	}
}
