package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eipd/eipd/ec2sim"
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

func TestSimPrivateIPsFlag(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var out lockedBuffer
	done := make(chan error, 1)
	go func() { done <- cmdSim(ctx, []string{"--instances", "2", "--private-ips", "3"}, &out, io.Discard) }()
	var info ec2sim.Info
	deadline := time.Now().Add(10 * time.Second)
	for {
		if line, _, ok := strings.Cut(out.String(), "\n"); ok {
			if err := json.Unmarshal([]byte(line), &info); err != nil {
				t.Fatalf("info line %q: %v", line, err)
			}
			break
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatal("eipd sim printed nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("eipd sim: %v", err)
	}
	if len(info.Instances) != 2 || len(info.Instances[0].PrivateIPs) != 3 || info.Instances[0].PrivateIPs[0] != info.Instances[0].PrivateIP {
		t.Fatalf("--private-ips 3: instances %+v", info.Instances)
	}
	for _, bad := range []string{"0", "11", "-2"} {
		err := cmdSim(context.Background(), []string{"--private-ips", bad}, io.Discard, io.Discard)
		if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "--private-ips") {
			t.Errorf("--private-ips %s: %v, want a usage error naming the flag", bad, err)
		}
	}
}
