package asghealth

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/smithy-go"
	"github.com/hashicorp/go-hclog"
	"go.uber.org/goleak"

	"github.com/eipd/eipd/health"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakeHealth struct {
	mu      sync.Mutex
	status  health.Status
	changed chan struct{}
}

func newFakeHealth(s health.Status) *fakeHealth {
	return &fakeHealth{status: s, changed: make(chan struct{}, 1)}
}

func (f *fakeHealth) Status() health.Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeHealth) Changed() <-chan struct{} { return f.changed }

func (f *fakeHealth) set(s health.Status) {
	f.mu.Lock()
	f.status = s
	f.mu.Unlock()
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

type fakeASG struct {
	mu    sync.Mutex
	calls []autoscaling.SetInstanceHealthInput
	errs  []error // returned in order; nil after
}

func (f *fakeASG) SetInstanceHealth(_ context.Context, in *autoscaling.SetInstanceHealthInput, _ ...func(*autoscaling.Options)) (*autoscaling.SetInstanceHealthOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, *in)
	if len(f.errs) > 0 {
		err := f.errs[0]
		f.errs = f.errs[1:]
		return nil, err
	}
	return &autoscaling.SetInstanceHealthOutput{}, nil
}

func (f *fakeASG) n() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

type countMetrics struct {
	mu sync.Mutex
	by map[string]int
}

func (c *countMetrics) ASGUnhealthyReport(outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.by == nil {
		c.by = map[string]int{}
	}
	c.by[outcome]++
}

// logLines collects what the Reporter logs.
type logLines struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// rig is a Reporter on a manual clock.
type rig struct {
	t       *testing.T
	now     time.Time
	h       *fakeHealth
	asg     *fakeASG
	m       *countMetrics
	logs    *logLines
	holds   bool
	serving bool
	r       *Reporter
}

func newRig(t *testing.T, cfg Config, checkServing bool) *rig {
	g := &rig{t: t, now: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), h: newFakeHealth(health.Up), asg: &fakeASG{},
		m: &countMetrics{}, logs: &logLines{}, serving: true}
	cfg.InstanceID = "i-0123456789abcdef0"
	cfg.Now = func() time.Time { return g.now }
	var serving func() bool
	if checkServing {
		serving = func() bool { return g.serving }
	}
	logger := hclog.New(&hclog.LoggerOptions{Output: g.logs, Level: hclog.Debug})
	g.r = New(cfg, g.h, func() bool { return g.holds }, serving, g.asg, logger, g.m)
	return g
}

// at advances the clock to d after the start and steps once.
func (g *rig) step(advance time.Duration) {
	g.now = g.now.Add(advance)
	g.r.Step(context.Background())
}

func (g *rig) wantCalls(n int, what string) {
	g.t.Helper()
	if got := g.asg.n(); got != n {
		g.t.Fatalf("%s: %d SetInstanceHealth calls, want %d\nlog:\n%s", what, got, n, g.logs)
	}
}

func TestReportsAfterDownForLongEnough(t *testing.T) {
	g := newRig(t, Config{After: time.Minute}, true)
	g.step(0)
	g.h.set(health.Down)
	g.step(time.Second)
	g.step(59 * time.Second)
	g.wantCalls(0, "down for 59s of 1m")
	g.step(time.Second)
	g.wantCalls(1, "down for 1m")
	in := g.asg.calls[0]
	if aws.ToString(in.InstanceId) != "i-0123456789abcdef0" || aws.ToString(in.HealthStatus) != "Unhealthy" || !aws.ToBool(in.ShouldRespectGracePeriod) {
		t.Errorf("call %+v: want this instance, Unhealthy, respecting the grace period", in)
	}
	if g.m.by[OutcomeSuccess] != 1 {
		t.Errorf("metrics %v", g.m.by)
	}
	if !strings.Contains(g.logs.String(), "marked this instance Unhealthy in its Auto Scaling group") {
		t.Errorf("log:\n%s", g.logs)
	}
	// Still down: once more only after another After (Auto Scaling ignores
	// the call during the grace period).
	g.step(59 * time.Second)
	g.wantCalls(1, "59s after the report")
	g.step(time.Second)
	g.wantCalls(2, "1m after the report")
}

func TestRecoveryResetsTheWait(t *testing.T) {
	g := newRig(t, Config{After: time.Minute}, true)
	g.h.set(health.Down)
	g.step(0)
	g.step(50 * time.Second)
	g.h.set(health.Up)
	g.step(time.Second)
	g.h.set(health.Down)
	g.step(time.Second)
	g.step(50 * time.Second)
	g.wantCalls(0, "down 50s, up, down 50s")
	if !strings.Contains(g.logs.String(), "no longer down") {
		t.Errorf("recovery not logged:\n%s", g.logs)
	}
	g.step(10 * time.Second)
	g.wantCalls(1, "down 1m after the recovery")
}

// Unknown (rise/fall not reached yet, e.g. at start) is not down.
func TestUnknownIsNotDown(t *testing.T) {
	g := newRig(t, Config{After: time.Minute}, true)
	g.h.set(health.Unknown)
	g.step(0)
	g.step(time.Hour)
	g.wantCalls(0, "unknown for an hour")
}

func TestNeverWhileHoldingOrAlone(t *testing.T) {
	g := newRig(t, Config{After: time.Minute}, true)
	g.h.set(health.Down)
	g.holds = true
	g.step(0)
	g.step(time.Hour)
	g.step(time.Hour)
	g.wantCalls(0, "holding an EIP")
	if n := strings.Count(g.logs.String(), "it holds an EIP"); n != 1 {
		t.Errorf("the reason is logged %d times, want once:\n%s", n, g.logs)
	}
	g.holds, g.serving = false, false
	g.step(time.Second)
	g.wantCalls(0, "nobody else serves")
	if !strings.Contains(g.logs.String(), "no other member serves") {
		t.Errorf("log:\n%s", g.logs)
	}
	g.serving = true
	g.step(time.Second)
	g.wantCalls(1, "another member serves, this one holds nothing")

	// Without a serving check, holding is the only condition.
	g = newRig(t, Config{After: time.Minute}, false)
	g.h.set(health.Down)
	g.serving = false
	g.step(0)
	g.step(time.Minute)
	g.wantCalls(1, "no serving check")
}

func apiErr(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " message"}
}

func TestFailedCalls(t *testing.T) {
	g := newRig(t, Config{After: time.Minute, RetryEvery: 10 * time.Second}, true)
	g.asg.errs = []error{errors.New("dial tcp: i/o timeout"), apiErr("AccessDenied")}
	g.h.set(health.Down)
	g.step(0)
	g.step(time.Minute)
	g.wantCalls(1, "first try")
	g.step(9 * time.Second)
	g.wantCalls(1, "9s after a network error")
	g.step(time.Second)
	g.wantCalls(2, "10s after a network error")
	if !strings.Contains(g.logs.String(), "grant autoscaling:SetInstanceHealth") {
		t.Errorf("the denial does not name the grant:\n%s", g.logs)
	}
	// Denied: ten times slower.
	g.step(99 * time.Second)
	g.wantCalls(2, "99s after a denial")
	g.step(time.Second)
	g.wantCalls(3, "100s after a denial")
	if g.m.by[OutcomeError] != 1 || g.m.by[OutcomeUnauthorized] != 1 || g.m.by[OutcomeSuccess] != 1 {
		t.Errorf("metrics %v", g.m.by)
	}
}

// An instance in no Auto Scaling group: said once, never tried again until
// the health recovers and falls again.
func TestNotInGroup(t *testing.T) {
	g := newRig(t, Config{After: time.Minute, RetryEvery: time.Second}, true)
	g.asg.errs = []error{apiErr("ValidationError")}
	g.h.set(health.Down)
	g.step(0)
	g.step(time.Minute)
	g.step(time.Hour)
	g.wantCalls(1, "not in a group")
	if g.m.by[OutcomeNotInGroup] != 1 || !strings.Contains(g.logs.String(), "unset --asg-health") {
		t.Errorf("metrics %v, log:\n%s", g.m.by, g.logs)
	}
	g.h.set(health.Up)
	g.step(time.Second)
	g.h.set(health.Down)
	g.step(time.Second)
	g.step(time.Minute)
	g.wantCalls(2, "down again after a recovery")
}

func TestDryRun(t *testing.T) {
	g := newRig(t, Config{After: time.Minute, DryRun: true}, true)
	g.h.set(health.Down)
	g.step(0)
	g.step(time.Minute)
	g.wantCalls(0, "dry run")
	if g.m.by[OutcomeDryRun] != 1 || !strings.Contains(g.logs.String(), "dry-run: would mark this instance Unhealthy") {
		t.Errorf("metrics %v, log:\n%s", g.m.by, g.logs)
	}
}

// Run reacts to a change of the health status at once, not on its tick,
// and returns when its context ends.
func TestRunReactsToChanges(t *testing.T) {
	h := newFakeHealth(health.Up)
	// Unbuffered: each send returns once Run has taken it, so the sends
	// below pace Run's passes exactly.
	h.changed = make(chan struct{})
	asg := &fakeASG{}
	r := New(Config{InstanceID: "i-0123456789abcdef0", After: time.Nanosecond, Every: time.Hour}, h,
		func() bool { return false }, nil, asg, nil, nil)
	h.status = health.Down
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	// Run's first pass starts the wait; the pass after the first change
	// finds it over and reports; the second send returns only once that
	// pass has ended.
	for range 2 {
		h.changed <- struct{}{}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if asg.n() == 0 {
		t.Error("no call: the hourly tick never came, so only a change can cause one, and none did")
	}
}
