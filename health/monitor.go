package health

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config times the local checks. Zero fields take the defaults of docs/design.md (Defaults).
type Config struct {
	Interval time.Duration // between rounds while the status is settled; default 1s
	// FastInterval is between rounds while a failure streak has not yet
	// reached Fall (HAProxy's fastinter): a failing proxy is declared down
	// after (Fall-1) fast intervals instead of (Fall-1) intervals. Rise is
	// not hurried: passes are counted at Interval. Default 200ms; never
	// longer than Interval.
	FastInterval time.Duration
	Timeout      time.Duration // per check; default 500ms
	Rise         int           // consecutive good rounds to become Up; default 2
	Fall         int           // consecutive bad rounds to become Down; default 3
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	if c.FastInterval <= 0 {
		c.FastInterval = 200 * time.Millisecond
	}
	// A "fast" interval longer than the interval would slow failure
	// detection down (e.g. the 100 ms interval of tests).
	c.FastInterval = min(c.FastInterval, c.Interval)
	if c.Timeout <= 0 {
		c.Timeout = 500 * time.Millisecond
	}
	if c.Rise <= 0 {
		c.Rise = 2
	}
	if c.Fall <= 0 {
		c.Fall = 3
	}
	return c
}

// Monitor runs the local checks every Interval (every FastInterval while a
// failure streak is under way) and keeps their hysteresis. A round passes
// only when every check passes.
type Monitor struct {
	cfg     Config
	checks  []Checker
	logger  hclog.Logger
	observe func(time.Duration, error)
	clock   clock

	mu      sync.Mutex
	hyst    *Hysteresis
	lastErr error
	rounds  uint64
	subs    []chan struct{} // subs[0] is Changed()
}

// NewMonitor returns a Monitor in status Unknown. observe, if not nil, is
// called after each round with its duration and result (for metrics); it
// runs on the Run goroutine and must not block.
func NewMonitor(cfg Config, checks []Checker, logger hclog.Logger, observe func(d time.Duration, err error)) *Monitor {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	return &Monitor{
		cfg:     cfg,
		checks:  checks,
		logger:  logger,
		observe: observe,
		clock:   realClock{},
		hyst:    NewHysteresis(cfg.Rise, cfg.Fall),
		subs:    []chan struct{}{make(chan struct{}, 1)},
	}
}

// Run checks at once, then again Interval after the start of each round
// (FastInterval while settling, see Config), until ctx ends; it returns
// ctx.Err(). A round that takes longer than the wait is followed at once.
func (m *Monitor) Run(ctx context.Context) error {
	checks := make([]string, len(m.checks))
	for i, c := range m.checks {
		checks[i] = c.String()
	}
	m.logger.Info("health checks starting", "checks", checks, "interval", m.cfg.Interval,
		"fast_interval", m.cfg.FastInterval, "timeout", m.cfg.Timeout, "rise", m.cfg.Rise, "fall", m.cfg.Fall)
	t := m.clock.NewTimer(time.Hour)
	defer t.Stop()
	for {
		start := m.clock.Now()
		next := m.cfg.Interval
		if m.round(ctx) {
			next = m.cfg.FastInterval
		}
		t.Reset(max(0, next-m.clock.Now().Sub(start)))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C():
		}
	}
}

// round runs the checks once and records the result; it reports whether
// the next round is due at the fast interval.
func (m *Monitor) round(ctx context.Context) (settling bool) {
	start := time.Now()
	err := RunAll(ctx, m.checks, m.cfg.Timeout)
	d := time.Since(start)
	if ctx.Err() != nil {
		// Shutting down: a check cut short says nothing about the proxy.
		return false
	}

	m.mu.Lock()
	prev := m.hyst.Status()
	s, changed := m.hyst.Observe(err == nil)
	settling = m.hyst.Settling()
	prevErr := m.lastErr
	m.lastErr = err
	m.rounds++
	subs := m.subs
	m.mu.Unlock()

	// Signal first: the election reacts to a change at once; logs and
	// metrics can wait a few microseconds.
	if changed {
		for _, c := range subs {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
	if m.observe != nil {
		m.observe(d, err)
	}
	switch {
	case changed && s == Down:
		m.logger.Warn("health changed", "previous_status", prev, "status", s, "error", err)
	case changed:
		m.logger.Info("health changed", "previous_status", prev, "status", s)
	case err != nil && (prevErr == nil || prevErr.Error() != err.Error()):
		// First failure of a streak, or a different one: worth a line, but
		// not at Info on every tick.
		m.logger.Debug("health check failed", "status", s, "error", err)
	default:
		m.logger.Trace("health round", "status", s, "duration", d, "error", err)
	}
	return settling
}

// RunAll runs checks concurrently, each bounded by timeout, and joins their
// errors: nil only when every check passed. An empty list passes.
func RunAll(ctx context.Context, checks []Checker, timeout time.Duration) error {
	errs := make([]error, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			errs[i] = c.Check(cctx)
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Status returns the debounced status. Safe for concurrent use.
func (m *Monitor) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hyst.Status()
}

// LastError returns the last round's error, nil if it passed or none ran.
func (m *Monitor) LastError() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastErr
}

// Changed receives a value (buffered 1, never blocking the monitor) after the
// status changed, so a consumer can react at once instead of on its next tick.
// Read Status after receiving; several changes may coalesce into one signal.
// A signal reaches one receiver only: every other consumer must Subscribe.
func (m *Monitor) Changed() <-chan struct{} { return m.subs[0] }

// Subscribe returns a channel of its own that, like Changed, receives a
// value after each status change. Call it before Run.
func (m *Monitor) Subscribe() <-chan struct{} {
	c := make(chan struct{}, 1)
	m.mu.Lock()
	m.subs = append(m.subs[:len(m.subs):len(m.subs)], c)
	m.mu.Unlock()
	return c
}

// clock is the time source of Run; tests replace it to step through rounds.
type clock interface {
	Now() time.Time
	NewTimer(d time.Duration) timer
}

type timer interface {
	C() <-chan time.Time
	Reset(d time.Duration) bool
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time                 { return time.Now() }
func (realClock) NewTimer(d time.Duration) timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ *time.Timer }

func (t realTimer) C() <-chan time.Time { return t.Timer.C }
