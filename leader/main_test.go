package leader

import (
	"flag"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The decision properties are cheap (tens of µs a case): check far more
	// than rapid's default 100 unless -rapid.checks says otherwise.
	flag.Parse()
	if f := flag.Lookup("rapid.checks"); f != nil && f.Value.String() == f.DefValue {
		_ = f.Value.Set("5000")
	}
	goleak.VerifyTestMain(m)
}
