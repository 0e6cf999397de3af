package ec2sim

import "time"

// Association is one association of an EIP with an instance, as its
// history (Events) tells it.
type Association struct {
	Time         time.Time
	AllocationID string
	// From is the instance the EIP was last associated with before, across
	// any disassociation or termination in between ("" for none); To the
	// instance it is associated with now.
	From, To string
}

// Associations reads an EIP's history as its associations, oldest first:
// the moves a person would name, "from the old holder to the new", whether
// the EIP went straight across or was disassociated on the way. alloc ""
// reads every event, for a history of one EIP.
func Associations(events []Event, alloc string) []Association {
	var out []Association
	last := ""
	for _, e := range events {
		if alloc != "" && e.AllocationID != alloc {
			continue
		}
		if e.To == "" {
			if e.From != "" {
				last = e.From
			}
			continue
		}
		from := e.From
		if from == "" {
			from = last
		}
		out = append(out, Association{Time: e.Time, AllocationID: e.AllocationID, From: from, To: e.To})
		last = e.To
	}
	return out
}
