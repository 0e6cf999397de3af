package health

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// permHelperEnv makes this test binary run one haproxy check and print its
// error: the root test re-executes it as an unprivileged user, since root
// may open any socket.
const permHelperEnv = "EIPD_TEST_HAPROXY_PERM_SOCKET"

// runPermHelper is the helper's whole run when permHelperEnv is set
// (TestMain calls it first).
func runPermHelper() {
	if path := os.Getenv(permHelperEnv); path != "" {
		c, err := Parse("haproxy://" + path + "?backend=app")
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err = c.Check(ctx)
			cancel()
		}
		if err != nil {
			os.Stdout.WriteString(err.Error())
		}
		os.Exit(0)
	}
}

// TestHAProxySocketPermissionDenied: a stats socket eipd may not open is
// reported with the fix: the group that owns it and SupplementaryGroups=.
func TestHAProxySocketPermissionDenied(t *testing.T) {
	dir, err := os.MkdirTemp("", "eipd-perm-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // traversable by the helper's user
		t.Fatal(err)
	}
	sock := filepath.Join(dir, "admin.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(sock, 0o660); err != nil {
		t.Fatal(err)
	}
	// The group the message must name: the socket's, by name.
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	gid := strconv.FormatUint(uint64(fi.Sys().(*syscall.Stat_t).Gid), 10)
	group := "gid " + gid
	if g, err := user.LookupGroupId(gid); err == nil {
		group = g.Name
	}

	var msg string
	if os.Geteuid() != 0 {
		if err := os.Chmod(sock, 0); err != nil {
			t.Fatal(err)
		}
		c, err := Parse("haproxy://" + sock + "?backend=app")
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Check(context.Background()); err != nil {
			msg = err.Error()
		}
	} else {
		// Root opens anything: run the check as nobody (65534), from a
		// copy of this binary that user can execute.
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		bin := filepath.Join(dir, "health.test")
		if err := copyFile(exe, bin); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, "-test.run=^$")
		cmd.Env = []string{permHelperEnv + "=" + sock}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("helper as uid 65534: %v\n%s", err, out)
		}
		msg = string(out)
	}
	t.Logf("check error: %s", msg)
	for _, want := range []string{"permission denied", "group " + group, "add eipd's user to " + group, "SupplementaryGroups=" + group} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
