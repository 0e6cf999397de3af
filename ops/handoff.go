package ops

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/eipd/eipd/internal/cli"
	"github.com/eipd/eipd/internal/control"
)

// Handoff is `eipd handoff`: it asks the local daemon, through the control
// endpoint, to move the EIPs it holds to a ready member (--to one of them),
// and waits for the move.
func Handoff(ctx context.Context, args []string, env cli.Env) error {
	getenv, stdout, stderr := env.Getenv, env.Stdout, env.Stderr
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
	client, base := control.Client(*addr)
	ctx, cancel := context.WithTimeout(ctx, control.HandoffWait+5*time.Second)
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
	var s control.StatusDoc
	if err := json.Unmarshal(body, &s); err != nil {
		return fmt.Errorf("decode status: %w", err)
	}
	fmt.Fprintln(stdout, "handoff done")
	PrintStatus(stdout, s)
	return nil
}
