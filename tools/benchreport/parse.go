package main

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// result is one benchmark of a `go test -bench` run.
type result struct {
	Name    string             // without the Benchmark prefix and the -GOMAXPROCS suffix
	Metrics map[string]float64 // unit → value, e.g. "p99-s" → 1.3
	Logs    []string           // the b.Logf lines under "--- BENCH:", without the file:line prefix
}

// trials are the per-trial durations a failover benchmark logs.
func (r *result) trials() []float64 {
	for _, l := range r.Logs {
		if v, ok := strings.CutPrefix(l, "trials (s): "); ok {
			var out []float64
			for _, f := range strings.Fields(v) {
				if x, err := strconv.ParseFloat(f, 64); err == nil {
					out = append(out, x)
				}
			}
			return out
		}
	}
	return nil
}

// runOutput is a parsed benchmark output.
type runOutput struct {
	Results []*result
	Raw     string
}

func (r *runOutput) get(name string) *result {
	for _, x := range r.Results {
		if x.Name == name {
			return x
		}
	}
	return nil
}

// metric returns a benchmark's metric and whether it was reported.
func (r *runOutput) metric(name, unit string) (float64, bool) {
	if x := r.get(name); x != nil {
		v, ok := x.Metrics[unit]
		return v, ok
	}
	return 0, false
}

var (
	benchLine = regexp.MustCompile(`^Benchmark(\S+?)(?:-\d+)?\s+\d+\s+(.*)$`)
	benchHead = regexp.MustCompile(`^--- (?:BENCH|FAIL): Benchmark(\S+?)(?:-\d+)?$`)
	logLine   = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)
)

// parse reads `go test -bench` output. Lines it does not know are kept in
// Raw only; a benchmark line whose figures do not parse is an error.
func parse(rd io.Reader) (*runOutput, error) {
	r := &runOutput{}
	var raw strings.Builder
	var cur *result
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		raw.WriteString(line + "\n")
		if m := benchLine.FindStringSubmatch(line); m != nil {
			res := r.get(m[1])
			if res == nil {
				res = &result{Name: m[1], Metrics: map[string]float64{}}
				r.Results = append(r.Results, res)
			}
			f := strings.Fields(m[2])
			if len(f)%2 != 0 {
				return nil, fmt.Errorf("benchmark line %q: odd number of value/unit fields", line)
			}
			for i := 0; i < len(f); i += 2 {
				v, err := strconv.ParseFloat(f[i], 64)
				if err != nil {
					return nil, fmt.Errorf("benchmark line %q: %q is not a number", line, f[i])
				}
				res.Metrics[f[i+1]] = v
			}
			cur = nil
			continue
		}
		if m := benchHead.FindStringSubmatch(line); m != nil {
			cur = r.get(m[1])
			if cur == nil {
				cur = &result{Name: m[1], Metrics: map[string]float64{}}
				r.Results = append(r.Results, cur)
			}
			continue
		}
		if m := logLine.FindStringSubmatch(line); m != nil && cur != nil {
			cur.Logs = append(cur.Logs, m[1])
			continue
		}
		cur = nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	r.Raw = raw.String()
	return r, nil
}
