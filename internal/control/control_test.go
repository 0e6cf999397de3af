package control

import (
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestControlSocketMode: the control socket is created with mode 0600 in a
// directory made if missing, whatever the umask.
func TestControlSocketMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run", "eipd", "eipd.sock")
	ln, err := Listen("unix:" + path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != fs.ModeSocket || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket mode %v, want a socket with 0600", fi.Mode())
	}
	dir, err := os.Stat(filepath.Dir(path))
	if err != nil || dir.Mode().Perm()&0o007 != 0 {
		t.Errorf("socket directory %v %v: want no access for others", dir.Mode(), err)
	}
	// A second daemon must not take a live socket over.
	if _, err := Listen("unix:" + path); err == nil || !strings.Contains(err.Error(), "is listening on it") {
		t.Errorf("second listener on a live socket: %v", err)
	}
	ln.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("socket file left after Close: %v", err)
	}
}

func TestControlSocketStale(t *testing.T) {
	path := filepath.Join(t.TempDir(), "eipd.sock")
	// A socket file left by a daemon that died (no unlink on close).
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()
	ln, err := Listen("unix:" + path)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	ln.Close()

	// Anything that is not a socket is left alone.
	file := filepath.Join(t.TempDir(), "not-a-socket")
	if err := os.WriteFile(file, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Listen("unix:" + file); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("listen over a regular file: %v", err)
	}
	if b, err := os.ReadFile(file); err != nil || string(b) != "keep" {
		t.Errorf("regular file was touched: %q %v", b, err)
	}
}
