// Package config is the configuration of `eipd run` (and `eipd preflight`,
// which takes the same flags): the flag | env | default table, parsing
// (flag > env > default) and validation that reports every problem at once.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/eipd/eipd/health"
	"github.com/eipd/eipd/internal/cli"
)

// Config is the configuration of `eipd run`. Every field has a flag and an
// EIPD_* environment variable (flag > env > default).
type Config struct {
	Group          string
	AllocationIDs  []string
	HealthChecks   []string
	Listen         string
	Control        string
	HealthInterval time.Duration
	HealthFast     time.Duration
	HealthTimeout  time.Duration
	HealthRise     int
	HealthFall     int
	ProbeInterval  time.Duration
	ProbeFall      int
	RenewInterval  time.Duration
	LeaseDuration  time.Duration
	MaxClockSkew   time.Duration
	AddressPoll    time.Duration
	MemberPoll     time.Duration
	LifecyclePoll  time.Duration
	LifecycleHook  string
	ASGHealth      bool
	ASGHealthAfter time.Duration
	StopTimeout    time.Duration
	APIRate        float64
	APIBurst       int
	LogLevel       string
	LogFormat      string
	DryRun         bool
	Pprof          bool
}

// flagSpec is one row of the flag | env | default | description table; the
// README's table is checked against these rows.
type flagSpec struct {
	name  string
	def   string
	usage string
	bind  func(c *Config) any
}

// EnvName is the environment variable of a flag: EIPD_ + upper case, - → _.
func EnvName(flagName string) string {
	return "EIPD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

var runFlags = []flagSpec{
	{"group", "", "cluster name: the eipd:group tag on the instances and EIPs (required)", func(c *Config) any { return &c.Group }},
	{"allocation-id", "", "EIP allocation ID to manage; repeatable, env comma-separated (default: every EIP tagged eipd:group=<group>)", func(c *Config) any { return &c.AllocationIDs }},
	{"health-check", "tcp://127.0.0.1:80", "health check URL (tcp://, http(s)://, haproxy://); repeatable, env comma-separated; all must pass", func(c *Config) any { return &c.HealthChecks }},
	{"listen", ":9380", "status HTTP address (/metrics, /healthz, /readyz, /status); peers probe its port on the private IP", func(c *Config) any { return &c.Listen }},
	{"control", "unix:/run/eipd/eipd.sock", "control endpoint for eipd status and eipd handoff: unix:/path (a socket of mode 0600) or, opt-in, a loopback host:port such as 127.0.0.1:9381", func(c *Config) any { return &c.Control }},
	{"health-interval", "1s", "how often the own health checks run", func(c *Config) any { return &c.HealthInterval }},
	{"health-fast-interval", "200ms", "how often they run after a failure, until the health is down or a check passes (at most --health-interval)", func(c *Config) any { return &c.HealthFast }},
	{"health-timeout", "500ms", "timeout of one health check round (and of a peer probe)", func(c *Config) any { return &c.HealthTimeout }},
	{"health-rise", "2", "consecutive passes before the own health is up", func(c *Config) any { return &c.HealthRise }},
	{"health-fall", "3", "consecutive failures before the own health is down", func(c *Config) any { return &c.HealthFall }},
	{"probe-interval", "1s", "how often the coordinator probes every member, and every member the coordinator, over the network", func(c *Config) any { return &c.ProbeInterval }},
	{"probe-fall", "3", "consecutive failed probes before a member counts as unreachable", func(c *Config) any { return &c.ProbeFall }},
	{"renew-interval", "3s", "how often the coordinator renews the group lease (one CreateTags on every EIP)", func(c *Config) any { return &c.RenewInterval }},
	{"lease-duration", "10s", "how long the group lease protects the coordinator without renewal", func(c *Config) any { return &c.LeaseDuration }},
	{"max-clock-skew", "1s", "clock difference allowed between instances when judging the lease", func(c *Config) any { return &c.MaxClockSkew }},
	{"address-poll", "5s", "how often the coordinator reads the EIPs from the API", func(c *Config) any { return &c.AddressPoll }},
	{"member-poll", "60s", "how often the coordinator lists the group's instances (and at once when a member fails or an unknown one speaks up)", func(c *Config) any { return &c.MemberPoll }},
	{"lifecycle-poll", "5s", "how often instance metadata is polled for spot, ASG and maintenance notices", func(c *Config) any { return &c.LifecyclePoll }},
	{"lifecycle-hook", "", "Auto Scaling termination lifecycle hook to complete (CONTINUE) once this instance, being terminated, holds no EIP; empty: off", func(c *Config) any { return &c.LifecycleHook }},
	{"asg-health", "false", "mark this instance Unhealthy in its Auto Scaling group (autoscaling:SetInstanceHealth), so that the group replaces it, once its own health check has been down for --asg-health-after while it holds no EIP and another member serves", func(c *Config) any { return &c.ASGHealth }},
	{"asg-health-after", "5m", "how long the own health check must stay down before --asg-health marks this instance Unhealthy", func(c *Config) any { return &c.ASGHealthAfter }},
	{"stop-timeout", "20s", "on SIGTERM, how long to try handing held EIPs to a ready member before exiting", func(c *Config) any { return &c.StopTimeout }},
	{"api-rate", "5", "client-side budget for EC2 calls, calls per second", func(c *Config) any { return &c.APIRate }},
	{"api-burst", "10", "client-side burst of EC2 calls", func(c *Config) any { return &c.APIBurst }},
	{"log-level", "info", "trace, debug, info, warn or error", func(c *Config) any { return &c.LogLevel }},
	{"log-format", "text", "text or json", func(c *Config) any { return &c.LogFormat }},
	{"dry-run", "false", "decide and log, but make no change: mutating calls are sent with DryRun=true", func(c *Config) any { return &c.DryRun }},
	{"pprof", "false", "serve /debug/pprof/ on the status listener", func(c *Config) any { return &c.Pprof }},
}

// listValue is a repeatable flag; the first use on the command line
// replaces the env/default value instead of appending to it.
type listValue struct {
	dst *[]string
	set bool
}

func (l *listValue) String() string {
	if l.dst == nil {
		return ""
	}
	return strings.Join(*l.dst, ",")
}

func (l *listValue) Set(v string) error {
	if !l.set {
		*l.dst, l.set = nil, true
	}
	*l.dst = append(*l.dst, splitList(v)...)
	return nil
}

// splitList splits a list given in one value: commas or white space.
func splitList(v string) []string {
	return strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
}

// Parse parses flags over env over defaults. Bad env values are
// reported with the rest by Validate's caller.
// cmd is the subcommand (run, preflight): both take the daemon's flags.
func Parse(cmd string, args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	c := &Config{}
	fs := flag.NewFlagSet("eipd "+cmd, flag.ContinueOnError)
	var problems []error
	for _, f := range runFlags {
		raw, fromEnv := f.def, false
		if v := getenv(EnvName(f.name)); v != "" {
			raw, fromEnv = v, true
		}
		if err := setDefault(fs, f, c, raw); err != nil {
			if fromEnv {
				problems = append(problems, fmt.Errorf("%s=%q: %v", EnvName(f.name), raw, err))
			} else {
				problems = append(problems, fmt.Errorf("default of --%s: %v", f.name, err))
			}
			_ = setDefault(fs, f, c, f.def)
		}
	}
	err := cli.ParseFlags(fs, args, stderr, func(w io.Writer) {
		fmt.Fprintf(w, "Usage: eipd %s --group NAME [flags]\n\nEach flag can also be set with its environment variable (flag > env > default).\n\n", cmd)
		for _, f := range runFlags {
			fmt.Fprintf(w, "  --%s (%s, default %q)\n      %s\n", f.name, EnvName(f.name), f.def, f.usage)
		}
	})
	if err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		problems = append(problems, fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	if all := append(problems, c.problems()...); len(all) > 0 {
		return c, cli.Usage(Error(all))
	}
	return c, nil
}

// setDefault registers flag f on fs with the default raw.
func setDefault(fs *flag.FlagSet, f flagSpec, c *Config, raw string) error {
	if fs.Lookup(f.name) != nil {
		// Re-registering after a bad env value: set the value only.
		return fs.Set(f.name, raw)
	}
	switch p := f.bind(c).(type) {
	case *string:
		fs.StringVar(p, f.name, raw, f.usage)
	case *[]string:
		*p = splitList(raw)
		fs.Var(&listValue{dst: p}, f.name, f.usage)
	case *time.Duration:
		fs.Var((*durationValue)(p), f.name, f.usage)
		return fs.Set(f.name, raw)
	case *int:
		n, err := strconv.Atoi(raw)
		fs.IntVar(p, f.name, n, f.usage)
		if err != nil {
			return fmt.Errorf("not an integer")
		}
	case *float64:
		n, err := strconv.ParseFloat(raw, 64)
		fs.Float64Var(p, f.name, n, f.usage)
		if err != nil {
			return fmt.Errorf("not a number")
		}
	case *bool:
		b, err := strconv.ParseBool(raw)
		fs.BoolVar(p, f.name, b, f.usage)
		if err != nil {
			return fmt.Errorf("not a boolean (true or false)")
		}
	}
	return nil
}

// errNotDuration is the one message for a duration that does not parse.
var errNotDuration = errors.New("not a duration (use e.g. 500ms, 3s, 1m)")

// durationValue is a time.Duration flag whose parse error says what a
// duration looks like (the flag package's says only "parse error").
type durationValue time.Duration

func (d *durationValue) String() string { return (*time.Duration)(d).String() }

func (d *durationValue) Set(s string) error {
	v, err := time.ParseDuration(s)
	if err != nil {
		return errNotDuration
	}
	*d = durationValue(v)
	return nil
}

// Validate returns every problem at once.
func (c *Config) Validate() error {
	if errs := c.problems(); len(errs) > 0 {
		return cli.Usage(Error(errs))
	}
	return nil
}

// problems lists what is wrong with c, empty when nothing is.
func (c *Config) problems() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch {
	case c.Group == "":
		bad("--group (EIPD_GROUP) is required: the value of the eipd:group tag on this cluster's instances and EIPs")
	case !validTagValue(c.Group):
		bad("--group %q is not a valid EC2 tag value (letters, digits, spaces and + - = . _ : / @, at most 256)", c.Group)
	}
	for _, id := range c.AllocationIDs {
		if !validAllocationID(id) {
			bad("--allocation-id %q is not an allocation ID (eipalloc- followed by 8 or 17 hex digits; not a public IP)", id)
		}
	}
	if len(c.HealthChecks) == 0 {
		bad("--health-check: at least one check is needed, e.g. tcp://127.0.0.1:80")
	} else if _, err := health.ParseAll(c.HealthChecks); err != nil {
		errs = append(errs, fmt.Errorf("--health-check: %w", err))
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || port == "" || port == "0" {
		bad("--listen %q must be host:port with a fixed port (peers probe that port), e.g. :9380", c.Listen)
	}
	if err := validateControl(c.Control); err != nil {
		errs = append(errs, err)
	}
	if c.LifecycleHook != "" && !validHookName(c.LifecycleHook) {
		bad("--lifecycle-hook %q is not a lifecycle hook name (1 to 255 of A-Z a-z 0-9 - _ /)", c.LifecycleHook)
	}
	positive := []struct {
		name string
		d    time.Duration
	}{
		{"health-interval", c.HealthInterval}, {"health-fast-interval", c.HealthFast}, {"health-timeout", c.HealthTimeout}, {"probe-interval", c.ProbeInterval},
		{"renew-interval", c.RenewInterval}, {"lease-duration", c.LeaseDuration}, {"address-poll", c.AddressPoll},
		{"member-poll", c.MemberPoll}, {"lifecycle-poll", c.LifecyclePoll}, {"stop-timeout", c.StopTimeout},
		{"asg-health-after", c.ASGHealthAfter},
	}
	for _, p := range positive {
		if p.d <= 0 {
			bad("--%s must be positive, got %s", p.name, p.d)
		}
	}
	if c.MaxClockSkew < 0 {
		bad("--max-clock-skew must not be negative, got %s", c.MaxClockSkew)
	}
	if c.HealthTimeout > 0 && c.HealthInterval > 0 && c.HealthTimeout > c.HealthInterval {
		bad("--health-timeout (%s) must not exceed --health-interval (%s)", c.HealthTimeout, c.HealthInterval)
	}
	if c.RenewInterval > 0 && c.LeaseDuration > 0 && c.LeaseDuration < 2*c.RenewInterval {
		bad("--lease-duration (%s) must be at least twice --renew-interval (%s), or one late renewal loses the lease", c.LeaseDuration, c.RenewInterval)
	}
	if c.RenewInterval > 0 && c.LeaseDuration > 0 && c.RenewInterval > c.LeaseDuration-c.MaxClockSkew {
		bad("--renew-interval (%s) must not exceed --lease-duration minus --max-clock-skew (%s): a coordinator may act only that long after a renewal began",
			c.RenewInterval, c.LeaseDuration-c.MaxClockSkew)
	}
	if c.AddressPoll > 0 && c.LeaseDuration > 0 && c.AddressPoll >= c.LeaseDuration-c.MaxClockSkew {
		bad("--address-poll (%s) must be shorter than --lease-duration minus --max-clock-skew (%s): the coordinator vouches for where each EIP is only that long after a read",
			c.AddressPoll, c.LeaseDuration-c.MaxClockSkew)
	}
	for _, n := range []struct {
		name string
		v    int
	}{{"health-rise", c.HealthRise}, {"health-fall", c.HealthFall}, {"probe-fall", c.ProbeFall}, {"api-burst", c.APIBurst}} {
		if n.v < 1 {
			bad("--%s must be at least 1, got %d", n.name, n.v)
		}
	}
	if c.APIRate <= 0 {
		bad("--api-rate must be positive, got %g", c.APIRate)
	}
	switch strings.ToLower(c.LogLevel) {
	case "trace", "debug", "info", "warn", "error":
	default:
		bad("--log-level %q: use trace, debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("--log-format %q: use text or json", c.LogFormat)
	}
	return errs
}

// validateControl accepts only loopback TCP or a unix socket: the control
// endpoint moves EIPs and must not be reachable from the network.
func validateControl(addr string) error {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if !strings.HasPrefix(path, "/") {
			return fmt.Errorf("--control %q: a unix socket needs an absolute path, e.g. unix:/run/eipd/eipd.sock", addr)
		}
		return nil
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil || port == "" {
		return fmt.Errorf("--control %q must be unix:/path (e.g. unix:/run/eipd/eipd.sock) or a loopback host:port (e.g. 127.0.0.1:9381)", addr)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("--control %q must listen on loopback (127.0.0.1, ::1 or localhost) or a unix socket: it can move EIPs", addr)
	}
	return nil
}

// Error lists every configuration problem, one per line, so the
// operator sees them all; its elements give them one by one (preflight).
type Error []error

func (e Error) Error() string {
	msgs := make([]string, len(e))
	for i, p := range e {
		msgs[i] = p.Error()
	}
	return "invalid configuration:\n  " + strings.Join(msgs, "\n  ")
}

func (e Error) Unwrap() []error { return e }

// EnvOr is the value of a run flag's EIPD_* variable, else its default:
// the client commands find the daemon the way it was configured.
func EnvOr(getenv func(string) string, flagName string) string {
	if v := getenv(EnvName(flagName)); v != "" {
		return v
	}
	for _, f := range runFlags {
		if f.name == flagName {
			return f.def
		}
	}
	return ""
}

// LogFields is the effective configuration as log arguments, one per
// flag under the flag's name with _ for -.
func (c *Config) LogFields() []any {
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
