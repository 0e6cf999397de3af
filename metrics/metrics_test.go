package metrics

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
)

var update = flag.Bool("update", false, "rewrite testdata/metrics.golden from the registry")

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Label sets as package eip is expected to define them; the real lists are
// passed in by main, these only need to be representative.
var (
	testOps          = []string{"DescribeAddresses", "AssociateAddress", "DisassociateAddress", "DescribeInstances", "CreateTags"}
	testOutcomes     = []string{"success", "throttled", "unauthorized", "conflict", "not_found", "client_error", "server_error", "dry_run"}
	testIMDSOutcomes = []string{"success", "not_found", "error"}
	testAllocs       = []string{"eipalloc-0a", "eipalloc-0b"}
)

func newTest() *Metrics {
	return New(BuildInfo{Version: "v1.2.3", Revision: "abc1234"}, testAllocs, testOps, testOutcomes, testIMDSOutcomes, nil)
}

// families gathers m and indexes the eipd_ families by name.
func families(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func labelsOf(mt *dto.Metric) map[string]string {
	l := map[string]string{}
	for _, lp := range mt.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}

// value finds the sample of family name whose labels equal want and returns
// its counter/gauge value or histogram sample count.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, want map[string]string) (float64, bool) {
	t.Helper()
	mf, ok := fams[name]
	if !ok {
		return 0, false
	}
	for _, mt := range mf.GetMetric() {
		got := labelsOf(mt)
		if len(got) != len(want) {
			continue
		}
		match := true
		for k, v := range want {
			if got[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case mt.Counter != nil:
			return mt.GetCounter().GetValue(), true
		case mt.Gauge != nil:
			return mt.GetGauge().GetValue(), true
		case mt.Histogram != nil:
			return float64(mt.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// goldenText is one line per eipd family: name, type, label names, help.
// It touches no setter: every family has a series from the start (see
// TestEveryFamilyAtStart), so the golden file lists them all.
func goldenText(t *testing.T, m *Metrics) string {
	t.Helper()
	fams := families(t, m)
	names := make([]string, 0, len(fams))
	for n := range fams {
		if strings.HasPrefix(n, "eipd_") {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var b strings.Builder
	for _, n := range names {
		mf := fams[n]
		var labels []string
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			labels = append(labels, lp.GetName())
		}
		l := strings.Join(labels, ",")
		if l == "" {
			l = "-"
		}
		fmt.Fprintf(&b, "%s %s %s %s\n", n, strings.ToLower(mf.GetType().String()), l, mf.GetHelp())
	}
	return b.String()
}

func TestGolden(t *testing.T) {
	got := goldenText(t, newTest())
	path := filepath.Join("testdata", "metrics.golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test ./metrics/ -run TestGolden -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("metric names, types or help texts changed; if on purpose, run go test ./metrics/ -run TestGolden -update and update docs/metrics.md\n--- got\n%s--- want\n%s", got, want)
	}
}

// The golden file must cover what the issue asks for, whatever -update wrote.
func TestRequiredMetrics(t *testing.T) {
	want := map[string]string{
		"eipd_build_info":                       "gauge",
		"eipd_is_holder":                        "gauge",
		"eipd_health_up":                        "gauge",
		"eipd_health_check_duration_seconds":    "histogram",
		"eipd_is_coordinator":                   "gauge",
		"eipd_members":                          "gauge",
		"eipd_members_reachable":                "gauge",
		"eipd_metadata_disagreements_total":     "counter",
		"eipd_no_free_private_ip":               "gauge",
		"eipd_eips_forgotten_total":             "counter",
		"eipd_lease_age_seconds":                "gauge",
		"eipd_term":                             "gauge",
		"eipd_failovers_total":                  "counter",
		"eipd_failover_duration_seconds":        "histogram",
		"eipd_ec2_requests_total":               "counter",
		"eipd_ec2_request_duration_seconds":     "histogram",
		"eipd_imds_requests_total":              "counter",
		"eipd_lifecycle_notices_total":          "counter",
		"eipd_last_reconcile_timestamp_seconds": "gauge",
		"eipd_handoff_blocked":                  "gauge",
		"eipd_ready":                            "gauge",
	}
	golden := readGolden(t)
	for name, typ := range want {
		got, ok := golden[name]
		if !ok {
			t.Errorf("%s missing from metrics.golden", name)
		} else if got != typ {
			t.Errorf("%s is a %s, want %s", name, got, typ)
		}
	}
	// Group-wide and coordinator-only gauges carry no allocation_id; the
	// EIP-level ones do.
	labels := readGoldenLabels(t)
	for name, l := range map[string]string{
		"eipd_is_coordinator": "-", "eipd_members": "-", "eipd_members_reachable": "-", "eipd_lease_age_seconds": "-",
		"eipd_metadata_disagreements_total": "-", "eipd_is_holder": "allocation_id", "eipd_term": "allocation_id",
		"eipd_handoff_blocked": "allocation_id", "eipd_no_free_private_ip": "allocation_id",
	} {
		if labels[name] != l {
			t.Errorf("%s has labels %q, want %q", name, labels[name], l)
		}
	}
	if _, ok := golden["eipd_peer_probe_up"]; ok {
		t.Error("eipd_peer_probe_up is still exported: members no longer probe a holder per EIP")
	}
	fams := families(t, newTest())
	for _, prefix := range []string{"go_", "process_"} {
		found := false
		for n := range fams {
			found = found || strings.HasPrefix(n, prefix)
		}
		if !found {
			t.Errorf("no %s* metrics: Go/process collector missing", prefix)
		}
	}
	v, ok := value(t, fams, "eipd_build_info", map[string]string{"version": "v1.2.3", "revision": "abc1234", "goversion": runtime.Version()})
	if !ok || v != 1 {
		t.Errorf("eipd_build_info{version=v1.2.3,...} = %v (present %v), want 1", v, ok)
	}
}

func TestCountersInitialised(t *testing.T) {
	fams := families(t, newTest())
	check := func(name string, l map[string]string) {
		t.Helper()
		v, ok := value(t, fams, name, l)
		if !ok {
			t.Errorf("%s%v not initialised", name, l)
		} else if v != 0 {
			t.Errorf("%s%v = %v at start, want 0", name, l, v)
		}
	}
	for _, op := range testOps {
		check("eipd_ec2_request_duration_seconds", map[string]string{"operation": op})
		for _, out := range testOutcomes {
			check("eipd_ec2_requests_total", map[string]string{"operation": op, "outcome": out})
		}
	}
	for _, out := range testIMDSOutcomes {
		check("eipd_imds_requests_total", map[string]string{"outcome": out})
	}
	for _, k := range NoticeKinds {
		check("eipd_lifecycle_notices_total", map[string]string{"kind": k})
	}
	for _, r := range Reasons {
		check("eipd_failover_duration_seconds", map[string]string{"reason": r})
	}
	for _, o := range ASGHealthOutcomes {
		check("eipd_asg_unhealthy_reports_total", map[string]string{"outcome": o})
	}
	for _, a := range testAllocs {
		check("eipd_is_holder", map[string]string{"allocation_id": a})
		check("eipd_handoff_blocked", map[string]string{"allocation_id": a})
		check("eipd_term", map[string]string{"allocation_id": a})
		for _, r := range Reasons {
			check("eipd_failovers_total", map[string]string{"allocation_id": a, "reason": r})
		}
	}
	check("eipd_health_check_failures_total", map[string]string{})
	check("eipd_last_reconcile_timestamp_seconds", map[string]string{})
	check("eipd_eips_forgotten_total", map[string]string{})
	check("eipd_metadata_disagreements_total", map[string]string{})
	// Zero, not absent, on every member: sum by (group) of
	// eipd_is_coordinator must be able to read 0 (EIPDNoCoordinator).
	check("eipd_is_coordinator", map[string]string{})
	check("eipd_members", map[string]string{})
	check("eipd_members_reachable", map[string]string{})
	check("eipd_lease_age_seconds", map[string]string{})
	for _, a := range testAllocs {
		check("eipd_no_free_private_ip", map[string]string{"allocation_id": a})
	}
	// Fixed sets only: nothing but the known values at start.
	if n := len(fams["eipd_ec2_requests_total"].GetMetric()); n != len(testOps)*len(testOutcomes) {
		t.Errorf("eipd_ec2_requests_total has %d series at start, want %d", n, len(testOps)*len(testOutcomes))
	}
	if n := len(fams["eipd_failovers_total"].GetMetric()); n != len(testAllocs)*len(Reasons) {
		t.Errorf("eipd_failovers_total has %d series at start, want %d", n, len(testAllocs)*len(Reasons))
	}
}

func TestAWSReachable(t *testing.T) {
	m := newTest()
	fams := families(t, m)
	if v, ok := value(t, fams, "eipd_aws_reachable", map[string]string{}); !ok || v != 1 {
		t.Errorf("eipd_aws_reachable at start = %v (present %v), want 1: nothing failed yet", v, ok)
	}
	at := time.Unix(1_800_000_000, 0)
	m.SetAWSReachable(true, at)
	m.SetAWSReachable(false, at)
	fams = families(t, m)
	if v, _ := value(t, fams, "eipd_aws_reachable", map[string]string{}); v != 0 {
		t.Errorf("eipd_aws_reachable = %v after a call without an answer, want 0", v)
	}
	if v, _ := value(t, fams, "eipd_aws_last_answer_timestamp_seconds", map[string]string{}); v != 1_800_000_000 {
		t.Errorf("eipd_aws_last_answer_timestamp_seconds = %v, want the last answer's time", v)
	}
}

func TestASGUnhealthyReport(t *testing.T) {
	m := newTest()
	m.ASGUnhealthyReport("success")
	m.ASGUnhealthyReport("unauthorized")
	m.ASGUnhealthyReport("something new")
	fams := families(t, m)
	for out, want := range map[string]float64{"success": 1, "unauthorized": 1, "error": 0, Other: 1} {
		if v, _ := value(t, fams, "eipd_asg_unhealthy_reports_total", map[string]string{"outcome": out}); v != want {
			t.Errorf("eipd_asg_unhealthy_reports_total{outcome=%q} = %v, want %v", out, v, want)
		}
	}
}

func TestObservations(t *testing.T) {
	m := newTest()
	a := testAllocs[1]
	m.ObserveEC2("AssociateAddress", "success", 40*time.Millisecond)
	m.ObserveEC2("DescribeAddresses", OutcomeThrottled, time.Second)
	m.ObserveEC2("DescribeAddresses", OutcomeThrottled, time.Second)
	m.ObserveIMDS("error")
	m.ObserveHealthCheck(3*time.Millisecond, nil)
	m.ObserveHealthCheck(500*time.Millisecond, errors.New("connection refused"))
	m.SetHealthUp(true)
	m.SetReady(true)
	m.SetHolder(a, true)
	m.SetHandoffBlocked(a, true)
	m.SetNoFreePrivateIP(a, true)
	m.SetCoordinator(true)
	m.SetMembers(2, 3)
	m.MetadataDisagreement()
	m.MetadataDisagreement()
	m.SetTerm(a, 7, 3)
	m.SetLeaseAge(1500 * time.Millisecond)
	m.Failover(a, "takeover-stale", 2*time.Second)
	m.LifecycleNotice("spot-interruption")
	m.Reconciled(time.Unix(1700000000, 500_000_000))

	fams := families(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"eipd_ec2_requests_total", map[string]string{"operation": "AssociateAddress", "outcome": "success"}, 1},
		{"eipd_ec2_requests_total", map[string]string{"operation": "DescribeAddresses", "outcome": "throttled"}, 2},
		{"eipd_ec2_requests_total", map[string]string{"operation": "AssociateAddress", "outcome": "throttled"}, 0},
		{"eipd_ec2_request_duration_seconds", map[string]string{"operation": "DescribeAddresses"}, 2},
		{"eipd_imds_requests_total", map[string]string{"outcome": "error"}, 1},
		{"eipd_health_check_duration_seconds", map[string]string{}, 2},
		{"eipd_health_check_failures_total", map[string]string{}, 1},
		{"eipd_health_up", map[string]string{}, 1},
		{"eipd_ready", map[string]string{}, 1},
		{"eipd_is_holder", map[string]string{"allocation_id": a}, 1},
		{"eipd_is_holder", map[string]string{"allocation_id": testAllocs[0]}, 0},
		{"eipd_handoff_blocked", map[string]string{"allocation_id": a}, 1},
		{"eipd_no_free_private_ip", map[string]string{"allocation_id": a}, 1},
		{"eipd_no_free_private_ip", map[string]string{"allocation_id": testAllocs[0]}, 0},
		{"eipd_is_coordinator", map[string]string{}, 1},
		{"eipd_members", map[string]string{}, 3},
		{"eipd_members_reachable", map[string]string{}, 2},
		{"eipd_metadata_disagreements_total", map[string]string{}, 2},
		{"eipd_term", map[string]string{"allocation_id": a}, 7_000_003},
		{"eipd_term", map[string]string{"allocation_id": testAllocs[0]}, 0},
		{"eipd_lease_age_seconds", map[string]string{}, 1.5},
		{"eipd_failovers_total", map[string]string{"allocation_id": a, "reason": "takeover-stale"}, 1},
		{"eipd_failovers_total", map[string]string{"allocation_id": a, "reason": "handoff-unhealthy"}, 0},
		{"eipd_failover_duration_seconds", map[string]string{"reason": "takeover-stale"}, 1},
		{"eipd_lifecycle_notices_total", map[string]string{"kind": "spot-interruption"}, 1},
		{"eipd_last_reconcile_timestamp_seconds", map[string]string{}, 1700000000.5},
	} {
		got, ok := value(t, fams, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// Setting back to false must read 0, not vanish.
	m.SetHolder(a, false)
	m.SetHandoffBlocked(a, false)
	m.SetCoordinator(false)
	m.SetMembers(0, 0)
	fams = families(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
	}{
		{"eipd_is_holder", map[string]string{"allocation_id": a}},
		{"eipd_handoff_blocked", map[string]string{"allocation_id": a}},
		{"eipd_is_coordinator", map[string]string{}},
		{"eipd_members", map[string]string{}},
		{"eipd_members_reachable", map[string]string{}},
	} {
		if v, ok := value(t, fams, c.name, c.labels); !ok || v != 0 {
			t.Errorf("%s%v after setting it back = %v (present %v), want 0", c.name, c.labels, v, ok)
		}
	}
}

// TestTermOrder: eipd_term (epoch × 1e6 + seq) grows with every move, and
// every move of a later epoch reads above any of an earlier one.
func TestTermOrder(t *testing.T) {
	m := newTest()
	a := testAllocs[0]
	read := func() float64 {
		t.Helper()
		v, ok := value(t, families(t, m), "eipd_term", map[string]string{"allocation_id": a})
		if !ok {
			t.Fatal("eipd_term missing")
		}
		return v
	}
	prev := -1.0
	for _, term := range [][2]int64{{1, 0}, {1, 1}, {1, 999_999}, {2, 0}, {2, 1}, {9, 12}, {4_000_000, 3}} {
		m.SetTerm(a, term[0], term[1])
		v := read()
		if v <= prev {
			t.Errorf("term %d.%d reads %v, not above the previous %v", term[0], term[1], v, prev)
		}
		if want := float64(term[0])*1e6 + float64(term[1]); v != want {
			t.Errorf("term %d.%d reads %v, want %v", term[0], term[1], v, want)
		}
		prev = v
	}
}

// TestForgotten counts a forgotten EIP and drops every series of it, so no
// alert keeps firing about an EIP that no longer exists; it frees its
// place under MaxAllocations.
func TestForgotten(t *testing.T) {
	m := newTest()
	a := testAllocs[0]
	m.SetHolder(a, true)
	m.SetTerm(a, 2, 1)
	m.Failover(a, "handoff-manual", time.Second)
	m.Forgotten(a)
	m.Forgotten("eipalloc-never-seen")
	fams := families(t, m)
	if v, _ := value(t, fams, "eipd_eips_forgotten_total", map[string]string{}); v != 2 {
		t.Errorf("eipd_eips_forgotten_total = %v, want 2", v)
	}
	for name, mf := range fams {
		for _, mt := range mf.GetMetric() {
			if labelsOf(mt)["allocation_id"] == a {
				t.Errorf("%s still has a series for the forgotten %s", name, a)
			}
		}
	}
	// The other EIP keeps its series; the histogram by reason keeps the
	// move.
	if _, ok := value(t, fams, "eipd_is_holder", map[string]string{"allocation_id": testAllocs[1]}); !ok {
		t.Error("the other EIP lost its series")
	}
	if v, _ := value(t, fams, "eipd_failover_duration_seconds", map[string]string{"reason": "handoff-manual"}); v != 1 {
		t.Errorf("failover duration observations = %v, want 1", v)
	}
	// Its place is free again: MaxAllocations new IDs all get series.
	for i := range MaxAllocations - 1 {
		m.SetHolder(fmt.Sprintf("eipalloc-%03d", i), false)
	}
	if n := len(families(t, m)["eipd_is_holder"].GetMetric()); n != MaxAllocations {
		t.Errorf("eipd_is_holder has %d series, want %d", n, MaxAllocations)
	}
}

// TestEveryFamilyAtStart: every eipd family has a series before any
// setter runs, so an alert can tell 0 from absent and the golden file
// lists every family.
func TestEveryFamilyAtStart(t *testing.T) {
	fams := families(t, newTest())
	for name := range readGolden(t) {
		if mf, ok := fams[name]; !ok || len(mf.GetMetric()) == 0 {
			t.Errorf("%s has no series at start", name)
		}
	}
}

func TestUnknownLabelValues(t *testing.T) {
	m := newTest()
	// None of these may panic or create a series outside the fixed sets.
	m.ObserveEC2("DeleteEverything", "exploded: connection reset by 10.0.0.1", time.Millisecond)
	m.ObserveEC2("", "", 0)
	m.ObserveEC2("NotAnOp", OutcomeThrottled, time.Millisecond)
	m.ObserveIMDS("weird")
	m.LifecycleNotice("meteor")
	m.Failover(testAllocs[0], "because", time.Second)
	m.SetHolder("", true)
	m.SetTerm("", 1, 1)
	m.SetHandoffBlocked("", true)

	fams := families(t, m)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"eipd_ec2_requests_total", map[string]string{"operation": Other, "outcome": Other}, 2},
		{"eipd_ec2_requests_total", map[string]string{"operation": Other, "outcome": "throttled"}, 1},
		{"eipd_imds_requests_total", map[string]string{"outcome": Other}, 1},
		{"eipd_lifecycle_notices_total", map[string]string{"kind": Other}, 1},
		{"eipd_failovers_total", map[string]string{"allocation_id": testAllocs[0], "reason": Other}, 1},
	} {
		got, ok := value(t, fams, c.name, c.labels)
		if !ok || got != c.want {
			t.Errorf("%s%v = %v (present %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}
	for _, mt := range fams["eipd_is_holder"].GetMetric() {
		if labelsOf(mt)["allocation_id"] == "" {
			t.Errorf("eipd_is_holder got a series with an empty allocation_id")
		}
	}

	// Allocation IDs discovered after start get initialised series, up to a bound.
	m.SetHolder("eipalloc-late", true)
	fams = families(t, m)
	if v, ok := value(t, fams, "eipd_failovers_total", map[string]string{"allocation_id": "eipalloc-late", "reason": "handoff-manual"}); !ok || v != 0 {
		t.Errorf("late allocation: eipd_failovers_total{handoff-manual} = %v (present %v), want 0", v, ok)
	}
	for i := range MaxAllocations + 10 {
		m.SetHolder(fmt.Sprintf("eipalloc-%03d", i), false)
	}
	fams = families(t, m)
	if n := len(fams["eipd_is_holder"].GetMetric()); n != MaxAllocations {
		t.Errorf("eipd_is_holder has %d series after flooding allocation IDs, want the cap %d", n, MaxAllocations)
	}
}

// docs/metrics.md is what the README links: it must name every metric.
func TestDocsListEveryMetric(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "metrics.md"))
	if err != nil {
		t.Fatalf("read docs/metrics.md: %v", err)
	}
	for n := range readGolden(t) {
		if !strings.Contains(string(doc), "`"+n+"`") {
			t.Errorf("docs/metrics.md does not document `%s`", n)
		}
	}
}

// readGoldenLabels maps each metric name in testdata/metrics.golden to its
// label names ("-" for none).
func readGoldenLabels(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "metrics.golden"))
	if err != nil {
		t.Fatalf("read golden: %v", err)
	}
	out := map[string]string{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			t.Fatalf("metrics.golden: bad line %q", line)
		}
		out[f[0]] = f[2]
	}
	return out
}

// readGolden maps each metric name in testdata/metrics.golden to its type.
func readGolden(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "metrics.golden"))
	if err != nil {
		t.Fatalf("read golden: %v", err)
	}
	out := map[string]string{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			t.Fatalf("metrics.golden: bad line %q", line)
		}
		out[f[0]] = f[1]
	}
	return out
}
