// Package golden reads metrics/testdata/metrics.golden, the list of every
// metric eipd exports, so that the alert rules and the dashboard can be
// checked to use only metrics that exist.
package golden

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Path is the golden file, located from this source file so that tests in
// any package find it.
func Path() string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", "metrics", "testdata", "metrics.golden")
}

// MetricNames returns the exported metric names, with the _bucket, _sum and
// _count series of histograms.
func MetricNames() (map[string]bool, error) {
	b, err := os.ReadFile(Path())
	if err != nil {
		return nil, fmt.Errorf("read metrics golden file: %w", err)
	}
	known := map[string]bool{}
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		known[f[0]] = true
		if f[1] == "histogram" {
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				known[f[0]+s] = true
			}
		}
	}
	return known, nil
}
