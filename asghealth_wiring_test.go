package main

import (
	"slices"
	"testing"

	"github.com/eipd/eipd/asghealth"
	"github.com/eipd/eipd/leader"
	"github.com/eipd/eipd/metrics"
)

// --asg-health never has a member replaced that holds, or may still hold,
// an EIP, and only while another member's probe passes.
func TestASGHealthConditionsFromStatus(t *testing.T) {
	for _, c := range []struct {
		name           string
		eips           []leader.EIPStatus
		holds, serving bool
	}{
		{"standby, holder answers", []leader.EIPStatus{{Role: leader.RoleUnhealthy, PeerProbe: "up"}}, false, true},
		{"standby, holder down", []leader.EIPStatus{{Role: leader.RoleUnhealthy, PeerProbe: "down"}}, false, false},
		{"standby, holder not probed yet", []leader.EIPStatus{{Role: leader.RoleUnhealthy}}, false, false},
		{"holder", []leader.EIPStatus{{Role: leader.RoleHolder}, {Role: leader.RoleUnhealthy, PeerProbe: "up"}}, true, true},
		{"unverified holder", []leader.EIPStatus{{Role: leader.RoleUnverified}}, true, false},
		{"no EIP", nil, false, false},
	} {
		s := leader.Status{EIPs: c.eips}
		if got := holdsAnyEIP(s); got != c.holds {
			t.Errorf("%s: holdsAnyEIP = %v, want %v", c.name, got, c.holds)
		}
		if got := holderServes(s); got != c.serving {
			t.Errorf("%s: holderServes = %v, want %v", c.name, got, c.serving)
		}
	}
}

// The metric's fixed label set is the package's outcomes.
func TestASGHealthOutcomesMatchMetrics(t *testing.T) {
	if !slices.Equal(asghealth.Outcomes, metrics.ASGHealthOutcomes) {
		t.Errorf("asghealth.Outcomes %v, metrics.ASGHealthOutcomes %v", asghealth.Outcomes, metrics.ASGHealthOutcomes)
	}
}
