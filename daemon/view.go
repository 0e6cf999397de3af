package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
	"github.com/eipd/eipd/internal/control"
	"github.com/eipd/eipd/leader"
)

// defaultWatchdog is how long the main loop may go without completing a
// pass before /healthz fails, when systemd gives no WATCHDOG_USEC: the
// WatchdogSec= of systemd/eipd.service. A pass makes a few AWS calls of at
// most callTimeout each, so this leaves room for several slow calls.
const defaultWatchdog = 30 * time.Second

// watchdogFor is the stall limit of /healthz: systemd's own watchdog
// (WATCHDOG_USEC) when it set one, so both judge the loop alike.
func watchdogFor(n *notifier) time.Duration {
	if wd := n.WatchdogInterval(); wd > 0 {
		return 2 * wd
	}
	return defaultWatchdog
}

// runningLoop is what the listeners use of the leader loop; *leader.Loop
// satisfies it.
type runningLoop interface {
	progress
	RequestHandoff(ctx context.Context, to string) error
	// StatusFresh is Status with this instance's own ENI view read from
	// instance metadata first (what the coordinator asks for before a move).
	StatusFresh(ctx context.Context) leader.Status
	// AcceptAt takes a coordinator's probe
	// (/status?coordinator=ID&coordinator_ip=IP&epoch=N).
	AcceptAt(id, ip string, epoch int64)
	// HeardFrom notes which member asks (/status?from=ID).
	HeardFrom(from string)
	// Notice takes a member's notice (POST /notice).
	Notice(from string)
	// ProbeMember probes a member for the coordinator (/probe).
	ProbeMember(ctx context.Context, id string) (health.ProbeAnswer, bool)
}

// healthView is the own health check; *health.Monitor satisfies it.
type healthView interface {
	Status() health.Status
	LastError() error
}

// daemonView is what the status and control listeners show of the daemon.
// They open before the instance identity is known, so that /readyz and
// `eipd status` say why the daemon is not ready instead of refusing
// connections; until the loop runs they report what it waits for.
type daemonView struct {
	watchdog time.Duration
	now      func() time.Time
	health   healthView // nil: health unknown

	mu        sync.Mutex
	waiting   string
	attempts  int
	waitErr   error
	loop      runningLoop
	loopSince time.Time
	self      string
	members   func(context.Context) ([]eip.Instance, error)
	// reach says whether the EC2 API answers (nil until the client exists).
	reach func() eip.Reachability
}

func newDaemonView(watchdog time.Duration, h healthView) *daemonView {
	return &daemonView{watchdog: watchdog, now: time.Now, health: h, waiting: control.WaitingForIMDS}
}

// waitFailed records a failed attempt at what the daemon waits for.
func (v *daemonView) waitFailed(attempt int, err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.attempts, v.waitErr = attempt, err
}

// started hands the listeners the running loop; members lists the group's
// running instances (to check a handoff target), self is this instance.
func (v *daemonView) started(loop runningLoop, self string, members func(context.Context) ([]eip.Instance, error)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.loop, v.loopSince, v.self, v.members = loop, v.now(), self, members
	v.waiting, v.attempts, v.waitErr = "", 0, nil
}

// watchReachability hands the listeners the EC2 client's reachability.
func (v *daemonView) watchReachability(reach func() eip.Reachability) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reach = reach
}

// unreachable is /status's aws_unreachable: nil while the EC2 API answers.
func (v *daemonView) unreachable() *control.AWSUnreachable {
	v.mu.Lock()
	reach := v.reach
	v.mu.Unlock()
	if reach == nil {
		return nil
	}
	r := reach()
	if !r.Known || r.Reachable {
		return nil
	}
	return &control.AWSUnreachable{Since: r.Since, Cause: r.Cause, LastAnswer: r.LastAnswer, Hint: eip.EgressHint}
}

func (v *daemonView) running() (runningLoop, time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.loop, v.loopSince
}

func (v *daemonView) healthStatus() health.Status {
	if v.health == nil {
		return health.Unknown
	}
	return v.health.Status()
}

// status is the /status document for q, the request's query: fresh=1
// (asked by the coordinator right before a move that concerns this member)
// reads this instance's ENI from instance metadata first; coordinator=ID
// and epoch=N mark the coordinator's own probe, which this member follows
// if it comes first (leader.Loop.Accept).
func (v *daemonView) status(ctx context.Context, q url.Values) control.StatusDoc {
	if loop, _ := v.running(); loop != nil {
		if id := q.Get("coordinator"); id != "" {
			if epoch, err := strconv.ParseInt(q.Get("epoch"), 10, 64); err == nil && epoch > 0 && len(id) <= 64 {
				loop.AcceptAt(id, q.Get("coordinator_ip"), epoch)
			}
		}
		loop.HeardFrom(q.Get("from"))
		if q.Get("fresh") == "1" {
			return control.StatusDoc{Status: loop.StatusFresh(ctx), AWSUnreachable: v.unreachable()}
		}
		return control.StatusDoc{Status: loop.Status(), AWSUnreachable: v.unreachable()}
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	d := control.StatusDoc{Status: leader.Status{Health: v.healthStatus().String(), EIPs: []leader.EIPStatus{}},
		Waiting: v.waiting, WaitingAttempts: v.attempts}
	if v.waitErr != nil {
		d.WaitingError = v.waitErr.Error()
	}
	return d
}

// notice passes a member's notice to the loop (ignored until it runs).
func (v *daemonView) notice(from string) {
	if loop, _ := v.running(); loop != nil {
		loop.Notice(from)
	}
}

// probe probes a member for the coordinator (/probe).
func (v *daemonView) probe(ctx context.Context, instance string) (any, bool) {
	loop, _ := v.running()
	if loop == nil || instance == "" {
		return nil, false
	}
	return loop.ProbeMember(ctx, instance)
}

// ready is nil when the identity is known and the own check is up, else
// why not (/readyz).
func (v *daemonView) ready() error {
	v.mu.Lock()
	waiting, attempts, waitErr := v.waiting, v.attempts, v.waitErr
	v.mu.Unlock()
	if waiting != "" {
		if waitErr != nil {
			return fmt.Errorf("%s (attempt %d failed: %v)", waiting, attempts, waitErr)
		}
		return errors.New(waiting)
	}
	if s := v.healthStatus(); s != health.Up {
		if v.health == nil {
			return fmt.Errorf("own health is %s", s)
		}
		if e := v.health.LastError(); e != nil {
			return fmt.Errorf("own health is %s: %w", s, e)
		}
		return fmt.Errorf("own health is %s", s)
	}
	return nil
}

// live is nil while the main loop completes passes (/healthz). Waiting for
// the identity is not a stall: the retries are bounded and logged, and
// /readyz says so.
func (v *daemonView) live() error {
	loop, since := v.running()
	if loop == nil {
		return nil
	}
	last := loop.LastReconcile()
	if last.Before(since) {
		last = since
	}
	if idle := v.now().Sub(last); idle > v.watchdog {
		return fmt.Errorf("the main loop has completed no pass for %s (watchdog %s): it is stuck; restart eipd", idle.Round(time.Millisecond), v.watchdog)
	}
	return nil
}

// handoff checks the target and asks the loop for a planned move.
func (v *daemonView) handoff(ctx context.Context, to string) error {
	v.mu.Lock()
	loop, self, members := v.loop, v.self, v.members
	v.mu.Unlock()
	if loop == nil {
		return control.ErrNotRunning
	}
	if to != "" {
		if to == self {
			return fmt.Errorf("%w %s: that is this instance; name another member", control.ErrUnknownTarget, to)
		}
		ms, err := members(ctx)
		if err != nil {
			return fmt.Errorf("cannot check %s against the group's members: %w", to, err)
		}
		var ids []string
		for _, m := range ms {
			if m.InstanceID == to {
				return loop.RequestHandoff(ctx, to)
			}
			if m.InstanceID != self {
				ids = append(ids, m.InstanceID)
			}
		}
		slices.Sort(ids)
		others := "none"
		if len(ids) > 0 {
			others = strings.Join(ids, ", ")
		}
		return fmt.Errorf("%w %s: not a running member of this group (other members: %s)", control.ErrUnknownTarget, to, others)
	}
	return loop.RequestHandoff(ctx, to)
}
