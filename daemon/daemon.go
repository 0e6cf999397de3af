// Package daemon is `eipd run`: it assembles eip, health, leader and
// metrics into the daemon from the configuration, opens the status and
// control listeners, serves the daemon's view on them, keeps systemd
// informed (sd_notify, watchdog) and tunes the Go runtime for a small,
// mostly idle process.
package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/asghealth"
	"github.com/eipd/eipd/asghook"
	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
	"github.com/eipd/eipd/internal/awsenv"
	"github.com/eipd/eipd/internal/cli"
	"github.com/eipd/eipd/internal/config"
	"github.com/eipd/eipd/internal/control"
	"github.com/eipd/eipd/internal/logging"
	"github.com/eipd/eipd/leader"
	"github.com/eipd/eipd/metrics"
)

// callTimeout bounds every AWS call made by the daemon, so that one hung
// call cannot wedge the loop for longer than the watchdog allows.
const callTimeout = 5 * time.Second

// imdsRetryMax caps the delay between two attempts at the identity: each
// failed attempt is logged, so this is also the pace of those lines.
const imdsRetryMax = 10 * time.Second

// identify reads the instance identity, retrying with capped backoff: at
// boot IMDS may answer late, and without identity nothing can be decided.
// Every failed attempt is logged (at a steady pace once the backoff is
// capped) and shown on /status and /readyz through view.
func identify(ctx context.Context, md *eip.Metadata, view *daemonView, log hclog.Logger) (eip.Identity, error) {
	delay := 500 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		id, err := md.Identity(cctx)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info("instance metadata answered", "attempt", attempt)
			}
			return id, nil
		}
		if ctx.Err() != nil {
			return eip.Identity{}, ctx.Err()
		}
		view.waitFailed(attempt, err)
		log.Warn("cannot read the instance identity from instance metadata (IMDS); retrying", "attempt", attempt, "retry_in", delay, "error", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return eip.Identity{}, ctx.Err()
		case <-t.C:
		}
		delay = min(2*delay, imdsRetryMax)
	}
}

// Command is `eipd run`: the daemon, until ctx ends and the handoff is done.
func Command(ctx context.Context, args []string, env cli.Env) error {
	stderr := env.Stderr
	cfg, err := config.Parse("run", args, env.Getenv, stderr)
	if err != nil {
		format := env.Getenv(config.EnvName("log-format"))
		if cfg != nil {
			format = cfg.LogFormat
		}
		if format != "json" || errors.Is(err, flag.ErrHelp) {
			return err
		}
		// Even a bad configuration is reported as JSON when JSON was asked
		// for: a log pipeline must not choke on the one line that matters.
		logFatal(logging.New("info", format, stderr), "invalid configuration", err)
		return cli.Logged(err)
	}
	log := logging.New(cfg.LogLevel, cfg.LogFormat, stderr)
	if err := runDaemon(ctx, cfg, env, log); err != nil {
		if cfg.LogFormat != "json" {
			return err
		}
		logFatal(log, "exiting on error", err)
		return cli.Logged(err)
	}
	return nil
}

// logFatal logs the error that ends the daemon; a configuration error
// lists its problems one per array element.
func logFatal(log hclog.Logger, msg string, err error) {
	var ce config.Error
	if errors.As(err, &ce) {
		problems := make([]string, len(ce))
		for i, p := range ce {
			problems[i] = p.Error()
		}
		log.Error(msg, "problems", problems)
		return
	}
	log.Error(msg, "error", err)
}

// runDaemon is eipd run with a valid configuration.
func runDaemon(ctx context.Context, cfg *config.Config, env cli.Env, log hclog.Logger) error {
	getenv := env.Getenv
	log.Info("starting", append([]any{"version", env.Version, "revision", env.Revision}, cfg.LogFields()...)...)
	tuneRuntime(os.Getenv, cfg.Pprof)

	awsCfg, imdsClient, err := awsenv.FromProcess(ctx, env.Version, logging.SDK(log.Named("aws")))
	if err != nil {
		return err
	}
	m := metrics.New(metrics.BuildInfo{Version: env.Version, Revision: env.Revision, GoVersion: runtime.Version()},
		cfg.AllocationIDs, eip.Operations, eip.Outcomes, eip.IMDSOutcomes, nil)
	checks, err := health.ParseAll(cfg.HealthChecks)
	if err != nil {
		return cli.Usage(err)
	}
	monitor := health.NewMonitor(health.Config{Interval: cfg.HealthInterval, FastInterval: cfg.HealthFast, Timeout: cfg.HealthTimeout, Rise: cfg.HealthRise, Fall: cfg.HealthFall},
		checks, log.Named("health"), func(d time.Duration, err error) {
			m.ObserveHealthCheck(d, err)
		})
	notify := newNotifier(getenv)
	// --asg-health follows the health status through a subscription of its
	// own, taken before the monitor runs.
	var asgHealthChanged <-chan struct{}
	if cfg.ASGHealth {
		asgHealthChanged = monitor.Subscribe()
	}

	// The listeners open before the identity is known: while IMDS does not
	// answer, /readyz says so (and EIPDNotReconciling fires, not EIPDDown)
	// and eipd status shows it instead of "is eipd running?".
	view := newDaemonView(watchdogFor(notify), monitor)
	statusLn, err := metrics.Listen(metrics.ServerConfig{Listen: cfg.Listen})
	if err != nil {
		return fmt.Errorf("status listener %s: %w", cfg.Listen, err)
	}
	server := metrics.NewServer(metrics.ServerConfig{Listen: cfg.Listen, EnablePprof: cfg.Pprof, Live: view.live,
		Notice: view.notice, Probe: view.probe}, m,
		func(r *http.Request) any { return view.status(r.Context(), r.URL.Query()) }, view.ready, log.Named("http"))
	// The control endpoint only serves the local operator (eipd status,
	// eipd handoff): failing to bind it must not take the election down.
	ctrlLn, err := control.Listen(cfg.Control)
	if err != nil {
		log.Error("control endpoint unavailable: eipd status and eipd handoff will not reach this daemon; the election runs without it",
			"control", cfg.Control, "error", err)
	}
	ctrl := control.NewServer(func(ctx context.Context) control.StatusDoc { return view.status(ctx, nil) }, view.handoff,
		log.Named("control"))

	// Everything below is owned here and ends with runCtx; the loop ends
	// last because it hands off after ctx is cancelled.
	runCtx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	goOwned := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(runCtx); err != nil && !errors.Is(err, context.Canceled) {
				log.Error(name+" stopped", "error", err)
			}
		}()
	}
	goOwned("status server", func(c context.Context) error { return server.Serve(c, statusLn) })
	if ctrlLn != nil {
		goOwned("control server", func(c context.Context) error { return ctrl.Serve(c, ctrlLn) })
	}
	goOwned("health monitor", monitor.Run)

	md := eip.NewMetadata(imdsClient, log.Named("imds"), m)
	self, err := identify(ctx, md, view, log)
	if err != nil {
		if ctx.Err() != nil {
			log.Info("stopped before the instance identity was known")
			return nil
		}
		return err
	}
	if awsCfg.Region == "" {
		awsCfg.Region = self.Region
	}
	// The identity is logged once here rather than on every line: eip logs
	// instance_id for the instance an action concerns (a target, a holder).
	log.Info("identity", "instance_id", self.InstanceID, "region", awsCfg.Region, "az", self.AvailabilityZone,
		"network_interface_id", self.NetworkInterfaceID, "private_ip", self.PrivateIP)

	now, err := testClock(getenv, log)
	if err != nil {
		return err
	}
	ec2API := ec2.NewFromConfig(awsCfg, eip.GuardRequestBody)
	endpointHost := ""
	if u, err := awsenv.EC2Endpoint(ctx, awsCfg); err == nil {
		endpointHost = u.Host
	}
	cloud := eip.New(eip.Config{Group: cfg.Group, DryRun: cfg.DryRun, Rate: cfg.APIRate, Burst: cfg.APIBurst, Now: now,
		Endpoint: endpointHost}, ec2API, log.Named("eip"), m)
	view.watchReachability(cloud.Reachability)

	_, portStr, _ := net.SplitHostPort(cfg.Listen)
	statusPort, _ := strconv.Atoi(portStr)
	prober := health.NewPeerProber(checks, statusPort, cfg.HealthTimeout)

	loop := leader.New(leader.Config{
		Timing: leader.Timing{
			RenewInterval: cfg.RenewInterval, LeaseDuration: cfg.LeaseDuration, MaxClockSkew: cfg.MaxClockSkew,
			AddressPoll: cfg.AddressPoll, MemberPoll: cfg.MemberPoll, ProbeInterval: cfg.ProbeInterval, ProbeFall: cfg.ProbeFall,
		},
		AllocationIDs: cfg.AllocationIDs, ProbeTimeout: cfg.HealthTimeout,
		LifecyclePoll: cfg.LifecyclePoll, StopTimeout: cfg.StopTimeout, CallTimeout: callTimeout, DryRun: cfg.DryRun,
		Now: now,
	}, self, cloud, md, monitor, prober, m, log.Named("leader"))

	// Subscribed here, not in the goroutine: Subscribe writes the list of
	// subscribers that Changed (the loop's) reads without a lock.
	gaugeChanged := monitor.Subscribe()
	goOwned("health gauge", func(c context.Context) error { return followHealth(c, monitor, gaugeChanged, m) })
	goOwned("systemd notify", func(c context.Context) error { return feedSystemd(c, notify, loop, log) })
	var asg *autoscaling.Client
	if cfg.LifecycleHook != "" || cfg.ASGHealth {
		asg = autoscaling.NewFromConfig(awsCfg, func(o *autoscaling.Options) { o.BaseEndpoint = awsenv.AutoScalingEndpoint(os.Getenv) })
	}
	if cfg.LifecycleHook != "" {
		hook := asghook.New(asghook.Config{Hook: cfg.LifecycleHook, InstanceID: self.InstanceID, NoticeEvery: cfg.LifecyclePoll,
			CallTimeout: callTimeout, DryRun: cfg.DryRun}, asg, ec2API, md, loop, log.Named("asghook"))
		goOwned("lifecycle hook", hook.Run)
	}
	if cfg.ASGHealth {
		reporter := asghealth.New(asghealth.Config{InstanceID: self.InstanceID, After: cfg.ASGHealthAfter, CallTimeout: callTimeout,
			DryRun: cfg.DryRun, Now: now}, subscribedHealth{monitor, asgHealthChanged},
			func() bool { return holdsAnyEIP(loop.Status()) }, func() bool { return othersServe(loop.Status()) },
			asg, log.Named("asghealth"), m)
		goOwned("asg health", reporter.Run)
	}
	view.started(loop, self.InstanceID, func(ctx context.Context) ([]eip.Instance, error) {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		ms, err := cloud.Members(ctx)
		return eip.Running(ms), err
	})

	// The loop runs on the signal context: cancelling it starts the handoff.
	loopErr := loop.Run(ctx)
	_ = notify.Stopping()
	cancel()
	wg.Wait()
	log.Info("stopped")
	return loopErr
}

// The metrics follow the EC2 API's reachability.
var _ eip.ReachabilityObserver = (*metrics.Metrics)(nil)

// testClock returns the daemon's clock: time.Now, shifted by
// EIPD_TEST_CLOCK_OFFSET (a Go duration) when set. It exists so end-to-end
// tests can run a member with a skewed clock; the shift keeps the monotonic
// reading, as the lease rules need. Never set it in production.
func testClock(getenv func(string) string, log hclog.Logger) (func() time.Time, error) {
	v := getenv("EIPD_TEST_CLOCK_OFFSET")
	if v == "" {
		return time.Now, nil
	}
	off, err := time.ParseDuration(v)
	if err != nil {
		return nil, fmt.Errorf("%w: EIPD_TEST_CLOCK_OFFSET=%q: want a Go duration such as 3s or -10m", cli.ErrUsage, v)
	}
	log.Warn("test clock offset in effect: this daemon's wall clock is shifted", "offset", off.String())
	return func() time.Time { return time.Now().Add(off) }, nil
}

// subscribedHealth is the health monitor with a change channel of its own
// (asghealth.Health): Changed() of the monitor itself is the leader loop's.
type subscribedHealth struct {
	*health.Monitor
	changed <-chan struct{}
}

func (s subscribedHealth) Changed() <-chan struct{} { return s.changed }

// holdsAnyEIP says whether this instance holds, or may still hold, an EIP:
// role holder, or unverified (on its ENI as far as it knows, no trusted
// coordinator confirms it now). --asg-health never has such a member
// replaced.
func holdsAnyEIP(s leader.Status) bool { return len(s.MayHold()) > 0 }

// othersServe says whether a trusted coordinator confirms an EIP on another
// member: the EIPs are served elsewhere, so replacing this one is worth it.
// Status drops the holders once the coordinator's word is no longer
// trusted, so a lost coordinator reads as "nobody serves".
func othersServe(s leader.Status) bool {
	for _, e := range s.EIPs {
		if e.Holder != "" && e.Holder != s.InstanceID {
			return true
		}
	}
	return false
}

// followHealth mirrors the monitor's status into eipd_health_up and
// eipd_ready (identity is known by the time this runs).
// changed is its own subscription (Changed() is the election loop's).
func followHealth(ctx context.Context, mon *health.Monitor, changed <-chan struct{}, m *metrics.Metrics) error {
	for {
		up := mon.Status() == health.Up
		m.SetHealthUp(up)
		m.SetReady(up)
		select {
		case <-ctx.Done():
			return nil
		case <-changed:
		}
	}
}

// progress is what feedSystemd watches; *leader.Loop satisfies it.
type progress interface {
	LastReconcile() time.Time
	Status() leader.Status
}

// feedSystemd sends READY=1 after the first reconcile, STATUS= on role
// changes, and WATCHDOG=1 only while the loop makes progress, so systemd
// restarts a wedged daemon.
func feedSystemd(ctx context.Context, n *notifier, loop progress, log hclog.Logger) error {
	if !n.Enabled() {
		return nil
	}
	period := time.Second
	if wd := n.WatchdogInterval(); wd > 0 {
		period = min(period, wd)
	}
	t := time.NewTicker(period)
	defer t.Stop()
	readySent, lastStatus := false, ""
	for {
		last := loop.LastReconcile()
		if !last.IsZero() {
			if !readySent {
				if err := n.Ready(); err != nil {
					log.Warn("cannot notify systemd", "error", err)
				}
				readySent = true
			}
			if s := roleSummary(loop.Status()); s != lastStatus {
				_ = n.Status(s)
				lastStatus = s
			}
			// A pass can take a few call timeouts; beyond the watchdog
			// period without one the loop is wedged: stop feeding.
			if wd := n.WatchdogInterval(); wd > 0 && time.Since(last) < 2*wd {
				_ = n.Watchdog()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func roleSummary(s leader.Status) string {
	held := s.Holding()
	if len(held) > 0 {
		return "holder of " + strings.Join(held, ", ") + " (health " + s.Health + ")"
	}
	if s.Draining != "" {
		return "draining (" + s.Draining + ")"
	}
	return fmt.Sprintf("standby for %d EIP(s) (health %s)", len(s.EIPs), s.Health)
}
