package demo

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/eipd/eipd/groupview"
	"github.com/eipd/eipd/internal/groupstate"
)

// clientInterval is how often the client sends a request to the EIP.
const clientInterval = 50 * time.Millisecond

// requestTimeout bounds one request; the emulator refuses or resets at
// once when nothing serves, so only a hung target reaches it.
const requestTimeout = 2 * time.Second

// request is one request of the client to the EIP.
type request struct {
	start, end time.Time
	phase      int // the phase it was sent in
	ok         bool
	problem    string
	servedBy   string
}

// client sends GET / to the EIP's address every clientInterval, each on a
// new connection (the emulator moves new connections only, as AWS moves
// new flows), and records every answer.
type client struct {
	target string
	hc     *http.Client

	mu           sync.Mutex
	phase        int
	inflight     map[int]int
	reqs         []request
	newest       time.Time // start of the newest completed request
	failingSince time.Time
	wg           sync.WaitGroup
}

func newClient(target string) *client {
	return &client{target: target, inflight: map[int]int{},
		hc: &http.Client{Timeout: requestTimeout, Transport: &http.Transport{DisableKeepAlives: true, Proxy: nil}}}
}

// run sends requests until ctx ends, then waits for those in flight;
// requests cut short by the end are not counted.
func (c *client) run(ctx context.Context) {
	t := time.NewTicker(clientInterval)
	defer t.Stop()
	for {
		c.fire(ctx)
		select {
		case <-ctx.Done():
			c.wg.Wait()
			return
		case <-t.C:
		}
	}
}

func (c *client) fire(ctx context.Context) {
	c.mu.Lock()
	phase := c.phase
	c.inflight[phase]++
	c.mu.Unlock()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		r := c.get(ctx)
		r.phase = phase
		c.mu.Lock()
		defer c.mu.Unlock()
		c.inflight[phase]--
		if ctx.Err() != nil && !r.ok {
			return // cut short by the end of the demo
		}
		c.reqs = append(c.reqs, r)
		if r.start.After(c.newest) {
			c.newest = r.start
			switch {
			case r.ok:
				c.failingSince = time.Time{}
			case c.failingSince.IsZero():
				c.failingSince = r.start
			}
		}
	}()
}

func (c *client) get(ctx context.Context) request {
	r := request{start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.target+"/", nil)
	if err != nil {
		r.problem, r.end = err.Error(), time.Now()
		return r
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		r.problem = problem(err)
		r.end = time.Now()
		return r
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	r.end = time.Now()
	switch {
	case err != nil:
		r.problem = problem(err)
	case resp.StatusCode != http.StatusOK:
		r.problem = resp.Status
	default:
		r.ok, r.servedBy = true, strings.TrimSpace(string(b))
	}
	return r
}

func problem(err error) string {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return "connection closed"
	}
	return groupstate.Problem(err)
}

// setPhase makes later requests count for phase p.
func (c *client) setPhase(p int) {
	c.mu.Lock()
	c.phase = p
	c.mu.Unlock()
}

// settle waits until no request sent before phase p is in flight (at most
// requestTimeout), so that a fault injected now is not blamed on the
// phase before.
func (c *client) settle(ctx context.Context, p int) {
	deadline := time.Now().Add(requestTimeout + 100*time.Millisecond)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		c.mu.Lock()
		busy := 0
		for ph, n := range c.inflight {
			if ph < p {
				busy += n
			}
		}
		c.mu.Unlock()
		if busy == 0 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// view is the client's line of the group view.
func (c *client) view(now time.Time) *groupview.Client {
	c.mu.Lock()
	defer c.mu.Unlock()
	v := &groupview.Client{Target: c.target, FailingSince: c.failingSince}
	for _, r := range c.reqs {
		if r.ok {
			v.TotalOK++
		} else {
			v.TotalFailed++
		}
		if r.end.After(now.Add(-time.Second)) && !r.end.After(now) {
			if r.ok {
				v.OK++
			} else {
				v.Failed++
			}
		}
	}
	return v
}

// requests returns every recorded request, oldest start first.
func (c *client) requests() []request {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(c.reqs)
	slices.SortStableFunc(out, func(a, b request) int { return a.start.Compare(b.start) })
	return out
}

// failureRun is a run of consecutive failed requests.
type failureRun struct {
	from, to time.Time // first failure sent → next success sent (or last failure answered)
	count    int
	phase    int // phase of the first failure
	problem  string
}

func (r failureRun) length() time.Duration { return r.to.Sub(r.from) }

// failureRuns splits requests (oldest start first) into runs of failures.
func failureRuns(reqs []request) []failureRun {
	var runs []failureRun
	var cur *failureRun
	for _, r := range reqs {
		switch {
		case !r.ok && cur == nil:
			runs = append(runs, failureRun{from: r.start, to: r.end, count: 1, phase: r.phase, problem: r.problem})
			cur = &runs[len(runs)-1]
		case !r.ok:
			cur.count++
			cur.to = later(cur.to, r.end)
		case cur != nil:
			cur.to = r.start
			cur = nil
		}
	}
	return runs
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
