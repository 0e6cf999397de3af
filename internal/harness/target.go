package harness

import (
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"time"
)

// Backend is the web server behind an instance's health target: it names
// the instance that served a request, so that a client of the EIP can tell
// where the EIP led it. GET /healthz answers "ok", for when it is the
// health target itself (no HAProxy in front).
type Backend struct {
	srv  *http.Server
	done chan struct{}
}

// ServeBackend serves instanceID's backend on ln until Close.
func ServeBackend(ln net.Listener, instanceID string) *Backend {
	b := &Backend{done: make(chan struct{})}
	b.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			fmt.Fprint(w, "ok")
			return
		}
		fmt.Fprint(w, instanceID)
	})}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(ln)
	}()
	return b
}

// Close closes the listener and every connection, as when a proxy dies
// (new connections are refused), and waits until the server has stopped.
func (b *Backend) Close() error {
	err := b.srv.Close()
	<-b.done
	return err
}

// HAProxyConfig is the configuration of an instance's HAProxy: a frontend
// on the instance's IP whose monitor-uri /healthz fails while the backend
// is down, in front of the instance's Backend.
type HAProxyConfig struct {
	IP          string
	Port        int // the frontend: what the EIP's traffic reaches
	BackendPort int
	// StatsPort, when not 0, is the runtime API (stats socket) on IP, for
	// health checks through it (haproxy://ip:port?backend=be).
	StatsPort int
	// CheckInterval is how often HAProxy checks the backend.
	CheckInterval time.Duration
}

// String is the configuration file.
func (c HAProxyConfig) String() string {
	var stats string
	if c.StatsPort != 0 {
		stats = fmt.Sprintf("    stats socket ipv4@%s:%d level admin\n", c.IP, c.StatsPort)
	}
	return fmt.Sprintf(`global
    maxconn 200
%[4]sdefaults
    mode http
    timeout connect 1s
    timeout client 10s
    timeout server 10s
frontend fe
    bind %[1]s:%[2]d
    monitor-uri /healthz
    monitor fail if { nbsrv(be) lt 1 }
    default_backend be
backend be
    option httpchk GET /
    server app %[1]s:%[3]d check inter %[5]dms rise 1 fall 2
`, c.IP, c.Port, c.BackendPort, stats, c.CheckInterval.Milliseconds())
}

// FindHAProxy is the path of the haproxy binary, or an error that says
// how to install it.
func FindHAProxy() (string, error) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		return "", fmt.Errorf("haproxy is not installed (%v): install it (Debian/Ubuntu: apt-get install haproxy; macOS: brew install haproxy)", err)
	}
	return bin, nil
}

// HAProxyArgs are the arguments that run HAProxy with the configuration
// file cfg in the foreground (it is a child, not a daemon).
func HAProxyArgs(cfg string) []string { return []string{"-f", cfg, "-db"} }

// Answers reports whether GET u answers 200 within a short timeout: a
// health target (or a daemon's listener) is up.
func Answers(u string) bool {
	hc := &http.Client{Timeout: 500 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get(u)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// WaitAnswers waits up to timeout until GET u answers 200, failing at once
// if p (the process that should answer) exits.
func WaitAnswers(u string, p *Proc, timeout time.Duration) error {
	what := u
	if pu, err := url.Parse(u); err == nil {
		what = pu.Host
	}
	deadline := time.Now().Add(timeout)
	for !Answers(u) {
		if p.Exited() {
			return fmt.Errorf("%s exited at start (%v); see %s", p.Name, p.Err, p.LogPath)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s does not answer on %s after %s; see %s", p.Name, what, timeout, p.LogPath)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return nil
}
