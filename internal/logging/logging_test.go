package logging

import (
	"bytes"
	"encoding/json"
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
	log := New("trace", "json", &buf)
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
	New("info", "text", &buf).Info("a", "took", 1500*time.Millisecond, "status", health.Down)
	if !strings.Contains(buf.String(), "a: took=1.5s status=down") {
		t.Errorf("text: %q", buf.String())
	}
}
