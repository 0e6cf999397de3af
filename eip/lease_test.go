package eip

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"pgregory.net/rapid"
)

func TestParseGroupLease(t *testing.T) {
	cases := []struct {
		name string
		tags map[string]string
		want GroupLease
	}{
		{"absent", nil, GroupLease{}},
		{"full", map[string]string{TagCoordinator: "i-1", TagEpoch: "7", TagRenewed: "2026-11-22T02:31:41.123Z"},
			GroupLease{Coordinator: "i-1", Epoch: 7, Renewed: renewedAt}},
		{"record tags are not the lease", map[string]string{TagHolder: "i-2", TagTerm: "3.1", TagMoved: "2026-11-22T02:31:41.123Z"}, GroupLease{}},
		{"empty values are absent", map[string]string{TagCoordinator: "", TagEpoch: "", TagRenewed: ""}, GroupLease{}},
		{"offset converted to UTC", map[string]string{TagRenewed: "2026-11-22T03:31:41.123+01:00"}, GroupLease{Renewed: renewedAt}},
		{"seconds precision", map[string]string{TagRenewed: "2026-11-22T02:31:41Z"},
			GroupLease{Renewed: time.Date(2026, 11, 22, 2, 31, 41, 0, time.UTC)}},
		{"epoch zero", map[string]string{TagEpoch: "0"}, GroupLease{}},
		{"negative epoch", map[string]string{TagEpoch: "-1"}, GroupLease{Invalid: []string{TagEpoch}}},
		{"plus epoch", map[string]string{TagEpoch: "+1"}, GroupLease{Invalid: []string{TagEpoch}}},
		{"word epoch", map[string]string{TagEpoch: "three"}, GroupLease{Invalid: []string{TagEpoch}}},
		{"term as epoch", map[string]string{TagEpoch: "1.5"}, GroupLease{Invalid: []string{TagEpoch}}},
		{"overflow epoch", map[string]string{TagEpoch: "99999999999999999999"}, GroupLease{Invalid: []string{TagEpoch}}},
		{"spaced epoch", map[string]string{TagEpoch: " 1"}, GroupLease{Invalid: []string{TagEpoch}}},
		{"bad renewed", map[string]string{TagCoordinator: "i-2", TagRenewed: "2026-11-22 02:31:41"},
			GroupLease{Coordinator: "i-2", Invalid: []string{TagRenewed}}},
		{"unix renewed", map[string]string{TagRenewed: "1790000000"}, GroupLease{Invalid: []string{TagRenewed}}},
		{"both bad", map[string]string{TagEpoch: "x", TagRenewed: "y"}, GroupLease{Invalid: []string{TagEpoch, TagRenewed}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseGroupLease(tc.tags)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseTerm(t *testing.T) {
	for s, want := range map[string]Term{
		"1.0": {Epoch: 1}, "3.7": {Epoch: 3, Seq: 7}, "0.0": {}, "12.345": {Epoch: 12, Seq: 345},
		"007.08": {Epoch: 7, Seq: 8}, "9223372036854775807.9223372036854775807": {Epoch: 1<<63 - 1, Seq: 1<<63 - 1},
	} {
		if got, ok := ParseTerm(s); !ok || got != want {
			t.Errorf("ParseTerm(%q) = %+v, %v; want %+v", s, got, ok, want)
		}
	}
	for _, s := range []string{
		"", "7", // a term of the per-EIP leases before the coordinator: no epoch
		".", "1.", ".1", "1.2.3", "-1.2", "1.-2", "+1.2", "1.+2", " 1.2", "1.2 ", "a.b", "1,2", "1e3.1",
		"9223372036854775808.1", "1.99999999999999999999",
	} {
		if got, ok := ParseTerm(s); ok || got != (Term{}) {
			t.Errorf("ParseTerm(%q) = %+v, %v; want invalid", s, got, ok)
		}
	}
}

func TestTermOrder(t *testing.T) {
	// Ordered: the epoch first, the sequence within an epoch.
	terms := []Term{{}, {0, 5}, {1, 0}, {1, 1}, {1, 9}, {2, 0}, {2, 3}, {10, 1}}
	for i, a := range terms {
		for j, b := range terms {
			if got := a.Less(b); got != (i < j) {
				t.Errorf("%s.Less(%s) = %v, want %v", a, b, got, i < j)
			}
		}
	}
	if !(Term{}).IsZero() || (Term{Seq: 1}).IsZero() || (Term{Epoch: 1}).IsZero() {
		t.Error("IsZero")
	}
	if s := (Term{Epoch: 3, Seq: 12}).String(); s != "3.12" {
		t.Errorf("String() = %q", s)
	}
}

func TestGroupLeaseNewer(t *testing.T) {
	early, late := renewedAt, renewedAt.Add(time.Second)
	for _, c := range []struct {
		a, b GroupLease
		want bool
	}{
		{GroupLease{Epoch: 2, Renewed: early}, GroupLease{Epoch: 1, Renewed: late}, true}, // a higher epoch wins, whatever the clocks
		{GroupLease{Epoch: 1, Renewed: late}, GroupLease{Epoch: 2, Renewed: early}, false},
		{GroupLease{Epoch: 2, Renewed: late}, GroupLease{Epoch: 2, Renewed: early}, true},
		{GroupLease{Epoch: 2, Renewed: early}, GroupLease{Epoch: 2, Renewed: late}, false},
		{GroupLease{Epoch: 2, Renewed: early}, GroupLease{Epoch: 2, Renewed: early}, false},
		{GroupLease{Epoch: 1}, GroupLease{}, true},
	} {
		if got := c.a.Newer(c.b); got != c.want {
			t.Errorf("%+v.Newer(%+v) = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestParseRecord(t *testing.T) {
	moved := renewedAt.Add(180 * time.Millisecond)
	cases := []struct {
		name string
		tags map[string]string
		want Record
	}{
		{"absent", nil, Record{}},
		{"full", map[string]string{TagHolder: "i-2", TagTerm: "3.7", TagReason: "handoff-unhealthy",
			TagDecided: "2026-11-22T02:31:41.123Z", TagMoved: "2026-11-22T02:31:41.303Z", TagFrom: "i-1"},
			Record{Holder: "i-2", Term: Term{3, 7}, Reason: "handoff-unhealthy", Decided: renewedAt, Moved: moved, From: "i-1"}},
		{"lease tags are not the record", map[string]string{TagCoordinator: "i-1", TagEpoch: "4", TagRenewed: "2026-11-22T02:31:41.123Z"}, Record{}},
		{"written to match an association made by hand", map[string]string{TagHolder: "i-2", TagTerm: "4.1",
			TagReason: "", TagDecided: "", TagMoved: "", TagFrom: ""}, Record{Holder: "i-2", Term: Term{4, 1}}},
		{"times converted to UTC", map[string]string{TagDecided: "2026-11-22T03:31:41.123+01:00", TagMoved: "2026-11-22T02:31:41.303Z"},
			Record{Decided: renewedAt, Moved: moved}},
		{"term of the per-EIP lease", map[string]string{TagHolder: "i-1", TagTerm: "7"}, Record{Holder: "i-1", Invalid: []string{TagTerm}}},
		{"bad term", map[string]string{TagTerm: "3.x"}, Record{Invalid: []string{TagTerm}}},
		// The times only describe the move: a bad one is dropped, not
		// reported, and orders nothing.
		{"bad times dropped", map[string]string{TagTerm: "2.1", TagDecided: "yesterday", TagMoved: "1790000000"}, Record{Term: Term{2, 1}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseRecord(tc.tags)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

var tagKeys = []string{TagCoordinator, TagEpoch, TagRenewed, TagHolder, TagTerm, TagReason, TagDecided, TagMoved, TagFrom, TagGroup, "other"}

// Whatever the tags hold, parsing never panics, never yields a negative
// count or a non-UTC time, and names as invalid only ordering tags that
// were present.
func TestParseNeverPanics(t *testing.T) {
	value := rapid.OneOf(rapid.String(), rapid.StringMatching(`[0-9+\-. ]{0,24}`),
		rapid.SampledFrom([]string{"", "0", "1.2", "2026-11-22T02:31:41.123Z", "9223372036854775808"}))
	rapid.Check(t, func(t *rapid.T) {
		tags := rapid.MapOf(rapid.SampledFrom(tagKeys), value).Draw(t, "tags")
		l := ParseGroupLease(tags)
		if l.Epoch < 0 {
			t.Fatalf("negative epoch %d", l.Epoch)
		}
		if l.Coordinator != tags[TagCoordinator] {
			t.Fatalf("coordinator %q from %q", l.Coordinator, tags[TagCoordinator])
		}
		checkInvalid(t, tags, l.Invalid, TagEpoch, TagRenewed)
		checkUTC(t, "renewed", l.Renewed)

		r := ParseRecord(tags)
		if r.Term.Epoch < 0 || r.Term.Seq < 0 {
			t.Fatalf("negative term %+v", r.Term)
		}
		if r.Holder != tags[TagHolder] || r.Reason != tags[TagReason] || r.From != tags[TagFrom] {
			t.Fatalf("record %+v from %v", r, tags)
		}
		checkInvalid(t, tags, r.Invalid, TagTerm)
		checkUTC(t, "decided", r.Decided)
		checkUTC(t, "moved", r.Moved)
		if _, ok := ParseTerm(tags[TagTerm]); ok == slices.Contains(r.Invalid, TagTerm) && tags[TagTerm] != "" {
			t.Fatalf("term %q: ParseTerm ok %v but invalid %v", tags[TagTerm], ok, r.Invalid)
		}
	})
}

func checkInvalid(t *rapid.T, tags map[string]string, invalid []string, allowed ...string) {
	for _, k := range invalid {
		if !slices.Contains(allowed, k) {
			t.Fatalf("invalid key %q, want one of %v", k, allowed)
		}
		if tags[k] == "" {
			t.Fatalf("%s marked invalid but absent", k)
		}
	}
}

func checkUTC(t *rapid.T, what string, v time.Time) {
	if !v.IsZero() && v.Location() != time.UTC {
		t.Fatalf("%s not UTC: %v", what, v)
	}
}

// TestTermRoundTrip: String and ParseTerm are inverse for every term.
func TestTermRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := Term{Epoch: rapid.Int64Min(0).Draw(t, "epoch"), Seq: rapid.Int64Min(0).Draw(t, "seq")}
		got, ok := ParseTerm(in.String())
		if !ok || got != in {
			t.Fatalf("ParseTerm(%q) = %+v, %v", in.String(), got, ok)
		}
	})
}

// tagsWritten runs write against a client whose CreateTags only records,
// and returns the tags of the one call it made.
func tagsWritten(t interface {
	Helper()
	Fatalf(string, ...any)
}, write func(*Client) error) map[string]string {
	t.Helper()
	f := &fakeEC2{}
	c, _ := newTestClient(f, Config{})
	if err := write(c); err != nil {
		t.Fatalf("write: %v", err)
	}
	if ops := f.ops(); len(ops) != 1 || ops[0] != OpCreateTags {
		t.Fatalf("calls %v, want one CreateTags", ops)
	}
	return tagMap(f.call(0).(*ec2.CreateTagsInput).Tags)
}

func stampTime(t *rapid.T, label string) time.Time {
	ms := rapid.Int64Range(0, 253402300799999).Draw(t, label) // up to year 9999
	return time.UnixMilli(ms).UTC()
}

// TestGroupLeaseRoundTrip: what WriteLease writes reads back as the lease
// it was given.
func TestGroupLeaseRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		in := GroupLease{
			Coordinator: rapid.StringMatching(`i-[0-9a-f]{1,17}`).Draw(t, "coordinator"),
			Epoch:       rapid.Int64Range(1, 1<<63-1).Draw(t, "epoch"),
			Renewed:     stampTime(t, "renewed"),
		}
		tags := tagsWritten(t, func(c *Client) error { return c.WriteLease(context.Background(), []string{"eipalloc-1"}, in) })
		if got := ParseGroupLease(tags); !reflect.DeepEqual(got, in) {
			t.Fatalf("round trip: got %+v, want %+v (tags %v)", got, in, tags)
		}
	})
}

// TestRecordRoundTrip: what WriteRecord writes reads back as the record it
// was given, unknown times and origin included.
func TestRecordRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		opt := func(label string) time.Time {
			if rapid.Bool().Draw(t, label+" known") {
				return stampTime(t, label)
			}
			return time.Time{}
		}
		in := Record{
			Holder:  rapid.String().Draw(t, "holder"),
			Term:    Term{Epoch: rapid.Int64Range(1, 1<<63-1).Draw(t, "epoch"), Seq: rapid.Int64Min(0).Draw(t, "seq")},
			Reason:  rapid.SampledFrom([]string{"", "takeover-stale", "handoff-manual"}).Draw(t, "reason"),
			Decided: opt("decided"),
			Moved:   opt("moved"),
			From:    rapid.String().Draw(t, "from"),
		}
		tags := tagsWritten(t, func(c *Client) error { return c.WriteRecord(context.Background(), "eipalloc-1", in) })
		if got := ParseRecord(tags); !reflect.DeepEqual(got, in) {
			t.Fatalf("round trip: got %+v, want %+v (tags %v)", got, in, tags)
		}
	})
}
