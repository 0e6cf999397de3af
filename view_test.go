package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
	"github.com/eipd/eipd/leader"
)

// fakeLoop is a leader loop whose progress and handoff replies the test sets.
type fakeLoop struct {
	mu        sync.Mutex
	last      time.Time
	handoffTo []string
	reply     error
	fresh     int // StatusFresh calls
}

func (f *fakeLoop) LastReconcile() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *fakeLoop) Status() leader.Status {
	return leader.Status{InstanceID: "i-self", Health: "up", EIPs: []leader.EIPStatus{{AllocationID: "eipalloc-0a", Role: leader.RoleHolder}}}
}

func (f *fakeLoop) StatusFresh(context.Context) leader.Status {
	f.mu.Lock()
	f.fresh++
	f.mu.Unlock()
	return f.Status()
}

func (f *fakeLoop) RequestHandoff(_ context.Context, to string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.handoffTo = append(f.handoffTo, to)
	return f.reply
}

type fakeHealth struct{ s health.Status }

func (f fakeHealth) Status() health.Status { return f.s }
func (f fakeHealth) LastError() error {
	if f.s == health.Up {
		return nil
	}
	return errors.New("dial tcp 127.0.0.1:80: connection refused")
}

// TestHealthzFailsWhenLoopWedged: /healthz (view.live) is fine while the
// identity is awaited and while passes complete, and fails with the reason
// once no pass completed for the watchdog interval, like systemd's watchdog.
func TestHealthzFailsWhenLoopWedged(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	v := newDaemonView(30*time.Second, fakeHealth{health.Up})
	v.now = func() time.Time { return now }
	if err := v.live(); err != nil {
		t.Fatalf("live while waiting for IMDS: %v", err)
	}
	loop := &fakeLoop{}
	v.started(loop, "i-self", nil)
	// No pass yet: the clock runs from the start of the loop.
	now = now.Add(29 * time.Second)
	if err := v.live(); err != nil {
		t.Errorf("live 29s after start with no pass: %v", err)
	}
	now = now.Add(2 * time.Second)
	if err := v.live(); err == nil || !strings.Contains(err.Error(), "no pass for 31s (watchdog 30s)") {
		t.Errorf("live 31s after start with no pass: %v", err)
	}
	loop.mu.Lock()
	loop.last = now.Add(-time.Second)
	loop.mu.Unlock()
	if err := v.live(); err != nil {
		t.Errorf("live after a pass: %v", err)
	}
	now = now.Add(45 * time.Second)
	if err := v.live(); err == nil || !strings.Contains(err.Error(), "stuck") {
		t.Errorf("live 46s after the last pass: %v", err)
	}
}

func TestWatchdogFollowsSystemd(t *testing.T) {
	if got := watchdogFor(newNotifier(envOf(nil))); got != defaultWatchdog {
		t.Errorf("outside systemd: %s, want %s", got, defaultWatchdog)
	}
	n := newNotifier(envOf(map[string]string{"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "12000000"}))
	if got := watchdogFor(n); got != 12*time.Second {
		t.Errorf("WATCHDOG_USEC=12s: %s", got)
	}
}

func TestReadyWhileWaitingForIMDS(t *testing.T) {
	v := newDaemonView(time.Minute, fakeHealth{health.Up})
	if err := v.ready(); err == nil || err.Error() != "waiting for instance metadata" {
		t.Errorf("ready before any attempt: %v", err)
	}
	v.waitFailed(3, errors.New("connection refused"))
	if err := v.ready(); err == nil || err.Error() != "waiting for instance metadata (attempt 3 failed: connection refused)" {
		t.Errorf("ready after 3 attempts: %v", err)
	}
	d := v.status(false)
	if d.Waiting != waitingForIMDS || d.WaitingAttempts != 3 || d.WaitingError != "connection refused" || d.EIPs == nil || d.Health != "up" {
		t.Errorf("status while waiting: %+v", d)
	}
	loop := &fakeLoop{}
	v.started(loop, "i-self", nil)
	if err := v.ready(); err != nil {
		t.Errorf("ready once running and up: %v", err)
	}
	if d := v.status(false); d.Waiting != "" || d.InstanceID != "i-self" || loop.fresh != 0 {
		t.Errorf("status once running: %+v (%d fresh reads)", d, loop.fresh)
	}
	// A member about to hand an EIP here asks for a fresh view.
	if d := v.status(true); d.InstanceID != "i-self" || loop.fresh != 1 {
		t.Errorf("fresh status: %+v (%d fresh reads, want 1)", d, loop.fresh)
	}
	v = newDaemonView(time.Minute, fakeHealth{health.Down})
	v.started(&fakeLoop{}, "i-self", nil)
	if err := v.ready(); err == nil || !strings.Contains(err.Error(), "own health is down: dial tcp") {
		t.Errorf("ready with health down: %v", err)
	}
}

// startControl serves a control server for v on a unix socket.
func startControl(t *testing.T, v *daemonView) string {
	t.Helper()
	addr := "unix:" + filepath.Join(t.TempDir(), "c.sock")
	ln, err := listenControl(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- newControlServer(v, hclog.NewNullLogger()).Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return addr
}

// TestHandoffTargetIsChecked: the control endpoint names an unknown
// target as such instead of passing it on to the loop.
func TestHandoffTargetIsChecked(t *testing.T) {
	loop := &fakeLoop{}
	v := newDaemonView(time.Minute, fakeHealth{health.Up})
	addr := startControl(t, v)

	_, stderr, code := runCLI(t, nil, "handoff", "--control", addr)
	if code != 1 || !strings.Contains(stderr, "handoff refused: waiting for instance metadata") {
		t.Errorf("handoff before the identity: exit %d %q", code, stderr)
	}
	stdout, _, code := runCLI(t, nil, "status", "--control", addr)
	if code != 0 || !strings.HasPrefix(stdout, "waiting for instance metadata") {
		t.Errorf("status before the identity: exit %d %q", code, stdout)
	}

	var membersErr atomic.Pointer[error]
	v.started(loop, "i-self", func(context.Context) ([]eip.Instance, error) {
		if e := membersErr.Load(); e != nil {
			return nil, *e
		}
		return []eip.Instance{{InstanceID: "i-self"}, {InstanceID: "i-b"}, {InstanceID: "i-a"}}, nil
	})
	for _, c := range []struct{ to, want string }{
		{"i-unknown", "handoff refused: unknown instance i-unknown: not a running member of this group (other members: i-a, i-b)"},
		{"i-self", "handoff refused: unknown instance i-self: that is this instance"},
	} {
		_, stderr, code := runCLI(t, nil, "handoff", "--control", addr, "--to", c.to)
		if code != 1 || !strings.Contains(stderr, c.want) {
			t.Errorf("handoff --to %s: exit %d %q, want %q", c.to, code, stderr, c.want)
		}
	}
	throttled := errors.New("throttled")
	membersErr.Store(&throttled)
	if _, stderr, _ := runCLI(t, nil, "handoff", "--control", addr, "--to", "i-a"); !strings.Contains(stderr, "cannot check i-a against the group's members: throttled") {
		t.Errorf("handoff with members unreadable: %q", stderr)
	}
	membersErr.Store(nil)
	loop.mu.Lock()
	reached := len(loop.handoffTo)
	loop.mu.Unlock()
	if reached != 0 {
		t.Fatalf("%d refused handoff(s) reached the loop", reached)
	}
	stdout, stderr, code = runCLI(t, nil, "handoff", "--control", addr, "--to", "i-a")
	if code != 0 || !strings.HasPrefix(stdout, "handoff done") {
		t.Errorf("handoff --to i-a: exit %d %q %q", code, stdout, stderr)
	}
	loop.mu.Lock()
	loop.reply = errors.New("no ready member to hand eipalloc-0a off to: …")
	loop.mu.Unlock()
	if _, stderr, code := runCLI(t, nil, "handoff", "--control", addr); code != 1 || !strings.Contains(stderr, "handoff refused: no ready member") {
		t.Errorf("loop refusal: exit %d %q", code, stderr)
	}
	loop.mu.Lock()
	defer loop.mu.Unlock()
	if strings.Join(loop.handoffTo, ",") != "i-a," {
		t.Errorf("loop got handoffs to %q", loop.handoffTo)
	}
}

// TestHealthcheckUsesListen: eipd healthcheck reads /healthz where the
// daemon listens (EIPD_LISTEN or --listen), and fails with the reason.
func TestHealthcheckUsesListen(t *testing.T) {
	var fail atomic.Bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if fail.Load() {
			http.Error(w, "not live: the main loop has completed no pass", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	for _, env := range []map[string]string{{"EIPD_LISTEN": ":" + port}, {"EIPD_LISTEN": "0.0.0.0:" + port}, {"EIPD_LISTEN": "127.0.0.1:" + port}} {
		if _, stderr, code := runCLI(t, env, "healthcheck"); code != 0 {
			t.Errorf("%v: exit %d %q", env, code, stderr)
		}
	}
	if _, _, code := runCLI(t, map[string]string{"EIPD_LISTEN": ":" + port}, "healthcheck", "--listen", ":1"); code != 1 {
		t.Errorf("--listen :1 should override EIPD_LISTEN and fail, exit %d", code)
	}
	if _, _, code := runCLI(t, nil, "healthcheck", "--listen", ":"+port); code != 0 {
		t.Errorf("--listen :%s: exit %d", port, code)
	}
	fail.Store(true)
	if _, stderr, code := runCLI(t, map[string]string{"EIPD_LISTEN": ":" + port}, "healthcheck"); code != 1 || !strings.Contains(stderr, "503 Service Unavailable: not live") {
		t.Errorf("healthcheck of a stuck daemon: exit %d %q", code, stderr)
	}
}

func TestHealthzURL(t *testing.T) {
	for listen, want := range map[string]string{
		":9380": "http://127.0.0.1:9380/healthz", "0.0.0.0:9380": "http://127.0.0.1:9380/healthz",
		"[::]:9380": "http://[::1]:9380/healthz", "10.0.1.5:9400": "http://10.0.1.5:9400/healthz",
		"localhost:9380": "http://localhost:9380/healthz",
	} {
		if got, err := healthzURL(listen); err != nil || got != want {
			t.Errorf("healthzURL(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
	if _, err := healthzURL("9380"); !errors.Is(err, errUsage) {
		t.Errorf("healthzURL(9380): %v, want a usage error", err)
	}
}
