package health

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, raw string) Checker {
	t.Helper()
	c, err := Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func checkWithin(c Checker, d time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return c.Check(ctx)
}

func TestTCPCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acceptLoop(t, l)
	c := mustParse(t, "tcp://"+l.Addr().String())
	if err := checkWithin(c, 5*time.Second); err != nil {
		t.Fatalf("listening port: %v", err)
	}

	closed := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	err = checkWithin(mustParse(t, "tcp://"+closed), 5*time.Second)
	if err == nil {
		t.Fatal("closed port: want error")
	}
	if want := "tcp " + closed + ": "; !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("error %q: want prefix %q and 'refused'", err, want)
	}

	// An expired context must fail the check, not hang or pass.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.Check(ctx); err == nil {
		t.Error("cancelled context: want error")
	}
}

func TestHTTPCheckStatus(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
			fmt.Fprintln(w, "ok")
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		case "/redirect":
			// To a path that fails: a followed redirect would turn this red.
			http.Redirect(w, r, "/fail", http.StatusFound)
		case "/fail":
			http.Error(w, "backend down", http.StatusServiceUnavailable)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)

	tests := []struct {
		path string
		ok   bool
	}{
		{"/ok", true},
		{"/nocontent", true},
		{"/redirect", true},
		{"/fail", false},
		{"/missing", false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			err := checkWithin(mustParse(t, srv.URL+tt.path), 5*time.Second)
			if tt.ok && err != nil {
				t.Fatalf("want healthy, got %v", err)
			}
			if !tt.ok {
				if err == nil {
					t.Fatal("want error")
				}
				if !strings.Contains(err.Error(), "status") || !strings.Contains(err.Error(), srv.URL+tt.path) {
					t.Errorf("error %q should name the URL and status", err)
				}
			}
		})
	}
}

func TestHTTPCheckRefused(t *testing.T) {
	err := checkWithin(mustParse(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", freePort(t))), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("want connection refused, got %v", err)
	}
}

func TestHTTPCheckTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select { // black hole: never answers while the test runs
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // runs before srv.Close

	start := time.Now()
	err := checkWithin(mustParse(t, srv.URL+"/"), 200*time.Millisecond)
	if err == nil {
		t.Fatal("black-hole server: want error")
	}
	if !strings.Contains(err.Error(), "deadline") && !strings.Contains(err.Error(), "timeout") && !strings.Contains(err.Error(), "timed out") {
		t.Errorf("error %q does not say it timed out", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("check took %v, the timeout was not honoured", el)
	}
}

func TestHTTPSCheck(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(srv.Close)
	// The test server's certificate is not signed by a system root: the
	// check must refuse it rather than skip verification.
	err := checkWithin(mustParse(t, srv.URL+"/"), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("self-signed certificate: want a certificate error, got %v", err)
	}
}

func TestHTTPCheckNoConnectionPileUp(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	open := 0
	maxOpen := 0
	var states = make(chan http.ConnState, 1000)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) { states <- s }
	srv.Start()
	t.Cleanup(srv.Close)

	c := mustParse(t, srv.URL+"/")
	for range 20 {
		if err := checkWithin(c, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "connections closed", func() bool {
		for {
			select {
			case s := <-states:
				switch s {
				case http.StateNew:
					open++
					maxOpen = max(maxOpen, open)
				case http.StateClosed, http.StateHijacked:
					open--
				}
			default:
				return open == 0
			}
		}
	})
	if maxOpen > 2 {
		t.Errorf("up to %d connections open at once over sequential checks, want them closed", maxOpen)
	}
}
