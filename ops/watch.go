package ops

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/hashicorp/go-hclog"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/groupview"
	"github.com/eipd/eipd/internal/awsenv"
	"github.com/eipd/eipd/internal/cli"
	"github.com/eipd/eipd/internal/groupstate"
	"github.com/eipd/eipd/internal/logging"
)

// watchEvery is the refresh period of `eipd status --watch`: one
// DescribeInstances and one /status read per member each time.
const watchEvery = time.Second

// watchGroup is `eipd status --watch`: the whole group as one table, built
// from one DescribeInstances (the running members tagged with the group)
// and every member's /status on its private IP, until Ctrl-C. Each move
// (a member's last_failover) is shown once, as it appears.
func watchGroup(ctx context.Context, group string, port int, env cli.Env) error {
	getenv, stdout := env.Getenv, env.Stdout
	awsCfg, _, err := awsenv.FromProcess(ctx, env.Version, logging.SDK(hclog.NewNullLogger()))
	if err != nil {
		return err
	}
	if awsCfg.Region == "" {
		return cli.Usagef("no AWS region: set AWS_REGION (or a region in the AWS profile)")
	}
	cloud := eip.New(eip.Config{Group: group}, ec2.NewFromConfig(awsCfg, eip.GuardRequestBody), nil, nil)
	hc := groupstate.NewHTTPClient(800 * time.Millisecond)
	live := cli.Terminal(stdout) && getenv("NO_COLOR") == "" && getenv("TERM") != "dumb"
	disp := &groupview.Display{W: stdout, Live: live, Color: live}
	defer disp.Close()
	disp.Event(time.Now(), "watching group %q: members from DescribeInstances, /status on port %d, every %s; Ctrl-C to stop", group, port, watchEvery)

	w := &watcher{cloud: cloud, hc: hc, group: group, port: port, seen: map[string]bool{}}
	t := time.NewTicker(watchEvery)
	defer t.Stop()
	for {
		v := w.refresh(ctx)
		if ctx.Err() != nil {
			return nil
		}
		disp.Show(v, time.Now())
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// membersAPI is what the watcher needs from eip.Client.
type membersAPI interface {
	Members(ctx context.Context) ([]eip.Instance, error)
}

type watcher struct {
	cloud   membersAPI
	hc      *http.Client
	group   string
	port    int
	members []eip.Instance // last successful DescribeInstances
	listErr error
	seen    map[string]bool
	moves   []groupview.Move
}

// refresh builds one view of the group.
func (w *watcher) refresh(ctx context.Context) groupview.View {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	members, err := w.cloud.Members(cctx)
	members = eip.Running(members)
	cancel()
	w.listErr = err
	if err == nil {
		sort.Slice(members, func(i, j int) bool { return members[i].InstanceID < members[j].InstanceID })
		w.members = members
	}
	ids := make([]string, len(w.members))
	hosts := make([]string, len(w.members))
	for i, m := range w.members {
		ids[i], hosts[i] = m.InstanceID, m.PrivateIP
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	results := groupstate.FetchAll(rctx, w.hc, hosts, w.port)
	cancel()

	v := groupview.View{Title: fmt.Sprintf("eipd status --watch · group %s · %d running members", w.group, len(w.members))}
	if w.listErr != nil {
		note := "DescribeInstances failed, showing the last members known: " + w.listErr.Error()
		if errors.Is(w.listErr, eip.ErrUnauthorized) {
			note += " (needs ec2:DescribeInstances)"
		}
		v.Notes = append(v.Notes, note)
	}
	for i, m := range w.members {
		gm := groupview.Member{InstanceID: m.InstanceID, AZ: m.AvailabilityZone, PrivateIP: m.PrivateIP}
		v.Members = append(v.Members, groupstate.Member(gm, results[i]))
	}
	v.EIPs = groupstate.EIPs(ids, results)
	for _, mv := range groupstate.Moves(results) {
		key := mv.AllocationID + "|" + mv.To + "|" + mv.Time.UTC().Format(time.RFC3339Nano)
		if !w.seen[key] {
			w.seen[key] = true
			w.moves = append(w.moves, mv)
		}
	}
	sort.SliceStable(w.moves, func(i, j int) bool { return w.moves[i].Time.Before(w.moves[j].Time) })
	v.Moves = w.moves
	return v
}
