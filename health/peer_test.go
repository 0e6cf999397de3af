package health

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

// statusServer serves /status with the given health, as a peer eipd would.
func statusServer(t *testing.T, health string) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"instance_id":"i-0abc","health":%q,"eips":[]}`, health)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// proxyListener stands in for the peer's HAProxy port.
func proxyListener(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptLoop(t, l)
	return l.Addr().(*net.TCPAddr).Port
}

func probe(p *PeerProber, ip string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return p.Probe(ctx, ip)
}

func TestPeerProber(t *testing.T) {
	proxyPort := proxyListener(t)
	closedPort := freePort(t)
	// The local checks name 127.0.0.2, where nothing listens: a probe of
	// 127.0.0.1 passes only if the host was swapped and the port kept.
	tcpCheck := mustParse(t, fmt.Sprintf("tcp://127.0.0.2:%d", proxyPort))
	deadCheck := mustParse(t, fmt.Sprintf("tcp://127.0.0.2:%d", closedPort))
	unixOnly := mustParse(t, "haproxy:///run/haproxy/admin.sock?backend=app")
	if err := checkWithin(tcpCheck, 2*time.Second); err == nil {
		t.Fatal("test setup: the unswapped check should fail")
	}

	tests := []struct {
		name       string
		checks     []Checker
		statusPort int
		wantErr    string // "" healthy
	}{
		{"checks pass, status up", []Checker{tcpCheck}, statusServer(t, "up"), ""},
		{"checks pass, status down", []Checker{tcpCheck}, statusServer(t, "down"), "reports health down"},
		{"checks pass, status unreachable: daemon dead, proxy serving", []Checker{tcpCheck}, freePort(t), ""},
		{"checks pass, status unknown", []Checker{tcpCheck}, statusServer(t, "unknown"), ""},
		{"checks pass, status port off", []Checker{tcpCheck}, 0, ""},
		{"check fails, status up", []Checker{tcpCheck, deadCheck}, statusServer(t, "up"), fmt.Sprintf("tcp 127.0.0.1:%d", closedPort)},
		{"unix only, status up", []Checker{unixOnly}, statusServer(t, "up"), ""},
		{"unix only, status down", []Checker{unixOnly}, statusServer(t, "down"), "reports health down"},
		{"unix only, status unknown", []Checker{unixOnly}, statusServer(t, "unknown"), `health "unknown"`},
		{"unix only, status unreachable", []Checker{unixOnly}, freePort(t), "connect"},
		{"unix only, status port off", []Checker{unixOnly}, 0, "no check can be aimed"},
		{"unix and tcp, status unreachable", []Checker{unixOnly, tcpCheck}, freePort(t), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPeerProber(tt.checks, tt.statusPort, 5*time.Second)
			err := probe(p, "127.0.0.1")
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("want healthy, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want error containing %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "peer 127.0.0.1") {
				t.Errorf("error %q: want it to name the peer and contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestPeerProberTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	p := NewPeerProber([]Checker{mustParse(t, "http://127.0.0.2:"+fmt.Sprint(port)+"/healthz")}, 0, 100*time.Millisecond)
	start := time.Now()
	if err := probe(p, "127.0.0.1"); err == nil {
		t.Fatal("black-hole peer: want error")
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("probe took %v: its timeout was not honoured", el)
	}
	if err := probe(p, ""); err == nil {
		t.Error("empty IP: want error")
	}
}

// A local check that names a host keeps that name as the Host header when
// aimed at a peer's IP, so name-based HAProxy rules see the same request.
func TestForPeerHTTPKeepsHostHeader(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.Host, "localhost:") {
			http.Error(w, "wrong host "+r.Host, http.StatusMisdirectedRequest)
		}
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	pc, ok := ForPeer(mustParse(t, fmt.Sprintf("http://localhost:%d/healthz", port)), "127.0.0.1")
	if !ok {
		t.Fatal("http check not aimable")
	}
	if want := fmt.Sprintf("http://127.0.0.1:%d/healthz", port); pc.String() != want {
		t.Errorf("peer form %q, want %q", pc, want)
	}
	if err := checkWithin(pc, 5*time.Second); err != nil {
		t.Errorf("peer form: %v", err)
	}
	// Aiming a peer form again keeps the original name.
	pc2, _ := ForPeer(pc, "127.0.0.1")
	if err := checkWithin(pc2, 5*time.Second); err != nil {
		t.Errorf("peer form of a peer form: %v", err)
	}
	// An IP-named check sends the peer IP as Host.
	pc3, _ := ForPeer(mustParse(t, fmt.Sprintf("http://127.0.0.2:%d/healthz", port)), "127.0.0.1")
	if err := checkWithin(pc3, 5*time.Second); err == nil || !strings.Contains(err.Error(), "421") {
		t.Errorf("IP-named peer form: want the server to see the IP as Host (421), got %v", err)
	}
}

// TestPeerProberReport: Check returns the peer's /status as it answered
// it, for the caller to read, and its health; nothing when /status does
// not answer, answers an error or does not parse, while the proxy check
// alone still passes the probe.
func TestPeerProberReport(t *testing.T) {
	const doc = `{"protocol":2,"instance_id":"i-0abc","health":"up","coordinator":"i-0co","epoch":3,"eips":[
		{"allocation_id":"eipalloc-1","role":"holder","term":"3.7"}]}` + "\n"
	mux := http.NewServeMux()
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, doc)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	proxy := proxyListener(t)
	checks, err := ParseAll([]string{fmt.Sprintf("tcp://127.0.0.1:%d", proxy)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	r, err := NewPeerProber(checks, port, time.Second).Check(ctx, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if !r.Answered || r.Health != "up" || string(r.Status) != doc || !json.Valid(r.Status) {
		t.Errorf("report %+v (status %q), want the document as served", r, r.Status)
	}

	// /status off: checks pass, nothing said.
	r, err = NewPeerProber(checks, 0, time.Second).Check(ctx, "127.0.0.1")
	if err != nil || r.Answered || r.Status != nil {
		t.Errorf("without /status: report %+v, err %v", r, err)
	}
	// /status unreachable: checks pass, nothing said.
	r, err = NewPeerProber(checks, closedPort(t), time.Second).Check(ctx, "127.0.0.1")
	if err != nil || r.Answered || r.Status != nil {
		t.Errorf("unreachable /status: report %+v, err %v", r, err)
	}
	// /status answering an error or something that is not JSON: nothing
	// said either.
	for name, h := range map[string]http.HandlerFunc{
		"500": func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", http.StatusInternalServerError) },
		"404": http.NotFound,
		"not JSON": func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprint(w, "<html>eipd</html>")
		},
	} {
		bad := httptest.NewServer(h)
		p := NewPeerProber(checks, bad.Listener.Addr().(*net.TCPAddr).Port, time.Second)
		r, err := p.Check(ctx, "127.0.0.1")
		if err != nil || r.Answered || r.Status != nil || r.Health != "" {
			t.Errorf("%s /status: report %+v, err %v; want the probe to pass on the proxy check, nothing said", name, r, err)
		}
		// Nothing to aim at the peer: only its word counts, and it has
		// none.
		if _, err := NewPeerProber(nil, bad.Listener.Addr().(*net.TCPAddr).Port, time.Second).Check(ctx, "127.0.0.1"); err == nil {
			t.Errorf("%s /status and no check: want an error", name)
		}
		bad.Close()
	}
}

// TestPeerProberQuery: a probe asks /status?fresh=1 when marked with
// WithFreshStatus, names its coordinator and epoch (coordinator=, epoch=)
// when marked with WithCoordinator, and the coordinator's private IP too
// (coordinator_ip=) with WithCoordinatorAt, and the member asking (from=)
// with WithFrom; a plain probe asks plain /status.
func TestPeerProberQuery(t *testing.T) {
	queries := make(chan url.Values, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/status" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		queries <- r.URL.Query()
		fmt.Fprint(w, `{"instance_id":"i-0abc","health":"up","eips":[]}`)
	}))
	t.Cleanup(srv.Close)
	p := NewPeerProber(nil, srv.Listener.Addr().(*net.TCPAddr).Port, 5*time.Second)
	bg := context.Background()
	for _, c := range []struct {
		name string
		ctx  context.Context
		want url.Values
	}{
		{"plain", bg, url.Values{}},
		{"fresh", WithFreshStatus(bg), url.Values{"fresh": {"1"}}},
		{"coordinator", WithCoordinator(bg, "i-0c00rd", 17), url.Values{"coordinator": {"i-0c00rd"}, "epoch": {"17"}}},
		{"both", WithCoordinator(WithFreshStatus(bg), "i-0c00rd", 2), url.Values{"fresh": {"1"}, "coordinator": {"i-0c00rd"}, "epoch": {"2"}}},
		{"coordinator at", WithCoordinatorAt(bg, "i-0c00rd", "10.0.3.4", 9),
			url.Values{"coordinator": {"i-0c00rd"}, "coordinator_ip": {"10.0.3.4"}, "epoch": {"9"}}},
		{"coordinator at no IP", WithCoordinatorAt(bg, "i-0c00rd", "", 9), url.Values{"coordinator": {"i-0c00rd"}, "epoch": {"9"}}},
		{"from", WithFrom(bg, "i-0member"), url.Values{"from": {"i-0member"}}},
		{"from nobody", WithFrom(bg, ""), url.Values{}},
		{"all", WithFrom(WithCoordinatorAt(WithFreshStatus(bg), "i-0c00rd", "10.0.3.4", 3), "i-0c00rd"),
			url.Values{"fresh": {"1"}, "from": {"i-0c00rd"}, "coordinator": {"i-0c00rd"}, "coordinator_ip": {"10.0.3.4"}, "epoch": {"3"}}},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
			defer cancel()
			if r, err := p.Check(ctx, "127.0.0.1"); err != nil || !r.Answered {
				t.Fatalf("report %+v, err %v", r, err)
			}
			if got := <-queries; !reflect.DeepEqual(got, c.want) {
				t.Errorf("query %v, want %v", got, c.want)
			}
		})
	}
	if id, epoch, ok := CoordinatorOf(WithCoordinator(bg, "i-1", 4)); !ok || id != "i-1" || epoch != 4 {
		t.Errorf("CoordinatorOf = %q %d %v", id, epoch, ok)
	}
	at := WithCoordinatorAt(bg, "i-1", "10.0.0.1", 4)
	if id, epoch, ok := CoordinatorOf(at); !ok || id != "i-1" || epoch != 4 || CoordinatorIP(at) != "10.0.0.1" {
		t.Errorf("CoordinatorOf, CoordinatorIP of WithCoordinatorAt = %q %d %v %q", id, epoch, ok, CoordinatorIP(at))
	}
	if FromOf(WithFrom(bg, "i-2")) != "i-2" {
		t.Error("FromOf")
	}
	if _, _, ok := CoordinatorOf(bg); ok || FreshStatusWanted(bg) || !FreshStatusWanted(WithFreshStatus(bg)) ||
		CoordinatorIP(bg) != "" || FromOf(bg) != "" {
		t.Error("an unmarked context is marked")
	}
}

// probeServer is a member's status listener answering /probe with answer
// (nil: 404, as for an instance it does not know) and recording the asked
// instance.
func probeServer(t *testing.T, answer func(instance string) any, asked chan<- string) int {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/probe" || r.Method != http.MethodGet {
			http.NotFound(w, r)
			return
		}
		inst := r.URL.Query().Get("instance")
		if asked != nil {
			asked <- inst
		}
		a := answer(inst)
		if a == nil {
			http.Error(w, "not a member this daemon knows", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().(*net.TCPAddr).Port
}

// TestCheckVia: the coordinator asks another member (/probe?instance=ID)
// what it sees of a member it cannot reach: reachable or not (and why),
// whether that member's eipd answered and what it holds. answered is false
// when the member asked does not say (no answer, an error status, a
// document that does not parse), with err saying why.
func TestCheckVia(t *testing.T) {
	asked := make(chan string, 1)
	reachable := probeServer(t, func(id string) any {
		return ProbeAnswer{InstanceID: id, Reachable: true, EIPDAnswered: true, Holding: []string{"eipalloc-1", "eipalloc-2"}}
	}, asked)
	unreachable := probeServer(t, func(id string) any {
		return ProbeAnswer{InstanceID: id, Error: "probe peer 10.0.0.7: tcp 10.0.0.7:80: connection refused"}
	}, nil)
	// Its proxy serves but its eipd does not answer: reachable, nothing
	// said of what it holds.
	silent := probeServer(t, func(id string) any { return ProbeAnswer{InstanceID: id, Reachable: true} }, nil)
	unknown := probeServer(t, func(string) any { return nil }, nil)
	garbled := probeServer(t, func(string) any { return "reachable, probably" }, nil)
	hang := make(chan struct{})
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(hanging.Close)
	t.Cleanup(func() { close(hang) })

	const target = "i-0 target&x=1"
	check := func(port int, timeout time.Duration) (ProbeAnswer, bool, error) {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		return NewPeerProber(nil, port, time.Second).CheckVia(ctx, "127.0.0.1", target)
	}
	for name, c := range map[string]struct {
		port int
		want ProbeAnswer
	}{
		"reachable":                  {reachable, ProbeAnswer{InstanceID: target, Reachable: true, EIPDAnswered: true, Holding: []string{"eipalloc-1", "eipalloc-2"}}},
		"unreachable from there too": {unreachable, ProbeAnswer{InstanceID: target, Error: "probe peer 10.0.0.7: tcp 10.0.0.7:80: connection refused"}},
		"eipd silent":                {silent, ProbeAnswer{InstanceID: target, Reachable: true}},
	} {
		a, answered, err := check(c.port, 10*time.Second)
		if !answered || err != nil || !reflect.DeepEqual(a, c.want) {
			t.Errorf("%s: %+v answered %v err %v, want %+v", name, a, answered, err, c.want)
		}
	}
	if got := <-asked; got != target {
		t.Errorf("asked about %q, want the instance ID, escaped in the query", got)
	}
	for name, port := range map[string]int{"404": unknown, "not an answer": garbled, "no listener": closedPort(t), "port off": 0} {
		if _, answered, err := check(port, 10*time.Second); answered || err == nil {
			t.Errorf("%s: answered %v err %v, want not answered with the reason", name, answered, err)
		}
	}
	start := time.Now()
	_, answered, err := check(hanging.Listener.Addr().(*net.TCPAddr).Port, 200*time.Millisecond)
	if answered || err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("a member that hangs: answered %v err %v after %s, want not answered once the context ends", answered, err, time.Since(start))
	}
}

// TestNotify: POST /notice?from=ID to the coordinator; an error when it
// does not take it.
func TestNotify(t *testing.T) {
	type notice struct{ method, from string }
	got := make(chan notice, 1)
	taking := true
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		ok := taking
		mu.Unlock()
		if r.URL.Path != "/notice" || !ok {
			http.Error(w, "no notice taken", http.StatusNotFound)
			return
		}
		got <- notice{r.Method, r.URL.Query().Get("from")}
		fmt.Fprint(w, "ok\n")
	}))
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p := NewPeerProber(nil, port, time.Second)
	if err := p.Notify(ctx, "127.0.0.1", "i-0member"); err != nil {
		t.Fatal(err)
	}
	if n := <-got; n != (notice{http.MethodPost, "i-0member"}) {
		t.Errorf("notice %+v, want POST from i-0member", n)
	}
	mu.Lock()
	taking = false
	mu.Unlock()
	if err := p.Notify(ctx, "127.0.0.1", "i-0member"); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("notice refused: %v, want the status in the error", err)
	}
	if err := NewPeerProber(nil, closedPort(t), time.Second).Notify(ctx, "127.0.0.1", "i-0member"); err == nil {
		t.Error("notice to nobody: want an error")
	}
	if err := NewPeerProber(nil, 0, time.Second).Notify(ctx, "127.0.0.1", "i-0member"); err == nil {
		t.Error("notice with the status port off: want an error")
	}
}

func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// TestPeerProberStatusKeepsConnection: successive probes read a peer's
// /status over one kept connection (its proxy's check still dials anew),
// and a peer whose eipd went away fails the next probe as a refused
// connection would.
func TestPeerProberStatusKeepsConnection(t *testing.T) {
	var mu sync.Mutex
	conns := 0
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		// As the status listener writes it: json.Encoder ends with a newline.
		fmt.Fprint(w, `{"instance_id":"i-0abc","health":"up","eips":[]}`+"\n")
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)
	port := srv.Listener.Addr().(*net.TCPAddr).Port
	p := NewPeerProber(nil, port, time.Second)
	for i := range 5 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		r, err := p.Check(ctx, "127.0.0.1")
		cancel()
		if err != nil || !r.Answered {
			t.Fatalf("probe %d: report %+v, err %v", i, r, err)
		}
	}
	mu.Lock()
	n := conns
	mu.Unlock()
	if n != 1 {
		t.Errorf("5 probes opened %d connections to /status, want 1", n)
	}

	srv.Close() // the peer's eipd is gone
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if r, err := p.Check(ctx, "127.0.0.1"); err == nil || r.Answered {
		t.Errorf("probe after the peer's eipd stopped: report %+v, err %v, want an error", r, err)
	}
}
