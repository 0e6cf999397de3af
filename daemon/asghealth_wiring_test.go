package daemon

import (
	"slices"
	"testing"

	"github.com/eipd/eipd/asghealth"
	"github.com/eipd/eipd/leader"
	"github.com/eipd/eipd/metrics"
)

// --asg-health never has a member replaced that holds, or may still hold,
// an EIP, and only while a trusted coordinator confirms an EIP on another
// member.
func TestASGHealthConditionsFromStatus(t *testing.T) {
	for _, c := range []struct {
		name           string
		eips           []leader.EIPStatus
		holds, serving bool
	}{
		{"standby, another member holds", []leader.EIPStatus{{Role: leader.RoleUnhealthy, Holder: "i-b"}}, false, true},
		{"standby, no holder confirmed", []leader.EIPStatus{{Role: leader.RoleUnhealthy}}, false, false},
		{"holder", []leader.EIPStatus{{Role: leader.RoleHolder, Holder: "i-a"}, {Role: leader.RoleUnhealthy, Holder: "i-b"}}, true, true},
		{"holder of its only EIP", []leader.EIPStatus{{Role: leader.RoleHolder, Holder: "i-a"}}, true, false},
		{"unverified holder", []leader.EIPStatus{{Role: leader.RoleUnverified}}, true, false},
		{"no EIP", nil, false, false},
	} {
		s := leader.Status{InstanceID: "i-a", EIPs: c.eips}
		if got := holdsAnyEIP(s); got != c.holds {
			t.Errorf("%s: holdsAnyEIP = %v, want %v", c.name, got, c.holds)
		}
		if got := othersServe(s); got != c.serving {
			t.Errorf("%s: othersServe = %v, want %v", c.name, got, c.serving)
		}
	}
}

// The metric's fixed label set is the package's outcomes.
func TestASGHealthOutcomesMatchMetrics(t *testing.T) {
	if !slices.Equal(asghealth.Outcomes, metrics.ASGHealthOutcomes) {
		t.Errorf("asghealth.Outcomes %v, metrics.ASGHealthOutcomes %v", asghealth.Outcomes, metrics.ASGHealthOutcomes)
	}
}
