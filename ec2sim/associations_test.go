package ec2sim

import (
	"fmt"
	"testing"
	"time"
)

func TestAssociations(t *testing.T) {
	at := func(s int) time.Time { return time.Unix(int64(s), 0) }
	events := []Event{
		{Time: at(1), AllocationID: "a", To: "i-1", Action: "associate"},
		{Time: at(2), AllocationID: "b", To: "i-9", Action: "associate"},
		{Time: at(3), AllocationID: "a", From: "i-1", To: "i-2", Action: "move"},
		{Time: at(4), AllocationID: "a", From: "i-2", Action: "terminate"},
		{Time: at(5), Action: "public-ip-release"},
		{Time: at(6), AllocationID: "a", To: "i-3", Action: "associate"},
	}
	got := fmt.Sprint(Associations(events, "a"))
	want := fmt.Sprint([]Association{
		{Time: at(1), AllocationID: "a", To: "i-1"},
		{Time: at(3), AllocationID: "a", From: "i-1", To: "i-2"},
		{Time: at(6), AllocationID: "a", From: "i-2", To: "i-3"},
	})
	if got != want {
		t.Errorf("Associations(a) =\n%s\nwant\n%s", got, want)
	}
	if n := len(Associations(events, "")); n != 4 {
		t.Errorf("Associations of every event: %d, want 4", n)
	}
}
