package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/autoscaling"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/asghealth"
	"github.com/eipd/eipd/asghook"
	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
	"github.com/eipd/eipd/internal/awsenv"
	"github.com/eipd/eipd/leader"
	"github.com/eipd/eipd/metrics"
)

// callTimeout bounds every AWS call made by the daemon, so that one hung
// call cannot wedge the loop for longer than the watchdog allows.
const callTimeout = 5 * time.Second

// loadAWS builds the SDK config and the IMDSv2-only client from the
// standard AWS environment variables and the credential sources of an EC2
// instance or ECS task (internal/awsenv says which, and why not the SDK's
// whole default chain). The app ID puts "app/eipd-<version>" (the SDK turns
// / into -) in every request's User-Agent, so eipd's calls are recognisable
// in CloudTrail (userAgent field). The SDK's own log lines go to log.
//
// The AWS_* variables are read from the process environment, as the SDK
// does, not through run's getenv: a caller that passes a restricted getenv
// (tests do) must never fall back to the production endpoints.
func loadAWS(ctx context.Context, log hclog.Logger) (aws.Config, *imds.Client, error) {
	cfg, meta, err := awsenv.Load(ctx, os.Getenv, appID(), sdkLogger{log})
	if err != nil {
		return aws.Config{}, nil, fmt.Errorf("AWS configuration: %w", err)
	}
	return cfg, meta, nil
}

// appID is the SDK application ID: "eipd/" and the version.
func appID() string { return "eipd/" + version }

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

func cmdRun(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := parseRunConfig("run", args, getenv, stderr)
	if err != nil {
		format := getenv(envName("log-format"))
		if cfg != nil {
			format = cfg.LogFormat
		}
		if format != "json" || errors.Is(err, flag.ErrHelp) {
			return err
		}
		// Even a bad configuration is reported as JSON when JSON was asked
		// for: a log pipeline must not choke on the one line that matters.
		logFatal(newLogger("info", format, stderr), "invalid configuration", err)
		return loggedError{err}
	}
	log := newLogger(cfg.LogLevel, cfg.LogFormat, stderr)
	if err := runDaemon(ctx, cfg, getenv, log); err != nil {
		if cfg.LogFormat != "json" {
			return err
		}
		logFatal(log, "exiting on error", err)
		return loggedError{err}
	}
	return nil
}

// logFatal logs the error that ends the daemon; a configuration error
// lists its problems one per array element.
func logFatal(log hclog.Logger, msg string, err error) {
	var ce configError
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

// configFields is the effective configuration as log arguments, one per
// flag under the flag's name with _ for -.
func configFields(c *Config) []any {
	out := make([]any, 0, 2*len(runFlags))
	for _, f := range runFlags {
		var v any
		switch p := f.bind(c).(type) {
		case *string:
			v = *p
		case *[]string:
			v = append([]string{}, *p...)
		case *time.Duration:
			v = *p
		case *int:
			v = *p
		case *float64:
			v = *p
		case *bool:
			v = *p
		}
		out = append(out, strings.ReplaceAll(f.name, "-", "_"), v)
	}
	return out
}

// runDaemon is eipd run with a valid configuration.
func runDaemon(ctx context.Context, cfg *Config, getenv func(string) string, log hclog.Logger) error {
	log.Info("starting", append([]any{"version", version, "revision", revision}, configFields(cfg)...)...)
	tuneRuntime(os.Getenv, cfg.Pprof)

	awsCfg, imdsClient, err := loadAWS(ctx, log.Named("aws"))
	if err != nil {
		return err
	}
	m := metrics.New(metrics.BuildInfo{Version: version, Revision: revision, GoVersion: runtime.Version()},
		cfg.AllocationIDs, eip.Operations, eip.Outcomes, eip.IMDSOutcomes, nil)
	checks, err := health.ParseAll(cfg.HealthChecks)
	if err != nil {
		return usageError{err}
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
	ctrlLn, err := listenControl(cfg.Control)
	if err != nil {
		log.Error("control endpoint unavailable: eipd status and eipd handoff will not reach this daemon; the election runs without it",
			"control", cfg.Control, "error", err)
	}
	control := newControlServer(view, log.Named("control"))

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
		goOwned("control server", func(c context.Context) error { return control.Serve(c, ctrlLn) })
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
	if u, err := ec2Endpoint(ctx, awsCfg); err == nil {
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
		asg = autoscaling.NewFromConfig(awsCfg, func(o *autoscaling.Options) { o.BaseEndpoint = autoScalingEndpoint(os.Getenv) })
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
		return cloud.Members(ctx)
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

// ec2Endpoint is the endpoint an EC2 client built from awsCfg calls: the
// configured one (AWS_ENDPOINT_URL_EC2, AWS_ENDPOINT_URL), else the
// Region's, FIPS or dual-stack as configured.
func ec2Endpoint(ctx context.Context, awsCfg aws.Config) (*url.URL, error) {
	o := ec2.NewFromConfig(awsCfg).Options()
	ep, err := o.EndpointResolverV2.ResolveEndpoint(ctx, ec2.EndpointParameters{
		Region:       aws.String(o.Region),
		Endpoint:     o.BaseEndpoint,
		UseFIPS:      aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack: aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
	})
	if err != nil {
		return nil, fmt.Errorf("resolve the EC2 endpoint of region %q: %w", o.Region, err)
	}
	return &ep.URI, nil
}

// autoScalingEndpoint is the Auto Scaling endpoint the environment sets:
// AWS_ENDPOINT_URL_AUTO_SCALING, else AWS_ENDPOINT_URL, as the SDK resolves
// a service's configured endpoint; nil (the regional endpoint) otherwise.
// The EC2 endpoint of awsCfg.BaseEndpoint must not leak into this client.
func autoScalingEndpoint(getenv func(string) string) *string {
	if ignore, _ := strconv.ParseBool(getenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS")); ignore {
		return nil // awsenv.Load has refused a value that does not parse
	}
	for _, name := range []string{"AWS_ENDPOINT_URL_AUTO_SCALING", "AWS_ENDPOINT_URL"} {
		if v := getenv(name); v != "" {
			return aws.String(v)
		}
	}
	return nil
}

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
		return nil, fmt.Errorf("%w: EIPD_TEST_CLOCK_OFFSET=%q: want a Go duration such as 3s or -10m", errUsage, v)
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
