package deploy_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// haproxyEnv are the settings deploy/haproxy/haproxy.cfg reads from the
// environment; the stack sets them in a systemd drop-in.
var haproxyEnv = []string{"PROXY_PORT", "BACKEND_SRV", "MONITOR_MIN_UP"}

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
	out, err := haproxyCheck(t, "PROXY_PORT=80", "BACKEND_SRV=_web._tcp.internal.example", "MONITOR_MIN_UP=1")
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
	valid := map[string]string{"PROXY_PORT": "80", "BACKEND_SRV": "_web._tcp.internal.example", "MONITOR_MIN_UP": "1"}
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
		// ... which fails while too few backend servers are up.
		`(?m)^\s+monitor fail if \{ nbsrv\(web\) lt "\$\{MONITOR_MIN_UP\}" \}$`,
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

// TestHAProxyMonitorRequiresBackends runs the shipped configuration (on
// loopback, with the VPC resolver replaced by a closed local port, so no
// backend ever resolves) and asks its monitor-uri: with MONITOR_MIN_UP=1 a
// proxy without a working backend answers 503, so eipd's check fails and
// the EIP neither stays on it nor moves to it; with 0 it answers 200.
func TestHAProxyMonitorRequiresBackends(t *testing.T) {
	bin := tool(t, "haproxy")
	cfg := string(read(t, "deploy", "haproxy", "haproxy.cfg"))
	dir := t.TempDir()
	udp, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedDNS := udp.LocalAddr().String()
	udp.Close()
	for old, repl := range map[string]string{
		"169.254.169.253:53":      closedDNS,
		"/run/haproxy/admin.sock": filepath.Join(dir, "admin.sock"),
		"\tuser haproxy\n":        "",
		"\tgroup haproxy\n":       "",
		"\tlog /dev/log local0\n": "",
		`bind "*:${PROXY_PORT}"`:  `bind "127.0.0.1:${PROXY_PORT}"`,
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("haproxy.cfg has no %q to replace for the test", old)
		}
		cfg = strings.ReplaceAll(cfg, old, repl)
	}
	file := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		minUp string
		want  int
	}{{"1", http.StatusServiceUnavailable}, {"0", http.StatusOK}} {
		t.Run("MONITOR_MIN_UP="+c.minUp, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			port := ln.Addr().(*net.TCPAddr).Port
			ln.Close()
			cmd := exec.Command(bin, "-db", "-f", file)
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), fmt.Sprintf("PROXY_PORT=%d", port),
				"BACKEND_SRV=_web._tcp.internal.example", "MONITOR_MIN_UP=" + c.minUp}
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}()
			url := fmt.Sprintf("http://127.0.0.1:%d/haproxy-health", port)
			client := &http.Client{Timeout: time.Second}
			deadline := time.Now().Add(10 * time.Second)
			for {
				resp, err := client.Get(url)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode != c.want {
						t.Fatalf("GET %s: %d, want %d\n%s", url, resp.StatusCode, c.want, out.String())
					}
					return
				}
				if time.Now().After(deadline) {
					t.Fatalf("HAProxy never answered %s: %v\n%s", url, err, out.String())
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// haproxyUserData runs deploy/haproxy/user-data.sh with its settings
// replaced, under a scratch root, with dnf and systemctl stubbed (logged)
// and the real haproxy for its check.
func haproxyUserData(t *testing.T, settings map[string]string) (out, calls, root string, err error) {
	t.Helper()
	tool(t, "haproxy")
	script := string(read(t, "deploy", "haproxy", "user-data.sh"))
	for name, v := range settings {
		re := regexp.MustCompile(`(?m)^` + name + `=.*$`)
		if !re.MatchString(script) {
			t.Fatalf("deploy/haproxy/user-data.sh has no setting %s", name)
		}
		script = re.ReplaceAllLiteralString(script, name+`="`+v+`"`)
	}
	dir := t.TempDir()
	bin, root := filepath.Join(dir, "bin"), filepath.Join(dir, "root")
	for _, d := range []string{bin, root} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"dnf", "systemctl"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\necho \""+name+" $*\" >>\"$STUB_CALLS\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dir, "user-data.sh")
	if err := os.WriteFile(file, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", file)
	cmd.Env = []string{"PATH=" + bin + ":" + os.Getenv("PATH"), "EIPD_INSTALL_ROOT=" + root, "STUB_CALLS=" + filepath.Join(dir, "calls")}
	b, err := cmd.CombinedOutput()
	c, _ := os.ReadFile(filepath.Join(dir, "calls"))
	return string(b), string(c), root, err
}

// TestHAProxyUserData: the by-hand paths' HAProxy install writes the shipped
// configuration and the same drop-in as the example stack, checks it and
// starts HAProxy; a bad setting stops it before HAProxy is touched.
func TestHAProxyUserData(t *testing.T) {
	script := string(read(t, "deploy", "haproxy", "user-data.sh"))
	_, rest, ok := strings.Cut(script, "<<'HAPROXY_CFG'\n")
	embedded, _, ok2 := strings.Cut(rest, "HAPROXY_CFG\n")
	if !ok || !ok2 || embedded != string(read(t, "deploy", "haproxy", "haproxy.cfg")) {
		t.Fatal("the configuration embedded in deploy/haproxy/user-data.sh differs from deploy/haproxy/haproxy.cfg; paste it again")
	}

	out, calls, root, err := haproxyUserData(t, map[string]string{"PROXY_PORT": "8080", "BACKEND_SRV": "_api._tcp.internal.example", "MONITOR_MIN_UP": "2"})
	if err != nil {
		t.Fatalf("user-data: %v\n%s", err, out)
	}
	if cfg, _ := os.ReadFile(filepath.Join(root, "etc/haproxy/haproxy.cfg")); string(cfg) != string(read(t, "deploy", "haproxy", "haproxy.cfg")) {
		t.Error("the installed haproxy.cfg differs from deploy/haproxy/haproxy.cfg")
	}
	dropIn, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system/haproxy.service.d/eipd.conf"))
	tpl := loadTemplate(t)
	stackDropIn := newStack(t, tpl, map[string]string{"ProxyPort": "8080", "BackendSrvName": "_api._tcp.internal.example", "MinBackendsUp": "2"}).
		str(dig(t, tpl.Resources["LaunchTemplate"].Metadata, "AWS::CloudFormation::Init", "haproxy", "files", "/etc/systemd/system/haproxy.service.d/eipd.conf", "content"))
	if string(dropIn) != stackDropIn {
		t.Errorf("drop-in differs from the example stack's:\n got %q\nwant %q", dropIn, stackDropIn)
	}
	for _, want := range []string{"systemctl daemon-reload\n", "systemctl enable haproxy.service\n", "systemctl restart haproxy.service\n"} {
		if !strings.Contains(calls, want) {
			t.Errorf("calls lack %q:\n%s", want, calls)
		}
	}

	out, calls, _, err = haproxyUserData(t, map[string]string{"MONITOR_MIN_UP": "one"})
	if err == nil || strings.Contains(calls, "restart") || !strings.Contains(out, "neither a number nor a supported operator") {
		t.Errorf("a bad setting: err %v, calls %q, output:\n%s", err, calls, out)
	}
}
