package ec2sim

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"
)

// Faults are injected failures. Global faults apply to every caller;
// per-instance faults apply to calls made with that instance's credentials
// and add to the global ones (booleans OR, Deny union, Latency sum,
// ratios combine as independent events, DescribeLag the larger).
//
// JSON: {"throttle":true,"throttle_ratio":0.5,"latency":"100ms",
// "error_ratio":0.1,"describe_lag":"2s","partition":true,
// "deny":["AssociateAddress"]}; durations are Go duration strings (a bare
// number is taken as nanoseconds).
type Faults struct {
	// Throttle turns on AWS-like token buckets per action (EC2 request
	// throttling); an empty bucket answers 503 RequestLimitExceeded. The buckets
	// are account-wide, as on AWS: callers share them.
	Throttle bool
	// ThrottleRatio additionally throttles this fraction of calls at random.
	ThrottleRatio float64
	// Latency is added to every response.
	Latency time.Duration
	// ErrorRatio is the fraction of calls answered 500 InternalError or 503
	// Unavailable (half each).
	ErrorRatio float64
	// DescribeLag makes Describe* answer from the state as it was
	// DescribeLag ago (read-after-write lag). Writes see the true state.
	DescribeLag time.Duration
	// Partition makes requests hang until the client gives up or the
	// simulator closes; the connection is then dropped without an answer.
	Partition bool
	// Deny lists actions answered 403 UnauthorizedOperation.
	Deny []string
}

type faultsJSON struct {
	Throttle      bool     `json:"throttle,omitempty"`
	ThrottleRatio float64  `json:"throttle_ratio,omitempty"`
	Latency       jsonDur  `json:"latency,omitempty"`
	ErrorRatio    float64  `json:"error_ratio,omitempty"`
	DescribeLag   jsonDur  `json:"describe_lag,omitempty"`
	Partition     bool     `json:"partition,omitempty"`
	Deny          []string `json:"deny,omitempty"`
}

type jsonDur time.Duration

func (d jsonDur) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

func (d *jsonDur) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration %s: want a string such as \"100ms\"", b)
		}
		*d = jsonDur(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	*d = jsonDur(v)
	return nil
}

// MarshalJSON writes durations as Go duration strings.
func (f Faults) MarshalJSON() ([]byte, error) {
	return json.Marshal(faultsJSON{
		Throttle: f.Throttle, ThrottleRatio: f.ThrottleRatio, Latency: jsonDur(f.Latency),
		ErrorRatio: f.ErrorRatio, DescribeLag: jsonDur(f.DescribeLag), Partition: f.Partition, Deny: f.Deny,
	})
}

// UnmarshalJSON reads the form MarshalJSON writes; unknown fields are errors
// so a typo in a test does not silently inject nothing.
func (f *Faults) UnmarshalJSON(b []byte) error {
	var j faultsJSON
	if err := strictUnmarshal(b, &j); err != nil {
		return err
	}
	*f = Faults{
		Throttle: j.Throttle, ThrottleRatio: j.ThrottleRatio, Latency: time.Duration(j.Latency),
		ErrorRatio: j.ErrorRatio, DescribeLag: time.Duration(j.DescribeLag), Partition: j.Partition, Deny: j.Deny,
	}
	return f.validate()
}

func (f Faults) validate() error {
	switch {
	case f.ThrottleRatio < 0 || f.ThrottleRatio > 1:
		return fmt.Errorf("throttle_ratio %v: want 0..1", f.ThrottleRatio)
	case f.ErrorRatio < 0 || f.ErrorRatio > 1:
		return fmt.Errorf("error_ratio %v: want 0..1", f.ErrorRatio)
	case f.Latency < 0:
		return fmt.Errorf("latency %v: negative", f.Latency)
	case f.DescribeLag < 0:
		return fmt.Errorf("describe_lag %v: negative", f.DescribeLag)
	}
	return nil
}

// combine adds per-instance faults to the global ones.
func combine(g, i Faults) Faults {
	out := Faults{
		Throttle:      g.Throttle || i.Throttle,
		ThrottleRatio: 1 - (1-g.ThrottleRatio)*(1-i.ThrottleRatio),
		Latency:       g.Latency + i.Latency,
		ErrorRatio:    1 - (1-g.ErrorRatio)*(1-i.ErrorRatio),
		DescribeLag:   max(g.DescribeLag, i.DescribeLag),
		Partition:     g.Partition || i.Partition,
	}
	out.Deny = append(slices.Clone(g.Deny), i.Deny...)
	return out
}

func (f Faults) denies(action string) bool { return slices.Contains(f.Deny, action) }

// bucket is a continuously refilled token bucket.
type bucket struct {
	capacity, refill float64 // tokens, tokens per second
	tokens           float64
	last             time.Time
}

func (b *bucket) take(now time.Time) bool {
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(b.capacity, b.tokens+el*b.refill)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// bucketFor names the throttling bucket of a call and its size
// (EC2 request throttling, docs/ec2sim.md). Each API has its own bucket; DescribeInstances and
// DescribeInstanceStatus use a smaller one when neither filtered nor paged.
// The sizes are AWS's "Request token bucket sizes and refill rates"
// (https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html):
// non-mutating actions 100 / 20 s⁻¹, unfiltered and unpaginated ones 50 /
// 10 s⁻¹, mutating actions 50 / 5 s⁻¹, CreateTags and DeleteTags 100 /
// 10 s⁻¹.
func bucketFor(req request) (key string, capacity, refill float64) {
	switch req.Action {
	case "DescribeInstances", "DescribeInstanceStatus":
		filtered := false
		for k := range req.Params {
			if k == "MaxResults" || k == "NextToken" || hasPrefixDot(k, "Filter") || hasPrefixDot(k, "InstanceId") {
				filtered = true
				break
			}
		}
		if !filtered {
			return req.Action + "/unfiltered", 50, 10
		}
		return req.Action, 100, 20
	case "DescribeAddresses", "DescribeTags":
		return req.Action, 100, 20
	case "CreateTags", "DeleteTags":
		return req.Action, 100, 10
	default: // AssociateAddress, DisassociateAddress, AllocateAddress, ReleaseAddress
		return req.Action, 50, 5
	}
}

func hasPrefixDot(k, name string) bool {
	return len(k) > len(name) && k[:len(name)] == name && k[len(name)] == '.'
}
