package ops

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eipd/eipd/internal/cli"
)

func TestGetOnce(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet || r.URL.Path != "/healthz" || r.Header.Get("Connection") != "close" {
			http.Error(w, "bad request: "+r.Method+" "+r.URL.Path+" Connection="+r.Header.Get("Connection"), 400)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/healthz", nil)
	resp, err := getOnce(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 || string(body) != "ok" {
		t.Errorf("got %d %q %v, want 200 ok", resp.StatusCode, body, err)
	}

	// A server that accepts and never answers: the context's deadline ends it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	req, _ = http.NewRequestWithContext(ctx2, http.MethodGet, "http://"+ln.Addr().String()+"/healthz", nil)
	start := time.Now()
	if _, err := getOnce(ctx2, req); err == nil || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("silent server: %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}

	// https goes through the standard client (and verifies certificates).
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsSrv.Close()
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, tlsSrv.URL+"/healthz", nil)
	if _, err := getOnce(ctx, req); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("self-signed https: %v, want a certificate error", err)
	}
}

// TestHealthcheckUsesListen: eipd healthcheck reads /healthz where the
// daemon listens (EIPD_LISTEN or --listen), and fails with the reason.
func TestHealthcheckUsesListen(t *testing.T) {
	var fail atomic.Bool
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		if fail.Load() {
			http.Error(w, "not live: the main loop has completed no pass", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	for _, env := range []map[string]string{{"EIPD_LISTEN": ":" + port}, {"EIPD_LISTEN": "0.0.0.0:" + port}, {"EIPD_LISTEN": "127.0.0.1:" + port}} {
		if _, stderr, code := runCLI(t, env, "healthcheck"); code != 0 {
			t.Errorf("%v: exit %d %q", env, code, stderr)
		}
	}
	if _, _, code := runCLI(t, map[string]string{"EIPD_LISTEN": ":" + port}, "healthcheck", "--listen", ":1"); code != 1 {
		t.Errorf("--listen :1 should override EIPD_LISTEN and fail, exit %d", code)
	}
	if _, _, code := runCLI(t, nil, "healthcheck", "--listen", ":"+port); code != 0 {
		t.Errorf("--listen :%s: exit %d", port, code)
	}
	fail.Store(true)
	if _, stderr, code := runCLI(t, map[string]string{"EIPD_LISTEN": ":" + port}, "healthcheck"); code != 1 || !strings.Contains(stderr, "503 Service Unavailable: not live") {
		t.Errorf("healthcheck of a stuck daemon: exit %d %q", code, stderr)
	}
}

func TestHealthzURL(t *testing.T) {
	for listen, want := range map[string]string{
		":9380": "http://127.0.0.1:9380/healthz", "0.0.0.0:9380": "http://127.0.0.1:9380/healthz",
		"[::]:9380": "http://[::1]:9380/healthz", "10.0.1.5:9400": "http://10.0.1.5:9400/healthz",
		"localhost:9380": "http://localhost:9380/healthz",
	} {
		if got, err := healthzURL(listen); err != nil || got != want {
			t.Errorf("healthzURL(%q) = %q, %v; want %q", listen, got, err, want)
		}
	}
	if _, err := healthzURL("9380"); !errors.Is(err, cli.ErrUsage) {
		t.Errorf("healthzURL(9380): %v, want a usage error", err)
	}
}
