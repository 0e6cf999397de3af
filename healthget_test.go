package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
