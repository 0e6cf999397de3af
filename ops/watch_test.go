package ops

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/internal/groupstate"
	"github.com/eipd/eipd/leader"
)

type fakeMembers struct {
	list []eip.Instance
	err  error
}

func (f *fakeMembers) Members(context.Context) ([]eip.Instance, error) { return f.list, f.err }

func TestWatcherRefresh(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	status := leader.Status{InstanceID: "i-b", Health: "up", Coordinator: "i-b", IsCoordinator: true, Epoch: 3,
		EIPs: []leader.EIPStatus{{AllocationID: "eipalloc-1", PublicIP: "198.51.100.10", Role: "holder", Term: "3.2",
			LastFailover: &leader.FailoverRecord{Time: at, Reason: "handoff-unhealthy", From: "i-a", To: "i-b", DurationSeconds: 0.002}}}}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(status) })}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	// i-b answers on 127.0.0.1; i-a's address has nothing on the port.
	cloud := &fakeMembers{list: []eip.Instance{
		{InstanceID: "i-b", PrivateIP: "127.0.0.1", AvailabilityZone: "us-east-1b"},
		{InstanceID: "i-a", PrivateIP: "127.0.0.2", AvailabilityZone: "us-east-1a"},
	}}
	w := &watcher{cloud: cloud, hc: groupstate.NewHTTPClient(time.Second), group: "g", port: port, seen: map[string]bool{}}
	v := w.refresh(context.Background())
	if len(v.Members) != 2 || v.Members[0].InstanceID != "i-a" || v.Members[0].Answered || v.Members[0].Coordinator ||
		v.Members[0].AZ != "us-east-1a" || !v.Members[1].Answered || v.Members[1].Roles["eipalloc-1"] != "holder" || !v.Members[1].Coordinator {
		t.Fatalf("members = %+v", v.Members)
	}
	if len(v.EIPs) != 1 || len(v.EIPs[0].Holders) != 1 || v.EIPs[0].Holders[0] != "i-b" || v.EIPs[0].Term != "3.2" {
		t.Errorf("EIPs = %+v", v.EIPs)
	}
	if len(v.Moves) != 1 || v.Moves[0].From != "i-a" || v.Moves[0].Duration != 2*time.Millisecond {
		t.Errorf("moves = %+v", v.Moves)
	}

	// A failed DescribeInstances keeps the last members and says so; a
	// move already seen is not repeated.
	cloud.err = errors.New("RequestLimitExceeded")
	v = w.refresh(context.Background())
	if len(v.Members) != 2 || len(v.Notes) != 1 || !strings.Contains(v.Notes[0], "DescribeInstances failed") || len(v.Moves) != 1 {
		t.Errorf("after a failed list: members %d, notes %q, moves %d", len(v.Members), v.Notes, len(v.Moves))
	}
}
