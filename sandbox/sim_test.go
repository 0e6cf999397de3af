package sandbox

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

// lockedBuffer is written by Sim's goroutine and read by the test.
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
	go func() { done <- Sim(ctx, args, cli.Env{Stdout: &out, Stderr: io.Discard}) }()
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
		err := Sim(context.Background(), []string{"--private-ips", bad}, cli.Env{Stdout: io.Discard, Stderr: io.Discard})
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

func TestSimRefusesZeroEIPs(t *testing.T) {
	var errb bytes.Buffer
	err := Sim(context.Background(), []string{"--eips", "0"}, cli.Env{Getenv: func(string) string { return "" }, Stdout: io.Discard, Stderr: &errb})
	code, stderr := cli.ExitCode(err, &errb), errb.String()
	if code != 2 || !strings.Contains(stderr, "--eips 0: must be between 1 and 100") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}
