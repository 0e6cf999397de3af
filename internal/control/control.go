// Package control is the local operator's way into a running daemon: the
// control endpoint that `eipd status` and `eipd handoff` use (its listener,
// a unix socket of mode 0600 or loopback TCP, its server and its client),
// and the /status document it carries, which the status listener serves
// too.
package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The control endpoint serves the local operator: `eipd status` reads the
// daemon's view and `eipd handoff` asks for a planned move. It listens on
// loopback or a unix socket only (internal/config validates --control),
// since it moves EIPs.

// HandoffWait bounds a handoff asked through the control endpoint.
const HandoffWait = 60 * time.Second

// Listen listens on addr: unix:/path (the default) or a loopback
// host:port. A unix socket is created with mode 0600, so only the daemon's
// own user (and root) can move EIPs through it; its directory is created
// if missing, and a socket file left by a daemon that died is replaced.
func Listen(addr string) (net.Listener, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("control listener %s: %w", addr, err)
		}
		return ln, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("control socket %s: %w (under systemd, RuntimeDirectory=eipd provides /run/eipd)", path, err)
	}
	if err := removeStaleSocket(path); err != nil {
		return nil, err
	}
	// The umask makes the socket 0600 from the start (no window in which
	// another user could connect); Chmod states it for umasks that allow
	// less. Nothing else creates files while the daemon starts.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return ln, nil
}

// removeStaleSocket removes path only when it is a socket nobody listens
// on: a live daemon's socket, or a file that is not a socket, is left alone
// and reported.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if fi.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket %s: the path exists and is not a socket; remove it or choose another --control", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("control socket %s: another process (another eipd?) is listening on it", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("control socket %s: remove the stale socket: %w", path, err)
	}
	return nil
}

// Server serves the control endpoint.
type Server struct {
	status  func(context.Context) StatusDoc
	handoff func(ctx context.Context, to string) error
	log     hclog.Logger
}

// NewServer serves status, the daemon's view, on GET /status, and hands
// POST /handoff?to=ID to handoff (to is empty for the best ready member),
// which refuses with ErrNotRunning, ErrUnknownTarget or another error.
func NewServer(status func(context.Context) StatusDoc, handoff func(ctx context.Context, to string) error, log hclog.Logger) *Server {
	return &Server{status: status, handoff: handoff, log: log}
}

func (c *Server) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.status(r.Context()))
	})
	mux.HandleFunc("POST /handoff", func(w http.ResponseWriter, r *http.Request) {
		to := r.URL.Query().Get("to")
		c.log.Info("handoff requested through the control endpoint", "to", to)
		ctx, cancel := context.WithTimeout(r.Context(), HandoffWait)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := c.handoff(ctx, to); err != nil {
			code := http.StatusConflict
			switch {
			case errors.Is(err, ErrNotRunning):
				code = http.StatusServiceUnavailable
			case errors.Is(err, ErrUnknownTarget):
				code = http.StatusBadRequest
			}
			c.log.Warn("handoff refused", "to", to, "error", err)
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(c.status(r.Context()))
	})
	return mux
}

// Serve serves on ln until ctx ends.
func (c *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{Handler: c.handler(), ReadHeaderTimeout: 5 * time.Second,
		ErrorLog: c.log.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true})}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
		return nil
	case err := <-done:
		return err
	}
}

// Client talks to the control endpoint at addr (host:port or unix:/path):
// the HTTP client and the base URL of the requests.
func Client(addr string) (*http.Client, string) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return &http.Client{Transport: tr}, "http://eipd"
	}
	return &http.Client{}, "http://" + addr
}
