package eip

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
)

// GroupLease is the coordinator's lease, carried by every managed EIP
// (eipd:coordinator, eipd:epoch, eipd:renewed). The coordinator renews it on
// all of them in one CreateTags call; a reader takes the freshest copy.
// Fields that are absent or do not parse are left zero; those that were
// present but did not parse are named in Invalid.
type GroupLease struct {
	Coordinator string    // instance ID; "" when absent
	Epoch       int64     // +1 with every new coordinator
	Renewed     time.Time // the coordinator's clock at its last renewal
	Invalid     []string
}

// Newer reports whether l is a later lease than o: a higher epoch, or the
// same epoch renewed later.
func (l GroupLease) Newer(o GroupLease) bool {
	if l.Epoch != o.Epoch {
		return l.Epoch > o.Epoch
	}
	return l.Renewed.After(o.Renewed)
}

// Term orders the moves of one EIP: the epoch of the coordinator that made
// the move first, then a sequence within that epoch. A coordinator that
// lost its lease and writes late therefore always writes a lower term than
// its successor. Written as "epoch.seq".
type Term struct {
	Epoch, Seq int64
}

// Less reports whether t comes before u.
func (t Term) Less(u Term) bool {
	if t.Epoch != u.Epoch {
		return t.Epoch < u.Epoch
	}
	return t.Seq < u.Seq
}

// IsZero reports whether no term was recorded.
func (t Term) IsZero() bool { return t == Term{} }

func (t Term) String() string {
	return strconv.FormatInt(t.Epoch, 10) + "." + strconv.FormatInt(t.Seq, 10)
}

// ParseTerm reads "epoch.seq", both decimal digits only.
func ParseTerm(s string) (Term, bool) {
	e, q, ok := strings.Cut(s, ".")
	if !ok {
		return Term{}, false
	}
	epoch, ok1 := parseCount(e)
	seq, ok2 := parseCount(q)
	if !ok1 || !ok2 {
		return Term{}, false
	}
	return Term{Epoch: epoch, Seq: seq}, true
}

// Record is the last move of one EIP as its coordinator wrote it
// (eipd:holder, eipd:term, eipd:reason, eipd:decided, eipd:moved,
// eipd:from): what the association should be, and why and when it
// became so. The association itself is the truth; the record explains it
// and orders the moves.
type Record struct {
	Holder  string    // instance the coordinator placed the EIP on
	Term    Term      // of that move
	Reason  string    // failover reason, "" for a record written to match an association made by hand
	Decided time.Time // when the move was decided
	Moved   time.Time // when AWS confirmed the association
	From    string    // the instance the EIP left in that move, "" when it was unassociated
	Invalid []string
}

// ParseGroupLease reads the coordinator's lease from an EIP's tags.
func ParseGroupLease(tags map[string]string) GroupLease {
	var l GroupLease
	l.Coordinator = tags[TagCoordinator]
	if v := tags[TagEpoch]; v != "" {
		if e, ok := parseCount(v); ok {
			l.Epoch = e
		} else {
			l.Invalid = append(l.Invalid, TagEpoch)
		}
	}
	if v := tags[TagRenewed]; v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			l.Renewed = t.UTC()
		} else {
			l.Invalid = append(l.Invalid, TagRenewed)
		}
	}
	return l
}

// ParseRecord reads the last move from an EIP's tags. It never panics.
func ParseRecord(tags map[string]string) Record {
	var r Record
	r.Holder = tags[TagHolder]
	if v := tags[TagTerm]; v != "" {
		if t, ok := ParseTerm(v); ok {
			r.Term = t
		} else {
			r.Invalid = append(r.Invalid, TagTerm)
		}
	}
	// Reason and the times only describe the move; a bad value there
	// orders nothing, so it is dropped rather than invalidating the record.
	r.Reason = tags[TagReason]
	r.From = tags[TagFrom]
	if t, err := time.Parse(time.RFC3339Nano, tags[TagDecided]); err == nil {
		r.Decided = t.UTC()
	}
	if t, err := time.Parse(time.RFC3339Nano, tags[TagMoved]); err == nil {
		r.Moved = t.UTC()
	}
	return r
}

// parseCount accepts only decimal digits: strconv alone would let "+3" and
// "-0" through, which eipd never writes.
func parseCount(v string) (int64, bool) {
	if v == "" {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false
	}
	return n, true
}

func stamp(t time.Time) string { return t.UTC().Format(RenewedLayout) }

// Tags are the group lease's tags, as renewals and claims write them.
func (l GroupLease) Tags() map[string]string {
	return map[string]string{
		TagCoordinator: l.Coordinator,
		TagEpoch:       strconv.FormatInt(l.Epoch, 10),
		TagRenewed:     stamp(l.Renewed),
	}
}

// Tags are a move's tags. Every key is written every time (empty when
// unknown), so an old value never describes a new move.
func (r Record) Tags() map[string]string {
	opt := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return stamp(t)
	}
	return map[string]string{
		TagHolder:  r.Holder,
		TagTerm:    r.Term.String(),
		TagReason:  r.Reason,
		TagDecided: opt(r.Decided),
		TagMoved:   opt(r.Moved),
		TagFrom:    r.From,
	}
}

// sdkTags turns tags into the SDK's form, sorted by key.
func sdkTags(m map[string]string) []types.Tag {
	keys := slices.Sorted(maps.Keys(m))
	out := make([]types.Tag, 0, len(keys))
	for _, k := range keys {
		out = append(out, types.Tag{Key: aws.String(k), Value: aws.String(m[k])})
	}
	return out
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
