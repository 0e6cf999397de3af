package health

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// Config times the local checks. Zero fields take the defaults of DESIGN.md §5.
type Config struct {
	Interval time.Duration // between rounds; default 1s
	Timeout  time.Duration // per check; default 500ms
	Rise     int           // consecutive good rounds to become Up; default 2
	Fall     int           // consecutive bad rounds to become Down; default 3
}

func (c Config) withDefaults() Config {
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
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

// Monitor runs the local checks every Interval and keeps their hysteresis.
// A round passes only when every check passes.
type Monitor struct {
	cfg     Config
	checks  []Checker
	logger  hclog.Logger
	observe func(time.Duration, error)
	changed chan struct{}

	mu      sync.Mutex
	hyst    *Hysteresis
	lastErr error
	rounds  uint64
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
		changed: make(chan struct{}, 1),
		hyst:    NewHysteresis(cfg.Rise, cfg.Fall),
	}
}

// Run checks at once, then every Interval, until ctx ends; it returns ctx.Err().
func (m *Monitor) Run(ctx context.Context) error {
	checks := make([]string, len(m.checks))
	for i, c := range m.checks {
		checks[i] = c.String()
	}
	m.logger.Info("health checks starting", "checks", checks, "interval", m.cfg.Interval,
		"timeout", m.cfg.Timeout, "rise", m.cfg.Rise, "fall", m.cfg.Fall)
	t := time.NewTicker(m.cfg.Interval)
	defer t.Stop()
	for {
		m.round(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (m *Monitor) round(ctx context.Context) {
	start := time.Now()
	err := RunAll(ctx, m.checks, m.cfg.Timeout)
	d := time.Since(start)
	if ctx.Err() != nil {
		// Shutting down: a check cut short says nothing about the proxy.
		return
	}

	m.mu.Lock()
	prev := m.hyst.Status()
	s, changed := m.hyst.Observe(err == nil)
	prevErr := m.lastErr
	m.lastErr = err
	m.rounds++
	m.mu.Unlock()

	if m.observe != nil {
		m.observe(d, err)
	}
	switch {
	case changed && s == Down:
		m.logger.Warn("health changed", "from", prev, "to", s, "error", err)
	case changed:
		m.logger.Info("health changed", "from", prev, "to", s)
	case err != nil && (prevErr == nil || prevErr.Error() != err.Error()):
		// First failure of a streak, or a different one: worth a line, but
		// not at Info on every tick.
		m.logger.Debug("health check failed", "status", s, "error", err)
	default:
		m.logger.Trace("health round", "status", s, "duration", d, "error", err)
	}
	if changed {
		select {
		case m.changed <- struct{}{}:
		default:
		}
	}
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
func (m *Monitor) Changed() <-chan struct{} { return m.changed }
