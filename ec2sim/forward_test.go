package ec2sim

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// fwdTestTarget is an "instance" behind the EIP: it greets with its name,
// echoes, and once it reads EOF writes "bye\n" and closes, so a reply after
// the client's half-close proves the half-close was passed on.
type fwdTestTarget struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns map[net.Conn]struct{}
	ended atomic.Int32 // connections whose handler has finished
}

func startFwdTestTarget(t *testing.T, name string) *fwdTestTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fwdTestTarget{name: name, ln: ln, conns: make(map[net.Conn]struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conns[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer s.ended.Add(1)
				defer c.Close()
				if _, err := io.WriteString(c, name+"\n"); err != nil {
					return
				}
				if _, err := io.Copy(c, c); err != nil {
					return
				}
				_, _ = io.WriteString(c, "bye\n")
			}()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *fwdTestTarget) addr() string { return s.ln.Addr().String() }

type fwdTestRun struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// startFwdForTest runs Serve; cleanup cancels it and waits for it to return.
func startFwdForTest(t *testing.T, resolve func(time.Time) (string, bool)) *fwdTestRun {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := newForwarder(ln, resolve, hclog.NewNullLogger())
	ctx, cancel := context.WithCancel(context.Background())
	r := &fwdTestRun{addr: ln.Addr().String(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- f.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Error("Serve did not return within 10s of cancel")
		}
	})
	return r
}

func fwdDial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c.(*net.TCPConn)
}

func fwdReadLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	line, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("read line: %v (got %q)", err, line)
	}
	return line
}

// switchable resolves to whatever target was last set, or to none.
type switchable struct {
	mu    sync.Mutex
	addr  string
	calls int
}

func (s *switchable) set(addr string) { s.mu.Lock(); s.addr = addr; s.mu.Unlock() }
func (s *switchable) resolve(time.Time) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	return s.addr, s.addr != ""
}
func (s *switchable) callCount() int { s.mu.Lock(); defer s.mu.Unlock(); return s.calls }

func TestForwarderFollowsAssociationForNewConnections(t *testing.T) {
	a, b := startFwdTestTarget(t, "A"), startFwdTestTarget(t, "B")
	sw := &switchable{addr: a.addr()}
	run := startFwdForTest(t, sw.resolve)

	c1 := fwdDial(t, run.addr)
	r1 := bufio.NewReader(c1)
	if got := fwdReadLine(t, r1); got != "A\n" {
		t.Fatalf("first connection reached %q, want A", got)
	}

	sw.set(b.addr())
	c2 := fwdDial(t, run.addr)
	r2 := bufio.NewReader(c2)
	if got := fwdReadLine(t, r2); got != "B\n" {
		t.Fatalf("connection after the move reached %q, want B", got)
	}

	// The old connection is not migrated: it still talks to A.
	if _, err := io.WriteString(c1, "still A?\n"); err != nil {
		t.Fatal(err)
	}
	if got := fwdReadLine(t, r1); got != "still A?\n" {
		t.Fatalf("old connection echo = %q", got)
	}
	if n := sw.callCount(); n != 2 {
		t.Errorf("resolve called %d times for 2 connections, want 2", n)
	}
}

func TestForwarderUnassociatedClosesWithoutData(t *testing.T) {
	sw := &switchable{}
	run := startFwdForTest(t, sw.resolve)
	fwdExpectClosedEmpty(t, run.addr)

	// Dial failure to the target: same observable.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	_ = dead.Close()
	sw.set(deadAddr)
	fwdExpectClosedEmpty(t, run.addr)

	// And a target appearing later is reached by the next connection.
	tgt := startFwdTestTarget(t, "late")
	sw.set(tgt.addr())
	if got := fwdReadLine(t, bufio.NewReader(fwdDial(t, run.addr))); got != "late\n" {
		t.Errorf("after association: %q", got)
	}
}

// fwdExpectClosedEmpty: the reset can win the race with the client's own
// connect completing, so a reset at dial time is the same observable.
func fwdExpectClosedEmpty(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if errors.Is(err, syscall.ECONNRESET) {
		return
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if n != 0 {
		t.Fatalf("read %q from an unassociated EIP", buf[:n])
	}
	if err == nil {
		t.Fatal("read returned no error and no data")
	}
	if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read error %v, want EOF or connection reset", err)
	}
}

func TestForwarderHalfClose(t *testing.T) {
	tgt := startFwdTestTarget(t, "T")
	run := startFwdForTest(t, func(time.Time) (string, bool) { return tgt.addr(), true })
	c := fwdDial(t, run.addr)
	r := bufio.NewReader(c)
	if got := fwdReadLine(t, r); got != "T\n" {
		t.Fatalf("greeting %q", got)
	}
	if _, err := io.WriteString(c, "request\n"); err != nil {
		t.Fatal(err)
	}
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	// The target only says "bye" after it has read EOF; the reply must still
	// reach a client whose write side is shut.
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read after half-close: %v", err)
	}
	if string(rest) != "request\nbye\n" {
		t.Fatalf("after half-close got %q, want %q", rest, "request\nbye\n")
	}
}

func TestForwarderBulkBothWays(t *testing.T) {
	tgt := startFwdTestTarget(t, "T")
	run := startFwdForTest(t, func(time.Time) (string, bool) { return tgt.addr(), true })
	c := fwdDial(t, run.addr)
	payload := make([]byte, 2<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil {
			err = c.CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	if err := <-werr; err != nil {
		t.Fatalf("write: %v", err)
	}
	want := append(append([]byte("T\n"), payload...), "bye\n"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("echo of %d bytes came back as %d bytes, not equal", len(want), len(got))
	}
}

func TestForwarderStopClosesEverything(t *testing.T) {
	tgt := startFwdTestTarget(t, "T")
	run := startFwdForTest(t, func(time.Time) (string, bool) { return tgt.addr(), true })
	c := fwdDial(t, run.addr)
	r := bufio.NewReader(c)
	if got := fwdReadLine(t, r); got != "T\n" {
		t.Fatalf("greeting %q", got)
	}

	run.cancel()
	select {
	case err := <-run.done:
		if err != nil {
			t.Fatalf("Serve after cancel: %v, want nil", err)
		}
		run.done <- err // for the cleanup
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return within 10s of cancel")
	}

	// The open client connection was closed…
	if _, err := r.ReadByte(); err == nil {
		t.Error("client connection still open after Serve returned")
	}
	// …and so was the upstream side: the target's handler ends.
	deadline := time.Now().Add(10 * time.Second)
	for tgt.ended.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("target connection still open 10s after Serve returned")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// …and the listener no longer accepts.
	if c2, err := net.DialTimeout("tcp", run.addr, 2*time.Second); err == nil {
		_ = c2.Close()
		t.Error("listener still accepting after Serve returned")
	}
}

func TestForwarderListenerFailureIsAnError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := newForwarder(ln, func(time.Time) (string, bool) { return "", false }, hclog.NewNullLogger())
	done := make(chan error, 1)
	go func() { done <- f.Serve(context.Background()) }()
	_ = ln.Close()
	select {
	case err := <-done:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Serve = %v, want an error wrapping net.ErrClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after its listener was closed")
	}
}
