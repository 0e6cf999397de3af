// Package health runs eipd's local health checks (TCP, HTTP, HAProxy runtime
// API), keeps their rise/fall hysteresis, and probes peers. docs/design.md.
package health

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Checker is one health check, e.g. "tcp://127.0.0.1:80".
type Checker interface {
	// Check returns nil when healthy, else an error saying what failed,
	// e.g. "tcp 127.0.0.1:80: connect: connection refused". It honours ctx
	// for its deadline: callers bound every check with a timeout.
	Check(ctx context.Context) error
	// String returns the URL, with any password redacted, for logs.
	String() string
}

// peerAimer is implemented by checks that can be pointed at another host.
type peerAimer interface {
	forPeer(host string) (Checker, bool)
}

// ForPeer returns the same check aimed at a peer's private IP: the host is
// swapped, the port (and path, query) kept. ok is false when the check cannot
// be aimed at a peer: an HAProxy check over a unix socket, or a Checker that
// is not one of this package's.
func ForPeer(c Checker, host string) (Checker, bool) {
	a, ok := c.(peerAimer)
	if !ok || host == "" {
		return nil, false
	}
	return a.forPeer(host)
}

// Parse parses one health-check URL. The error names the URL and what to fix.
//
//	tcp://host:port
//	http://host[:port]/path, https://host[:port]/path
//	haproxy:///path/to/admin.sock?backend=NAME[&min-up=N]
//	haproxy://host:port?backend=NAME[&min-up=N]
func Parse(raw string) (Checker, error) {
	c, err := parse(raw)
	if err != nil {
		return nil, fmt.Errorf("health check %q: %w", raw, err)
	}
	return c, nil
}

// ParseAll parses every URL and reports every problem at once.
func ParseAll(raws []string) ([]Checker, error) {
	var (
		checks []Checker
		errs   []error
	)
	for _, raw := range raws {
		c, err := Parse(raw)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		checks = append(checks, c)
	}
	if len(raws) == 0 {
		errs = append(errs, errors.New("no health check given: want at least one URL such as tcp://127.0.0.1:80"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return checks, nil
}

func parse(raw string) (Checker, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("empty URL: want e.g. tcp://127.0.0.1:80")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("not a URL: %w", err)
	}
	if u.Opaque != "" {
		return nil, fmt.Errorf("missing \"//\" after %q: want e.g. %s://127.0.0.1:80", u.Scheme+":", u.Scheme)
	}
	switch strings.ToLower(u.Scheme) {
	case "tcp":
		return parseTCP(u)
	case "http", "https":
		return parseHTTP(u)
	case "haproxy":
		return parseHAProxy(u)
	case "":
		return nil, errors.New("missing scheme: want tcp://, http://, https:// or haproxy://")
	default:
		return nil, fmt.Errorf("unknown scheme %q: want tcp, http, https or haproxy", u.Scheme)
	}
}

// hostPort validates u's host and port; the port must be given explicitly
// unless defPort is set.
func hostPort(u *url.URL, defPort string) (host, port string, err error) {
	host = u.Hostname()
	if host == "" {
		return "", "", errors.New("missing host: want e.g. 127.0.0.1")
	}
	port = u.Port()
	if port == "" {
		if strings.HasSuffix(u.Host, ":") {
			return "", "", errors.New("empty port after \":\"")
		}
		if defPort == "" {
			return "", "", fmt.Errorf("missing port: want %s:PORT", host)
		}
		return host, "", nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "", "", fmt.Errorf("bad port %q: want 1-65535", port)
	}
	return host, port, nil
}

func noExtras(u *url.URL, what string) error {
	if u.User != nil {
		return fmt.Errorf("user info is not allowed in a %s check", what)
	}
	if u.Path != "" && u.Path != "/" {
		return fmt.Errorf("unexpected path %q: a %s check takes no path", u.Path, what)
	}
	if u.RawQuery != "" {
		return fmt.Errorf("unexpected query %q: a %s check takes no parameters", u.RawQuery, what)
	}
	if u.Fragment != "" {
		return fmt.Errorf("unexpected fragment %q", u.Fragment)
	}
	return nil
}

// ---- tcp ----

type tcpCheck struct {
	addr string
}

func parseTCP(u *url.URL) (Checker, error) {
	host, port, err := hostPort(u, "")
	if err != nil {
		return nil, err
	}
	if err := noExtras(u, "tcp"); err != nil {
		return nil, err
	}
	return &tcpCheck{addr: net.JoinHostPort(host, port)}, nil
}

func (c *tcpCheck) String() string { return "tcp://" + c.addr }

func (c *tcpCheck) Check(ctx context.Context) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return fmt.Errorf("tcp %s: %w", c.addr, dialReason(err))
	}
	_ = conn.Close() // connected is all this check asks
	return nil
}

func (c *tcpCheck) forPeer(host string) (Checker, bool) {
	_, port, _ := net.SplitHostPort(c.addr)
	return &tcpCheck{addr: net.JoinHostPort(host, port)}, true
}

// dialReason strips the "dial tcp ADDR:" prefix of a *net.OpError, which the
// callers already say.
func dialReason(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		if op.Timeout() {
			return fmt.Errorf("timed out: %w", op.Err)
		}
		return op.Err
	}
	return err
}

// ---- http / https ----

type httpCheck struct {
	u      *url.URL
	client *http.Client
	// For a peer form whose local URL named a host rather than an IP: the
	// Host header to send and the TLS name to verify, so the peer's proxy
	// sees the same request and its certificate is checked against the
	// same name as the local check.
	vhost, serverName string
}

func parseHTTP(u *url.URL) (Checker, error) {
	if _, _, err := hostPort(u, "default"); err != nil {
		return nil, err
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("unexpected fragment %q", u.Fragment)
	}
	cp := *u
	cp.Scheme = strings.ToLower(u.Scheme)
	return newHTTPCheck(&cp), nil
}

func newHTTPCheck(u *url.URL) *httpCheck {
	return &httpCheck{u: u, client: newHTTPClient()}
}

// newHTTPClient returns a client for checks and probes. Keep-alives are off:
// a check runs once a second at most, a fresh connection proves more than a
// reused one, and no idle connections (or their goroutines) outlive a round.
// Redirects are not followed: a 3xx is itself a healthy answer (HAProxy's
// monitor-uri setups may redirect), and following it would test something
// else. No proxy from the environment: the check is about this host.
func newHTTPClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               nil,
			DialContext:         (&net.Dialer{}).DialContext,
			DisableKeepAlives:   true,
			TLSHandshakeTimeout: 10 * time.Second, // the caller's ctx usually ends it first
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (c *httpCheck) String() string { return c.u.Redacted() }

func (c *httpCheck) Check(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.u.String(), nil)
	if err != nil {
		return fmt.Errorf("GET %s: %w", c.String(), err)
	}
	req.Header.Set("User-Agent", "eipd-health")
	if c.vhost != "" {
		req.Host = c.vhost
	}
	resp, err := c.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("GET %s: %w", c.String(), dialReason(err))
	}
	// Drain a little so the server sees a clean close; never read unbounded.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 399 {
		return fmt.Errorf("GET %s: status %s, want 2xx or 3xx", c.String(), resp.Status)
	}
	return nil
}

func (c *httpCheck) forPeer(host string) (Checker, bool) {
	cp := *c.u
	if p := c.u.Port(); p != "" {
		cp.Host = net.JoinHostPort(host, p)
	} else if strings.Contains(host, ":") {
		cp.Host = "[" + host + "]"
	} else {
		cp.Host = host
	}
	pc := newHTTPCheck(&cp)
	pc.vhost, pc.serverName = c.vhost, c.serverName
	if name := c.u.Hostname(); pc.vhost == "" && net.ParseIP(name) == nil {
		pc.vhost, pc.serverName = c.u.Host, name
	}
	if pc.serverName != "" {
		pc.client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{ServerName: pc.serverName}
	}
	return pc, true
}
