package health

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"os/user"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// haproxyCheck asks the HAProxy runtime API ("show stat") how many servers of
// a backend are UP. A proxy that accepts connections but has no live backend
// server is not healthy: that is the case a tcp:// check cannot see.
type haproxyCheck struct {
	u       *url.URL // for String
	network string   // "unix" or "tcp"
	addr    string   // socket path or host:port
	backend string
	minUp   int
}

// maxStatBytes bounds how much of a "show stat" reply is read; a config with
// thousands of proxies stays well under it.
const maxStatBytes = 64 << 20

func parseHAProxy(u *url.URL) (Checker, error) {
	c := &haproxyCheck{minUp: 1}
	if u.User != nil {
		return nil, errors.New("user info is not allowed in a haproxy check")
	}
	if u.Fragment != "" {
		return nil, fmt.Errorf("unexpected fragment %q", u.Fragment)
	}
	if u.Host == "" {
		if u.Path == "" || u.Path == "/" {
			return nil, errors.New("missing socket: want haproxy:///run/haproxy/admin.sock?backend=NAME (unix socket) or haproxy://127.0.0.1:9999?backend=NAME (TCP stats socket)")
		}
		c.network, c.addr = "unix", u.Path
	} else {
		host, port, err := hostPort(u, "")
		if err != nil {
			return nil, fmt.Errorf("%w (for a unix socket use three slashes: haproxy:///path/admin.sock)", err)
		}
		if u.Path != "" && u.Path != "/" {
			return nil, fmt.Errorf("unexpected path %q after %s: for a unix socket use three slashes: haproxy:///path/admin.sock", u.Path, u.Host)
		}
		c.network, c.addr = "tcp", net.JoinHostPort(host, port)
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("bad query %q: %w", u.RawQuery, err)
	}
	var errs []error
	for k, v := range q {
		switch k {
		case "backend":
			if len(v) != 1 || v[0] == "" {
				errs = append(errs, errors.New("backend must be given once and not empty"))
			} else {
				c.backend = v[0]
			}
		case "min-up":
			if len(v) != 1 {
				errs = append(errs, errors.New("min-up must be given once"))
				continue
			}
			n, err := strconv.Atoi(v[0])
			if err != nil || n < 1 {
				errs = append(errs, fmt.Errorf("bad min-up %q: want an integer >= 1", v[0]))
				continue
			}
			c.minUp = n
		default:
			errs = append(errs, fmt.Errorf("unknown parameter %q: want backend and min-up", k))
		}
	}
	if _, ok := q["backend"]; !ok {
		errs = append(errs, errors.New("missing backend: add ?backend=NAME (the HAProxy backend whose servers must be UP)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c.u = c.canonical()
	return c, nil
}

func (c *haproxyCheck) canonical() *url.URL {
	u := &url.URL{Scheme: "haproxy"}
	if c.network == "unix" {
		u.Path = c.addr
	} else {
		u.Host = c.addr
	}
	q := url.Values{}
	q.Set("backend", c.backend)
	q.Set("min-up", strconv.Itoa(c.minUp))
	u.RawQuery = q.Encode()
	return u
}

func (c *haproxyCheck) String() string { return c.u.String() }

// forPeer aims a TCP stats socket at the peer; a unix socket is local only.
func (c *haproxyCheck) forPeer(host string) (Checker, bool) {
	if c.network != "tcp" {
		return nil, false
	}
	_, port, _ := net.SplitHostPort(c.addr)
	cp := *c
	cp.addr = net.JoinHostPort(host, port)
	cp.u = cp.canonical()
	return &cp, true
}

func (c *haproxyCheck) Check(ctx context.Context) error {
	servers, err := c.showStat(ctx)
	if errors.Is(err, errNoBackend) {
		return fmt.Errorf("haproxy %s %s: backend %q: %w (check the backend= name against the HAProxy config)", c.network, c.addr, c.backend, err)
	}
	if err != nil {
		return fmt.Errorf("haproxy %s %s: %w", c.network, c.addr, err)
	}
	return c.judge(servers)
}

// serverStat is one server row of "show stat".
type serverStat struct {
	name, status string
}

// errNoBackend: no BACKEND row for the configured name.
var errNoBackend = errors.New("no such backend")

// showStat returns the servers of c.backend, errNoBackend if it does not exist.
func (c *haproxyCheck) showStat(ctx context.Context) ([]serverStat, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, c.network, c.addr)
	if err != nil {
		if c.network == "unix" && errors.Is(err, fs.ErrPermission) {
			return nil, fmt.Errorf("%w: %s", dialReason(err), socketPermissionFix(c.addr))
		}
		return nil, dialReason(err)
	}
	defer conn.Close()
	// The runtime API has no context; a deadline, and a cancel that
	// pulls the deadline in, keep a stuck HAProxy from stalling the round.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if _, err := io.WriteString(conn, "show stat\n"); err != nil {
		return nil, fmt.Errorf("send show stat: %w", err)
	}
	servers, err := parseShowStat(io.LimitReader(conn, maxStatBytes), c.backend)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("%w (%w)", err, ctx.Err())
	}
	return servers, err
}

// parseShowStat reads a "show stat" CSV reply and returns the server rows of
// backend. HAProxy quotes fields that contain commas (check descriptions),
// so this is real CSV, and columns are found by name since their set grows
// between versions.
func parseShowStat(r io.Reader, backend string) ([]serverStat, error) {
	br := bufio.NewReader(r)
	head, err := br.ReadString('\n')
	if err != nil && head == "" {
		return nil, fmt.Errorf("read show stat reply: %w", err)
	}
	if !strings.HasPrefix(head, "# ") {
		return nil, fmt.Errorf("unexpected reply to show stat: %q (is this an HAProxy stats socket?)", truncate(strings.TrimSpace(head), 120))
	}
	cols, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(head, "# "))).Read()
	if err != nil {
		return nil, fmt.Errorf("parse show stat header: %w", err)
	}
	idx := map[string]int{"pxname": -1, "svname": -1, "status": -1}
	for i, name := range cols {
		if _, ok := idx[name]; ok && idx[name] < 0 {
			idx[name] = i
		}
	}
	for name, i := range idx {
		if i < 0 {
			return nil, fmt.Errorf("show stat header has no %q column", name)
		}
	}
	cr := csv.NewReader(br)
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	cr.ReuseRecord = true
	var (
		servers []serverStat
		found   bool
	)
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parse show stat: %w", err)
		}
		if len(rec) <= idx["pxname"] || len(rec) <= idx["svname"] || len(rec) <= idx["status"] {
			continue
		}
		if rec[idx["pxname"]] != backend {
			continue
		}
		switch sv := rec[idx["svname"]]; sv {
		case "BACKEND":
			found = true
		case "FRONTEND":
		default:
			servers = append(servers, serverStat{name: sv, status: rec[idx["status"]]})
		}
	}
	if !found {
		return nil, errNoBackend
	}
	return servers, nil
}

// serverUp decides which HAProxy server states count as UP:
//   - "UP" and "UP n/m" (UP but failing checks, going down): HAProxy still
//     routes to it until the fall count is reached, so do we;
//   - "no check": HAProxy routes to a server without health checks, so it
//     counts as UP (enable checks on the servers if that is not what you want);
//   - everything else — DOWN, "DOWN n/m" (recovering, not yet routed to),
//     NOLB, DRAIN, MAINT (also "MAINT (via …)", "MAINT (resolution)") — is not UP.
//
// Backup servers count like any other.
func serverUp(status string) bool {
	return status == "UP" || strings.HasPrefix(status, "UP ") || status == "no check"
}

func (c *haproxyCheck) judge(servers []serverStat) error {
	up := 0
	var notUp []string
	for _, s := range servers {
		if serverUp(s.status) {
			up++
		} else {
			notUp = append(notUp, s.name+" "+s.status)
		}
	}
	if up >= c.minUp {
		return nil
	}
	sort.Strings(notUp)
	detail := ""
	if len(notUp) > 0 {
		if len(notUp) > 5 {
			notUp = append(notUp[:5], fmt.Sprintf("and %d more", len(notUp)-5))
		}
		detail = " (" + strings.Join(notUp, ", ") + ")"
	}
	return fmt.Errorf("haproxy backend %q: %d of %d servers UP, need %d%s", c.backend, up, len(servers), c.minUp, detail)
}

// socketPermissionFix says how to let eipd open a stats socket it may not:
// join the group that owns it (HAProxy creates it mode 660 with
// "stats socket … mode 660 group haproxy").
func socketPermissionFix(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return "let eipd's user open the socket (HAProxy: stats socket " + path + " mode 660 group haproxy; systemd: SupplementaryGroups=haproxy)"
	}
	group := "its group"
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		gid := strconv.FormatUint(uint64(st.Gid), 10)
		group = "gid " + gid
		if g, err := user.LookupGroupId(gid); err == nil {
			group = g.Name
		}
	}
	return fmt.Sprintf("the socket has mode %s and group %s: add eipd's user to %s (systemd: SupplementaryGroups=%s in the unit; ECS: run the task with that group, \"user\": \"65532:GID\"), and make sure HAProxy creates it group-accessible (stats socket %s mode 660 group %s)",
		fi.Mode().Perm(), group, group, group, path, group)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
