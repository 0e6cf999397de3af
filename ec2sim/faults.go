package ec2sim

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Faults are injected failures. Global faults apply to every caller;
// per-instance faults apply to calls made with that instance's credentials
// (IMDSLag, PublicIPRelease and EgressNeedsPublicIP: to that instance) and
// add to the global ones (booleans OR, Deny union, Latency sum, ratios
// combine as independent events, the lags and delays the larger; the
// LostAnswers rules are kept apart and each is evaluated, the instance's
// first). See docs/ec2sim.md "Faults".
//
// JSON: {"throttle":true,"throttle_ratio":0.5,"latency":"100ms",
// "error_ratio":0.1,"describe_lag":"2s","partition":true,
// "deny":["AssociateAddress"],"imds_lag":"5s",
// "lost_answers":{"action":"AssociateAddress","count":1},
// "late_writes":"2s","mixed_reads":true,"public_ip_release":"3m",
// "egress_needs_public_ip":true}; durations are Go duration strings (a
// bare number is taken as nanoseconds).
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

	// IMDSLag makes an instance's metadata items derived from its
	// associations (public-ipv4, macs/<mac>/public-ipv4s,
	// macs/<mac>/ipv4-associations/*) show them as they were IMDSLag ago,
	// as AWS's metadata trails an association change. Other items do not
	// lag.
	IMDSLag time.Duration
	// LostAnswers drops the answer of calls that took effect (lost.go).
	// nil = none. Its Count is consumed as answers are lost.
	LostAnswers *LostAnswers
	// LateWrites applies the effect of AssociateAddress,
	// DisassociateAddress, CreateTags and DeleteTags this long after the
	// answer was sent (or the caller gave up), re-checked then (late.go).
	LateWrites time.Duration
	// MixedReads lets DescribeAddresses take each address's association
	// and its tags from independent moments within the DescribeLag window.
	MixedReads bool
	// PublicIPRelease is how long after an EIP left an instance's primary
	// private IP its new auto-assigned public IPv4 comes back
	// (Options.AutoAssignPublicIP; publicip.go). 0 = at once.
	PublicIPRelease time.Duration
	// EgressNeedsPublicIP makes calls made with an instance's credentials
	// hang like a partition while that instance has no public IPv4: a
	// public subnet without VPC endpoints or NAT.
	EgressNeedsPublicIP bool
}

// LostAnswers is the lost_answers fault: a call that took effect (the
// action succeeded; errors are answered as usual) never gets its answer.
// Action "" matches every action. Exactly one of Count (answers still to
// lose, decremented as they are lost) and Ratio (the fraction lost) is
// set. Mode is how the answer is lost: "reset" (the default, also "") or
// "hang".
type LostAnswers struct {
	Action string
	Count  int
	Ratio  float64
	Mode   string
}

// The modes of LostAnswers.
const (
	LostReset = "reset" // connection reset once the write is applied (after any latency)
	LostHang  = "hang"  // no answer until the caller gives up; then the connection is closed
)

type lostAnswersJSON struct {
	Action string  `json:"action,omitempty"`
	Count  *int    `json:"count,omitempty"`
	Ratio  float64 `json:"ratio,omitempty"`
	Mode   string  `json:"mode,omitempty"`
}

// MarshalJSON writes count whenever ratio is 0, so an exhausted rule
// shows "count":0.
func (l LostAnswers) MarshalJSON() ([]byte, error) {
	j := lostAnswersJSON{Action: l.Action, Ratio: l.Ratio, Mode: l.Mode}
	if l.Ratio == 0 {
		n := l.Count
		j.Count = &n
	}
	return json.Marshal(j)
}

// UnmarshalJSON needs count or ratio: a rule with neither would silently
// lose nothing. An explicit "count":0 (an exhausted rule, as GET /faults
// shows it) is accepted.
func (l *LostAnswers) UnmarshalJSON(b []byte) error {
	var j lostAnswersJSON
	if err := strictUnmarshal(b, &j); err != nil {
		return fmt.Errorf("lost_answers: %w", err)
	}
	switch {
	case j.Count == nil && j.Ratio == 0:
		return errors.New(`lost_answers: want "count" or "ratio"`)
	case j.Count != nil && j.Ratio != 0:
		return errors.New(`lost_answers: "count" and "ratio" are exclusive`)
	}
	*l = LostAnswers{Action: j.Action, Ratio: j.Ratio, Mode: j.Mode}
	if j.Count != nil {
		l.Count = *j.Count
	}
	return l.validate()
}

func (l LostAnswers) validate() error {
	switch {
	case l.Count < 0:
		return fmt.Errorf("lost_answers count %d: negative", l.Count)
	case l.Ratio < 0 || l.Ratio > 1:
		return fmt.Errorf("lost_answers ratio %v: want 0..1", l.Ratio)
	case l.Count > 0 && l.Ratio > 0:
		return errors.New("lost_answers: count and ratio are exclusive")
	case l.Mode != "" && l.Mode != LostReset && l.Mode != LostHang:
		return fmt.Errorf("lost_answers mode %q: want reset or hang", l.Mode)
	}
	if _, ok := ec2Actions()[l.Action]; l.Action != "" && !ok {
		return fmt.Errorf("lost_answers action %q: not an action the simulator serves", l.Action)
	}
	return nil
}

// clone copies f so that the simulator's copy (whose LostAnswers count it
// decrements) shares nothing with the caller's.
func (f Faults) clone() Faults {
	f.Deny = slices.Clone(f.Deny)
	if f.LostAnswers != nil {
		l := *f.LostAnswers
		f.LostAnswers = &l
	}
	return f
}

type faultsJSON struct {
	Throttle      bool     `json:"throttle,omitempty"`
	ThrottleRatio float64  `json:"throttle_ratio,omitempty"`
	Latency       jsonDur  `json:"latency,omitempty"`
	ErrorRatio    float64  `json:"error_ratio,omitempty"`
	DescribeLag   jsonDur  `json:"describe_lag,omitempty"`
	Partition     bool     `json:"partition,omitempty"`
	Deny          []string `json:"deny,omitempty"`

	IMDSLag             jsonDur      `json:"imds_lag,omitempty"`
	LostAnswers         *LostAnswers `json:"lost_answers,omitempty"`
	LateWrites          jsonDur      `json:"late_writes,omitempty"`
	MixedReads          bool         `json:"mixed_reads,omitempty"`
	PublicIPRelease     jsonDur      `json:"public_ip_release,omitempty"`
	EgressNeedsPublicIP bool         `json:"egress_needs_public_ip,omitempty"`
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
		IMDSLag: jsonDur(f.IMDSLag), LostAnswers: f.LostAnswers, LateWrites: jsonDur(f.LateWrites),
		MixedReads: f.MixedReads, PublicIPRelease: jsonDur(f.PublicIPRelease), EgressNeedsPublicIP: f.EgressNeedsPublicIP,
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
		IMDSLag: time.Duration(j.IMDSLag), LostAnswers: j.LostAnswers, LateWrites: time.Duration(j.LateWrites),
		MixedReads: j.MixedReads, PublicIPRelease: time.Duration(j.PublicIPRelease), EgressNeedsPublicIP: j.EgressNeedsPublicIP,
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
	case f.IMDSLag < 0:
		return fmt.Errorf("imds_lag %v: negative", f.IMDSLag)
	case f.LateWrites < 0:
		return fmt.Errorf("late_writes %v: negative", f.LateWrites)
	case f.PublicIPRelease < 0:
		return fmt.Errorf("public_ip_release %v: negative", f.PublicIPRelease)
	}
	if f.LostAnswers != nil {
		return f.LostAnswers.validate()
	}
	return nil
}

// combine adds per-instance faults to the global ones. Lags and delays
// take the larger: each is one delay of AWS's backend, which an instance
// can only make worse. LostAnswers is left out: its rules keep their own
// counts and are evaluated one by one (loseLocked).
func combine(g, i Faults) Faults {
	out := Faults{
		Throttle:            g.Throttle || i.Throttle,
		ThrottleRatio:       1 - (1-g.ThrottleRatio)*(1-i.ThrottleRatio),
		Latency:             g.Latency + i.Latency,
		ErrorRatio:          1 - (1-g.ErrorRatio)*(1-i.ErrorRatio),
		DescribeLag:         max(g.DescribeLag, i.DescribeLag),
		Partition:           g.Partition || i.Partition,
		IMDSLag:             max(g.IMDSLag, i.IMDSLag),
		LateWrites:          max(g.LateWrites, i.LateWrites),
		MixedReads:          g.MixedReads || i.MixedReads,
		PublicIPRelease:     max(g.PublicIPRelease, i.PublicIPRelease),
		EgressNeedsPublicIP: g.EgressNeedsPublicIP || i.EgressNeedsPublicIP,
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
