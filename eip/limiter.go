package eip

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"
)

// Backoff after a throttled call: capped exponential with full jitter.
const (
	backoffBase = time.Second
	backoffCap  = 30 * time.Second
)

// limiter is the one client-side budget every EC2 call goes through: a token
// bucket, plus a pause for everyone after EC2 said RequestLimitExceeded. The
// account-wide EC2 budget is shared with everything else the account runs,
// so one throttle means every caller here should slow down, not just the one
// call the SDK retryer retries.
type limiter struct {
	rate  float64 // tokens per second
	burst float64

	now    func() time.Time
	jitter func() float64 // [0,1)
	// sleep waits d or until ctx is done; injectable for tests.
	sleep func(ctx context.Context, d time.Duration) error

	mu          sync.Mutex
	tokens      float64
	last        time.Time
	pausedUntil time.Time
	failures    int // consecutive throttles
}

func newLimiter(rate float64, burst int) *limiter {
	if rate <= 0 {
		rate = 5
	}
	if burst <= 0 {
		burst = 10
	}
	l := &limiter{
		rate:   rate,
		burst:  float64(burst),
		now:    time.Now,
		jitter: rand.Float64,
		sleep:  sleepCtx,
	}
	l.tokens = l.burst
	return l
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// reserve takes one token at now and returns how long the caller must wait
// before using it. It refuses (ok=false, nothing taken) when the wait would
// end after deadline (zero deadline: none).
func (l *limiter) reserve(now, deadline time.Time) (wait time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	start := now
	if l.pausedUntil.After(start) {
		start = l.pausedUntil
	}
	// Tokens may go negative: each waiter holds its place in the queue.
	need := 1 - l.tokens
	ready := start
	if need > 0 {
		ready = ready.Add(time.Duration(need / l.rate * float64(time.Second)))
	}
	if !deadline.IsZero() && ready.After(deadline) {
		return 0, false
	}
	l.tokens--
	return ready.Sub(now), true
}

// cancel gives back a token a waiter did not use.
func (l *limiter) cancel(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refill(now)
	l.tokens = min(l.tokens+1, l.burst)
}

func (l *limiter) refill(now time.Time) {
	if !l.last.IsZero() && now.After(l.last) {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	if now.After(l.last) {
		l.last = now
	}
}

// wait blocks until the budget allows one call. It returns an error wrapping
// ErrThrottled when the budget cannot allow it before ctx ends.
func (l *limiter) wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return &classifiedError{kind: ErrUnavailable, err: err}
	}
	deadline, _ := ctx.Deadline()
	d, ok := l.reserve(l.now(), deadline)
	if !ok {
		return &classifiedError{kind: ErrThrottled, err: fmt.Errorf("client-side EC2 call budget (%.3g/s, burst %.0f) cannot allow the call before the deadline", l.rate, l.burst)}
	}
	if d <= 0 {
		return nil
	}
	if err := l.sleep(ctx, d); err != nil {
		l.cancel(l.now())
		return &classifiedError{kind: ErrThrottled, err: fmt.Errorf("waiting %s for the client-side EC2 call budget: %w", d, err)}
	}
	return nil
}

// throttled records a throttled call and pauses every caller for a jittered,
// capped, exponentially growing delay. It returns that delay.
func (l *limiter) throttled() time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	ceil := backoffCap
	if l.failures < 16 { // 2^16 s is far past the cap; avoids overflow
		ceil = min(backoffCap, backoffBase<<l.failures)
	}
	l.failures++
	d := time.Duration(l.jitter() * float64(ceil))
	until := l.now().Add(d)
	if until.After(l.pausedUntil) {
		l.pausedUntil = until
	}
	return d
}

// succeeded resets the backoff after a call EC2 did not throttle.
func (l *limiter) succeeded() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failures = 0
}
