package main

import (
	"debug/elf"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// TestMakeDist builds the release binaries the way `make dist` does and
// checks both architectures and the version stamping.
func TestMakeDist(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is needed for the release build:", err)
	}
	dir := t.TempDir()
	cmd := exec.Command("make", "dist", "DIST="+dir, "VERSION=v9.8.7-test", "REVISION=abc1234")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		path := filepath.Join(dir, "eipd-linux-"+arch)
		f, err := elf.Open(path)
		if err != nil {
			t.Errorf("%s: %v", path, err)
			continue
		}
		if f.Machine != machine {
			t.Errorf("%s is built for %v, want %v", path, f.Machine, machine)
		}
		f.Close()
	}
	if runtime.GOARCH != "amd64" {
		return
	}
	out, err := exec.Command(filepath.Join(dir, "eipd-linux-amd64"), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("eipd version: %v\n%s", err, out)
	}
	want := "eipd v9.8.7-test (revision abc1234, " + runtime.Version() + ")"
	if strings.TrimSpace(string(out)) != want {
		t.Errorf("eipd version printed %q, want %q", out, want)
	}
}
