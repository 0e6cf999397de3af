package ec2sim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// forwardDialTimeout bounds the dial to the target: targets are loopback
// listeners, so anything slower means the "instance" is not there.
const forwardDialTimeout = 2 * time.Second

// forwarder stands in for the NAT that maps an EIP to whichever private
// address it is associated with: one listener per EIP, each accepted
// connection spliced to the target resolve names at accept time.
//
// Fidelity notes:
//   - Unassociated EIP: on AWS the SYN goes nowhere (timeout) or is refused.
//     The listener here is shared and has already accepted, so the nearest
//     observable is an immediate reset (SO_LINGER 0 then close): the client
//     gets no data and an error or EOF on its first read.
//   - Moving the EIP: a connection stays spliced to the target it was opened
//     to and is never migrated. On AWS the 1:1 NAT changes under existing
//     flows, so their packets reach the new instance, which has no socket for
//     them and resets them, while the old instance's replies no longer leave
//     with the EIP; old flows die. Migrating them here would be less real
//     than that, and cutting them would hide what clients of a failover
//     actually see for in-flight work (they break when they next talk). So
//     only new connections follow the association; tests of failover must
//     measure new connections.
type forwarder struct {
	ln      net.Listener
	resolve func(now time.Time) (addr string, ok bool)
	logger  hclog.Logger

	wg     sync.WaitGroup
	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
}

func newForwarder(ln net.Listener, resolve func(now time.Time) (addr string, ok bool), logger hclog.Logger) *forwarder {
	return &forwarder{
		ln:      ln,
		resolve: resolve,
		logger:  logger,
		conns:   make(map[net.Conn]struct{}),
	}
}

// Serve accepts until ctx ends, then closes the listener and every open
// connection (both sides) and returns once all its goroutines are done. It
// returns nil when stopped by ctx, an error if the listener failed.
func (f *forwarder) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, f.shutdown)
	defer func() {
		stop()
		f.shutdown()
		f.wg.Wait()
	}()

	backoff := 5 * time.Millisecond
	for {
		conn, err := f.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("accept on %s: %w", f.ln.Addr(), err)
			}
			// Transient (EMFILE and the like): back off as net/http does.
			f.logger.Warn("accept failed; retrying", "listener", f.ln.Addr().String(), "error", err, "backoff", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
			backoff = min(backoff*2, time.Second)
			continue
		}
		backoff = 5 * time.Millisecond
		if !f.track(conn) {
			_ = conn.Close()
			continue
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			f.handle(ctx, conn)
		}()
	}
}

// shutdown closes the listener and every tracked connection; later track
// calls fail, so nothing accepted during shutdown escapes.
func (f *forwarder) shutdown() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		_ = f.ln.Close()
	}
	for c := range f.conns {
		_ = c.Close()
	}
}

func (f *forwarder) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *forwarder) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	_ = c.Close()
}

func (f *forwarder) handle(ctx context.Context, client net.Conn) {
	defer f.untrack(client)
	addr, ok := f.resolve(time.Now())
	if !ok {
		f.logger.Debug("no association; resetting connection", "listener", f.ln.Addr().String(), "client", client.RemoteAddr().String())
		resetConn(client)
		return
	}
	d := net.Dialer{Timeout: forwardDialTimeout}
	upstream, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		f.logger.Debug("dial target failed; resetting connection", "listener", f.ln.Addr().String(), "target", addr, "error", err)
		resetConn(client)
		return
	}
	if !f.track(upstream) {
		_ = upstream.Close()
		return
	}
	defer f.untrack(upstream)

	// Each direction copies until its source ends. A clean EOF is passed on
	// as a half-close, so request/response protocols that shut down their
	// write side still get their answer; an error on either direction tears
	// both down, as a reset would.
	done := make(chan struct{})
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		defer close(done)
		pipe(upstream, client)
	}()
	pipe(client, upstream)
	<-done
}

// pipe copies src to dst; on EOF it half-closes dst, on error it closes both.
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err != nil {
		_ = dst.Close()
		_ = src.Close()
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	_ = dst.Close()
}

// resetConn closes with an RST where the transport allows it, so the client
// sees the connection refused-like rather than a polite end of stream.
func resetConn(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}
