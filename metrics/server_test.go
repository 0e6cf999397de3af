package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// startServer serves on 127.0.0.1:0 until the test ends and returns the base URL.
func startServer(t *testing.T, cfg ServerConfig, m *Metrics, status func(*http.Request) any, ready func() error) string {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	ln, err := Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	logger := hclog.New(&hclog.LoggerOptions{Output: io.Discard})
	s := NewServer(cfg, m, status, ready, logger)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after cancel, want nil", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Serve did not return within 10s of cancel")
		}
	})
	return "http://" + ln.Addr().String()
}

func get(t *testing.T, method, url string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", method, url, err)
	}
	c.CloseIdleConnections()
	return resp.StatusCode, resp.Header, string(body)
}

// TestHealthzFollowsLive: /healthz answers 503 with the reason while Live
// reports no progress, and 200 again once it does.
func TestHealthzFollowsLive(t *testing.T) {
	var wedged atomic.Bool
	live := func() error {
		if wedged.Load() {
			return errors.New("no reconcile for 45s (watchdog 30s)")
		}
		return nil
	}
	base := startServer(t, ServerConfig{Live: live}, newTest(), nil, nil)
	if code, _, body := get(t, "GET", base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz while live: %d %q", code, body)
	}
	wedged.Store(true)
	if code, _, body := get(t, "GET", base+"/healthz"); code != 503 || body != "not live: no reconcile for 45s (watchdog 30s)\n" {
		t.Errorf("/healthz while wedged: %d %q, want 503 with the reason", code, body)
	}
	if code, _, _ := get(t, "GET", base+"/readyz"); code != 200 {
		t.Errorf("/readyz follows ready, not live: %d", code)
	}
	wedged.Store(false)
	if code, _, _ := get(t, "GET", base+"/healthz"); code != 200 {
		t.Errorf("/healthz after recovery: %d", code)
	}
}

func TestServerRoutes(t *testing.T) {
	m := newTest()
	m.SetHolder(testAllocs[0], true)
	var notReady atomic.Bool
	ready := func() error {
		if notReady.Load() {
			return errors.New("own health check down")
		}
		return nil
	}
	status := func(*http.Request) any {
		return map[string]any{"instance_id": "i-0123", "eips": []map[string]any{{"allocation_id": testAllocs[0], "role": "holder", "term": "4.2"}}}
	}
	base := startServer(t, ServerConfig{}, m, status, ready)

	code, hdr, body := get(t, "GET", base+"/metrics")
	if code != 200 || !strings.Contains(body, `eipd_is_holder{allocation_id="eipalloc-0a"} 1`) {
		t.Errorf("/metrics: %d, body lacks the holder sample:\n%.500s", code, body)
	}
	if ct := hdr.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("/metrics Content-Type %q, want text exposition", ct)
	}
	if !strings.Contains(body, "go_goroutines") || !strings.Contains(body, "process_") {
		t.Errorf("/metrics lacks Go or process collector output")
	}

	if code, _, body := get(t, "GET", base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q, want 200 ok", code, body)
	}
	if code, _, body := get(t, "GET", base+"/readyz"); code != 200 {
		t.Errorf("/readyz while ready: %d %q, want 200", code, body)
	}
	notReady.Store(true)
	if code, _, body := get(t, "GET", base+"/readyz"); code != 503 || !strings.Contains(body, "own health check down") {
		t.Errorf("/readyz while not ready: %d %q, want 503 with the reason", code, body)
	}
	if code, _, _ := get(t, "GET", base+"/healthz"); code != 200 {
		t.Errorf("/healthz while not ready: %d, want 200 (alive is not ready)", code)
	}

	code, hdr, body = get(t, "GET", base+"/status")
	if code != 200 || hdr.Get("Content-Type") != "application/json" {
		t.Errorf("/status: %d %q", code, hdr.Get("Content-Type"))
	}
	var st struct {
		InstanceID string `json:"instance_id"`
		EIPs       []struct {
			AllocationID string `json:"allocation_id"`
			Role         string `json:"role"`
			Term         string `json:"term"`
		} `json:"eips"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/status is not JSON: %v\n%s", err, body)
	}
	if st.InstanceID != "i-0123" || len(st.EIPs) != 1 || st.EIPs[0].Role != "holder" || st.EIPs[0].Term != "4.2" {
		t.Errorf("/status decoded to %+v", st)
	}

	if code, _, body := get(t, "HEAD", base+"/healthz"); code != 200 || body != "" {
		t.Errorf("HEAD /healthz: %d %q, want 200 and no body", code, body)
	}
	for _, method := range []string{"POST", "PUT", "DELETE", "PATCH"} {
		for _, path := range []string{"/metrics", "/status", "/readyz", "/healthz", "/probe?instance=i-1"} {
			code, hdr, _ := get(t, method, base+path)
			if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: %d Allow=%q, want 405 with Allow: GET, HEAD", method, path, code, hdr.Get("Allow"))
			}
		}
	}
	if code, _, _ := get(t, "GET", base+"/debug/pprof/"); code != 404 {
		t.Errorf("/debug/pprof/ without EnablePprof: %d, want 404", code)
	}
	if code, _, _ := get(t, "GET", base+"/nope"); code != 404 {
		t.Errorf("/nope: %d, want 404", code)
	}
	if code, _, body := get(t, "GET", base+"/"); code != 200 || !strings.Contains(body, "/metrics") ||
		!strings.Contains(body, "/notice (POST)") || !strings.Contains(body, "/probe") {
		t.Errorf("/: %d %q, want an index", code, body)
	}
	// No Notice or Probe handler (a daemon still waiting for its
	// identity): 404, not an error.
	if code, _, _ := get(t, "POST", base+"/notice?from=i-1"); code != 404 {
		t.Errorf("POST /notice without a handler: %d, want 404", code)
	}
	if code, _, _ := get(t, "GET", base+"/probe?instance=i-1"); code != 404 {
		t.Errorf("GET /probe without a handler: %d, want 404", code)
	}
}

// TestServerNotice: POST /notice?from=ID hands the sender's ID to Notice;
// it is the only method /notice takes, and the only POST the listener
// takes. No sender, or one longer than an instance ID may be, is refused
// without a call.
func TestServerNotice(t *testing.T) {
	var mu sync.Mutex
	var got []string
	notice := func(from string) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, from)
	}
	base := startServer(t, ServerConfig{Notice: notice}, newTest(), nil, nil)
	if code, _, body := get(t, "POST", base+"/notice?from=i-0123456789abcdef0"); code != 200 || body != "ok\n" {
		t.Errorf("POST /notice: %d %q, want 200 ok", code, body)
	}
	for _, q := range []string{"", "?from=", "?sender=i-1", "?from=" + strings.Repeat("i", 65)} {
		if code, _, _ := get(t, "POST", base+"/notice"+q); code != 404 {
			t.Errorf("POST /notice%s: %d, want 404", q, code)
		}
	}
	for _, method := range []string{"GET", "HEAD", "PUT", "DELETE"} {
		code, hdr, _ := get(t, method, base+"/notice?from=i-1")
		if code != http.StatusMethodNotAllowed || hdr.Get("Allow") != "POST" {
			t.Errorf("%s /notice: %d Allow=%q, want 405 with Allow: POST", method, code, hdr.Get("Allow"))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, []string{"i-0123456789abcdef0"}) {
		t.Errorf("Notice got %q, want the one valid notice", got)
	}
}

// TestServerProbe: GET /probe?instance=ID hands the ID to Probe with the
// request's context and serves its answer as JSON; an instance Probe does
// not know is a 404.
func TestServerProbe(t *testing.T) {
	type answer struct {
		InstanceID string `json:"instance_id"`
		Reachable  bool   `json:"reachable"`
	}
	var sawCtx atomic.Bool
	probe := func(ctx context.Context, instance string) (any, bool) {
		sawCtx.Store(ctx != nil && ctx.Done() != nil)
		if instance != "i-known" {
			return nil, false
		}
		return answer{InstanceID: instance, Reachable: true}, true
	}
	base := startServer(t, ServerConfig{Probe: probe}, newTest(), nil, nil)
	code, hdr, body := get(t, "GET", base+"/probe?instance=i-known")
	var a answer
	if code != 200 || hdr.Get("Content-Type") != "application/json" || json.Unmarshal([]byte(body), &a) != nil ||
		a != (answer{"i-known", true}) {
		t.Errorf("GET /probe: %d %q %q", code, hdr.Get("Content-Type"), body)
	}
	if !sawCtx.Load() {
		t.Error("Probe did not get the request's context")
	}
	for _, q := range []string{"?instance=i-stranger", "", "?instance="} {
		if code, _, _ := get(t, "GET", base+"/probe"+q); code != 404 {
			t.Errorf("GET /probe%s: %d, want 404", q, code)
		}
	}
	if code, _, _ := get(t, "POST", base+"/probe?instance=i-known"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /probe: %d, want 405", code)
	}
	// An answer that does not encode is a 500, as for /status.
	bad := startServer(t, ServerConfig{Probe: func(context.Context, string) (any, bool) { return make(chan int), true }}, newTest(), nil, nil)
	if code, _, _ := get(t, "GET", bad+"/probe?instance=i-known"); code != 500 {
		t.Errorf("GET /probe with an unencodable answer: %d, want 500", code)
	}
}

func TestServerNilCallbacks(t *testing.T) {
	base := startServer(t, ServerConfig{}, newTest(), nil, nil)
	if code, _, _ := get(t, "GET", base+"/readyz"); code != 200 {
		t.Errorf("/readyz with nil ready: %d, want 200", code)
	}
	if code, _, body := get(t, "GET", base+"/status"); code != 200 || strings.TrimSpace(body) != "{}" {
		t.Errorf("/status with nil status: %d %q, want 200 {}", code, body)
	}
}

func TestServerStatusEncodeError(t *testing.T) {
	base := startServer(t, ServerConfig{}, newTest(), func(*http.Request) any { return map[string]any{"bad": make(chan int)} }, nil)
	if code, _, _ := get(t, "GET", base+"/status"); code != 500 {
		t.Errorf("/status with an unencodable value: %d, want 500", code)
	}
}

func TestServerPprof(t *testing.T) {
	base := startServer(t, ServerConfig{EnablePprof: true}, newTest(), nil, nil)
	if code, _, body := get(t, "GET", base+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") || !strings.Contains(body, "heap") {
		t.Errorf("/debug/pprof/ with EnablePprof: %d, want 200 and the index listing goroutine and heap:\n%s", code, body)
	}
	if code, _, body := get(t, "GET", base+"/debug/pprof/cmdline"); code != 200 || body != strings.Join(os.Args, "\x00") {
		t.Errorf("/debug/pprof/cmdline with EnablePprof: %d %q, want 200 and the command line", code, body)
	}
	// What docs/operations.md asks for in a bug report.
	if code, _, body := get(t, "GET", base+"/debug/pprof/goroutine?debug=2"); code != 200 || !strings.Contains(body, "goroutine ") || !strings.Contains(body, "TestServerPprof") {
		t.Errorf("/debug/pprof/goroutine?debug=2: %d, want 200 and every goroutine's stack:\n%s", code, body)
	}
	// Profiles for go tool pprof: gzipped protocol buffers.
	for _, path := range []string{"/debug/pprof/heap?gc=1", "/debug/pprof/allocs", "/debug/pprof/profile?seconds=1", "/debug/pprof/trace?seconds=1"} {
		code, h, body := get(t, "GET", base+path)
		if code != 200 || h.Get("Content-Type") != "application/octet-stream" || len(body) == 0 {
			t.Errorf("%s: %d %q, %d bytes; want 200, application/octet-stream and a profile", path, code, h.Get("Content-Type"), len(body))
			continue
		}
		if !strings.HasPrefix(path, "/debug/pprof/trace") && !strings.HasPrefix(body, "\x1f\x8b") {
			t.Errorf("%s: not gzip (starts %q)", path, body[:min(len(body), 8)])
		}
	}
	for path, want := range map[string]int{
		"/debug/pprof/nosuch":              404,
		"/debug/pprof/profile?seconds=0":   400,
		"/debug/pprof/profile?seconds=61":  400,
		"/debug/pprof/trace?seconds=often": 400,
	} {
		if code, _, _ := get(t, "GET", base+path); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
}

func TestListenBadAddress(t *testing.T) {
	if _, err := Listen(ServerConfig{Listen: "127.0.0.1:notaport"}); err == nil || !strings.Contains(err.Error(), "127.0.0.1:notaport") {
		t.Errorf("Listen on a bad address: %v, want an error naming the address", err)
	}
}

func TestRunStopsWithContext(t *testing.T) {
	s := NewServer(ServerConfig{Listen: "127.0.0.1:0"}, newTest(), nil, nil, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run after cancel: %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
}

// promtool check metrics lints a live scrape, as CI must.
func TestPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("promtool not installed: %v", err)
		}
		t.Skipf("promtool not installed: %v", err)
	}
	m := newTest()
	// Exercise every family, including histograms and the "other" bucket.
	m.ObserveEC2("DescribeAddresses", OutcomeThrottled, 30*time.Millisecond)
	m.ObserveEC2("Bogus", "bogus", time.Millisecond)
	m.ObserveHealthCheck(time.Millisecond, nil)
	m.SetTerm(testAllocs[0], 2, 1)
	m.SetLeaseAge(time.Second)
	m.SetCoordinator(true)
	m.SetMembers(2, 3)
	m.MetadataDisagreement()
	m.SetNoFreePrivateIP(testAllocs[1], true)
	m.Failover(testAllocs[0], "handoff-shutdown", 1200*time.Millisecond)
	m.Reconciled(time.Now())
	base := startServer(t, ServerConfig{}, m, nil, nil)
	code, _, body := get(t, "GET", base+"/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(body)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out.String())
	}
}
