package health

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

func TestMonitor(t *testing.T) {
	good, other := newFake(), newFake()
	var (
		rounds  atomic.Int64
		mu      sync.Mutex
		lastErr error
	)
	observe := func(d time.Duration, err error) {
		if d < 0 {
			t.Errorf("negative round duration %v", d)
		}
		rounds.Add(1)
		mu.Lock()
		lastErr = err
		mu.Unlock()
	}
	logger := hclog.New(&hclog.LoggerOptions{Level: hclog.Trace, Output: testWriter{t}})
	m := NewMonitor(Config{Interval: 5 * time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 3},
		[]Checker{good, other}, logger, observe)
	if m.Status() != Unknown || m.LastError() != nil {
		t.Fatalf("before Run: %v, %v", m.Status(), m.LastError())
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})

	waitChanged(t, m)
	if s := m.Status(); s != Up {
		t.Fatalf("after first change: %v, want up", s)
	}

	other.set(errFake) // one failing check fails the round
	waitChanged(t, m)
	if s := m.Status(); s != Down {
		t.Fatalf("after failures: %v, want down", s)
	}
	if err := m.LastError(); !errors.Is(err, errFake) {
		t.Errorf("LastError = %v, want the fake failure", err)
	}
	mu.Lock()
	if !errors.Is(lastErr, errFake) {
		t.Errorf("observe got %v, want the fake failure", lastErr)
	}
	mu.Unlock()

	other.set(nil)
	waitChanged(t, m)
	if s := m.Status(); s != Up {
		t.Fatalf("after recovery: %v, want up", s)
	}
	eventually(t, "LastError cleared", func() bool { return m.LastError() == nil })

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	// Counted once Run has returned: the monitor signals a change before it
	// calls observe for that round, so a count taken at the signal can be one
	// short.
	m.mu.Lock()
	monitorRounds := m.rounds
	m.mu.Unlock()
	if got := rounds.Load(); got != int64(monitorRounds) || got < 2+3+2 {
		t.Errorf("observe called %d times for %d rounds, want once a round and at least 7 (2 up, 3 down, 2 up)",
			got, monitorRounds)
	}
	done <- nil // for the cleanup
}

func waitChanged(t *testing.T, m *Monitor) {
	t.Helper()
	select {
	case <-m.Changed():
	case <-time.After(15 * time.Second):
		t.Fatalf("no Changed signal; status %v, last error %v", m.Status(), m.LastError())
	}
}

// The first round runs at once, not after the first interval.
func TestMonitorFirstRoundImmediate(t *testing.T) {
	f := newFake()
	m := NewMonitor(Config{Interval: time.Hour, Timeout: time.Second, Rise: 1, Fall: 1}, []Checker{f}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	waitChanged(t, m)
	if m.Status() != Up {
		t.Errorf("status %v, want up", m.Status())
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v", err)
	}
}

// A check that hangs is cut off by Timeout and counts as a failure.
func TestMonitorTimeout(t *testing.T) {
	m := NewMonitor(Config{Interval: 10 * time.Millisecond, Timeout: 20 * time.Millisecond, Rise: 1, Fall: 1},
		[]Checker{hangCheck{}}, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	waitChanged(t, m)
	if m.Status() != Down || !errors.Is(m.LastError(), context.DeadlineExceeded) {
		t.Errorf("status %v, error %v; want down with a deadline error", m.Status(), m.LastError())
	}
	cancel()
	<-done
}

func TestConfigDefaults(t *testing.T) {
	got := Config{}.withDefaults()
	want := Config{Interval: time.Second, FastInterval: 200 * time.Millisecond, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 3}
	if got != want {
		t.Errorf("defaults %+v, want %+v (docs/design.md (Defaults))", got, want)
	}
	// A fast interval is never slower than the interval.
	if got := (Config{Interval: 100 * time.Millisecond}).withDefaults().FastInterval; got != 100*time.Millisecond {
		t.Errorf("fast interval with a 100ms interval = %v, want 100ms", got)
	}
}

type hangCheck struct{}

func (hangCheck) Check(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }
func (hangCheck) String() string                  { return "hang://" }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
