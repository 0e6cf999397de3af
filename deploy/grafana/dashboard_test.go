package grafana_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/eipd/eipd/internal/golden"
)

type target struct {
	RefID      string          `json:"refId"`
	Expr       string          `json:"expr"`
	Datasource json.RawMessage `json:"datasource"`
}

type panel struct {
	ID         int                       `json:"id"`
	Type       string                    `json:"type"`
	Title      string                    `json:"title"`
	Datasource json.RawMessage           `json:"datasource"`
	GridPos    *struct{ H, W, X, Y int } `json:"gridPos"`
	Targets    []target                  `json:"targets"`
	Panels     []panel                   `json:"panels"`
}

type dashboard struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Query      json.RawMessage `json:"query"`
			Datasource json.RawMessage `json:"datasource"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name string `json:"name"`
			Expr string `json:"expr"`
		} `json:"list"`
	} `json:"annotations"`
}

func load(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile("eipd.json")
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("eipd.json does not parse: %v", err)
	}
	return d
}

// flatten returns every panel that is not a row, including those inside
// collapsed rows.
func flatten(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		if p.Type == "row" {
			out = append(out, flatten(p.Panels)...)
			continue
		}
		out = append(out, p)
	}
	return out
}

const dsRef = `${datasource}`

func dsUID(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var ds struct {
		Type string `json:"type"`
		UID  string `json:"uid"`
	}
	if len(raw) == 0 {
		return ""
	}
	if err := json.Unmarshal(raw, &ds); err != nil {
		t.Fatalf("datasource %s: %v", raw, err)
	}
	return ds.UID
}

func TestDashboardShape(t *testing.T) {
	d := load(t)
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q title %q: both must be set so provisioning is stable", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d, want >= 36", d.SchemaVersion)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" && string(v.Query) == `"prometheus"` {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no datasource variable of type datasource for prometheus")
	}
	ids := map[int]string{}
	var all []panel
	for _, p := range d.Panels {
		all = append(all, p)
		all = append(all, p.Panels...)
	}
	for _, p := range all {
		if prev, dup := ids[p.ID]; dup {
			t.Errorf("panel id %d used by %q and %q", p.ID, prev, p.Title)
		}
		ids[p.ID] = p.Title
		if p.GridPos == nil || p.GridPos.W == 0 || p.GridPos.H == 0 || p.GridPos.X+p.GridPos.W > 24 {
			t.Errorf("panel %q has a bad gridPos %+v", p.Title, p.GridPos)
		}
	}
	for _, p := range flatten(d.Panels) {
		if got := dsUID(t, p.Datasource); got != dsRef {
			t.Errorf("panel %q datasource uid %q, want %s", p.Title, got, dsRef)
		}
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("panel %q target %s has no expr", p.Title, tg.RefID)
			}
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("panel %q: refId %q empty or repeated", p.Title, tg.RefID)
			}
			refs[tg.RefID] = true
			if got := dsUID(t, tg.Datasource); got != dsRef {
				t.Errorf("panel %q target %s datasource uid %q, want %s", p.Title, tg.RefID, got, dsRef)
			}
		}
	}
}

// What the on-call must find on the dashboard (issue 4).
func TestDashboardCoversTheQuestions(t *testing.T) {
	d := load(t)
	var holderTimeline bool
	exprs := ""
	for _, p := range flatten(d.Panels) {
		for _, tg := range p.Targets {
			exprs += tg.Expr + "\n"
			if p.Type == "state-timeline" && strings.Contains(tg.Expr, "eipd_is_holder") && strings.Contains(tg.Expr, "instance") {
				holderTimeline = true
			}
		}
	}
	if !holderTimeline {
		t.Error("no state-timeline of eipd_is_holder by instance")
	}
	for _, want := range []string{
		"eipd_failovers_total", "by (allocation_id, reason)",
		"eipd_failover_duration_seconds_bucket", "histogram_quantile(0.95",
		"eipd_health_up",
		"eipd_ec2_requests_total", `outcome="throttled"`,
		"eipd_lease_age_seconds", "eipd_handoff_blocked",
		// The coordinator: who it is per group, and which members it
		// reaches.
		"max by (group, instance) (eipd_is_coordinator", "eipd_members_reachable",
		// Issue 11: redundancy per group, restarts, memory and CPU.
		"sum by (group) (eipd_ready", "changes(process_start_time_seconds",
		"process_resident_memory_bytes", "rate(process_cpu_seconds_total",
	} {
		if !strings.Contains(exprs, want) {
			t.Errorf("no panel query contains %q", want)
		}
	}
}

// Every metric a query names must exist (metrics/testdata/metrics.golden),
// so a renamed metric cannot leave an empty panel behind.
func TestDashboardUsesKnownMetrics(t *testing.T) {
	known := goldenNames(t)
	b, err := os.ReadFile("eipd.json")
	if err != nil {
		t.Fatal(err)
	}
	var any0 any
	if err := json.Unmarshal(b, &any0); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, q := range queries(any0) {
		for _, m := range regexp.MustCompile(`\beipd_[a-z0-9_]+`).FindAllString(q, -1) {
			n++
			if !known[m] {
				t.Errorf("query %q uses %s, which is not in metrics.golden", q, m)
			}
		}
	}
	if n < 20 {
		t.Errorf("found only %d metric references in the dashboard; is the query walk broken?", n)
	}
}

// The panel queries must be valid PromQL: promtool check rules parses each
// one as a recording rule after Grafana's variables are substituted.
func TestDashboardPromQLParses(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not installed: %v", err)
		}
		t.Skipf("promtool not installed: %v", err)
	}
	d := load(t)
	vars := strings.NewReplacer(
		"$__rate_interval", "1m", "$__interval", "1m", "$__range", "6h",
		"$job", "eipd", "$instance", ".*", "$allocation_id", ".*",
	)
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	count := 0
	add := func(where, expr string) {
		e := vars.Replace(expr)
		if strings.Contains(e, "$") {
			t.Errorf("%s: unknown variable left in %q", where, e)
			return
		}
		q, _ := json.Marshal(e)
		fmt.Fprintf(&rules, "      - record: dashboard:expr_%d\n        expr: %s\n", count, q)
		count++
	}
	for _, p := range flatten(d.Panels) {
		for _, tg := range p.Targets {
			add(p.Title, tg.Expr)
		}
	}
	for _, a := range d.Annotations.List {
		if a.Expr != "" {
			add("annotation "+a.Name, a.Expr)
		}
	}
	path := filepath.Join(t.TempDir(), "dashboard-rules.yml")
	if err := os.WriteFile(path, []byte(rules.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "check", "rules", path).CombinedOutput()
	if err != nil {
		t.Fatalf("dashboard queries do not parse as PromQL: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("%d rules found", count)) {
		t.Errorf("promtool checked a different number of queries than the %d written:\n%s", count, out)
	}
}

// queries walks the dashboard JSON and returns every "expr", "query" and
// "definition" string: panel targets, annotations and variable queries.
func queries(v any) []string {
	var out []string
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if s, ok := val.(string); ok && (k == "expr" || k == "query" || k == "definition") {
				out = append(out, s)
				continue
			}
			out = append(out, queries(val)...)
		}
	case []any:
		for _, e := range x {
			out = append(out, queries(e)...)
		}
	}
	return out
}

func goldenNames(t *testing.T) map[string]bool {
	t.Helper()
	known, err := golden.MetricNames()
	if err != nil {
		t.Fatal(err)
	}
	return known
}
