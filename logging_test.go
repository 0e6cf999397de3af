package main

import (
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/health"
)

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

func TestJSONLogValues(t *testing.T) {
	var buf bytes.Buffer
	log := newLogger("trace", "json", &buf)
	log.Info("a", "took", 1500*time.Millisecond, "steps", []time.Duration{time.Second, 250 * time.Millisecond}, "term", 7, "status", health.Up)
	log.Named("leader").With("interval", 3*time.Second).Warn("b", "previous_status", health.Unknown)
	log.Log(hclog.Debug, "c", "pause", time.Minute)
	lines := jsonLines(t, buf.Bytes())
	if len(lines) != 3 {
		t.Fatalf("%d lines", len(lines))
	}
	a, b, c := lines[0], lines[1], lines[2]
	if a["took"] != "1.5s" || a["term"] != float64(7) || a["status"] != "up" {
		t.Errorf("line a: %v", a)
	}
	if steps, _ := a["steps"].([]any); len(steps) != 2 || steps[0] != "1s" || steps[1] != "250ms" {
		t.Errorf("steps: %v", a["steps"])
	}
	if b["interval"] != "3s" || b["previous_status"] != "unknown" || b["@module"] != "eipd.leader" {
		t.Errorf("line b: %v", b)
	}
	if c["pause"] != "1m0s" {
		t.Errorf("line c: %v", c)
	}

	// Text mode reads as before.
	buf.Reset()
	newLogger("info", "text", &buf).Info("a", "took", 1500*time.Millisecond, "status", health.Down)
	if !strings.Contains(buf.String(), "a: took=1.5s status=down") {
		t.Errorf("text: %q", buf.String())
	}
}

// TestStartLineIsStructured: the configuration is one field per setting.
func TestStartLineIsStructured(t *testing.T) {
	c, err := parseRunConfig("run", []string{"--group", "web", "--renew-interval", "2s"}, envOf(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	newLogger("info", "json", &buf).Info("starting", configFields(c)...)
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

// TestFatalErrorsAreJSON: in JSON mode the errors that end the daemon are
// log lines too, not plain text from exitCode.
func TestFatalErrorsAreJSON(t *testing.T) {
	// Nothing may reach real AWS if the bind unexpectedly succeeds.
	refused := "http://127.0.0.1:1"
	t.Setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", refused)
	t.Setenv("AWS_ENDPOINT_URL_EC2", refused)
	t.Setenv("AWS_REGION", "us-east-1")
	empty := filepath.Join(t.TempDir(), "empty")
	_ = os.WriteFile(empty, nil, 0o600)
	t.Setenv("AWS_CONFIG_FILE", empty)
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", empty)

	_, stderr, code := runCLI(t, map[string]string{"EIPD_LOG_FORMAT": "json", "EIPD_HEALTH_FALL": "x"}, "run")
	lines := jsonLines(t, []byte(stderr))
	if code != 2 || len(lines) != 1 || lines[0]["@message"] != "invalid configuration" || lines[0]["@level"] != "error" {
		t.Fatalf("bad config in JSON mode: exit %d %q", code, stderr)
	}
	if p, _ := lines[0]["problems"].([]any); len(p) != 2 {
		t.Errorf("problems: %v", lines[0]["problems"])
	}

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, stderr, code = runCLI(t, nil, "run", "--group", "g", "--log-format", "json", "--listen", busy.Addr().String(),
		"--control", "unix:"+filepath.Join(t.TempDir(), "c.sock"))
	lines = jsonLines(t, []byte(stderr))
	last := lines[len(lines)-1]
	if code != 1 || last["@message"] != "exiting on error" || !strings.Contains(last["error"].(string), "address already in use") {
		t.Errorf("bind failure in JSON mode: exit %d\n%s", code, stderr)
	}
}
