package e2e

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestMakeDist runs `make dist` as a release does and checks what it
// writes: a static binary per architecture, SHA256SUMS that match them, and
// the image tag. It lives here, after TestMain's build with the same flags,
// so the native binary's packages come from the build cache and only the
// cross-compiled one costs a compile; the second run (reproducibility) is
// links only.
func TestMakeDist(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is needed for the release build:", err)
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dist := func(dir string) string {
		t.Helper()
		cmd := exec.Command("make", "dist", "DIST="+dir, "VERSION=v9.8.7-test", "REVISION=abc1234",
			"IMAGE=123456789012.dkr.ecr.eu-west-1.amazonaws.com/eipd")
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("make dist: %v\n%s", err, out)
		}
		return string(out)
	}
	dir := t.TempDir()
	out := dist(dir)

	const tag = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/eipd:v9.8.7-test"
	if b, err := os.ReadFile(filepath.Join(dir, "IMAGE_TAG")); err != nil || string(b) != tag+"\n" {
		t.Errorf("IMAGE_TAG = %q (%v), want %q", b, err, tag)
	}
	if !strings.Contains(out, "image tag: "+tag+"\n") {
		t.Errorf("make dist does not print the image tag:\n%s", out)
	}

	sums := map[string]string{}
	b, err := os.ReadFile(filepath.Join(dir, "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		// sha256sum's format: hex, two spaces, file name.
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok || len(sum) != 64 {
			t.Fatalf("SHA256SUMS line %q is not `<sha256>  <file>`", sc.Text())
		}
		sums[name] = sum
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		name := "eipd-linux-" + arch
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got := sha256.Sum256(data); sums[name] != hex.EncodeToString(got[:]) {
			t.Errorf("SHA256SUMS has %q for %s, the file's sha256 is %x", sums[name], name, got)
		}
		f, err := elf.Open(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if f.Machine != machine {
			t.Errorf("%s is built for %v, want %v", name, f.Machine, machine)
		}
		// Static: no interpreter, so it runs on any Linux distribution.
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s is dynamically linked (PT_INTERP)", name)
			}
		}
		f.Close()
	}
	if len(sums) != 2 {
		t.Errorf("SHA256SUMS lists %d files, want the 2 binaries: %v", len(sums), sums)
	}

	if runtime.GOOS == "linux" && (runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64") {
		out, err := exec.Command(filepath.Join(dir, "eipd-linux-"+runtime.GOARCH), "version").CombinedOutput()
		if err != nil {
			t.Fatalf("eipd version: %v\n%s", err, out)
		}
		if v := string(out); !strings.Contains(v, "v9.8.7-test") || !strings.Contains(v, "abc1234") || !strings.Contains(v, runtime.Version()) {
			t.Errorf("eipd version printed %q, want the version, revision and %s", v, runtime.Version())
		}
	}

	// Reproducible: the same source and settings give the same bytes, so
	// anyone can check a published SHA256SUMS.
	again := t.TempDir()
	dist(again)
	if b2, err := os.ReadFile(filepath.Join(again, "SHA256SUMS")); err != nil || !bytes.Equal(b, b2) {
		t.Errorf("a second make dist gave other SHA256SUMS (%v):\n%s\nvs\n%s", err, b, b2)
	}
}
