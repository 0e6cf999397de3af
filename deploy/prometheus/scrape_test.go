package prometheus_test

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// renderScrape renders scrape.yml for a Region the way its header says
// (envsubst '${AWS_REGION}'), into a directory with the rule file it names,
// and returns the rendered file.
func renderScrape(t *testing.T, region string) string {
	t.Helper()
	bin, err := exec.LookPath("envsubst")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("envsubst not installed (gettext-base): %v", err)
		}
		t.Skipf("envsubst not installed: %v", err)
	}
	header, err := os.ReadFile("scrape.yml")
	if err != nil {
		t.Fatal(err)
	}
	const how = "AWS_REGION=eu-west-1 envsubst '${AWS_REGION}' <scrape.yml >eipd-scrape.yml"
	if !strings.Contains(string(header), how) {
		t.Fatalf("scrape.yml does not say how to render it: %q", how)
	}
	dir := t.TempDir()
	cmd := exec.Command(bin, "${AWS_REGION}")
	cmd.Env = []string{"AWS_REGION=" + region}
	cmd.Stdin = strings.NewReader(string(header))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("envsubst: %v", err)
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"eipd-scrape.yml": out, rulesFile: rules} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "eipd-scrape.yml")
}

// TestPromtoolCheckScrapeConfigs validates both scrape configurations the way
// Prometheus loads them, including the rule file they name and, for file_sd,
// the example targets file (promtool parses the files a pattern matches).
func TestPromtoolCheckScrapeConfigs(t *testing.T) {
	for _, f := range []string{renderScrape(t, "eu-west-1"), "scrape-file-sd.yml"} {
		out, err := exec.Command(promtool(t), "check", "config", f).CombinedOutput()
		if err != nil {
			t.Errorf("promtool check config %s: %v\n%s", f, err, out)
		}
		if strings.Contains(string(out), "WARNING") {
			t.Errorf("promtool check config %s warns:\n%s", f, out)
		}
	}
}

type relabelRule struct {
	SourceLabels []string `json:"source_labels"`
	Separator    *string  `json:"separator"`
	Regex        *string  `json:"regex"`
	TargetLabel  string   `json:"target_label"`
	Replacement  *string  `json:"replacement"`
	Action       string   `json:"action"`
}

type scrapeConfig struct {
	RuleFiles     []string `json:"rule_files"`
	ScrapeConfigs []struct {
		JobName      string `json:"job_name"`
		EC2SDConfigs []struct {
			Region  string `json:"region"`
			Port    int    `json:"port"`
			Filters []struct {
				Name   string   `json:"name"`
				Values []string `json:"values"`
			} `json:"filters"`
		} `json:"ec2_sd_configs"`
		FileSDConfigs []struct {
			Files []string `json:"files"`
		} `json:"file_sd_configs"`
		RelabelConfigs []relabelRule `json:"relabel_configs"`
	} `json:"scrape_configs"`
}

// loadYAML converts a YAML file to JSON with the machine's PyYAML (as the
// CloudFormation tests do) and decodes it.
func loadYAML(t *testing.T, file string, v any) {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err == nil {
		err = exec.Command(py, "-c", "import yaml").Run()
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("python3 with PyYAML is needed (required under CI): %v", err)
		}
		t.Skipf("python3 with PyYAML missing: %v", err)
	}
	out, err := exec.Command(py, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)", file).Output()
	if err != nil {
		t.Fatalf("parse %s: %v", file, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// relabel applies Prometheus "replace" rules (the only action used here)
// with Prometheus' defaults: separator ";", regex "(.*)" anchored at both
// ends, replacement "$1"; no match leaves the labels as they are, and an
// empty result removes the target label.
func relabel(t *testing.T, labels map[string]string, rules []relabelRule) map[string]string {
	t.Helper()
	out := map[string]string{}
	for k, v := range labels {
		out[k] = v
	}
	for _, r := range rules {
		if r.Action != "" && r.Action != "replace" {
			t.Fatalf("relabel action %q: this test only knows replace", r.Action)
		}
		sep, re, repl := ";", "(.*)", "$1"
		if r.Separator != nil {
			sep = *r.Separator
		}
		if r.Regex != nil {
			re = *r.Regex
		}
		if r.Replacement != nil {
			repl = *r.Replacement
		}
		var vals []string
		for _, s := range r.SourceLabels {
			vals = append(vals, out[s])
		}
		src := strings.Join(vals, sep)
		rx := regexp.MustCompile("^(?:" + re + ")$")
		m := rx.FindStringSubmatchIndex(src)
		if m == nil {
			continue
		}
		v := string(rx.ExpandString(nil, repl, src, m))
		if v == "" {
			delete(out, r.TargetLabel)
			continue
		}
		out[r.TargetLabel] = v
	}
	return out
}

// The EC2 job finds members by the eipd:group tag and turns what EC2
// discovery gives into the labels the rules and the dashboard use.
func TestScrapeConfigEC2(t *testing.T) {
	var c scrapeConfig
	loadYAML(t, "scrape.yml", &c)
	if !slices.Contains(c.RuleFiles, rulesFile) {
		t.Errorf("rule_files %v lacks %s", c.RuleFiles, rulesFile)
	}
	if len(c.ScrapeConfigs) != 1 || c.ScrapeConfigs[0].JobName != "eipd" {
		t.Fatalf("want one scrape job named eipd (the rules assume it), got %+v", c.ScrapeConfigs)
	}
	job := c.ScrapeConfigs[0]
	if len(job.EC2SDConfigs) != 1 {
		t.Fatalf("want one ec2_sd_configs entry, got %d", len(job.EC2SDConfigs))
	}
	sd := job.EC2SDConfigs[0]
	// The Region is a variable, not a hard-coded one (an empty region makes
	// Prometheus ask the instance metadata service, which works only on EC2
	// and fails promtool elsewhere).
	if sd.Region != "${AWS_REGION}" {
		t.Errorf("ec2_sd_configs region %q, want the variable ${AWS_REGION}", sd.Region)
	}
	var rendered scrapeConfig
	loadYAML(t, renderScrape(t, "ap-southeast-2"), &rendered)
	if r := rendered.ScrapeConfigs[0].EC2SDConfigs[0].Region; r != "ap-southeast-2" {
		t.Errorf("rendered with AWS_REGION=ap-southeast-2, region is %q", r)
	}
	if got, want := rendered.ScrapeConfigs[0].RelabelConfigs, job.RelabelConfigs; !reflect.DeepEqual(got, want) {
		t.Errorf("rendering changed the relabeling (envsubst must be limited to ${AWS_REGION}):\n got %+v\nwant %+v", got, want)
	}
	if !slices.ContainsFunc(sd.Filters, func(f struct {
		Name   string   `json:"name"`
		Values []string `json:"values"`
	}) bool {
		return f.Name == "tag-key" && slices.Equal(f.Values, []string{"eipd:group"})
	}) {
		t.Errorf("ec2_sd_configs filters %+v: want tag-key = eipd:group", sd.Filters)
	}

	// What EC2 discovery gives for a member (Prometheus sanitises the tag
	// key eipd:group to eipd_group).
	meta := map[string]string{
		"__address__":                  "10.0.1.12:80",
		"__meta_ec2_private_ip":        "10.0.1.12",
		"__meta_ec2_public_ip":         "203.0.113.10",
		"__meta_ec2_instance_id":       "i-0123456789abcdef0",
		"__meta_ec2_availability_zone": "eu-west-1a",
		"__meta_ec2_tag_eipd_group":    "proxy-prod",
	}
	got := relabel(t, meta, job.RelabelConfigs)
	for k, want := range map[string]string{
		"__address__": "10.0.1.12:9380",
		"group":       "proxy-prod",
		"instance":    "i-0123456789abcdef0",
	} {
		if got[k] != want {
			t.Errorf("after relabeling %s = %q, want %q (all: %v)", k, got[k], want, got)
		}
	}
}

// The file_sd variant keeps the job name, and its example targets carry the
// labels scrape.yml would give.
func TestScrapeConfigFileSD(t *testing.T) {
	var c scrapeConfig
	loadYAML(t, "scrape-file-sd.yml", &c)
	if len(c.ScrapeConfigs) != 1 || c.ScrapeConfigs[0].JobName != "eipd" || len(c.ScrapeConfigs[0].FileSDConfigs) != 1 {
		t.Fatalf("want one file_sd job named eipd, got %+v", c.ScrapeConfigs)
	}
	b, err := os.ReadFile("targets/eipd.example.json")
	if err != nil {
		t.Fatal(err)
	}
	var groups []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if err := json.Unmarshal(b, &groups); err != nil {
		t.Fatal(err)
	}
	if len(groups) == 0 {
		t.Fatal("targets/eipd.example.json is empty")
	}
	for _, g := range groups {
		for _, tg := range g.Targets {
			if !strings.HasSuffix(tg, ":9380") {
				t.Errorf("target %q is not on the status port 9380", tg)
			}
		}
		if g.Labels["group"] == "" || !strings.HasPrefix(g.Labels["instance"], "i-") {
			t.Errorf("labels %v: want group and instance (the instance ID), as scrape.yml sets them", g.Labels)
		}
	}
}
