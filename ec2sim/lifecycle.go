package ec2sim

import (
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned by the operator methods for unknown IDs.
var ErrNotFound = errors.New("not found")

// ErrInvalidState is returned when an instance cannot make the transition.
var ErrInvalidState = errors.New("invalid state")

// withInstance runs fn on a live instance with the simulator locked and
// commits the change.
func (s *Sim) withInstance(id string, fn func(now time.Time, in *instRec) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.tickLocked(now)
	in := s.w.instance(id)
	if in == nil {
		return fmt.Errorf("instance %s: %w", id, ErrNotFound)
	}
	if err := fn(now, in); err != nil {
		return err
	}
	s.commitLocked(now)
	return nil
}

func transitionReason(now time.Time) string {
	return "User initiated (" + now.UTC().Format("2006-01-02 15:04:05 GMT") + ")"
}

// TerminateInstance terminates an instance: its ENIs are deleted, so its
// EIPs are disassociated (recorded as "terminate" events) and its IMDS
// stops answering.
func (s *Sim) TerminateInstance(id string) error {
	return s.withInstance(id, func(now time.Time, in *instRec) error {
		if in.State == "terminated" {
			return nil
		}
		// Terminated first, so that no public IPv4 address comes back as
		// its EIPs leave.
		in.State, in.Reason = "terminated", transitionReason(now)
		for _, a := range s.w.addresses {
			if a.InstanceID == in.ID {
				disassociateLocked(s, now, a, origin{}, "terminate")
			}
		}
		s.releasePublicIPLocked(now, in, "", origin{})
		for _, e := range in.ENIs {
			delete(s.w.tags, e.ID)
		}
		in.ENIs = nil
		in.Spot, in.Rebalance = nil, nil
		return nil
	})
}

// StopInstance stops a running instance; it keeps its ENIs and EIPs, but
// EIP traffic to it is refused and its IMDS does not answer.
func (s *Sim) StopInstance(id string) error {
	return s.withInstance(id, func(now time.Time, in *instRec) error {
		switch in.State {
		case "stopped":
			return nil
		case "running", "pending", "stopping":
			in.State, in.Reason = "stopped", transitionReason(now)
			in.Spot, in.Rebalance = nil, nil
			// AWS releases an auto-assigned public IPv4 address at stop
			// (an EIP stays associated).
			s.releasePublicIPLocked(now, in, "", origin{})
			return nil
		}
		return fmt.Errorf("stop %s in state %s: %w", id, in.State, ErrInvalidState)
	})
}

// StartInstance starts a stopped instance: pending for Options.BootDelay,
// then running.
func (s *Sim) StartInstance(id string) error {
	return s.withInstance(id, func(now time.Time, in *instRec) error {
		switch in.State {
		case "running", "pending":
			return nil
		case "stopped":
			in.Reason = ""
			if s.opts.BootDelay > 0 {
				in.State, in.ReadyAt = "pending", now.Add(s.opts.BootDelay)
			} else {
				in.State = "running"
			}
			in.LaunchTime = now.UTC().Truncate(time.Second)
			// ...and gives a new one at start, unless an EIP is on the
			// primary private IP or a second interface is attached.
			if in.AutoPublicIP && len(in.ENIs) == 1 && publicIPOf(s.w, in) == "" {
				s.assignPublicIPLocked(now, in)
			}
			return nil
		}
		return fmt.Errorf("start %s in state %s: %w", id, in.State, ErrInvalidState)
	})
}

// SpotInterruption posts a spot interruption notice (action terminate,
// stop or hibernate) due in two minutes, as AWS does. The simulator does
// not carry the action out by itself.
func (s *Sim) SpotInterruption(id, action string) error {
	switch action {
	case "terminate", "stop", "hibernate":
	default:
		return fmt.Errorf("spot interruption action %q: want terminate, stop or hibernate", action)
	}
	return s.withInstance(id, func(now time.Time, in *instRec) error {
		if in.State != "running" {
			return fmt.Errorf("spot interruption for %s in state %s: %w", id, in.State, ErrInvalidState)
		}
		in.Spot = &SpotAction{Action: action, Time: now.Add(2 * time.Minute).UTC().Truncate(time.Second)}
		return nil
	})
}

// Rebalance posts a rebalance recommendation (noticeTime now).
func (s *Sim) Rebalance(id string) error {
	return s.withInstance(id, func(now time.Time, in *instRec) error {
		if in.State != "running" {
			return fmt.Errorf("rebalance for %s in state %s: %w", id, in.State, ErrInvalidState)
		}
		t := now.UTC().Truncate(time.Second)
		in.Rebalance = &t
		return nil
	})
}

var lifecycleStates = map[string]bool{
	"InService": true, "Terminated": true, "Detached": true, "Standby": true, "Warmed:Hibernated": true,
	"Warmed:Running": true, "Warmed:Stopped": true, "Warmed:Terminated": true, "": true,
}

// SetLifecycleState sets autoscaling/target-lifecycle-state ("" removes it).
// Terminated also starts the group's termination lifecycle actions for the
// instance (see autoscaling.go).
func (s *Sim) SetLifecycleState(id, state string) error {
	if !lifecycleStates[state] {
		return fmt.Errorf("lifecycle state %q: want InService, Terminated, Detached, Standby or Warmed:*", state)
	}
	return s.withInstance(id, func(now time.Time, in *instRec) error {
		in.Lifecycle = state
		if state == "Terminated" {
			s.startLifecycleActionsLocked(now, id)
		}
		return nil
	})
}

var maintenanceCodes = map[string]string{
	"instance-reboot":     "scheduled reboot",
	"system-reboot":       "scheduled reboot",
	"system-maintenance":  "scheduled maintenance",
	"instance-retirement": "The instance is running on degraded hardware",
	"instance-stop":       "The instance is running on degraded hardware",
}

// ScheduleMaintenance schedules a maintenance event (e.g. system-reboot)
// starting in 24 hours; it shows in IMDS events/maintenance/scheduled and in
// DescribeInstanceStatus.
func (s *Sim) ScheduleMaintenance(id, code string) error {
	desc, ok := maintenanceCodes[code]
	if !ok {
		return fmt.Errorf("maintenance code %q: want instance-reboot, system-reboot, system-maintenance, instance-retirement or instance-stop", code)
	}
	return s.withInstance(id, func(now time.Time, in *instRec) error {
		if in.State == "terminated" {
			return fmt.Errorf("maintenance for %s in state %s: %w", id, in.State, ErrInvalidState)
		}
		start := now.Add(24 * time.Hour).UTC().Truncate(time.Second)
		in.Maintenance = append(in.Maintenance, MaintenanceEvent{Code: code, Description: desc,
			EventID: newResourceID("instance-event"), State: "active", NotBefore: start, NotAfter: start.Add(2 * time.Hour)})
		return nil
	})
}

// Associate moves an EIP to the primary IP of an instance's primary ENI as
// an operator would by hand (AllowReassociation=true). The event has
// Caller "".
func (s *Sim) Associate(allocationID, instanceID string) error {
	return s.AssociatePrivateIP(allocationID, instanceID, "")
}

// AssociatePrivateIP is Associate to a given private IP of the instance's
// primary ENI ("" = its primary IP). An EIP already on that private IP is
// displaced, as on AWS.
func (s *Sim) AssociatePrivateIP(allocationID, instanceID, privateIP string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.tickLocked(now)
	a := s.w.address(allocationID)
	if a == nil {
		return fmt.Errorf("associate %s to %s: allocation %w", allocationID, instanceID, ErrNotFound)
	}
	in := s.w.instance(instanceID)
	if in == nil {
		return fmt.Errorf("associate %s to %s: instance %w", allocationID, instanceID, ErrNotFound)
	}
	if len(in.ENIs) == 0 || in.State == "pending" {
		return fmt.Errorf("associate %s to %s in state %s: %w", allocationID, instanceID, in.State, ErrInvalidState)
	}
	eni := &in.ENIs[0]
	ip := eni.PrivateIPs[0]
	if privateIP != "" {
		if !hasString(eni.PrivateIPs, privateIP) {
			return fmt.Errorf("associate %s to %s: private IP %s is not on its primary ENI (%v): %w",
				allocationID, instanceID, privateIP, eni.PrivateIPs, ErrNotFound)
		}
		ip = privateIP
	}
	if a.ENIID == eni.ID && a.PrivateIP == ip {
		return nil
	}
	s.associateLocked(now, a, in, eni, ip, origin{}, newResourceID("eipassoc"))
	return nil
}

// Disassociate removes an EIP's association as an operator would by hand
// (event "disassociate", Caller ""). An unassociated EIP is left alone.
func (s *Sim) Disassociate(allocationID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.tickLocked(now)
	a := s.w.address(allocationID)
	if a == nil {
		return fmt.Errorf("disassociate %s: allocation %w", allocationID, ErrNotFound)
	}
	if a.AssociationID == "" {
		return nil
	}
	disassociateLocked(s, now, a, origin{}, "disassociate")
	s.commitLocked(now)
	return nil
}

// Release releases an EIP as an operator would (event "release", Caller
// ""): afterwards every call naming it fails with
// InvalidAllocationID.NotFound. Like ReleaseAddress it refuses an
// associated EIP (ErrInvalidState): disassociate it first.
func (s *Sim) Release(allocationID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	s.tickLocked(now)
	a := s.w.address(allocationID)
	if a == nil {
		return fmt.Errorf("release %s: allocation %w", allocationID, ErrNotFound)
	}
	if a.AssociationID != "" {
		return fmt.Errorf("release %s: associated with %s; disassociate it first: %w", allocationID, a.InstanceID, ErrInvalidState)
	}
	s.releaseLocked(now, a, "")
	return nil
}

// SetFaults replaces the global faults. The simulator keeps its own copy:
// the LostAnswers count it consumes is not the caller's.
func (s *Sim) SetFaults(f Faults) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = f.clone()
	s.faultsChangedLocked()
}

// SetInstanceFaults replaces the faults of calls made with one instance's
// credentials (and, for IMDSLag, PublicIPRelease and EgressNeedsPublicIP,
// of that instance).
func (s *Sim) SetInstanceFaults(id string, f Faults) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w.instance(id) == nil {
		return fmt.Errorf("faults for instance %s: %w", id, ErrNotFound)
	}
	s.instFaults[id] = f.clone()
	s.faultsChangedLocked()
	return nil
}

// Faults returns the global faults now in force: a LostAnswers count
// shows how many answers are still to be lost.
func (s *Sim) Faults() Faults {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.faults.clone()
}

// InstanceFaults returns the per-instance faults of instance id (zero
// when none were set).
func (s *Sim) InstanceFaults(id string) (Faults, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w.instance(id) == nil {
		return Faults{}, fmt.Errorf("faults of instance %s: %w", id, ErrNotFound)
	}
	return s.instFaults[id].clone(), nil
}

// SetTargetPort sends the EIP traffic of instance id to port on its
// primary IP instead of Options.TargetPort; port 0 restores the default.
// It stands for an instance whose proxy listens on another port than its
// peers expect, so that a test can keep the peers' probes from reaching it
// while clients of the EIP still do. Connections already open keep their
// target.
func (s *Sim) SetTargetPort(id string, port int) error {
	if port < 0 || port > 65535 {
		return fmt.Errorf("target port %d: want 1..65535, or 0 for the default", port)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.w.instance(id) == nil {
		return fmt.Errorf("target port of instance %s: %w", id, ErrNotFound)
	}
	if port == 0 {
		delete(s.fwdPorts, id)
	} else {
		s.fwdPorts[id] = port
	}
	s.recordTargetsLocked(time.Now())
	return nil
}

// ClearFaults removes global and per-instance faults and refills the
// throttling buckets.
func (s *Sim) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = Faults{}
	s.instFaults = map[string]Faults{}
	s.buckets = map[string]*bucket{}
	s.faultsChangedLocked()
}

// faultsChangedLocked starts or stops keeping history for DescribeLag and
// IMDSLag.
func (s *Sim) faultsChangedLocked() {
	if s.maxLagLocked() > 0 {
		if len(s.hist) == 0 {
			s.hist = []snap{{at: time.Now(), w: s.w.clone()}}
		}
	} else {
		s.hist = nil
	}
}
