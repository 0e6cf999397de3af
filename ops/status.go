// Package ops holds the operator's commands: `eipd status` (the local
// daemon's view, or with --watch the whole group), `eipd handoff` (a
// planned move through the control endpoint), `eipd healthcheck` (the
// container health check) and `eipd preflight` (whether this instance
// could do its job, checked before the daemon is trusted with an EIP).
package ops

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/eipd/eipd/internal/cli"
	"github.com/eipd/eipd/internal/config"
	"github.com/eipd/eipd/internal/control"
)

// controlFlags is the flag set of a command that talks to the local daemon,
// with --control defaulting to where the daemon listens.
func controlFlags(name string, getenv func(string) string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet("eipd "+name, flag.ContinueOnError)
	addr := fs.String("control", config.EnvOr(getenv, "control"), "control address of the local daemon, host:port or unix:/path (EIPD_CONTROL)")
	return fs, addr
}

// unreachable explains a failed request to the local daemon.
func unreachable(addr string, err error) error {
	return fmt.Errorf("cannot reach the local daemon at %s (is eipd running? is --control the same as the daemon's?): %w", addr, err)
}

// Status is `eipd status`: the local daemon's view through the control
// endpoint, as a table or (--json) the /status document; with --watch the
// whole group (watchGroup).
func Status(ctx context.Context, args []string, env cli.Env) error {
	getenv, stdout, stderr := env.Getenv, env.Stdout, env.Stderr
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
		return watchGroup(ctx, *group, *statusPort, env)
	}
	client, base := control.Client(*addr)
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
	var s control.StatusDoc
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	PrintStatus(stdout, s)
	return nil
}

// PrintStatus writes the /status document s for people: this instance,
// the coordinator it follows, one row per EIP, the last move of each.
func PrintStatus(w io.Writer, s control.StatusDoc) {
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
