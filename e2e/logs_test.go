package e2e

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// integerKeys are the log keys whose values are counts or numbers by
// nature. Any other number in a JSON log line is suspect: most likely a
// duration written as nanoseconds.
var integerKeys = map[string]bool{
	"term": true, "epoch": true, "attempt": true, "rise": true, "fall": true, "health_rise": true, "health_fall": true,
	"probe_fall": true, "api_rate": true, "api_burst": true, "instances": true, "eips": true,
}

// fixedKeys are in every JSON log line.
var fixedKeys = []string{"@level", "@message", "@timestamp", "@module"}

// TestJSONLogsThreeDaemons runs three daemons with --log-format json
// through a planned handoff, a shutdown handoff and a health failure, and
// checks every line each wrote: one JSON object with the fixed keys,
// durations as duration strings, health states as words.
func TestJSONLogsThreeDaemons(t *testing.T) {
	c := newCluster(t, clusterOpts{instances: 3, tcpTarget: true})
	alloc := c.alloc(0)
	for _, n := range c.nodes {
		n.startDaemon("--log-format", "json")
	}
	for _, n := range c.nodes {
		n.waitUp()
	}
	h := c.steady(alloc)

	// A planned handoff through the CLI and the control endpoint.
	cmd := exec.Command(eipdBin, "handoff", "--control", h.controlAddr)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("eipd handoff: %v\n%s", err, out)
	}
	h2 := c.steady(alloc)
	// A health failure on a standby, then a shutdown handoff by the holder.
	var standby *node
	for _, n := range c.others(h2) {
		standby = n
		break
	}
	standby.killHAProxy()
	waitFor(t, 10*time.Second, "the standby's health to go down", func() bool {
		s, err := standby.status()
		return err == nil && s.Health == "down"
	})
	h2.eipd.Term()
	if !h2.eipd.WaitExit(20 * time.Second) {
		t.Fatal("holder did not exit after SIGTERM")
	}

	durations, states := 0, 0
	for _, n := range c.nodes {
		for _, line := range eipdLogLines(t, n.eipd.LogPath) {
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Errorf("%s: not one JSON object: %q: %v", n.id(), line, err)
				continue
			}
			for _, k := range fixedKeys {
				if _, ok := m[k]; !ok {
					t.Errorf("%s: line lacks %s: %q", n.id(), k, line)
				}
			}
			for k, v := range m {
				switch v := v.(type) {
				case float64:
					if !integerKeys[k] {
						t.Errorf("%s: %s=%v is a bare number (a duration in nanoseconds?): %q", n.id(), k, v, line)
					}
				case []any:
					for _, e := range v {
						if _, ok := e.(float64); ok {
							t.Errorf("%s: %s holds a bare number: %q", n.id(), k, line)
						}
					}
				case string:
					if isDurationKey(k) {
						if _, err := time.ParseDuration(v); err != nil {
							t.Errorf("%s: %s=%q is not a duration: %q", n.id(), k, v, line)
						}
						durations++
					}
				}
			}
			if m["@message"] == "health changed" {
				for _, k := range []string{"status", "previous_status"} {
					if s, ok := m[k].(string); !ok || (s != "up" && s != "down" && s != "unknown") {
						t.Errorf("%s: %s is not a word: %q", n.id(), k, line)
					}
				}
				states++
			}
			if _, ok := m["eni"]; ok {
				t.Errorf("%s: key eni (one key per concept: network_interface_id): %q", n.id(), line)
			}
		}
	}
	if durations == 0 || states == 0 {
		t.Errorf("the run logged %d duration field(s) and %d health change(s): the checks above saw nothing to check", durations, states)
	}
}

// isDurationKey: keys that carry a time.Duration in eipd's logs.
func isDurationKey(k string) bool {
	for _, s := range []string{"interval", "timeout", "duration", "poll", "took", "pause", "retry_in", "skew", "delay"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// eipdLogLines are the lines eipd wrote to its log file (the harness
// writes one "=== …" header line per start).
func eipdLogLines(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "=== ") {
			out = append(out, line)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no log lines", path)
	}
	return out
}
