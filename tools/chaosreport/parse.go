package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// result is one scenario run: one line the chaos harness writes. Fields a
// scenario has no use for are absent or zero.
type result struct {
	Scenario       string   `json:"scenario"`
	Title          string   `json:"title"`
	Run            int      `json:"run"`
	Passed         bool     `json:"passed"`
	Error          string   `json:"error"`
	Check          string   `json:"check"`
	Started        string   `json:"started"`
	FaultAt        string   `json:"fault_at"`
	Ended          string   `json:"ended"`
	Downtime       float64  `json:"downtime_s"`
	DowntimeBound  *float64 `json:"downtime_bound_s"` // nil: the scenario states none
	Requests       int      `json:"requests"`
	FailedRequests int      `json:"failed_requests"`
	Moves          int      `json:"moves"`
	APICalls       int      `json:"api_calls"`
	APICallsBound  int      `json:"api_calls_bound"` // 0: the scenario states none
	Timeline       timeline `json:"timeline"`

	// Where the line came from, for messages: "file:line".
	Source string `json:"-"`
	// FaultTime is FaultAt parsed; zero when the run has no fault time
	// (it failed before the fault, or the scenario has none).
	FaultTime time.Time `json:"-"`
}

// timeline is the run sampled in fixed buckets from Start.
type timeline struct {
	Start    string    `json:"start"`
	BucketMS int       `json:"bucket_ms"`
	ClientOK []float64 `json:"client_ok"` // success fraction per bucket, -1 = no request
	Holder   []string  `json:"holder"`    // instance holding the (first) EIP at each bucket's end, "" = none
	// Roles: instance → role its daemon reported per bucket, "" = no answer.
	Roles map[string][]string `json:"roles"`

	StartTime time.Time `json:"-"`
}

// buckets is how many buckets the timeline has: the longest of its series.
func (t *timeline) buckets() int {
	n := max(len(t.ClientOK), len(t.Holder))
	for _, r := range t.Roles {
		n = max(n, len(r))
	}
	return n
}

// has says whether the run carries a timeline that can be drawn.
func (t *timeline) has() bool {
	return !t.StartTime.IsZero() && t.BucketMS > 0 && t.buckets() > 0
}

// measured says whether the run's figures describe the fault: a passed run
// always does; a failed one only if it got as far as the fault (a run that
// failed while setting up has zeros that would flatter the statistics).
func (r *result) measured() bool {
	return r.Passed || !r.FaultTime.IsZero()
}

// parse reads the JSON lines of one results file; name is used in errors.
// Blank lines are skipped.
func parse(rd io.Reader, name string) ([]result, error) {
	var out []result
	sc := bufio.NewScanner(rd)
	sc.Buffer(make([]byte, 0, 64*1024), 64<<20) // a long run's timeline makes long lines
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		src := fmt.Sprintf("%s:%d", name, n)
		var r result
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("%s: not a scenario result (one JSON object a line): %w", src, err)
		}
		r.Source = src
		if err := r.check(); err != nil {
			return nil, fmt.Errorf("%s: %w", src, err)
		}
		out = append(out, r)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return out, nil
}

// check validates a line and fills the parsed times.
func (r *result) check() error {
	var errs []error
	if r.Scenario == "" {
		errs = append(errs, errors.New(`"scenario" is missing`))
	}
	if r.Title == "" {
		r.Title = r.Scenario
	}
	for _, f := range []struct {
		name, v string
		dst     *time.Time
	}{{"started", r.Started, nil}, {"fault_at", r.FaultAt, &r.FaultTime}, {"ended", r.Ended, nil}, {"timeline.start", r.Timeline.Start, &r.Timeline.StartTime}} {
		if f.v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339Nano, f.v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%q is %q, not an RFC 3339 time", f.name, f.v))
			continue
		}
		if f.dst != nil {
			*f.dst = t
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"downtime_s", r.Downtime}, {"requests", float64(r.Requests)},
		{"failed_requests", float64(r.FailedRequests)}, {"moves", float64(r.Moves)}, {"api_calls", float64(r.APICalls)},
		{"timeline.bucket_ms", float64(r.Timeline.BucketMS)}} {
		if f.v < 0 || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("%q is %v: must be ≥ 0", f.name, f.v))
		}
	}
	if r.DowntimeBound != nil && *r.DowntimeBound < 0 {
		errs = append(errs, fmt.Errorf(`"downtime_bound_s" is %v: must be ≥ 0`, *r.DowntimeBound))
	}
	if r.FailedRequests > r.Requests {
		errs = append(errs, fmt.Errorf(`"failed_requests" (%d) exceeds "requests" (%d)`, r.FailedRequests, r.Requests))
	}
	for i, v := range r.Timeline.ClientOK {
		if v != -1 && (v < 0 || v > 1) {
			errs = append(errs, fmt.Errorf(`"timeline.client_ok"[%d] is %v: must be a fraction 0…1, or -1 for no request`, i, v))
			break
		}
	}
	return errors.Join(errs...)
}
