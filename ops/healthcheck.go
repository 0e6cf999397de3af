package ops

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/eipd/eipd/internal/cli"
	"github.com/eipd/eipd/internal/config"
)

// Healthcheck is `eipd healthcheck`, for container health checks: the
// image has no shell or curl, so the binary checks its own /healthz, at the
// address the daemon listens on (--listen / EIPD_LISTEN, as for eipd run).
func Healthcheck(ctx context.Context, args []string, env cli.Env) error {
	getenv, stderr := env.Getenv, env.Stderr
	fs := flag.NewFlagSet("eipd healthcheck", flag.ContinueOnError)
	listen := fs.String("listen", config.EnvOr(getenv, "listen"), "the daemon's status address (EIPD_LISTEN); /healthz is read on it, over loopback when it listens on all addresses")
	u := fs.String("url", "", "URL to GET instead of the one --listen gives; 2xx means healthy")
	if err := cli.ParseFlags(fs, args, stderr, cli.FlagUsage(fs, "eipd healthcheck [--listen ADDR | --url URL]")); err != nil {
		return err
	}
	target := *u
	if target == "" {
		var err error
		if target, err = healthzURL(*listen); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return cli.Usagef("--url %q: %v", target, err)
	}
	resp, err := getOnce(ctx, req)
	if err != nil {
		return fmt.Errorf("healthcheck %s: %w", target, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("healthcheck %s: %s: %s", target, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// healthzURL is the /healthz URL of a daemon listening on listen: a
// wildcard address (":9380", "0.0.0.0:9380", "[::]:9380") is reached over
// loopback, a specific address (the private IP) on itself.
func healthzURL(listen string) (string, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port == "" {
		return "", cli.Usagef("--listen %q must be host:port, e.g. :9380", listen)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}

// getOnce sends req on a connection of its own and returns the response;
// the body closes the connection. `eipd healthcheck`, which a container
// runtime starts every few seconds, only ever GETs the local daemon's
// /healthz over plain HTTP: for that, net/http's Transport (connection
// pool, HTTP/2 negotiation, proxy lookup, two goroutines per connection)
// costs about 0.6 MiB of RSS and does nothing useful. Other schemes go
// through http.DefaultClient.
func getOnce(ctx context.Context, req *http.Request) (*http.Response, error) {
	if req.URL.Scheme != "http" {
		return http.DefaultClient.Do(req)
	}
	addr := req.URL.Host
	if req.URL.Port() == "" {
		addr = net.JoinHostPort(req.URL.Hostname(), "80")
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	req.Close = true // Connection: close; the server ends the body
	if err := req.Write(conn); err != nil {
		conn.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		conn.Close()
		return nil, err
	}
	resp.Body = readCloser{resp.Body, conn}
	return resp, nil
}

// readCloser reads the response body and closes the connection under it.
type readCloser struct {
	io.Reader
	conn net.Conn
}

func (r readCloser) Close() error { return r.conn.Close() }
