package deploy_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// userDataRun is one execution of systemd/user-data.sh with its settings
// block rewritten, under a scratch install root, with the commands that
// would reach the network or change the machine replaced by stubs on PATH:
//
//   - curl: an https:// download copies the test's file (and is logged);
//     anything else (the /readyz wait, on loopback) runs the real curl;
//   - aws, systemctl, groupadd: logged, and systemctl is-active says no;
//   - id: says root, so the script's root check passes without being root
//     (install -o root still needs root, see runUserData).
//
// Everything else (sha256sum, cmp, install, mktemp) is the real thing.
type userDataRun struct {
	settings map[string]string
	download []byte // what the stubbed download returns
	// s3Works: aws s3 cp delivers the download too (else it fails, as
	// without s3:GetObject).
	s3Works bool
}

type userDataResult struct {
	err       error
	stderr    string
	root      string
	downloads string // the stub curl's log of downloads
	systemctl string
}

func (r userDataResult) file(t *testing.T, p string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.root, p))
	if os.IsNotExist(err) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(b), true
}

// userDataArch is the name user-data.sh gives this machine's architecture.
func userDataArch(t *testing.T) string {
	t.Helper()
	switch runtime.GOARCH {
	case "amd64", "arm64":
		return runtime.GOARCH
	}
	t.Skipf("user-data.sh supports amd64 and arm64, not %s", runtime.GOARCH)
	return ""
}

func runUserData(t *testing.T, run userDataRun) userDataResult {
	t.Helper()
	tool(t, "bash")
	realCurl := tool(t, "curl")
	if os.Geteuid() != 0 {
		// install -o root -g root, as on an instance.
		if os.Getenv("CI") == "true" {
			t.Fatal("the user-data execution tests run as root under CI")
		}
		t.Skip("the user-data execution tests need root (install -o root)")
	}
	settings, body := userDataParts(t)
	for name, v := range run.settings {
		re := regexp.MustCompile(`(?m)^` + name + `=.*$`)
		if !re.MatchString(settings) {
			t.Fatalf("user-data.sh has no setting %s", name)
		}
		settings = re.ReplaceAllLiteralString(settings, name+`="`+v+`"`)
	}
	dir := t.TempDir()
	script := filepath.Join(dir, "user-data.sh")
	if err := os.WriteFile(script, []byte(settings+"# --- end of settings ---\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	stubs := filepath.Join(dir, "bin")
	logs := filepath.Join(dir, "logs")
	for _, d := range []string{root, stubs, logs} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	download := filepath.Join(dir, "download")
	if err := os.WriteFile(download, run.download, 0o644); err != nil {
		t.Fatal(err)
	}
	stub := func(name, text string) {
		if err := os.WriteFile(filepath.Join(stubs, name), []byte("#!/usr/bin/env bash\n"+text), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stub("curl", `out= url=
args=("$@")
while [ $# -gt 0 ]; do
	case "$1" in
	-o) out=$2; shift ;;
	https://* | s3://*) url=$1 ;;
	esac
	shift
done
if [ -n "$url" ]; then
	echo "$url" >>"$STUB_LOGS/downloads"
	cp "$STUB_DOWNLOAD" "$out"
	exit 0
fi
exec "$REAL_CURL" "${args[@]}"
`)
	stub("aws", `echo "aws $*" >>"$STUB_LOGS/downloads"
[ "$1 $2" = "s3 cp" ] && [ "$STUB_S3_WORKS" = 1 ] || { echo "fatal error: An error occurred (403) when calling the HeadObject operation: Forbidden" >&2; exit 1; }
cp "$STUB_DOWNLOAD" "$5"
`)
	stub("systemctl", `echo "$*" >>"$STUB_LOGS/systemctl"
[ "$1" != is-active ]
`)
	stub("groupadd", `echo "groupadd $*" >>"$STUB_LOGS/systemctl"`+"\n")
	stub("id", `echo 0`+"\n")

	cmd := exec.Command("bash", script)
	cmd.Env = []string{
		"PATH=" + stubs + ":" + os.Getenv("PATH"),
		"HOME=" + dir,
		"TMPDIR=" + dir,
		"EIPD_INSTALL_ROOT=" + root,
		"STUB_LOGS=" + logs,
		"STUB_DOWNLOAD=" + download,
		"REAL_CURL=" + realCurl,
		"STUB_S3_WORKS=" + map[bool]string{true: "1", false: "0"}[run.s3Works],
	}
	var stderr strings.Builder
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	err := cmd.Run()
	res := userDataResult{err: err, stderr: stderr.String(), root: root}
	if b, err := os.ReadFile(filepath.Join(logs, "downloads")); err == nil {
		res.downloads = string(b)
	}
	if b, err := os.ReadFile(filepath.Join(logs, "systemctl")); err == nil {
		res.systemctl = string(b)
	}
	return res
}

// fakeEipd is the "binary" the stubbed download delivers: a script that
// answers `eipd version` and `eipd status` as the real one would be asked.
const fakeEipd = "#!/bin/sh\necho \"fake eipd $*\"\n"

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// readyServer answers /readyz with code and counts the requests.
func readyServer(t *testing.T, code int) (listen string, hits *atomic.Int64) {
	t.Helper()
	hits = new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/readyz" {
			hits.Add(1)
			w.WriteHeader(code)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), hits
}

func TestUserDataRefusesUnverifiedBinary(t *testing.T) {
	arch := userDataArch(t)
	shaVar := "EIPD_BINARY_SHA256_" + strings.ToUpper(arch)
	base := map[string]string{
		"EIPD_BINARY_URL":          "https://downloads.example.com/eipd-linux-{arch}",
		"EIPD_BINARY_SHA256_AMD64": "",
		"EIPD_BINARY_SHA256_ARM64": "",
		"EIPD_ALLOW_UNVERIFIED":    "0",
		"EIPD_READY_TIMEOUT":       "1",
	}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	for _, c := range []struct {
		name      string
		settings  map[string]string
		want      []string
		downloads bool // the download was attempted
	}{
		{"no URL", with("EIPD_BINARY_URL", ""), []string{"EIPD_BINARY_URL is empty", "docs/install.md"}, false},
		{"no checksum", base, []string{"no checksum for the " + arch + " binary", shaVar, "SHA256SUMS", "EIPD_ALLOW_UNVERIFIED=1"}, false},
		{"checksum of the other architecture only", with("EIPD_BINARY_SHA256_AMD64", sum([]byte("x")), "EIPD_BINARY_SHA256_ARM64", sum([]byte("x")), shaVar, ""),
			[]string{"no checksum for the " + arch + " binary"}, false},
		{"allow flag not exactly 1", with("EIPD_ALLOW_UNVERIFIED", "yes"), []string{"no checksum"}, false},
		{"checksum mismatch", with(shaVar, sum([]byte("another build"))), []string{"checksum mismatch for https://downloads.example.com/eipd-linux-" + arch, "got " + sum([]byte(fakeEipd))}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			res := runUserData(t, userDataRun{settings: c.settings, download: []byte(fakeEipd)})
			if res.err == nil {
				t.Fatalf("user-data succeeded; want a refusal\n%s", res.stderr)
			}
			for _, w := range c.want {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("output lacks %q:\n%s", w, res.stderr)
				}
			}
			if got := res.downloads != ""; got != c.downloads {
				t.Errorf("download attempted = %v, want %v (log %q)", got, c.downloads, res.downloads)
			}
			if _, ok := res.file(t, "usr/local/bin/eipd"); ok {
				t.Error("the binary was installed anyway")
			}
			if res.systemctl != "" {
				t.Errorf("systemctl was called: %q", res.systemctl)
			}
		})
	}
}

func TestUserDataInstallsAndWaitsOnListenAddress(t *testing.T) {
	arch := userDataArch(t)
	shaVar := "EIPD_BINARY_SHA256_" + strings.ToUpper(arch)
	ready, readyHits := readyServer(t, http.StatusOK)
	notReady, notReadyHits := readyServer(t, http.StatusServiceUnavailable)
	_, readyPort, _ := net.SplitHostPort(ready)

	t.Run("verified, listener on a given address", func(t *testing.T) {
		before := readyHits.Load()
		res := runUserData(t, userDataRun{download: []byte(fakeEipd), settings: map[string]string{
			"EIPD_BINARY_URL":     "https://downloads.example.com/v1/eipd-linux-{arch}",
			shaVar:                sum([]byte(fakeEipd)),
			"EIPD_LISTEN":         ready,
			"EIPD_LIFECYCLE_HOOK": "eipd-handoff",
		}})
		if res.err != nil {
			t.Fatalf("user-data: %v\n%s", res.err, res.stderr)
		}
		if !strings.Contains(res.stderr, "eipd is ready") || strings.Contains(res.stderr, "WARNING") {
			t.Errorf("output:\n%s", res.stderr)
		}
		if want := "https://downloads.example.com/v1/eipd-linux-" + arch + "\n"; res.downloads != want {
			t.Errorf("downloads %q, want %q", res.downloads, want)
		}
		if b, ok := res.file(t, "usr/local/bin/eipd"); !ok || b != fakeEipd {
			t.Errorf("installed binary %q (present %v)", b, ok)
		}
		env, _ := res.file(t, "etc/default/eipd")
		for _, want := range []string{"EIPD_LISTEN=" + ready + "\n", "EIPD_LIFECYCLE_HOOK=eipd-handoff\n"} {
			if !strings.Contains(env, want) {
				t.Errorf("/etc/default/eipd lacks %q:\n%s", want, env)
			}
		}
		if unit, _ := res.file(t, "etc/systemd/system/eipd.service"); unit != string(read(t, "systemd", "eipd.service")) {
			t.Error("the installed unit differs from systemd/eipd.service")
		}
		if !strings.Contains(res.systemctl, "enable --now eipd.service\n") {
			t.Errorf("systemctl calls %q lack enable --now", res.systemctl)
		}
		if readyHits.Load() == before {
			t.Errorf("the readiness wait never asked %s/readyz", ready)
		}
	})

	t.Run("unverified allowed, wildcard listener asked on loopback", func(t *testing.T) {
		before := readyHits.Load()
		res := runUserData(t, userDataRun{download: []byte(fakeEipd), settings: map[string]string{
			"EIPD_BINARY_URL":          "https://downloads.example.com/eipd-linux-{arch}",
			"EIPD_BINARY_SHA256_AMD64": "",
			"EIPD_BINARY_SHA256_ARM64": "",
			"EIPD_ALLOW_UNVERIFIED":    "1",
			"EIPD_LISTEN":              ":" + readyPort,
		}})
		if res.err != nil {
			t.Fatalf("user-data: %v\n%s", res.err, res.stderr)
		}
		if want := "WARNING: EIPD_ALLOW_UNVERIFIED=1: installing https://downloads.example.com/eipd-linux-" + arch + " unverified (sha256 " + sum([]byte(fakeEipd)) + ")"; !strings.Contains(res.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stderr)
		}
		if readyHits.Load() == before {
			t.Errorf("the readiness wait never asked 127.0.0.1:%s/readyz", readyPort)
		}
	})

	t.Run("not ready on the configured listener", func(t *testing.T) {
		before, otherBefore := notReadyHits.Load(), readyHits.Load()
		res := runUserData(t, userDataRun{download: []byte(fakeEipd), settings: map[string]string{
			"EIPD_BINARY_URL":    "https://downloads.example.com/eipd-linux-{arch}",
			shaVar:               sum([]byte(fakeEipd)),
			"EIPD_LISTEN":        notReady,
			"EIPD_READY_TIMEOUT": "1",
		}})
		if res.err == nil {
			t.Fatalf("user-data succeeded against a listener answering 503:\n%s", res.stderr)
		}
		if want := fmt.Sprintf("eipd not ready after 1s (http://%s/readyz)", notReady); !strings.Contains(res.stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, res.stderr)
		}
		if notReadyHits.Load() == before || readyHits.Load() != otherBefore {
			t.Errorf("readiness asked the configured listener %d times and another %d times", notReadyHits.Load()-before, readyHits.Load()-otherBefore)
		}
	})
}

// TestUserDataS3Hosting: an s3:// binary is fetched with the AWS CLI and
// installed when its sum matches; when the role may not read it, the script
// stops and says what grant is missing. EIPD_ALLOW_UNVERIFIED takes true as
// well as 1 (what the example stack's AllowUnverified parameter says).
func TestUserDataS3Hosting(t *testing.T) {
	arch := userDataArch(t)
	shaVar := "EIPD_BINARY_SHA256_" + strings.ToUpper(arch)
	ready, _ := readyServer(t, http.StatusOK)
	url := "s3://my-bucket/eipd/v1.2.3/eipd-linux-{arch}"
	got := "s3://my-bucket/eipd/v1.2.3/eipd-linux-" + arch

	t.Run("readable", func(t *testing.T) {
		res := runUserData(t, userDataRun{download: []byte(fakeEipd), s3Works: true, settings: map[string]string{
			"EIPD_BINARY_URL": url, shaVar: sum([]byte(fakeEipd)), "EIPD_LISTEN": ready,
		}})
		if res.err != nil {
			t.Fatalf("user-data: %v\n%s", res.err, res.stderr)
		}
		if !strings.HasPrefix(res.downloads, "aws s3 cp --only-show-errors "+got+" ") {
			t.Errorf("downloads %q, want aws s3 cp of %s", res.downloads, got)
		}
		if b, ok := res.file(t, "usr/local/bin/eipd"); !ok || b != fakeEipd {
			t.Errorf("installed binary %q (present %v)", b, ok)
		}
	})

	t.Run("forbidden", func(t *testing.T) {
		res := runUserData(t, userDataRun{download: []byte(fakeEipd), settings: map[string]string{
			"EIPD_BINARY_URL": url, shaVar: sum([]byte(fakeEipd)), "EIPD_LISTEN": ready,
		}})
		if res.err == nil {
			t.Fatalf("user-data succeeded without the object:\n%s", res.stderr)
		}
		for _, want := range []string{"cannot download " + got, "s3:GetObject", "S3 gateway endpoint"} {
			if !strings.Contains(res.stderr, want) {
				t.Errorf("output lacks %q:\n%s", want, res.stderr)
			}
		}
		if _, ok := res.file(t, "usr/local/bin/eipd"); ok || res.systemctl != "" {
			t.Errorf("installed or started after a failed download: systemctl %q", res.systemctl)
		}
	})

	t.Run("unverified, allowed with true", func(t *testing.T) {
		res := runUserData(t, userDataRun{download: []byte(fakeEipd), s3Works: true, settings: map[string]string{
			"EIPD_BINARY_URL": url, "EIPD_BINARY_SHA256_AMD64": "", "EIPD_BINARY_SHA256_ARM64": "",
			"EIPD_ALLOW_UNVERIFIED": "true", "EIPD_LISTEN": ready,
		}})
		if res.err != nil {
			t.Fatalf("user-data refused EIPD_ALLOW_UNVERIFIED=true: %v\n%s", res.err, res.stderr)
		}
		if !strings.Contains(res.stderr, "WARNING: EIPD_ALLOW_UNVERIFIED=true: installing "+got+" unverified") {
			t.Errorf("output:\n%s", res.stderr)
		}
	})
}
