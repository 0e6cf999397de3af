package machine

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestProcField(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cpuinfo")
	text := "processor\t: 0\nmodel name\t: Example CPU @ 2.00GHz\nflags\t\t: fpu vme\nmodel name\t: second\n"
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for key, want := range map[string]string{"model name": "Example CPU @ 2.00GHz", "flags": "fpu vme", "model": "", "absent": ""} {
		if got := procField(path, key); got != want {
			t.Errorf("procField(%q) = %q, want %q", key, got, want)
		}
	}
	if got := procField(filepath.Join(t.TempDir(), "missing"), "model name"); got != "" {
		t.Errorf("missing file gave %q", got)
	}
}

func TestDescribe(t *testing.T) {
	m := Describe()
	if m.CPUs != runtime.NumCPU() || m.Go != runtime.Version() {
		t.Errorf("CPUs %d, Go %q", m.CPUs, m.Go)
	}
	if runtime.GOOS == "linux" {
		if !strings.HasPrefix(m.OS, "Linux ") || m.RAM == "unknown" || !strings.HasSuffix(m.RAM, " GiB") || m.Load == "unknown" {
			t.Errorf("on Linux: %+v", m)
		}
	}
}
