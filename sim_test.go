package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eipd/eipd/ec2sim"
	"github.com/eipd/eipd/internal/cli"
)

// lockedBuffer is written by cmdSim's goroutine and read by the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runSim runs `eipd sim args…` until its Info line is printed, hands the
// Info to during, then stops it.
func runSim(t *testing.T, args []string, during func(ec2sim.Info)) ec2sim.Info {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan error, 1)
	go func() { done <- cmdSim(ctx, args, &out, io.Discard) }()
	var info ec2sim.Info
	deadline := time.Now().Add(10 * time.Second)
	for {
		if line, _, ok := strings.Cut(out.String(), "\n"); ok {
			if err := json.Unmarshal([]byte(line), &info); err != nil {
				cancel()
				<-done
				t.Fatalf("info line %q: %v", line, err)
			}
			break
		}
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatal("eipd sim printed nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if during != nil {
		during(info)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("eipd sim: %v", err)
	}
	return info
}

func TestSimPrivateIPsFlag(t *testing.T) {
	info := runSim(t, []string{"--instances", "2", "--private-ips", "3"}, nil)
	if len(info.Instances) != 2 || len(info.Instances[0].PrivateIPs) != 3 || info.Instances[0].PrivateIPs[0] != info.Instances[0].PrivateIP {
		t.Fatalf("--private-ips 3: instances %+v", info.Instances)
	}
	for _, bad := range []string{"0", "11", "-2"} {
		err := cmdSim(context.Background(), []string{"--private-ips", bad}, io.Discard, io.Discard)
		if !errors.Is(err, cli.ErrUsage) || !strings.Contains(err.Error(), "--private-ips") {
			t.Errorf("--private-ips %s: %v, want a usage error naming the flag", bad, err)
		}
	}
}

// TestSimAutoAssignPublicIPFlag: --auto-assign-public-ip gives each
// instance an auto-assigned public IPv4 address (198.18.0.0/15); without
// it an instance has none.
func TestSimAutoAssignPublicIPFlag(t *testing.T) {
	publicIP := func(info ec2sim.Info) string {
		resp, err := http.Get(info.ControlEndpoint + "/instances/" + info.Instances[0].InstanceID)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var v ec2sim.InstanceView
		if err := json.NewDecoder(resp.Body).Decode(&v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET instance: %d, %v", resp.StatusCode, err)
		}
		return v.PublicIP
	}
	var with, without string
	runSim(t, []string{"--instances", "1", "--auto-assign-public-ip"}, func(info ec2sim.Info) { with = publicIP(info) })
	runSim(t, []string{"--instances", "1"}, func(info ec2sim.Info) { without = publicIP(info) })
	if !strings.HasPrefix(with, "198.18.") || without != "" {
		t.Fatalf("public IP with the flag %q, without %q", with, without)
	}
}
