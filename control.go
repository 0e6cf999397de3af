package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/internal/cli"
	"github.com/eipd/eipd/internal/config"
)

// The control endpoint serves the local operator: `eipd status` reads the
// daemon's view and `eipd handoff` asks for a planned move. It listens on
// loopback or a unix socket only (validateControl), since it moves EIPs.

const handoffWait = 60 * time.Second

// listenControl listens on addr: unix:/path (the default) or a loopback
// host:port. A unix socket is created with mode 0600, so only the daemon's
// own user (and root) can move EIPs through it; its directory is created
// if missing, and a socket file left by a daemon that died is replaced.
func listenControl(addr string) (net.Listener, error) {
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

type controlServer struct {
	view *daemonView
	log  hclog.Logger
}

func newControlServer(view *daemonView, log hclog.Logger) *controlServer {
	return &controlServer{view: view, log: log}
}

func (c *controlServer) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c.view.status(r.Context(), nil))
	})
	mux.HandleFunc("POST /handoff", func(w http.ResponseWriter, r *http.Request) {
		to := r.URL.Query().Get("to")
		c.log.Info("handoff requested through the control endpoint", "to", to)
		ctx, cancel := context.WithTimeout(r.Context(), handoffWait)
		defer cancel()
		w.Header().Set("Content-Type", "application/json")
		if err := c.view.handoff(ctx, to); err != nil {
			code := http.StatusConflict
			switch {
			case errors.Is(err, errNotRunning):
				code = http.StatusServiceUnavailable
			case errors.Is(err, errUnknownTarget):
				code = http.StatusBadRequest
			}
			c.log.Warn("handoff refused", "to", to, "error", err)
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
			return
		}
		_ = json.NewEncoder(w).Encode(c.view.status(r.Context(), nil))
	})
	return mux
}

// Serve serves on ln until ctx ends.
func (c *controlServer) Serve(ctx context.Context, ln net.Listener) error {
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

// controlClient talks to the control endpoint at addr (host:port or unix:/path).
func controlClient(addr string) (*http.Client, string) {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}}
		return &http.Client{Transport: tr}, "http://eipd"
	}
	return &http.Client{}, "http://" + addr
}

func controlFlags(name string, getenv func(string) string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("eipd "+name, flag.ContinueOnError)
	addr := fs.String("control", config.EnvOr(getenv, "control"), "control address of the local daemon, host:port or unix:/path (EIPD_CONTROL)")
	return fs, addr
}

// unreachable explains a failed request to the local daemon.
func unreachable(addr string, err error) error {
	return fmt.Errorf("cannot reach the local daemon at %s (is eipd running? is --control the same as the daemon's?): %w", addr, err)
}

func cmdStatus(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, addr := controlFlags("status", getenv)
	asJSON := fs.Bool("json", false, "print the JSON document (the same as /status)")
	watch := fs.Bool("watch", false, "show the whole group, refreshed every second: members from DescribeInstances, then each member's /status")
	group := fs.String("group", getenv(config.EnvName("group")), "with --watch: the group (eipd:group tag) (EIPD_GROUP)")
	statusPort := fs.Int("status-port", 9380, "with --watch: the members' status port (the port of their --listen)")
	if err := cli.ParseFlags(fs, args, stderr, cli.FlagUsage(fs, "eipd status [--json] [--control ADDR] | eipd status --watch --group NAME [--status-port PORT]")); err != nil {
		return err
	}
	if *watch {
		switch {
		case *asJSON:
			return cli.Usagef("--watch shows a table; it cannot be combined with --json")
		case *group == "":
			return cli.Usagef("--watch needs --group (or EIPD_GROUP): the eipd:group tag of the members")
		case *statusPort < 1 || *statusPort > 65535:
			return cli.Usagef("--status-port %d is not a TCP port", *statusPort)
		}
		return watchGroup(ctx, *group, *statusPort, getenv, stdout)
	}
	client, base := controlClient(*addr)
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/status", nil)
	resp, err := client.Do(req)
	if err != nil {
		return unreachable(*addr, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("read status: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var s statusDoc
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	printStatus(stdout, s)
	return nil
}

func printStatus(w io.Writer, s statusDoc) {
	if s.Waiting != "" {
		fmt.Fprintf(w, "%s  health %s", s.Waiting, s.Health)
		if s.WaitingAttempts > 0 {
			fmt.Fprintf(w, "  (%d attempt(s) failed; last: %s)", s.WaitingAttempts, s.WaitingError)
		}
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "instance %s (%s, %s)  health %s", s.InstanceID, s.AvailabilityZone, s.PrivateIP, s.Health)
	if s.Draining != "" {
		fmt.Fprintf(w, "  draining (%s)", s.Draining)
	}
	if !s.AWSStateKnown {
		fmt.Fprint(w, "  AWS state unknown")
	}
	fmt.Fprintln(w)
	switch {
	case s.IsCoordinator:
		fmt.Fprintf(w, "coordinates the group (epoch %d)\n", s.Epoch)
	case s.Coordinator != "":
		fmt.Fprintf(w, "coordinator %s (epoch %d)\n", s.Coordinator, s.Epoch)
	default:
		fmt.Fprintln(w, "no coordinator known")
	}
	if u := s.AWSUnreachable; u != nil {
		last := "never"
		if !u.LastAnswer.IsZero() {
			last = u.LastAnswer.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "EC2 API UNREACHABLE since %s (last answer %s): %s\n  %s\n", u.Since.Format(time.RFC3339), last, u.Cause, u.Hint)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALLOCATION\tPUBLIC IP\tROLE\tHOLDER\tTERM\tASSOCIATED TO\tWHY")
	for _, e := range s.EIPs {
		why := e.Why
		if e.HandoffBlocked {
			why = "HANDOFF BLOCKED: " + why
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.AllocationID, e.PublicIP, e.Role, dash(e.Holder), dash(e.Term),
			dash(e.AssociatedTo), why)
	}
	_ = tw.Flush()
	for _, e := range s.EIPs {
		if f := e.LastFailover; f != nil {
			fmt.Fprintf(w, "last move of %s: %s %s → %s at %s (%.2fs)\n", e.AllocationID, f.Reason, dash(f.From), f.To,
				f.Time.Format(time.RFC3339), f.DurationSeconds)
		}
	}
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdHandoff(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs, addr := controlFlags("handoff", getenv)
	to := fs.String("to", "", "instance ID to hand off to (default: the best ready member)")
	if err := cli.ParseFlags(fs, args, stderr, cli.FlagUsage(fs, "eipd handoff [--to INSTANCE-ID] [--control ADDR]")); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return cli.Usagef("unexpected arguments %q (see 'eipd handoff -h')", fs.Args())
	}
	if *to != "" && !strings.HasPrefix(*to, "i-") {
		return cli.Usagef("--to %q is not an instance ID (i-…)", *to)
	}
	client, base := controlClient(*addr)
	ctx, cancel := context.WithTimeout(ctx, handoffWait+5*time.Second)
	defer cancel()
	u := base + "/handoff"
	if *to != "" {
		u += "?to=" + url.QueryEscape(*to)
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
	resp, err := client.Do(req)
	if err != nil {
		return unreachable(*addr, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(body, &e) == nil && e.Error != "" {
			return fmt.Errorf("handoff refused: %s", e.Error)
		}
		return fmt.Errorf("handoff: %s", resp.Status)
	}
	var s statusDoc
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	fmt.Fprintln(stdout, "handoff done")
	printStatus(stdout, s)
	return nil
}

// cmdHealthcheck is for container health checks: the image has no shell
// or curl, so the binary checks its own /healthz, at the address the
// daemon listens on (--listen / EIPD_LISTEN, as for eipd run).
func cmdHealthcheck(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
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
