package eip

import (
	"reflect"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestParseLease(t *testing.T) {
	cases := []struct {
		name string
		tags map[string]string
		want Lease
	}{
		{"absent", nil, Lease{}},
		{"full", map[string]string{TagHolder: "i-1", TagTerm: "7", TagRenewed: "2026-11-22T02:31:41.123Z"},
			Lease{Holder: "i-1", Term: 7, Renewed: renewedAt}},
		{"released keeps term", map[string]string{TagHolder: "", TagTerm: "7"}, Lease{Term: 7}},
		{"empty values are absent", map[string]string{TagTerm: "", TagRenewed: ""}, Lease{}},
		{"offset converted to UTC", map[string]string{TagRenewed: "2026-11-22T03:31:41.123+01:00"}, Lease{Renewed: renewedAt}},
		{"seconds precision", map[string]string{TagRenewed: "2026-11-22T02:31:41Z"},
			Lease{Renewed: time.Date(2026, 11, 22, 2, 31, 41, 0, time.UTC)}},
		{"term zero", map[string]string{TagTerm: "0"}, Lease{}},
		{"negative term", map[string]string{TagTerm: "-1"}, Lease{Invalid: []string{TagTerm}}},
		{"plus term", map[string]string{TagTerm: "+1"}, Lease{Invalid: []string{TagTerm}}},
		{"word term", map[string]string{TagTerm: "three"}, Lease{Invalid: []string{TagTerm}}},
		{"float term", map[string]string{TagTerm: "1.5"}, Lease{Invalid: []string{TagTerm}}},
		{"overflow term", map[string]string{TagTerm: "99999999999999999999"}, Lease{Invalid: []string{TagTerm}}},
		{"spaced term", map[string]string{TagTerm: " 1"}, Lease{Invalid: []string{TagTerm}}},
		{"bad renewed", map[string]string{TagHolder: "i-2", TagRenewed: "2026-11-22 02:31:41"},
			Lease{Holder: "i-2", Invalid: []string{TagRenewed}}},
		{"unix renewed", map[string]string{TagRenewed: "1790000000"}, Lease{Invalid: []string{TagRenewed}}},
		{"both bad", map[string]string{TagTerm: "x", TagRenewed: "y"}, Lease{Invalid: []string{TagTerm, TagRenewed}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseLease(tc.tags)
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseLeaseNeverPanics(t *testing.T) {
	keys := rapid.SampledFrom([]string{TagHolder, TagTerm, TagRenewed, TagGroup, "other"})
	rapid.Check(t, func(t *rapid.T) {
		tags := rapid.MapOf(keys, rapid.String()).Draw(t, "tags")
		l := ParseLease(tags)
		if l.Term < 0 {
			t.Fatalf("negative term %d", l.Term)
		}
		for _, k := range l.Invalid {
			if k != TagTerm && k != TagRenewed {
				t.Fatalf("invalid key %q", k)
			}
			if tags[k] == "" {
				t.Fatalf("%s marked invalid but absent", k)
			}
		}
		if l.Holder != tags[TagHolder] {
			t.Fatalf("holder %q from %q", l.Holder, tags[TagHolder])
		}
		if !l.Renewed.IsZero() && l.Renewed.Location() != time.UTC {
			t.Fatalf("renewed not UTC: %v", l.Renewed)
		}
	})
}

func TestLeaseRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ms := rapid.Int64Range(0, 253402300799999).Draw(t, "ms") // up to year 9999
		in := Lease{
			Holder:  rapid.String().Draw(t, "holder"),
			Term:    rapid.Int64Range(0, 1<<63-1).Draw(t, "term"),
			Renewed: time.UnixMilli(ms).UTC(),
		}
		if in.Renewed.IsZero() {
			return
		}
		got := ParseLease(tagMap(leaseTags(in)))
		if !reflect.DeepEqual(got, in) {
			t.Fatalf("round trip: got %+v, want %+v", got, in)
		}
	})
}
