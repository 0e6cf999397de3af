package deploy_test

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// haproxyEnv are the settings deploy/haproxy/haproxy.cfg reads from the
// environment; the stack sets them in a systemd drop-in.
var haproxyEnv = []string{"PROXY_PORT", "BACKEND_SRV"}

// haproxyCheck runs haproxy -c on the shipped file with env added to a
// clean environment. -c parses the file and opens no listener; it sets up
// the resolvers' UDP sockets without sending a query, so nothing leaves the
// machine.
func haproxyCheck(t *testing.T, env ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(tool(t, "haproxy"), "-c", "-f", path("deploy", "haproxy", "haproxy.cfg"))
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestHAProxyConfigValid(t *testing.T) {
	out, err := haproxyCheck(t, "PROXY_PORT=80", "BACKEND_SRV=_web._tcp.internal.example")
	if err != nil || !strings.Contains(out, "Configuration file is valid") {
		t.Fatalf("haproxy -c: %v\n%s", err, out)
	}
	if strings.Contains(out, "[WARNING]") {
		t.Errorf("haproxy -c warns:\n%s", out)
	}
}

// Without its settings HAProxy refuses to start rather than listen on a
// wrong port or balance over nothing.
func TestHAProxyConfigNeedsSettings(t *testing.T) {
	valid := map[string]string{"PROXY_PORT": "80", "BACKEND_SRV": "_web._tcp.internal.example"}
	for _, missing := range haproxyEnv {
		var env []string
		for _, v := range haproxyEnv {
			if v != missing {
				env = append(env, v+"="+valid[v])
			}
		}
		if out, err := haproxyCheck(t, env...); err == nil {
			t.Errorf("haproxy -c passes without %s:\n%s", missing, out)
		}
	}
}

// What eipd and the documentation rely on.
func TestHAProxyConfigForEipd(t *testing.T) {
	cfg := string(read(t, "deploy", "haproxy", "haproxy.cfg"))
	for _, want := range []string{
		// http://127.0.0.1:<port>/haproxy-health, the stack's default check.
		`(?m)^\s+monitor-uri /haproxy-health$`,
		// The haproxy:// check, and the group eipd's unit joins.
		`(?m)^\s+stats socket /run/haproxy/admin\.sock mode 660 group haproxy level user$`,
		// The VPC's DNS server, and backends from Cloud Map SRV records.
		`(?m)^resolvers vpc$`,
		`(?m)^\s+nameserver \S+ 169\.254\.169\.253:53$`,
		`(?m)^\s+server-template \S+ \d+ "\$\{BACKEND_SRV\}" resolvers vpc .*init-addr none`,
		`(?m)^\s+bind "\*:\$\{PROXY_PORT\}"$`,
	} {
		if !regexp.MustCompile(want).MatchString(cfg) {
			t.Errorf("haproxy.cfg lacks a line matching %s", want)
		}
	}
}
