package eip

import (
	"context"
	"errors"
	"testing"
	"time"
)

func fakeClockLimiter(rate float64, burst int) (*limiter, *time.Time) {
	l := newLimiter(rate, burst)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l.now = func() time.Time { return now }
	return l, &now
}

func TestLimiterBucket(t *testing.T) {
	l, now := fakeClockLimiter(10, 2)
	var waits []time.Duration
	for range 4 {
		d, ok := l.reserve(*now, time.Time{})
		if !ok {
			t.Fatal("refused without deadline")
		}
		waits = append(waits, d)
	}
	want := []time.Duration{0, 0, 100 * time.Millisecond, 200 * time.Millisecond}
	for i := range want {
		if diff := waits[i] - want[i]; diff < -time.Millisecond || diff > time.Millisecond {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	// A deadline sooner than the wait: refused and nothing taken.
	if _, ok := l.reserve(*now, now.Add(50*time.Millisecond)); ok {
		t.Fatal("reserve past deadline accepted")
	}
	// A second later the queue has drained and the bucket refilled to burst.
	*now = now.Add(time.Second)
	for i := range 2 {
		if d, _ := l.reserve(*now, time.Time{}); d != 0 {
			t.Fatalf("after refill, reservation %d waits %v", i, d)
		}
	}
	if d, _ := l.reserve(*now, time.Time{}); d <= 0 {
		t.Fatal("burst exceeded without waiting")
	}
}

func TestLimiterBackoff(t *testing.T) {
	l, now := fakeClockLimiter(1000, 1000)
	l.jitter = func() float64 { return 1 } // the ceiling itself
	var got []time.Duration
	for range 8 {
		got = append(got, l.throttled())
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("backoff %v, want %v seconds", got, want)
		}
	}
	// Everyone waits out the pause.
	if d, _ := l.reserve(*now, time.Time{}); d != 30*time.Second {
		t.Fatalf("wait during pause %v", d)
	}
	l.succeeded()
	if d := l.throttled(); d != time.Second {
		t.Fatalf("after success backoff %v, want 1s", d)
	}

	// Full jitter: anywhere from 0 up to the ceiling.
	l.jitter = func() float64 { return 0 }
	if d := l.throttled(); d != 0 {
		t.Fatalf("zero jitter gives %v", d)
	}
}

func TestLimiterWaitHonoursContext(t *testing.T) {
	l := newLimiter(0.1, 1) // one call per 10s after the first
	if err := l.wait(context.Background()); err != nil {
		t.Fatal(err)
	}

	// A deadline the budget cannot meet: refused at once.
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := l.wait(ctx)
	if !errors.Is(err, ErrThrottled) {
		t.Fatalf("want ErrThrottled, got %v", err)
	}

	// No deadline but canceled while waiting: returns with the context.
	ctx2, cancel2 := context.WithCancel(context.Background())
	start := time.Now()
	timer := time.AfterFunc(20*time.Millisecond, cancel2)
	defer timer.Stop()
	err = l.wait(ctx2)
	if !errors.Is(err, ErrThrottled) || !errors.Is(err, context.Canceled) {
		t.Fatalf("want ErrThrottled and context.Canceled, got %v", err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("wait ignored cancellation for %v", el)
	}
	// The canceled waiter gave its token back: the next one waits at most
	// about 10s, not 20s.
	d, ok := l.reserve(time.Now(), time.Time{})
	if !ok || d > 10*time.Second+time.Second {
		t.Fatalf("next wait %v", d)
	}
}

func TestLimiterWaitReal(t *testing.T) {
	l := newLimiter(200, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	for range 5 {
		if err := l.wait(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Four waits of 5ms each: at least ~20ms, whatever the machine.
	if el := time.Since(start); el < 15*time.Millisecond {
		t.Fatalf("5 calls at 200/s burst 1 took only %v", el)
	}
}
