package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
	"github.com/eipd/eipd/internal/control"
	"github.com/eipd/eipd/leader"
	"github.com/eipd/eipd/metrics"
)

// fakeLoop is a leader loop whose progress and handoff replies the test sets.
type fakeLoop struct {
	mu        sync.Mutex
	last      time.Time
	handoffTo []string
	reply     error
	fresh     int      // StatusFresh calls
	accepted  []string // "id/epoch" (or "id@ip/epoch") of each AcceptAt
	notices   []string
	probed    []string
	heard     []string // each HeardFrom, "" included
}

func (f *fakeLoop) HeardFrom(from string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.heard = append(f.heard, from)
}

func (f *fakeLoop) AcceptAt(id, ip string, epoch int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ip != "" {
		id += "@" + ip
	}
	f.accepted = append(f.accepted, fmt.Sprintf("%s/%d", id, epoch))
}

func (f *fakeLoop) Notice(from string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.notices = append(f.notices, from)
}

// ProbeMember knows i-a (reachable, its eipd says it holds eipalloc-1)
// and i-b (not reachable).
func (f *fakeLoop) ProbeMember(_ context.Context, id string) (health.ProbeAnswer, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.probed = append(f.probed, id)
	switch id {
	case "i-a":
		return health.ProbeAnswer{InstanceID: id, Reachable: true, EIPDAnswered: true, Holding: []string{"eipalloc-1"}}, true
	case "i-b":
		return health.ProbeAnswer{InstanceID: id, Error: "probe peer 10.0.0.8: connection refused"}, true
	}
	return health.ProbeAnswer{InstanceID: id}, false
}

func (f *fakeLoop) seen() (accepted, notices, probed []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.accepted), slices.Clone(f.notices), slices.Clone(f.probed)
}

func (f *fakeLoop) heardFrom() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.heard)
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
	ctx := context.Background()
	d := v.status(ctx, nil)
	if d.Waiting != control.WaitingForIMDS || d.WaitingAttempts != 3 || d.WaitingError != "connection refused" || d.EIPs == nil || d.Health != "up" {
		t.Errorf("status while waiting: %+v", d)
	}
	loop := &fakeLoop{}
	v.started(loop, "i-self", nil)
	if err := v.ready(); err != nil {
		t.Errorf("ready once running and up: %v", err)
	}
	if d := v.status(ctx, nil); d.Waiting != "" || d.InstanceID != "i-self" || loop.fresh != 0 {
		t.Errorf("status once running: %+v (%d fresh reads)", d, loop.fresh)
	}
	if d := v.status(ctx, url.Values{"fresh": {"0"}}); d.InstanceID != "i-self" || loop.fresh != 0 {
		t.Errorf("status with fresh=0: %+v (%d fresh reads, want 0)", d, loop.fresh)
	}
	// The coordinator, right before a move that concerns this member,
	// asks for a fresh view.
	if d := v.status(ctx, url.Values{"fresh": {"1"}}); d.InstanceID != "i-self" || loop.fresh != 1 {
		t.Errorf("fresh status: %+v (%d fresh reads, want 1)", d, loop.fresh)
	}
	v = newDaemonView(time.Minute, fakeHealth{health.Down})
	v.started(&fakeLoop{}, "i-self", nil)
	if err := v.ready(); err == nil || !strings.Contains(err.Error(), "own health is down: dial tcp") {
		t.Errorf("ready with health down: %v", err)
	}
}

// TestStatusAcceptsCoordinatorProbe: /status?coordinator=ID&epoch=N is a
// coordinator's probe: the loop is told (AcceptAt, with coordinator_ip=
// when given), whatever else the query asks; a malformed claim is not
// passed on, and nothing is before the loop runs. from= tells the loop
// which member asks (HeardFrom, "" when none says).
func TestStatusAcceptsCoordinatorProbe(t *testing.T) {
	v := newDaemonView(time.Minute, fakeHealth{health.Up})
	ctx := context.Background()
	// Before the loop runs: answered, not passed on (nothing to pass to).
	if d := v.status(ctx, url.Values{"coordinator": {"i-co"}, "epoch": {"3"}}); d.Waiting != control.WaitingForIMDS {
		t.Errorf("status while waiting: %+v", d)
	}
	loop := &fakeLoop{}
	v.started(loop, "i-self", nil)
	for _, q := range []url.Values{
		{"coordinator": {"i-co"}, "epoch": {"3"}},
		{"coordinator": {"i-co2"}, "epoch": {"12"}, "fresh": {"1"}},
		{"coordinator": {"i-co3"}, "coordinator_ip": {"10.0.0.9"}, "epoch": {"4"}, "from": {"i-co3"}},
		// Not a claim: no epoch, not a positive number, no ID, an ID
		// longer than an instance ID may be.
		{"coordinator": {"i-co"}},
		{"coordinator": {"i-co"}, "epoch": {"0"}},
		{"coordinator": {"i-co"}, "epoch": {"-4"}},
		{"coordinator": {"i-co"}, "epoch": {"three"}},
		{"epoch": {"3"}},
		{"coordinator": {strings.Repeat("i", 65)}, "epoch": {"3"}},
		{"fresh": {"1"}},
	} {
		if d := v.status(ctx, q); d.InstanceID != "i-self" {
			t.Errorf("status for %v: %+v", q, d)
		}
	}
	accepted, _, _ := loop.seen()
	if !slices.Equal(accepted, []string{"i-co/3", "i-co2/12", "i-co3@10.0.0.9/4"}) {
		t.Errorf("accepted %q, want the three well-formed claims", accepted)
	}
	if heard := loop.heardFrom(); len(heard) != 10 || heard[2] != "i-co3" || slices.ContainsFunc(slices.Delete(heard, 2, 3), func(h string) bool { return h != "" }) {
		t.Errorf("HeardFrom got %q, want i-co3 for the one status that says from=, else \"\"", heard)
	}
	if loop.fresh != 2 {
		t.Errorf("%d fresh reads, want 2", loop.fresh)
	}
}

// TestNoticeAndProbe: /notice and /probe reach the loop once it runs; a
// probe of no instance, or before the loop runs, is refused.
func TestNoticeAndProbe(t *testing.T) {
	v := newDaemonView(time.Minute, fakeHealth{health.Up})
	ctx := context.Background()
	v.notice("i-early") // dropped: no loop yet
	if _, ok := v.probe(ctx, "i-a"); ok {
		t.Error("probe before the loop runs: ok")
	}
	loop := &fakeLoop{}
	v.started(loop, "i-self", nil)
	v.notice("i-a")
	if a, ok := v.probe(ctx, "i-a"); !ok || !reflect.DeepEqual(a, health.ProbeAnswer{InstanceID: "i-a", Reachable: true, EIPDAnswered: true, Holding: []string{"eipalloc-1"}}) {
		t.Errorf("probe of i-a: %+v %v", a, ok)
	}
	if _, ok := v.probe(ctx, "i-stranger"); ok {
		t.Error("probe of an unknown instance: ok")
	}
	if _, ok := v.probe(ctx, ""); ok {
		t.Error("probe of no instance: ok")
	}
	_, notices, probed := loop.seen()
	if !slices.Equal(notices, []string{"i-a"}) || !slices.Equal(probed, []string{"i-a", "i-stranger"}) {
		t.Errorf("notices %q, probes %q", notices, probed)
	}
}

// TestMemberEndpointsOverHTTP: the status listener as the daemon wires it
// (status, Notice, Probe from the view), spoken to by another member's
// PeerProber: a coordinator's probe reaches Accept and reads the status,
// CheckVia reads /probe, Notify reaches Notice.
func TestMemberEndpointsOverHTTP(t *testing.T) {
	v := newDaemonView(time.Minute, fakeHealth{health.Up})
	loop := &fakeLoop{}
	v.started(loop, "i-self", nil)
	ln, err := metrics.Listen(metrics.ServerConfig{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.BuildInfo{}, nil, nil, nil, nil, nil)
	srv := metrics.NewServer(metrics.ServerConfig{Notice: v.notice, Probe: v.probe}, m,
		func(r *http.Request) any { return v.status(r.Context(), r.URL.Query()) }, v.ready, hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	port := ln.Addr().(*net.TCPAddr).Port
	p := health.NewPeerProber(nil, port, 5*time.Second)
	cctx, ccancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer ccancel()

	r, err := p.Check(health.WithFrom(health.WithCoordinatorAt(health.WithFreshStatus(cctx), "i-co", "10.0.0.9", 7), "i-co"), "127.0.0.1")
	if err != nil || !r.Answered {
		t.Fatalf("coordinator's probe: %+v %v", r, err)
	}
	var st leader.Status
	if err := json.Unmarshal(r.Status, &st); err != nil || st.InstanceID != "i-self" || st.EIPs[0].Role != leader.RoleHolder {
		t.Errorf("status read by the probe: %+v %v", st, err)
	}
	if a, answered, err := p.CheckVia(cctx, "127.0.0.1", "i-a"); !answered || err != nil || !a.Reachable || !a.EIPDAnswered ||
		!slices.Equal(a.Holding, []string{"eipalloc-1"}) {
		t.Errorf("CheckVia i-a: %+v %v %v, want answered, reachable, holding eipalloc-1", a, answered, err)
	}
	if a, answered, err := p.CheckVia(cctx, "127.0.0.1", "i-b"); !answered || err != nil || a.Reachable || !strings.Contains(a.Error, "connection refused") {
		t.Errorf("CheckVia i-b: %+v %v %v, want answered and unreachable", a, answered, err)
	}
	if _, answered, err := p.CheckVia(cctx, "127.0.0.1", "i-stranger"); answered || err == nil {
		t.Errorf("CheckVia of a stranger: %v %v, want not answered", answered, err)
	}
	if err := p.Notify(cctx, "127.0.0.1", "i-a"); err != nil {
		t.Errorf("Notify: %v", err)
	}
	accepted, notices, _ := loop.seen()
	if !slices.Equal(accepted, []string{"i-co@10.0.0.9/7"}) || loop.fresh != 1 || !slices.Equal(notices, []string{"i-a"}) ||
		!slices.Equal(loop.heardFrom(), []string{"i-co"}) {
		t.Errorf("accepted %q, %d fresh reads, notices %q, heard from %q", accepted, loop.fresh, notices, loop.heardFrom())
	}
}

// startControl serves a control server for v on a unix socket.
func startControl(t *testing.T, v *daemonView) string {
	t.Helper()
	addr := "unix:" + filepath.Join(t.TempDir(), "c.sock")
	ln, err := control.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	srv := control.NewServer(func(ctx context.Context) control.StatusDoc { return v.status(ctx, nil) }, v.handoff, hclog.NewNullLogger())
	go func() { done <- srv.Serve(ctx, ln) }()
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
	// Once running, eipd status prints the loop's view.
	if stdout, _, code := runCLI(t, nil, "status", "--control", addr); code != 0 ||
		!strings.HasPrefix(stdout, "instance i-self") || !strings.Contains(stdout, "\nno coordinator known\n") ||
		!strings.Contains(stdout, "eipalloc-0a") {
		t.Errorf("status once running: exit %d %q", code, stdout)
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
