package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eipd/eipd/internal/cli"
	"github.com/eipd/eipd/internal/logging"
)

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaultsMatchDesign(t *testing.T) {
	c, err := Parse("run", []string{"--group", "web"}, envOf(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	// docs/design.md, Defaults.
	want := Config{
		Group: "web", HealthChecks: []string{"tcp://127.0.0.1:80"}, Listen: ":9380", Control: "unix:/run/eipd/eipd.sock",
		HealthInterval: time.Second, HealthFast: 200 * time.Millisecond, HealthTimeout: 500 * time.Millisecond, HealthRise: 2, HealthFall: 3,
		ProbeInterval: time.Second, ProbeFall: 3, RenewInterval: 3 * time.Second, LeaseDuration: 10 * time.Second,
		MaxClockSkew: time.Second, AddressPoll: 5 * time.Second, MemberPoll: 60 * time.Second, LifecyclePoll: 5 * time.Second,
		ASGHealthAfter: 5 * time.Minute, StopTimeout: 20 * time.Second, APIRate: 5, APIBurst: 10, LogLevel: "info", LogFormat: "text",
	}
	if fmt.Sprintf("%+v", *c) != fmt.Sprintf("%+v", want) {
		t.Errorf("defaults\n got %+v\nwant %+v", *c, want)
	}
}

func TestFlagOverEnvOverDefault(t *testing.T) {
	env := envOf(map[string]string{
		"EIPD_GROUP": "from-env", "EIPD_RENEW_INTERVAL": "2s", "EIPD_LEASE_DURATION": "9s",
		"EIPD_ALLOCATION_ID": "eipalloc-0123456789abcdef0, eipalloc-0123456789abcdef1",
		"EIPD_HEALTH_CHECK":  "tcp://127.0.0.1:80,http://127.0.0.1:8080/healthz", "EIPD_DRY_RUN": "true",
	})
	c, err := Parse("run", []string{"--renew-interval", "4s", "--allocation-id", "eipalloc-0123456789abcdef2"}, env, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if c.Group != "from-env" || c.RenewInterval != 4*time.Second || c.LeaseDuration != 9*time.Second || !c.DryRun {
		t.Errorf("precedence wrong: %+v", *c)
	}
	// A flag replaces the env list rather than appending to it.
	if !slices.Equal(c.AllocationIDs, []string{"eipalloc-0123456789abcdef2"}) {
		t.Errorf("allocation IDs %v", c.AllocationIDs)
	}
	if !slices.Equal(c.HealthChecks, []string{"tcp://127.0.0.1:80", "http://127.0.0.1:8080/healthz"}) {
		t.Errorf("health checks from env %v", c.HealthChecks)
	}
	c, err = Parse("run", []string{"--group", "g", "--allocation-id", "eipalloc-0123456789abcdef0", "--allocation-id", "eipalloc-0123456789abcdef1"}, envOf(nil), &bytes.Buffer{})
	if err != nil || len(c.AllocationIDs) != 2 {
		t.Errorf("repeatable flag: %v %v", c.AllocationIDs, err)
	}
}

func TestInvalidConfigListsEveryProblem(t *testing.T) {
	env := envOf(map[string]string{"EIPD_HEALTH_FALL": "three", "EIPD_MEMBER_POLL": "soon"})
	_, err := Parse("run", []string{
		"--allocation-id", "203.0.113.7", "--health-check", "ftp://x:1", "--listen", "127.0.0.1",
		"--control", "0.0.0.0:9381", "--renew-interval", "5s", "--lease-duration", "6s",
		"--health-timeout", "2s", "--log-level", "loud", "--log-format", "xml", "--api-rate", "0",
	}, env, &bytes.Buffer{})
	if !errors.Is(err, cli.ErrUsage) {
		t.Fatalf("want a usage error, got %v", err)
	}
	msg := err.Error()
	for _, want := range []string{
		"--group (EIPD_GROUP) is required", `EIPD_HEALTH_FALL="three": not an integer`, `EIPD_MEMBER_POLL="soon": not a duration`,
		`--allocation-id "203.0.113.7"`, "--health-check", `--listen "127.0.0.1"`, "--control \"0.0.0.0:9381\" must listen on loopback",
		"--lease-duration (6s) must be at least twice --renew-interval (5s)", "--health-timeout (2s) must not exceed",
		`--log-level "loud"`, `--log-format "xml"`, "--api-rate must be positive",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error does not mention %q:\n%s", want, msg)
		}
	}
	var stderr bytes.Buffer
	if code := cli.ExitCode(err, &stderr); code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
}

// A coordinator may act for lease - skew after a renewal began; renewals
// must come at least that often.
func TestRenewIntervalWithinTrust(t *testing.T) {
	_, err := Parse("run", []string{"--group", "g", "--renew-interval", "3s", "--lease-duration", "6s",
		"--max-clock-skew", "4s", "--address-poll", "1s"}, envOf(nil), &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "--renew-interval (3s) must not exceed --lease-duration minus --max-clock-skew (2s)") {
		t.Fatalf("want the renew interval refused, got %v", err)
	}
}

// TestAddressPollWithinTrust: the coordinator vouches for where each EIP
// is for lease − skew after a read, so it must read more often than that;
// the new poll flags replace --holder-poll and --standby-poll.
func TestAddressPollWithinTrust(t *testing.T) {
	for _, c := range []struct {
		args []string
		bad  string // "" valid
	}{
		{nil, ""}, // defaults: 5s < 10s − 1s
		{[]string{"--address-poll", "8999ms"}, ""},
		{[]string{"--address-poll", "9s"}, "--address-poll (9s) must be shorter than --lease-duration minus --max-clock-skew (9s)"},
		{[]string{"--address-poll", "30s"}, "--address-poll (30s) must be shorter"},
		// A shorter lease brings the default poll to the limit.
		{[]string{"--lease-duration", "6s"}, "--address-poll (5s) must be shorter than --lease-duration minus --max-clock-skew (5s)"},
		{[]string{"--lease-duration", "6s", "--address-poll", "4s"}, ""},
		{[]string{"--max-clock-skew", "5s"}, "--address-poll (5s) must be shorter than --lease-duration minus --max-clock-skew (5s)"},
		{[]string{"--address-poll", "0s"}, "--address-poll"},
		{[]string{"--member-poll", "-1s"}, "--member-poll"},
	} {
		args := append([]string{"--group", "g"}, c.args...)
		cfg, err := Parse("run", args, envOf(nil), &bytes.Buffer{})
		switch {
		case c.bad == "" && err != nil:
			t.Errorf("%v: %v", c.args, err)
		case c.bad != "" && (!errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), c.bad)):
			t.Errorf("%v: %v, want a usage error containing %q", c.args, err, c.bad)
		case c.bad == "" && c.args != nil && cfg.AddressPoll == 5*time.Second && cfg.LeaseDuration == 10*time.Second:
			t.Errorf("%v: flags not applied: %+v", c.args, *cfg)
		}
	}
	cfg, err := Parse("run", []string{"--group", "g"}, envOf(map[string]string{"EIPD_ADDRESS_POLL": "2s", "EIPD_MEMBER_POLL": "5m"}), &bytes.Buffer{})
	if err != nil || cfg.AddressPoll != 2*time.Second || cfg.MemberPoll != 5*time.Minute {
		t.Errorf("poll intervals from the environment: %+v %v", cfg, err)
	}
	for _, old := range []string{"--holder-poll", "--standby-poll"} {
		if _, err := Parse("run", []string{"--group", "g", old, "10s"}, envOf(nil), &bytes.Buffer{}); err == nil {
			t.Errorf("%s is accepted; it no longer exists", old)
		}
	}
}

func TestControlMustBeLocal(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:9381": true, "[::1]:9381": true, "localhost:9381": true, "unix:/run/eipd/control.sock": true,
		"0.0.0.0:9381": false, ":9381": false, "10.0.0.5:9381": false, "unix:relative.sock": false, "nonsense": false,
	} {
		if err := validateControl(addr); (err == nil) != ok {
			t.Errorf("validateControl(%q) = %v, want ok=%v", addr, err, ok)
		}
	}
}

// helpRow matches one flag of `eipd run -h`: "  --name (ENV, default "x")" then the usage line.
var helpRow = regexp.MustCompile(`(?m)^  --([a-z-]+) \((EIPD_[A-Z_]+), default "(.*)"\)\n      (.+)$`)

// TestREADMEFlagsTableMatchesHelp compares the README's flag table with
// what `eipd run -h` prints, row by row.
func TestREADMEFlagsTableMatchesHelp(t *testing.T) {
	var help bytes.Buffer
	_, _ = Parse("run", []string{"-h"}, envOf(nil), &help)
	var want []string
	for _, m := range helpRow.FindAllStringSubmatch(help.String(), -1) {
		def := m[3]
		if def == "" {
			def = "—"
		}
		want = append(want, fmt.Sprintf("| `--%s` | `%s` | %s | %s |", m[1], m[2], mdCode(def), m[4]))
	}
	if len(want) != len(runFlags) {
		t.Fatalf("parsed %d flags from -h, want %d:\n%s", len(want), len(runFlags), help.String())
	}
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	begin, end := strings.Index(section, "<!-- flags:begin -->"), strings.Index(section, "<!-- flags:end -->")
	if begin < 0 || end < begin {
		t.Fatal("README.md has no <!-- flags:begin --> … <!-- flags:end --> table")
	}
	var got []string
	for _, line := range strings.Split(section[begin:end], "\n") {
		if strings.HasPrefix(line, "| `--") {
			got = append(got, line)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("README flags table differs from `eipd run -h`; expected rows:\n%s", strings.Join(want, "\n"))
	}
}

func mdCode(s string) string {
	if s == "—" {
		return s
	}
	return "`" + s + "`"
}

func TestLifecycleHookFlag(t *testing.T) {
	c, err := Parse("run", []string{"--group", "g"}, envOf(map[string]string{"EIPD_LIFECYCLE_HOOK": "eipd-handoff"}), &bytes.Buffer{})
	if err != nil || c.LifecycleHook != "eipd-handoff" {
		t.Errorf("EIPD_LIFECYCLE_HOOK: %q %v", c.LifecycleHook, err)
	}
	for _, bad := range []string{"has space", "semi;colon", strings.Repeat("a", 256)} {
		_, err := Parse("run", []string{"--group", "g", "--lifecycle-hook", bad}, envOf(nil), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), "is not a lifecycle hook name") {
			t.Errorf("--lifecycle-hook %q: %v", bad, err)
		}
	}
}

// jsonLines decodes every line of b as one JSON object.
func jsonLines(t *testing.T, b []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("not one JSON object: %q: %v", line, err)
		}
		for _, k := range []string{"@level", "@message", "@timestamp", "@module"} {
			if _, ok := m[k]; !ok {
				t.Errorf("line lacks %s: %q", k, line)
			}
		}
		out = append(out, m)
	}
	return out
}

// TestStartLineIsStructured: the configuration is one field per setting.
func TestStartLineIsStructured(t *testing.T) {
	c, err := Parse("run", []string{"--group", "web", "--renew-interval", "2s"}, envOf(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	logging.New("info", "json", &buf).Info("starting", c.LogFields()...)
	m := jsonLines(t, buf.Bytes())[0]
	if m["group"] != "web" || m["renew_interval"] != "2s" || m["health_rise"] != float64(2) || m["dry_run"] != false {
		t.Errorf("start line: %v", m)
	}
	if hc, _ := m["health_check"].([]any); len(hc) != 1 || hc[0] != "tcp://127.0.0.1:80" {
		t.Errorf("health_check: %v", m["health_check"])
	}
	if len(m) != len(runFlags)+4 {
		t.Errorf("%d fields, want one per flag (%d) and the 4 fixed keys: %v", len(m), len(runFlags), m)
	}
}
