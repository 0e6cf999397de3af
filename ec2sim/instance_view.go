package ec2sim

import "time"

// InstanceView is the true (not lagged) state of one instance.
type InstanceView struct {
	InstanceID string `json:"instance_id"`
	State      string `json:"state"` // running, stopped, terminated, ...
	AZ         string `json:"az"`
	PrivateIP  string `json:"private_ip"`
	// PublicIP is its public IPv4 address now: the EIP on its primary
	// private IP, else its auto-assigned one (Options.AutoAssignPublicIP),
	// else "".
	PublicIP string            `json:"public_ip,omitempty"`
	Tags     map[string]string `json:"tags"`
}

// Instance returns the true current state of an instance, tags included
// (eipd:state among them), without an EC2 call: callers such as `eipd demo`
// watch the account without adding to the API counts they report.
func (s *Sim) Instance(instanceID string) (InstanceView, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickLocked(time.Now())
	in := s.w.instance(instanceID)
	if in == nil {
		return InstanceView{}, false
	}
	v := InstanceView{InstanceID: in.ID, State: in.State, AZ: in.AZ, PrivateIP: in.PrimaryIP, PublicIP: publicIPOf(s.w, in),
		Tags: map[string]string{}}
	for k, val := range s.w.tags[in.ID] {
		v.Tags[k] = val
	}
	return v, true
}
