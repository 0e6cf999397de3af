package prometheus_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/eipd/eipd/internal/golden"
	"github.com/eipd/eipd/internal/markdown"
)

const (
	rulesFile = "eipd-rules.yml"
	testsFile = "eipd-rules.test.yml"
)

func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not installed: %v", err)
		}
		t.Skipf("promtool not installed: %v", err)
	}
	return p
}

func TestPromtoolCheckRules(t *testing.T) {
	out, err := exec.Command(promtool(t), "check", "rules", rulesFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool check rules %s: %v\n%s", rulesFile, err, out)
	}
}

func TestPromtoolTestRules(t *testing.T) {
	out, err := exec.Command(promtool(t), "test", "rules", testsFile).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool test rules %s: %v\n%s", testsFile, err, out)
	}
	if !strings.Contains(string(out), "SUCCESS") {
		t.Fatalf("promtool test rules did not report SUCCESS:\n%s", out)
	}
}

// Every alert has at least one unit test where it fires and one where it
// does not, so a rule that can never fire (or always fires) is caught.
func TestEveryAlertTestedBothWays(t *testing.T) {
	alerts := alertNames(t)
	if len(alerts) < 10 {
		t.Fatalf("found %d alerts in %s, want at least 10: %v", len(alerts), rulesFile, alerts)
	}
	fires, quiet := map[string]bool{}, map[string]bool{}
	f, err := os.Open(testsFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	current := ""
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "alertname:"):
			current = strings.TrimSpace(strings.TrimPrefix(line, "alertname:"))
		case line == "exp_alerts: []":
			quiet[current] = true
		case line == "exp_alerts:":
			fires[current] = true
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if !fires[a] {
			t.Errorf("%s has no unit test where it fires", a)
		}
		if !quiet[a] {
			t.Errorf("%s has no unit test where it stays quiet", a)
		}
	}
}

// Every alert tells the on-call how bad it is and what to do.
func TestAlertsHaveSeverityAndText(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	blocks := strings.Split(string(b), "- alert: ")[1:]
	for _, blk := range blocks {
		name := strings.Fields(blk)[0]
		if !regexp.MustCompile(`severity: (critical|warning)\n`).MatchString(blk) {
			t.Errorf("%s has no severity label (critical or warning)", name)
		}
		for _, want := range []string{"summary: ", "description: "} {
			if !strings.Contains(blk, want) {
				t.Errorf("%s has no %q annotation", name, strings.TrimSuffix(want, ": "))
			}
		}
	}
}

// runbookBase is where every alert's runbook_url points: a section of
// docs/operations.md, as GitHub renders it.
const runbookBase = "https://github.com/eipd/eipd/blob/main/docs/operations.md#"

// Every alert links its runbook: a heading of docs/operations.md whose anchor
// (GitHub's rule: lower case, punctuation dropped, spaces to dashes) is the
// fragment of runbook_url.
func TestAlertsHaveRunbooks(t *testing.T) {
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := markdown.Anchors(string(doc))
	url := regexp.MustCompile(`\n\s*runbook_url: "([^"]*)"\n`)
	for _, blk := range strings.Split(string(b), "- alert: ")[1:] {
		name := strings.Fields(blk)[0]
		m := url.FindStringSubmatch(blk)
		if m == nil {
			t.Errorf("%s has no runbook_url annotation", name)
			continue
		}
		frag, ok := strings.CutPrefix(m[1], runbookBase)
		if !ok {
			t.Errorf("%s: runbook_url %q is not under %s", name, m[1], runbookBase)
			continue
		}
		if !anchors[frag] {
			t.Errorf("%s: runbook_url anchor #%s is no heading of docs/operations.md", name, frag)
		}
		if frag != strings.ToLower(name) {
			t.Errorf("%s: runbook_url anchor #%s, want #%s (a heading named after the alert)", name, frag, strings.ToLower(name))
		}
	}
}

// docs/metrics.md is what the README links for the alerts.
func TestDocsListEveryAlert(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alertNames(t) {
		if !strings.Contains(string(doc), "`"+a+"`") {
			t.Errorf("docs/metrics.md does not list `%s`", a)
		}
	}
}

// The rules may only use metrics the daemon exports (metrics/testdata/metrics.golden).
func TestRulesUseKnownMetrics(t *testing.T) {
	known := goldenNames(t)
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range regexp.MustCompile(`\beipd_[a-z0-9_]+`).FindAllString(string(b), -1) {
		if !known[n] {
			t.Errorf("%s uses %s, which is not in metrics.golden", rulesFile, n)
		}
	}
}

func alertNames(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*- alert: (\S+)`).FindAllStringSubmatch(string(b), -1) {
		names = append(names, m[1])
	}
	return names
}

func goldenNames(t *testing.T) map[string]bool {
	t.Helper()
	known, err := golden.MetricNames()
	if err != nil {
		t.Fatal(err)
	}
	return known
}
