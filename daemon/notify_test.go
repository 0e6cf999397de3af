package daemon

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// fakeSystemd listens where NOTIFY_SOCKET points and returns the datagrams.
func fakeSystemd(t *testing.T, name string) (*net.UnixConn, func() string) {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatalf("listen on fake notify socket %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close() })
	recv := func() string {
		t.Helper()
		if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 4096)
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("read notify datagram: %v", err)
		}
		return string(buf[:n])
	}
	return conn, recv
}

func notifyEnv(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestNotifierDatagrams(t *testing.T) {
	defer goleak.VerifyNone(t)
	sock := filepath.Join(t.TempDir(), "notify.sock")
	_, recv := fakeSystemd(t, sock)
	n := newNotifier(notifyEnv(map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "4000000"}))
	if !n.Enabled() {
		t.Fatal("notifier with NOTIFY_SOCKET set reports disabled")
	}
	if got := n.WatchdogInterval(); got != 2*time.Second {
		t.Errorf("WatchdogInterval = %v, want half of WATCHDOG_USEC = 2s", got)
	}
	for _, c := range []struct {
		send func() error
		want string
	}{
		{n.Ready, "READY=1"},
		{func() error { return n.Status("holder of eipalloc-0a (term 4)") }, "STATUS=holder of eipalloc-0a (term 4)"},
		{func() error { return n.Status("two\nlines\tand  tabs") }, "STATUS=two lines and tabs"},
		{n.Watchdog, "WATCHDOG=1"},
		{n.Stopping, "STOPPING=1"},
	} {
		if err := c.send(); err != nil {
			t.Fatalf("send %q: %v", c.want, err)
		}
		if got := recv(); got != c.want {
			t.Errorf("datagram %q, want %q", got, c.want)
		}
	}
}

func TestNotifierAbstractSocket(t *testing.T) {
	name := fmt.Sprintf("@eipd-notify-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	_, recv := fakeSystemd(t, name)
	n := newNotifier(notifyEnv(map[string]string{"NOTIFY_SOCKET": name}))
	if err := n.Ready(); err != nil {
		t.Fatalf("Ready on abstract socket: %v", err)
	}
	if got := recv(); got != "READY=1" {
		t.Errorf("datagram %q, want READY=1", got)
	}
}

func TestNotifierWatchdogSettings(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "notify.sock")
	conn, recv := fakeSystemd(t, sock)
	self := strconv.Itoa(os.Getpid())
	for _, c := range []struct {
		name string
		env  map[string]string
		want time.Duration
	}{
		{"no socket", map[string]string{"WATCHDOG_USEC": "1000000"}, 0},
		{"no watchdog", map[string]string{"NOTIFY_SOCKET": sock}, 0},
		{"zero", map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "0"}, 0},
		{"garbage", map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "10s"}, 0},
		{"negative", map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "-5"}, 0},
		{"our pid", map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": self}, 15 * time.Second},
		{"other pid", map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := newNotifier(notifyEnv(c.env))
			if got := n.WatchdogInterval(); got != c.want {
				t.Errorf("WatchdogInterval = %v, want %v", got, c.want)
			}
			if err := n.Watchdog(); err != nil {
				t.Errorf("Watchdog: %v", err)
			}
		})
	}
	// None of the disabled cases may have sent WATCHDOG=1; only "our pid" did.
	if got := recv(); got != "WATCHDOG=1" {
		t.Errorf("first datagram %q, want the one WATCHDOG=1 of the enabled case", got)
	}
	if err := conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if k, err := conn.Read(make([]byte, 64)); err == nil {
		t.Errorf("a disabled watchdog sent a datagram (%d bytes)", k)
	}
}

func TestNotifierOutsideSystemd(t *testing.T) {
	n := newNotifier(notifyEnv(nil))
	if n.Enabled() {
		t.Error("notifier without NOTIFY_SOCKET reports enabled")
	}
	for _, f := range []func() error{n.Ready, n.Stopping, n.Watchdog, func() error { return n.Status("x") }} {
		if err := f(); err != nil {
			t.Errorf("no-op notifier returned %v", err)
		}
	}
}

func TestNotifierSocketGone(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "missing.sock")
	n := newNotifier(notifyEnv(map[string]string{"NOTIFY_SOCKET": sock}))
	if err := n.Ready(); err == nil {
		t.Error("Ready to a socket nobody listens on returned nil, want an error naming it")
	}
}
