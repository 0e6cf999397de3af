package daemon

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"
)

// notifier speaks systemd's sd_notify protocol (one datagram per message to
// $NOTIFY_SOCKET) without cgo or libsystemd. Outside systemd, or when the unit
// is not Type=notify, NOTIFY_SOCKET is unset and every method is a no-op.
type notifier struct {
	socket   string        // path, or @name for an abstract socket
	watchdog time.Duration // WATCHDOG_USEC; 0 when the watchdog is off for us
}

// newNotifier reads NOTIFY_SOCKET and WATCHDOG_USEC (honoured only when
// WATCHDOG_PID is unset or names this process, as sd_watchdog_enabled does).
// Unparseable values disable the feature instead of failing the daemon:
// systemd set them, and a daemon that refuses to start over them helps nobody.
func newNotifier(getenv func(string) string) *notifier {
	n := &notifier{socket: getenv("NOTIFY_SOCKET")}
	if n.socket == "" {
		return n
	}
	usec, err := strconv.ParseUint(getenv("WATCHDOG_USEC"), 10, 63)
	if err != nil || usec == 0 {
		return n
	}
	if pid := getenv("WATCHDOG_PID"); pid != "" && pid != strconv.Itoa(os.Getpid()) {
		return n
	}
	n.watchdog = time.Duration(usec) * time.Microsecond
	return n
}

// Enabled reports whether there is a notify socket to talk to.
func (n *notifier) Enabled() bool { return n != nil && n.socket != "" }

// Ready tells systemd that start-up is done (identity known, first reconcile).
func (n *notifier) Ready() error { return n.send("READY=1") }

// Status sets the one-line status shown by systemctl status.
func (n *notifier) Status(s string) error {
	// A newline would start a new KEY=VALUE assignment.
	s = strings.Join(strings.Fields(s), " ")
	return n.send("STATUS=" + s)
}

// Stopping tells systemd that shutdown (and the handoff) has begun.
func (n *notifier) Stopping() error { return n.send("STOPPING=1") }

// Watchdog pets the watchdog. Call it only when the main loop has made
// progress since the last call, so that a wedged loop gets restarted.
func (n *notifier) Watchdog() error {
	if n == nil || n.watchdog == 0 {
		return nil
	}
	return n.send("WATCHDOG=1")
}

// WatchdogInterval is how often to pet the watchdog: half of WATCHDOG_USEC,
// as sd_watchdog_enabled(3) recommends; 0 when the watchdog is off.
func (n *notifier) WatchdogInterval() time.Duration {
	if n == nil {
		return 0
	}
	return n.watchdog / 2
}

func (n *notifier) send(msg string) error {
	if !n.Enabled() {
		return nil
	}
	// A leading @ is an abstract socket; the net package maps it to the
	// leading NUL byte the kernel expects.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify %s to %s: %w", msg, n.socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(msg)); err != nil {
		return fmt.Errorf("sd_notify %s to %s: %w", msg, n.socket, err)
	}
	return nil
}
