package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"
)

// fakeClock steps a Monitor through its rounds: each time Run arms its
// timer, the requested delay arrives on waits; the test advances virtual
// time by it and fires the timer.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits chan time.Duration
	fire  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Unix(1_700_000_000, 0), waits: make(chan time.Duration, 1024), fire: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(time.Duration) timer { return fakeTimer{c} }

type fakeTimer struct{ c *fakeClock }

func (t fakeTimer) C() <-chan time.Time { return t.c.fire }
func (t fakeTimer) Stop() bool          { return true }
func (t fakeTimer) Reset(d time.Duration) bool {
	t.c.waits <- d
	return true
}

// stepper runs a Monitor on a fake clock, by default with one fake check.
type stepper struct {
	t     testing.TB
	m     *Monitor
	clock *fakeClock
	check fakeCheck
	halt  func()
}

// newStepper returns a stepper whose monitor is not running yet: set the
// first result, then start.
func newStepper(t testing.TB, cfg Config, checks ...Checker) *stepper {
	s := &stepper{t: t, clock: newFakeClock(), check: newFake(), halt: func() {}}
	if len(checks) == 0 {
		checks = []Checker{s.check}
	}
	s.m = NewMonitor(cfg, checks, nil, nil)
	s.m.clock = s.clock
	return s
}

// start runs the monitor; its first round runs at once.
func (s *stepper) start() {
	t := s.t
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.m.Run(ctx) }()
	var once sync.Once
	s.halt = func() {
		once.Do(func() {
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("Run returned %v", err)
			}
		})
	}
}

// stop ends Run (if it was started) and waits for it.
func (s *stepper) stop() { s.halt() }

// next waits for the round in progress to end and returns the delay the
// monitor asked for before the following round.
func (s *stepper) next() time.Duration {
	s.t.Helper()
	select {
	case d := <-s.clock.waits:
		return d
	case <-time.After(15 * time.Second):
		s.t.Fatalf("the monitor did not finish a round; status %v", s.m.Status())
		return 0
	}
}

// fire advances virtual time by d and starts the next round.
func (s *stepper) fire(d time.Duration) {
	s.clock.mu.Lock()
	s.clock.now = s.clock.now.Add(d)
	now := s.clock.now
	s.clock.mu.Unlock()
	s.clock.fire <- now
}

// changed reports whether a change was signalled, without waiting: the
// signal is sent before the monitor arms its timer, so after next() it is
// there or it will not come.
func changed(m *Monitor) bool {
	select {
	case <-m.Changed():
		return true
	default:
		return false
	}
}

var errRound = errors.New("round failed")

// After a failed round the monitor re-checks at the fast interval until the
// status settles (fall reached, or a pass); passes are counted at the
// normal interval. Changed fires on the round that changes the status.
func TestMonitorFastRecheck(t *testing.T) {
	const (
		iv   = time.Second
		fast = 200 * time.Millisecond
	)
	tests := []struct {
		name    string
		results string // '+' pass, '-' fail
		waits   []time.Duration
		status  string // after each round: U up, D down, ? unknown
		changes string // after each round: x = Changed fired
	}{
		{"up, fall, stay down, rise", "++----++",
			[]time.Duration{iv, iv, fast, fast, iv, iv, iv, iv}, "?UUUDDDU", ".x..x..x"},
		{"failures from the start fall fast", "---++",
			[]time.Duration{fast, fast, iv, iv, iv}, "??DDU", "..x.x"},
		{"a pass ends the fast streak", "++--+--+",
			[]time.Duration{iv, iv, fast, fast, iv, fast, fast, iv}, "?UUUUUUU", ".x......"},
		{"rise is not hurried after a failure while down", "++----+-++",
			[]time.Duration{iv, iv, fast, fast, iv, iv, iv, iv, iv, iv}, "?UUUDDDDDU", ".x..x....x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStepper(t, Config{Interval: iv, FastInterval: fast, Timeout: time.Second, Rise: 2, Fall: 3})
			defer s.stop()
			for i, r := range tt.results {
				if r == '-' {
					s.check.set(errRound)
				} else {
					s.check.set(nil)
				}
				if i == 0 {
					s.start()
				} else {
					s.fire(tt.waits[i-1])
				}
				if got := s.next(); got != tt.waits[i] {
					t.Errorf("round %d (%c): next round in %v, want %v", i+1, r, got, tt.waits[i])
				}
				if got := string("?UD"[s.m.Status()]); got != tt.status[i:i+1] {
					t.Errorf("round %d (%c): status %s, want %s", i+1, r, got, tt.status[i:i+1])
				}
				if got := changed(s.m); got != (tt.changes[i] == 'x') {
					t.Errorf("round %d (%c): Changed fired = %v, want %v", i+1, r, got, !got)
				}
			}
		})
	}
}

// With the defaults, fall 3 costs 0.4 s after the first failed round.
func TestMonitorFallTimeWithDefaults(t *testing.T) {
	s := newStepper(t, Config{})
	s.start()
	defer s.stop()
	var at time.Duration // virtual time since the first round
	for range 2 {
		d := s.next()
		s.fire(d)
		at += d
	}
	if s.m.Status() != Up {
		t.Fatalf("status %v after two passes, want up", s.m.Status())
	}
	s.check.set(errRound)
	firstFailure := at
	for s.m.Status() != Down {
		d := s.next()
		if s.m.Status() == Down {
			break
		}
		s.fire(d)
		at += d
		if at > 10*time.Second {
			t.Fatal("never went down")
		}
	}
	if got := at - firstFailure; got != 400*time.Millisecond {
		t.Errorf("down %v after the first failed round, want 400ms (2 × the 200ms fast interval)", got)
	}
}

// A check that alternates pass/fail (or fails two rounds of three) never
// reaches fall failures in a row: the fast re-checks change no status and
// signal nothing, however long it goes on.
func TestMonitorFlappingCheckChangesNothing(t *testing.T) {
	for _, pattern := range []string{"-+", "--+", "-++"} {
		t.Run(pattern, func(t *testing.T) {
			s := newStepper(t, Config{Interval: time.Second, FastInterval: 200 * time.Millisecond, Rise: 2, Fall: 3})
			s.start()
			defer s.stop()
			s.fire(s.next())
			s.next()
			if s.m.Status() != Up || !changed(s.m) {
				t.Fatalf("status %v, want up after two passes", s.m.Status())
			}
			for i := range 300 {
				if pattern[i%len(pattern)] == '-' {
					s.check.set(errRound)
				} else {
					s.check.set(nil)
				}
				s.fire(time.Second)
				s.next()
				if s.m.Status() != Up || changed(s.m) {
					t.Fatalf("round %d of %q: status %v, changed signalled; want up and silent", i, pattern, s.m.Status())
				}
			}
		})
	}
}

// For any sequence of results: the statuses are exactly those of the
// hysteresis alone (the fast interval changes timing, never a decision);
// the fast interval follows exactly the rounds of an unfinished failure
// streak; and the status cannot flap faster than the counts allow at the
// normal interval: down → up takes at least rise intervals, up → down at
// least one interval plus (fall-1) fast intervals.
func TestMonitorScheduleProperty(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		rise := rapid.IntRange(1, 5).Draw(rt, "rise")
		fall := rapid.IntRange(1, 5).Draw(rt, "fall")
		iv := time.Duration(rapid.IntRange(1, 20).Draw(rt, "interval")) * 100 * time.Millisecond
		fast := time.Duration(rapid.IntRange(1, 30).Draw(rt, "fast")) * 100 * time.Millisecond
		results := rapid.SliceOfN(rapid.Bool(), 1, 80).Draw(rt, "results")

		s := newStepper(t, Config{Interval: iv, FastInterval: fast, Timeout: time.Second, Rise: rise, Fall: fall})
		defer s.stop()
		effFast := min(fast, iv)
		ref := NewHysteresis(rise, fall)
		var (
			now      time.Duration
			lastUp   = time.Duration(-1)
			lastDown = time.Duration(-1)
		)
		for i, ok := range results {
			if ok {
				s.check.set(nil)
			} else {
				s.check.set(errRound)
			}
			if i == 0 {
				s.start()
			} else {
				d := s.next()
				s.fire(d)
				now += d
			}
			// The round has run once the next wait is requested; peek by
			// taking it and putting it back.
			d := s.next()
			s.clock.waits <- d
			want, wantChanged := ref.Observe(ok)
			if got := s.m.Status(); got != want {
				rt.Fatalf("round %d: status %v, the hysteresis alone gives %v", i, got, want)
			}
			if got := changed(s.m); got != wantChanged {
				rt.Fatalf("round %d: Changed fired = %v, want %v", i, got, wantChanged)
			}
			wantWait := iv
			if !ok && want != Down {
				wantWait = effFast
			}
			if d != wantWait {
				rt.Fatalf("round %d (ok=%v, %v): next round in %v, want %v", i, ok, want, d, wantWait)
			}
			if wantChanged && want == Up {
				if lastDown >= 0 && now-lastDown < time.Duration(rise)*iv {
					rt.Fatalf("round %d: up %v after going down, less than rise × interval", i, now-lastDown)
				}
				lastUp = now
			}
			if wantChanged && want == Down {
				if lastUp >= 0 && now-lastUp < iv+time.Duration(fall-1)*effFast {
					rt.Fatalf("round %d: down %v after going up, less than interval + (fall-1) × fast", i, now-lastUp)
				}
				lastDown = now
			}
		}
	})
}

// A refused connection and a check that times out are both failures, and
// both are re-checked at the fast interval until the status is down.
func TestMonitorRefusedAndTimeoutAreFailures(t *testing.T) {
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptLoop(t, silent) // accepts and never answers: an HTTP check times out
	tests := []struct {
		name, url, want string
	}{
		{"refused", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), "refused"},
		{"timeout", "http://" + silent.Addr().String() + "/healthz", "deadline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			s := newStepper(t, Config{Interval: time.Second, FastInterval: 200 * time.Millisecond, Timeout: 50 * time.Millisecond, Rise: 2, Fall: 3}, c)
			s.start()
			defer s.stop()
			for i, want := range []time.Duration{200 * time.Millisecond, 200 * time.Millisecond, time.Second} {
				d := s.next()
				if d != want {
					t.Errorf("round %d: next round in %v, want %v", i+1, d, want)
				}
				if i < 2 {
					s.fire(d)
				}
			}
			if s.m.Status() != Down {
				t.Errorf("status %v after three failed rounds, want down", s.m.Status())
			}
			if e := s.m.LastError(); e == nil || !strings.Contains(e.Error(), tt.want) {
				t.Errorf("last error %v, want one mentioning %q", e, tt.want)
			}
		})
	}
}

// Every subscriber gets every change: a signal taken by one consumer (the
// health gauge) must not be missing from another (the election loop).
func TestMonitorSubscribers(t *testing.T) {
	s := newStepper(t, Config{Interval: time.Second, Rise: 1, Fall: 1})
	defer s.stop()
	other := s.m.Subscribe()
	s.start()
	s.next()
	for i, c := range []<-chan struct{}{s.m.Changed(), other} {
		select {
		case <-c:
		default:
			t.Errorf("subscriber %d got no signal of the change to up", i)
		}
	}
}
