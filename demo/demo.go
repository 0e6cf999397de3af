// Package demo runs `eipd demo`: a whole eipd group on this machine against
// the EC2 emulator (package ec2sim, in-process), with a health target per
// instance, one eipd daemon per instance as a child process, and a client
// of the EIP. It injects failures on a timeline, shows the group live,
// checks the safety invariants on every sample, and ends with a summary
// taken from the emulator's history.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/ec2sim"
	"github.com/eipd/eipd/groupview"
	"github.com/eipd/eipd/internal/harness"
)

// Limits of the options.
const (
	MinInstances = 3 // a planned handoff needs a ready target besides the spot-interrupted instance
	MaxInstances = 9
	// MinDuration is the shortest timeline whose phases still fit the
	// daemon's default timings: a spot notice alone may wait out the 5 s
	// lifecycle poll, a takeover the failed probes of the holder, and a
	// recovered proxy the health rise before the next fault needs it.
	MinDuration = 40 * time.Second
)

// The group as the emulator builds it.
const (
	group   = "demo"
	region  = "us-east-1"
	firstIP = "127.0.0.11"
	// leaseDuration is passed to every daemon, and is the limit of the
	// "never dangling" invariant.
	leaseDuration = 10 * time.Second
)

// Options configure a demo.
type Options struct {
	Exe       string        // the eipd binary: the daemons and `eipd handoff` are run from it
	Instances int           // MinInstances..MaxInstances
	Duration  time.Duration // the timeline after the election; at least MinDuration
	HAProxy   bool          // real HAProxy as the health target instead of the built-in server
	KeepLogs  string        // directory for the logs, kept after the demo; "" = a temporary one, removed
	Live      bool          // stdout is a terminal: redraw the view in place
	Color     bool          // with Live: ANSI colours
	Out       io.Writer
}

// Validate returns every problem with the options at once.
func (o Options) Validate() error {
	var errs []error
	if o.Instances < MinInstances || o.Instances > MaxInstances {
		errs = append(errs, fmt.Errorf("--instances %d: want %d to %d (the timeline needs a ready target for the planned handoff besides the spot-interrupted instance)",
			o.Instances, MinInstances, MaxInstances))
	}
	if o.Duration < MinDuration {
		errs = append(errs, fmt.Errorf("--duration %s is too short: the timeline needs at least %s for each failure to be seen and answered with the daemon's default timings (a spot notice alone may wait out the 5s lifecycle poll)",
			o.Duration, MinDuration))
	}
	if o.Exe == "" {
		errs = append(errs, errors.New("the eipd executable is unknown"))
	}
	return errors.Join(errs...)
}

// ErrInvariant is returned (wrapped) when an invariant did not hold.
var ErrInvariant = errors.New("invariant violated")

// ErrInterrupted is returned when the demo was stopped before its end.
var ErrInterrupted = errors.New("interrupted")

// demo is one run.
type demo struct {
	o       Options
	out     *output
	dir     string // temporary: control sockets, config files
	logDir  string
	sim     *ec2sim.Sim
	info    ec2sim.Info
	alloc   string
	eip     ec2sim.EIPInfo
	nodes   []*node
	sPort   int // status port, the same on every instance (peers probe it)
	tPort   int // target port: the proxies, where the EIP forwards
	client  *client
	obs     *observer
	haproxy string
	started time.Time

	mu       sync.Mutex
	phase    int // index into phases; -1 during start-up
	phaseAt  []time.Time
	phaseEnd time.Time // planned end of the current phase
	problems []string  // what went wrong with the timeline itself
}

// Run runs the demo until its timeline ends or ctx is cancelled (Ctrl-C),
// and stops every process and listener it started before it returns. It
// returns nil when every invariant held.
func Run(ctx context.Context, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	d := &demo{o: o, out: &output{&groupview.Display{W: o.Out, Live: o.Live, Color: o.Color}}, phase: -1}
	if o.HAProxy {
		bin, err := harness.FindHAProxy()
		if err != nil {
			return fmt.Errorf("--haproxy: %w, or run without --haproxy to use the built-in stand-in", err)
		}
		d.haproxy = bin
	}
	ips := harness.InstanceIPs(firstIP, o.Instances)
	if err := checkLoopback(ips); err != nil {
		return err
	}
	var err error
	if d.dir, err = os.MkdirTemp("", "eipd-demo-"); err != nil {
		return fmt.Errorf("temporary directory: %w", err)
	}
	defer os.RemoveAll(d.dir)
	d.logDir = d.dir
	if o.KeepLogs != "" {
		if err := os.MkdirAll(o.KeepLogs, 0o755); err != nil {
			return fmt.Errorf("--keep-logs: %w", err)
		}
		d.logDir = o.KeepLogs
	}

	var stops []func()
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			stops[i]()
		}
		d.out.Close()
	}()
	if err := d.start(ctx, ips, &stops); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("%w during start-up", ErrInterrupted)
		}
		return err
	}

	// Observers and the client live until the timeline ends.
	wctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	stopWatching := func() {
		cancel()
		wg.Wait()
	}
	stops = append(stops, stopWatching)
	d.obs = newObserver(d.sim, d.alloc, d.nodes, d.sPort)
	d.client = newClient(d.eip.ForwardAddr)
	wg.Add(2)
	go func() { defer wg.Done(); d.obs.watchTruth(wctx) }()
	go func() { defer wg.Done(); d.obs.watchDaemons(wctx, d.show) }()
	startClient := func() {
		wg.Add(1)
		go func() { defer wg.Done(); d.client.run(wctx) }()
	}

	terr := d.timeline(ctx, startClient)
	stopWatching()
	d.out.Close()
	if errors.Is(terr, context.Canceled) || ctx.Err() != nil {
		d.out.printf("\ninterrupted: stopping every process the demo started\n")
		if len(d.phaseStarts()) > 0 {
			d.summary(true)
		}
		return fmt.Errorf("%w before the timeline ended", ErrInterrupted)
	}
	if terr != nil {
		d.problem(terr.Error())
	}
	return d.summary(false)
}

// start brings up the emulator, the proxies and the daemons; each step
// pushes its undo onto stops.
func (d *demo) start(ctx context.Context, ips []string, stops *[]func()) error {
	o := d.o
	d.started = time.Now()
	port, lns, err := harness.ReservePort(ips)
	if err != nil {
		return fmt.Errorf("target port: %w", err)
	}
	d.tPort = port
	if o.HAProxy {
		harness.CloseAll(lns) // HAProxy binds them itself
		lns = nil
	}
	sPort, sLns, err := harness.ReservePort(ips)
	if err != nil {
		harness.CloseAll(lns)
		return fmt.Errorf("status port: %w", err)
	}
	harness.CloseAll(sLns) // each daemon binds its own
	d.sPort = sPort

	simLog, err := os.Create(filepath.Join(d.logDir, "ec2sim.log"))
	if err != nil {
		harness.CloseAll(lns)
		return fmt.Errorf("emulator log: %w", err)
	}
	*stops = append(*stops, func() { simLog.Close() })
	sim, err := ec2sim.Start(context.Background(), ec2sim.Options{
		Instances: o.Instances, EIPs: 1, Group: group, Region: region, TargetPort: port, FirstIP: firstIP,
		Logger: hclog.New(&hclog.LoggerOptions{Name: "ec2sim", Output: simLog, Level: hclog.Info, TimeFormat: "2006-01-02T15:04:05.000Z07:00"}),
	})
	if err != nil {
		harness.CloseAll(lns)
		return fmt.Errorf("start the EC2 emulator: %w", err)
	}
	d.sim = sim
	*stops = append(*stops, func() {
		d.saveHistory()
		_ = sim.Close()
	})
	d.info = sim.Info()
	d.eip = d.info.EIPs[0]
	d.alloc = d.eip.AllocationID
	for i, in := range d.info.Instances {
		n := &node{idx: i, inst: in, control: "unix:" + filepath.Join(d.dir, fmt.Sprintf("control-%d.sock", i))}
		if lns != nil {
			wp := harness.NewWebProxy(lns[i], in.InstanceID)
			n.proxy = wp
			*stops = append(*stops, func() { _ = wp.Close() })
		}
		d.nodes = append(d.nodes, n)
	}

	where := "removed at the end; keep them with --keep-logs DIR"
	if o.KeepLogs != "" {
		where = "kept"
	}
	d.out.event("eipd demo: %d instances, 1 EIP, group %q, timeline %s; logs in %s (%s)", o.Instances, group, o.Duration, d.logDir, where)
	d.out.event("emulator: EC2 API %s; EIP %s (%s) reaches the holder through %s", d.info.EC2Endpoint, d.eip.PublicIP, d.alloc, d.eip.ForwardAddr)
	for _, n := range d.nodes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if o.HAProxy {
			cfg := harness.HAProxyConfig{IP: n.inst.PrivateIP, Port: port, CheckInterval: 200 * time.Millisecond}
			hp, err := harness.NewHAProxy(d.haproxy, d.logDir, fmt.Sprintf("haproxy-%d", n.idx), cfg, n.id(), harness.Env(d.dir))
			if err != nil {
				return err
			}
			n.proxy = hp
			*stops = append(*stops, func() { _ = hp.Close() })
		}
		d.out.event("%s (%s, %s): proxy %s", n.id(), n.inst.AZ, n.inst.PrivateIP, n.proxy.Describe())
	}
	for _, n := range d.nodes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		listen := net.JoinHostPort(n.inst.PrivateIP, strconv.Itoa(sPort))
		args := []string{"run", "--group", group, "--health-check", "http://" + net.JoinHostPort(n.inst.PrivateIP, strconv.Itoa(port)) + "/healthz",
			"--listen", listen, "--control", n.control, "--lease-duration", leaseDuration.String()}
		n.logPath = filepath.Join(d.logDir, fmt.Sprintf("eipd-%s.log", n.id()))
		c, err := harness.Start("eipd of "+n.id(), n.logPath, d.logDir, harness.DaemonEnv(d.dir, d.info.EC2Endpoint, n.inst.IMDSEndpoint, region), o.Exe, args...)
		if err != nil {
			return err
		}
		n.daemon = c
		*stops = append(*stops, func() { _ = c.KillWait(10 * time.Second) })
		d.out.event("%s: eipd pid %d, status http://%s/status, control %s, log %s", n.id(), c.Pid(), listen, n.control, n.logPath)
	}
	d.out.event("watch it from another terminal: %s", d.watchHint())
	return nil
}

// watchHint is the `eipd status --watch` command line that shows this
// group as an operator would see a real one.
func (d *demo) watchHint() string {
	return fmt.Sprintf("AWS_ENDPOINT_URL_EC2=%s AWS_REGION=%s AWS_ACCESS_KEY_ID=demo AWS_SECRET_ACCESS_KEY=demo %s status --watch --group %s --status-port %d",
		d.info.EC2Endpoint, region, d.o.Exe, group, d.sPort)
}

// saveHistory writes the emulator's association history and API counts
// next to the logs.
func (d *demo) saveHistory() {
	if d.o.KeepLogs == "" || d.sim == nil {
		return
	}
	_ = writeJSON(filepath.Join(d.logDir, "ec2sim-events.json"), d.sim.Events())
	_ = writeJSON(filepath.Join(d.logDir, "ec2sim-stats.json"), d.sim.Stats())
}

// show draws the group after each sample of the daemons.
func (d *demo) show() {
	v := d.obs.view()
	v.Title = fmt.Sprintf("eipd demo · group %s · %d instances", group, d.o.Instances)
	v.Notes = append(v.Notes, d.phaseLine(time.Now()))
	if d.o.Live {
		v.Notes = append(v.Notes, "watch it from another terminal: "+d.watchHint())
	}
	if d.client != nil && d.phaseIndex() >= 0 {
		v.Client = d.client.view(time.Now())
	}
	d.out.Show(v, time.Now())
}

func (d *demo) problem(s string) {
	d.mu.Lock()
	d.problems = append(d.problems, s)
	d.mu.Unlock()
	d.out.event("PROBLEM: %s", s)
}

// output is the display, with the demo's events stamped now.
type output struct{ *groupview.Display }

func (o *output) event(format string, args ...any) { o.Event(time.Now(), format, args...) }

func (o *output) printf(format string, args ...any) { o.Printf(format, args...) }

func nodeIDs(ns []*node) string {
	var ids []string
	for _, n := range ns {
		ids = append(ids, n.id())
	}
	return strings.Join(ids, ", ")
}
