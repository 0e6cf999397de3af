package eip

import (
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// ParseLease reads the lease from the tags of an EIP allocation. A tag that is
// absent or empty is left zero; one that is present but does not parse is left
// zero and named in Lease.Invalid. It never panics.
func ParseLease(tags map[string]string) Lease {
	var l Lease
	l.Holder = tags[TagHolder]
	if v := tags[TagTerm]; v != "" {
		if t, ok := parseTerm(v); ok {
			l.Term = t
		} else {
			l.Invalid = append(l.Invalid, TagTerm)
		}
	}
	if v := tags[TagRenewed]; v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			l.Renewed = t.UTC()
		} else {
			l.Invalid = append(l.Invalid, TagRenewed)
		}
	}
	// Reason and decided only describe the last move; a bad value there
	// protects nothing, so it is dropped rather than invalidating the lease.
	l.Reason = tags[TagReason]
	l.From = tags[TagFrom]
	if t, err := time.Parse(time.RFC3339Nano, tags[TagDecided]); err == nil {
		l.Decided = t.UTC()
	}
	return l
}

// parseTerm accepts only decimal digits: strconv alone would let "+3" and
// "-0" through, which eipd never writes.
func parseTerm(v string) (int64, bool) {
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	t, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false
	}
	return t, true
}

// leaseTags are the tags Renew writes: holder, term and renewed always,
// reason and decided when the lease records a move.
func leaseTags(l Lease) []types.Tag {
	tags := []types.Tag{
		{Key: aws.String(TagHolder), Value: aws.String(l.Holder)},
		{Key: aws.String(TagTerm), Value: aws.String(strconv.FormatInt(l.Term, 10))},
		{Key: aws.String(TagRenewed), Value: aws.String(l.Renewed.UTC().Format(RenewedLayout))},
	}
	if l.Reason != "" {
		tags = append(tags, types.Tag{Key: aws.String(TagReason), Value: aws.String(l.Reason)})
	}
	if !l.Decided.IsZero() {
		tags = append(tags, types.Tag{Key: aws.String(TagDecided), Value: aws.String(l.Decided.UTC().Format(RenewedLayout))})
	}
	if l.Reason != "" {
		// Written with every move, empty when the EIP was unassociated,
		// so an old value never describes a new move.
		tags = append(tags, types.Tag{Key: aws.String(TagFrom), Value: aws.String(l.From)})
	}
	return tags
}

func tagMap(tags []types.Tag) map[string]string {
	m := make(map[string]string, len(tags))
	for _, t := range tags {
		if t.Key != nil {
			m[*t.Key] = aws.ToString(t.Value)
		}
	}
	return m
}

// onceSet remembers which bad tag values were already logged, so a bad value
// is logged once rather than on every poll. Bounded: a source that writes a
// new bad value every poll cannot grow it without limit.
type onceSet struct {
	mu   sync.Mutex
	seen map[string]struct{}
}

const onceSetMax = 4096

// first reports whether key is seen for the first time.
func (s *onceSet) first(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[key]; ok {
		return false
	}
	if s.seen == nil || len(s.seen) >= onceSetMax {
		s.seen = make(map[string]struct{})
	}
	s.seen[key] = struct{}{}
	return true
}
