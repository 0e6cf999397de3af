package daemon

import (
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
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

// TestFatalErrorsAreJSON: in JSON mode the errors that end the daemon are
// log lines too, not plain text from cli.ExitCode.
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
