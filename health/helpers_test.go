package health

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeCheck is a Checker whose result the test controls.
type fakeCheck struct {
	err   *error
	mu    *sync.Mutex
	calls *int
}

func newFake() fakeCheck {
	var e error
	n := 0
	return fakeCheck{err: &e, mu: &sync.Mutex{}, calls: &n}
}

func (f fakeCheck) set(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.err = err
}

func (f fakeCheck) Check(context.Context) error {
	if f.mu == nil {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	*f.calls++
	return *f.err
}

func (f fakeCheck) String() string { return "fake://" }

var errFake = errors.New("fake failure")

// freePort returns a loopback port that nothing listens on (just now).
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

// acceptLoop accepts on l and holds connections open until the test ends
// or l is closed; it never writes.
func acceptLoop(t *testing.T, l net.Listener) {
	t.Helper()
	var (
		mu    sync.Mutex
		conns []net.Conn
		wg    sync.WaitGroup
	)
	wg.Go(func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	})
	t.Cleanup(func() {
		l.Close()
		wg.Wait()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
}

// eventually polls cond until it holds or a generous deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
