package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eipd/eipd/internal/harness"
)

// get returns the status code and body of GET url.
func get(url string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := httpc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// hangingServer accepts connections and never answers; it returns its URL.
func hangingServer(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String()
}

// refusedURL is a loopback URL nothing listens on.
func refusedURL(t *testing.T) string {
	return fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
}

// TestListenersBeforeIMDS: while instance metadata refuses or hangs, the
// daemon already serves /healthz (alive), /readyz 503 and /status saying
// it waits for instance metadata, and eipd status shows the same; every
// retry is logged with its attempt number; SIGTERM stops it cleanly.
func TestListenersBeforeIMDS(t *testing.T) {
	for _, mode := range []string{"refused", "hangs"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			imds := refusedURL(t)
			if mode == "hangs" {
				imds = hangingServer(t)
			}
			listen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
			// The refused case uses the default kind of control endpoint,
			// a unix socket, and checks its mode.
			control := "unix:" + filepath.Join(dir, "run", "eipd.sock")
			if mode == "hangs" {
				control = fmt.Sprintf("127.0.0.1:%d", freePort(t))
			}
			env := harness.Env(dir, "AWS_ENDPOINT_URL_EC2="+refusedURL(t), "AWS_EC2_METADATA_SERVICE_ENDPOINT="+imds,
				"AWS_REGION=us-east-1")
			p := startProc(t, dir, "eipd", env, eipdBin, "run", "--group", "e2e",
				"--health-check", fmt.Sprintf("tcp://127.0.0.1:%d", freePort(t)), "--listen", listen, "--control", control)

			var readyBody string
			waitFor(t, 20*time.Second, "/readyz to answer 503", func() bool {
				if p.Exited() {
					t.Fatalf("eipd exited: %v\n%s", p.Err, tail(p.LogPath, 30))
				}
				code, body, err := get("http://" + listen + "/readyz")
				readyBody = body
				return err == nil && code == 503
			})
			if !strings.Contains(readyBody, "waiting for instance metadata") {
				t.Errorf("/readyz body %q does not say it waits for instance metadata", readyBody)
			}
			if code, body, err := get("http://" + listen + "/healthz"); err != nil || code != 200 {
				t.Errorf("/healthz while waiting for IMDS: %d %q %v, want 200", code, body, err)
			}
			var st struct {
				Waiting string          `json:"waiting"`
				EIPs    json.RawMessage `json:"eips"`
			}
			if err := doJSON("GET", "http://"+listen+"/status", nil, &st); err != nil || st.Waiting != "waiting for instance metadata" || string(st.EIPs) != "[]" {
				t.Errorf("/status while waiting: %+v %v", st, err)
			}
			if path, ok := strings.CutPrefix(control, "unix:"); ok {
				if fi, err := os.Stat(path); err != nil || fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o600 {
					t.Errorf("control socket %s: %v %v, want a socket of mode 0600", path, fi.Mode(), err)
				}
			}
			cmd := exec.Command(eipdBin, "status", "--control", control)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "waiting for instance metadata") {
				t.Errorf("eipd status while waiting: %v %q", err, out)
			}

			// Each failed attempt is logged, numbered.
			attempt := regexp.MustCompile(`\[WARN\]  eipd: cannot read the instance identity from instance metadata \(IMDS\); retrying: attempt=(\d+) retry_in=\S+ error=`)
			want := 2
			if mode == "hangs" {
				want = 1 // each attempt waits for its timeout
			}
			waitFor(t, 30*time.Second, fmt.Sprintf("%d logged IMDS retries", want), func() bool {
				b, _ := os.ReadFile(p.LogPath)
				m := attempt.FindAllStringSubmatch(string(b), -1)
				for i, a := range m {
					if a[1] != fmt.Sprint(i+1) {
						t.Fatalf("retries logged out of order: %q", m)
					}
				}
				return len(m) >= want
			})

			p.Term()
			if !p.WaitExit(10 * time.Second) {
				t.Fatalf("eipd did not stop within 10s of SIGTERM while waiting for IMDS")
			}
			if p.Err != nil {
				t.Errorf("eipd exited with %v after SIGTERM, want 0\n%s", p.Err, tail(p.LogPath, 10))
			}
		})
	}
}
