package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
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

// TestPeerProberReport: Check returns what the peer's /status says it
// holds, and nothing when /status does not answer or the probe fails.
func TestPeerProberReport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"instance_id":"i-0abc","health":"up","eips":[
			{"allocation_id":"eipalloc-1","role":"holder","term":7},
			{"allocation_id":"eipalloc-2","role":"standby","term":3}]}`)
	}))
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
	if !r.Answered || r.Health != "up" || !r.Holds("eipalloc-1") || r.Holds("eipalloc-2") || r.Holds("eipalloc-3") ||
		r.Terms["eipalloc-1"] != 7 {
		t.Errorf("report %+v", r)
	}

	// /status off: checks pass, nothing said.
	r, err = NewPeerProber(checks, 0, time.Second).Check(ctx, "127.0.0.1")
	if err != nil || r.Answered || r.Holds("eipalloc-1") {
		t.Errorf("without /status: report %+v, err %v", r, err)
	}
	// /status unreachable: checks pass, nothing said.
	r, err = NewPeerProber(checks, closedPort(t), time.Second).Check(ctx, "127.0.0.1")
	if err != nil || r.Answered {
		t.Errorf("unreachable /status: report %+v, err %v", r, err)
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
