package health

import (
	"errors"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	tests := []struct {
		raw, want string
	}{
		{"tcp://127.0.0.1:80", "tcp://127.0.0.1:80"},
		{"tcp://127.0.0.1:80/", "tcp://127.0.0.1:80"},
		{"TCP://localhost:8080", "tcp://localhost:8080"},
		{"tcp://[::1]:443", "tcp://[::1]:443"},
		{"http://127.0.0.1:80/healthz", "http://127.0.0.1:80/healthz"},
		{"http://127.0.0.1/healthz", "http://127.0.0.1/healthz"},
		{"https://example.internal:8443/ping?x=1", "https://example.internal:8443/ping?x=1"},
		{"http://user:secret@127.0.0.1:80/", "http://user:xxxxx@127.0.0.1:80/"},
		{"haproxy:///run/haproxy/admin.sock?backend=app", "haproxy:///run/haproxy/admin.sock?backend=app&min-up=1"},
		{"haproxy:///run/haproxy/admin.sock?backend=app&min-up=2", "haproxy:///run/haproxy/admin.sock?backend=app&min-up=2"},
		{"haproxy://127.0.0.1:9999?backend=app&min-up=3", "haproxy://127.0.0.1:9999?backend=app&min-up=3"},
		{"haproxy://127.0.0.1:9999/?backend=app", "haproxy://127.0.0.1:9999?backend=app&min-up=1"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			c, err := Parse(tt.raw)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.raw, err)
			}
			if got := c.String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	tests := []struct {
		raw  string
		want string // substring of the error
	}{
		{"", "empty URL"},
		{"tcp:127.0.0.1:80", "missing \"//\""},
		{"127.0.0.1:80", "not a URL"},
		{"localhost", "missing scheme"},
		{"udp://127.0.0.1:53", "unknown scheme \"udp\""},
		{"tcp://127.0.0.1", "missing port"},
		{"tcp://127.0.0.1:", "empty port"},
		{"tcp://127.0.0.1:0", "bad port \"0\""},
		{"tcp://127.0.0.1:70000", "bad port"},
		{"tcp://:80", "missing host"},
		{"tcp://127.0.0.1:80/x", "takes no path"},
		{"tcp://127.0.0.1:80?a=b", "takes no parameters"},
		{"http:///healthz", "missing host"},
		{"http://127.0.0.1:abc/", "not a URL"},
		{"haproxy:///run/haproxy/admin.sock", "missing backend"},
		{"haproxy:///run/haproxy/admin.sock?backend=", "not empty"},
		{"haproxy:///run/haproxy/admin.sock?backend=a&min-up=0", "bad min-up \"0\""},
		{"haproxy:///run/haproxy/admin.sock?backend=a&min-up=x", "bad min-up \"x\""},
		{"haproxy:///run/haproxy/admin.sock?backend=a&minup=2", "unknown parameter \"minup\""},
		{"haproxy://?backend=a", "missing socket"},
		{"haproxy://run/haproxy/admin.sock?backend=a", "three slashes"},
		{"haproxy://127.0.0.1?backend=a", "missing port"},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			c, err := Parse(tt.raw)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tt.raw, c)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
			if !strings.Contains(err.Error(), "health check \""+tt.raw+"\"") {
				t.Errorf("error %q does not name the URL", err)
			}
		})
	}
}

func TestParseAllReportsEveryProblem(t *testing.T) {
	_, err := ParseAll([]string{"tcp://127.0.0.1:80", "udp://x:1", "tcp://127.0.0.1", "haproxy:///s?min-up=0"})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{"udp://x:1", "missing port", "missing backend", "bad min-up"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	var j interface{ Unwrap() []error }
	if !errors.As(err, &j) || len(j.Unwrap()) != 3 {
		t.Errorf("want 3 joined errors, got %v", err)
	}

	checks, err := ParseAll([]string{"tcp://127.0.0.1:80", "http://127.0.0.1:80/"})
	if err != nil || len(checks) != 2 {
		t.Fatalf("ParseAll valid = %v, %v", checks, err)
	}
	if _, err := ParseAll(nil); err == nil {
		t.Error("ParseAll(nil): want error, no check configured")
	}
}

func TestForPeer(t *testing.T) {
	tests := []struct {
		raw, host, want string
		ok              bool
	}{
		{"tcp://127.0.0.1:80", "10.0.1.5", "tcp://10.0.1.5:80", true},
		{"tcp://127.0.0.1:80", "fd00::5", "tcp://[fd00::5]:80", true},
		{"http://127.0.0.1:8080/healthz?x=1", "10.0.1.5", "http://10.0.1.5:8080/healthz?x=1", true},
		{"https://lb.internal/healthz", "10.0.1.5", "https://10.0.1.5/healthz", true},
		{"http://127.0.0.1/", "fd00::5", "http://[fd00::5]/", true},
		{"haproxy://127.0.0.1:9999?backend=app&min-up=2", "10.0.1.5", "haproxy://10.0.1.5:9999?backend=app&min-up=2", true},
		{"haproxy:///run/haproxy/admin.sock?backend=app", "10.0.1.5", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			c, err := Parse(tt.raw)
			if err != nil {
				t.Fatal(err)
			}
			pc, ok := ForPeer(c, tt.host)
			if ok != tt.ok {
				t.Fatalf("ForPeer ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if got := pc.String(); got != tt.want {
				t.Errorf("ForPeer = %q, want %q", got, tt.want)
			}
			if c.String() == pc.String() {
				t.Error("original check changed or not copied")
			}
		})
	}
	if _, ok := ForPeer(fakeCheck{}, "10.0.0.1"); ok {
		t.Error("ForPeer of a foreign Checker: want ok=false")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"tcp://127.0.0.1:80", "http://127.0.0.1:80/healthz", "https://[::1]:8443/x?y=z",
		"haproxy:///run/haproxy/admin.sock?backend=app&min-up=2", "haproxy://127.0.0.1:9999?backend=a",
		"", "::", "tcp://%zz", "haproxy://?backend=&min-up=-1", "http://[::1", "a:b",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		c, err := Parse(raw)
		if err != nil {
			if c != nil {
				t.Fatalf("Parse(%q) returned a check and an error", raw)
			}
			return
		}
		if c.String() == "" {
			t.Fatalf("Parse(%q): empty String()", raw)
		}
		if pc, ok := ForPeer(c, "10.0.0.1"); ok && pc.String() == "" {
			t.Fatalf("ForPeer(%q): empty String()", raw)
		}
	})
}
