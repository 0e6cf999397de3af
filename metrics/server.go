package metrics

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ServerConfig configures the status listener.
type ServerConfig struct {
	// Listen is host:port. Peers probe /status on it, so in production it
	// binds the private IP; tests bind 127.0.0.1:0.
	Listen string
	// EnablePprof serves /debug/pprof/. Off by default: profiles expose
	// internals and a CPU profile costs CPU on a proxy box.
	EnablePprof bool
	// Live returns nil while the daemon makes progress, or why it does not
	// (a wedged main loop); /healthz then answers 503 with the reason, so a
	// container health check restarts the daemon as systemd's watchdog
	// would. nil: /healthz always answers 200.
	Live func() error
	// Notice takes a member's notice (POST /notice?from=INSTANCE-ID): its
	// state changed, the coordinator probes it now. It changes no state and
	// carries no authority. nil: /notice answers 404.
	Notice func(from string)
	// Probe probes another member for the coordinator (GET
	// /probe?instance=INSTANCE-ID) and returns the answer to encode; ok is
	// false for an instance the daemon does not know (404). nil: 404.
	Probe func(ctx context.Context, instance string) (answer any, ok bool)
}

// shutdownTimeout bounds how long Serve waits for in-flight requests once
// its context ends; a scrape or status read is quick.
const shutdownTimeout = 5 * time.Second

// Server is the read-only HTTP server of the status listener.
type Server struct {
	cfg    ServerConfig
	logger hclog.Logger
	srv    *http.Server
}

// Listen binds cfg.Listen. It is separate from Serve so that main can fail
// early on a bad address and tests can bind 127.0.0.1:0 and learn the port.
func Listen(cfg ServerConfig) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on status address %s: %w", cfg.Listen, err)
	}
	return ln, nil
}

// NewServer builds the server. status returns what /status encodes as JSON
// for the request (which may ask for a fresh view, ?fresh=1)
// (the same document `eipd status --json` prints); ready returns nil when the
// daemon is ready (identity known, own check up) or the reason it is not.
// Either may be nil: status then serves {} and ready is always nil.
func NewServer(cfg ServerConfig, m *Metrics, status func(*http.Request) any, ready func() error, logger hclog.Logger) *Server {
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	s := &Server{cfg: cfg, logger: logger}
	writeTimeout := 15 * time.Second
	if cfg.EnablePprof {
		// /debug/pprof/profile and trace sample for up to
		// maxProfileSeconds.
		writeTimeout = (maxProfileSeconds + 5) * time.Second
	}
	s.srv = &http.Server{
		Handler:           s.handler(m, status, ready),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       60 * time.Second,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          logger.StandardLogger(&hclog.StandardLoggerOptions{InferLevels: true}),
	}
	return s
}

// Handler is the server's handler, for tests and for embedding.
func (s *Server) Handler() http.Handler { return s.srv.Handler }

// Run binds cfg.Listen and serves until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := Listen(s.cfg)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully (in-flight
// requests get shutdownTimeout) and returns nil. ln is closed on return.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.logger.Info("status listener started", "address", ln.Addr().String(), "pprof", s.cfg.EnablePprof)
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()

	select {
	case err := <-errc:
		return fmt.Errorf("serve status on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	// The parent context is over; shutdown gets its own deadline.
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	err := s.srv.Shutdown(sctx)
	if err != nil {
		// Deadline passed with requests still running: cut them off.
		_ = s.srv.Close()
	}
	if serr := <-errc; serr != nil && !errors.Is(serr, http.ErrServerClosed) {
		return fmt.Errorf("serve status on %s: %w", ln.Addr(), serr)
	}
	if err != nil {
		return fmt.Errorf("shut down status listener on %s: %w", ln.Addr(), err)
	}
	s.logger.Info("status listener stopped", "address", ln.Addr().String())
	return nil
}

func (s *Server) handler(m *Metrics, status func(*http.Request) any, ready func() error) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(m.Registry(), promhttp.HandlerOpts{
		ErrorLog:      s.logger.Named("metrics").StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Warn}),
		ErrorHandling: promhttp.ContinueOnError,
		// A scrape must not pile up behind a slow collector.
		MaxRequestsInFlight: 4,
		Timeout:             10 * time.Second,
	}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		if s.cfg.Live != nil {
			if err := s.cfg.Live(); err != nil {
				writeText(w, http.StatusServiceUnavailable, "not live: "+err.Error()+"\n")
				return
			}
		}
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if ready != nil {
			if err := ready(); err != nil {
				writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error()+"\n")
				return
			}
		}
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		var v any = struct{}{}
		if status != nil {
			v = status(r)
		}
		s.writeJSON(w, v)
	})
	mux.HandleFunc("/notice", func(w http.ResponseWriter, r *http.Request) {
		from := r.URL.Query().Get("from")
		if s.cfg.Notice == nil || from == "" || len(from) > 64 {
			writeText(w, http.StatusNotFound, "no notice taken\n")
			return
		}
		s.cfg.Notice(from)
		writeText(w, http.StatusOK, "ok\n")
	})
	mux.HandleFunc("/probe", func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.Probe == nil {
			writeText(w, http.StatusNotFound, "no probe\n")
			return
		}
		v, ok := s.cfg.Probe(r.Context(), r.URL.Query().Get("instance"))
		if !ok {
			writeText(w, http.StatusNotFound, "not a member this daemon knows\n")
			return
		}
		s.writeJSON(w, v)
	})
	if s.cfg.EnablePprof {
		pprofHandlers(mux)
	}
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "eipd\n\n/metrics\n/healthz\n/readyz\n/status\n/notice (POST)\n/probe\n")
	})
	return readOnly(mux)
}

func (s *Server) writeJSON(w http.ResponseWriter, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		s.logger.Error("encode JSON answer", "error", err)
		writeText(w, http.StatusInternalServerError, "encode: "+err.Error()+"\n")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// readOnly refuses every method but GET and HEAD (and POST on /notice):
// nothing on this listener changes state, and peers reach it. A notice
// only makes the coordinator probe its sender sooner.
func readOnly(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/notice" {
			if r.Method != http.MethodPost {
				w.Header().Set("Allow", "POST")
				writeText(w, http.StatusMethodNotAllowed, "method not allowed\n")
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeText(w, http.StatusMethodNotAllowed, "method not allowed\n")
			return
		}
		next.ServeHTTP(w, r)
	})
}

func writeText(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body))
}
