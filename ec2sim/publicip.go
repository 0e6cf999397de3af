package ec2sim

import (
	"fmt"
	"time"
)

// Auto-assigned public IPv4 addresses (Options.AutoAssignPublicIP), as AWS
// documents them in "Elastic IP address concepts and rules"
// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/elastic-ip-addresses-eip.html)
// and "Public IPv4 addresses"
// (https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/using-instance-addressing.html#concepts-public-addresses):
//
//   - an instance launched into a subnet that auto-assigns public IPv4
//     addresses gets one on its primary network interface's primary
//     private IP, owned by "amazon" (not an EIP, not in DescribeAddresses);
//   - associating an EIP with that primary private IP releases it;
//   - once the EIP leaves again, a new (different) one is assigned "within
//     a few minutes" (Faults.PublicIPRelease here), but not while the
//     instance has a second network interface attached;
//   - stopping the instance releases it, starting gives a new one.
//
// The addresses come from 198.18.0.0/15, the range RFC 2544 reserves for
// benchmarking (IANA special-purpose, never routed): the RFC 5737
// documentation ranges are the EIPs'. Like EIPs they are never dialed.

// hasPublicIPLocked reports whether instance id can reach the internet
// through a public IPv4 address: an auto-assigned one, or an EIP on its
// primary private IP (the source address of its traffic).
func (s *Sim) hasPublicIPLocked(id string) bool {
	in := s.w.instance(id)
	return in != nil && publicIPOf(s.w, in) != ""
}

// publicIPOf is the instance's public IPv4 address as DescribeInstances
// (ipAddress) and IMDS (public-ipv4) show it: the EIP on the primary
// private IP of its primary ENI, else its auto-assigned address.
func publicIPOf(w *world, in *instRec) string {
	if len(in.ENIs) == 0 {
		return ""
	}
	if a := w.addressOn(in.ENIs[0].ID, in.ENIs[0].PrivateIPs[0]); a != nil {
		return a.PublicIP
	}
	return in.PublicIP
}

// nextAutoIPLocked hands out the next address of 198.18.0.0/15 that no
// instance holds, skipping .0 and .255 so that none looks like a network
// or broadcast address.
func (s *Sim) nextAutoIPLocked() string {
	for {
		n := s.nextAuto % (2 * 256 * 254)
		s.nextAuto++
		hi, lo := n/254, n%254+1
		ip := fmt.Sprintf("198.%d.%d.%d", 18+hi/256, hi%256, lo)
		used := false
		for _, in := range s.w.instances {
			used = used || in.PublicIP == ip
		}
		if !used {
			return ip
		}
	}
}

// liveState: running, or pending after a start (which already gave it an
// address); a stopped or terminated instance has none.
func liveState(in *instRec) bool { return in.State == "running" || in.State == "pending" }

// onPrimaryIP reports whether (eni, ip) is the primary private IP of the
// instance's primary network interface: the one that carries the
// auto-assigned public IPv4 address.
func onPrimaryIP(in *instRec, eniID, ip string) bool {
	return len(in.ENIs) > 0 && in.ENIs[0].ID == eniID && in.ENIs[0].PrivateIPs[0] == ip
}

// releasePublicIPLocked gives back an instance's auto-assigned address
// (an EIP took its place, or the instance stopped) and cancels a pending
// return.
func (s *Sim) releasePublicIPLocked(now time.Time, in *instRec, allocID string, o origin) {
	in.PublicIPDue = time.Time{}
	if in.PublicIP == "" {
		return
	}
	e := Event{Time: now, AllocationID: allocID, From: in.ID, Action: "public-ip-release", PublicIP: in.PublicIP}
	o.stamp(&e)
	in.PublicIP = ""
	s.recordEventLocked(e)
}

// eipLeftLocked is called once an EIP has left (eniID, ip). When that was
// the primary private IP of an instance launched with an auto-assigned
// address and nothing is there now, a new address is due
// Faults.PublicIPRelease from now (the instance's faults with the global
// ones), at once when that is 0. Never with more than one network
// interface attached, nor while the instance is stopped (start gives it
// one).
func (s *Sim) eipLeftLocked(now time.Time, eniID, ip string) {
	in, _ := s.w.eni(eniID)
	if in == nil || !in.AutoPublicIP || !onPrimaryIP(in, eniID, ip) || s.w.addressOn(eniID, ip) != nil {
		return
	}
	if len(in.ENIs) > 1 || !liveState(in) || in.PublicIP != "" {
		return
	}
	delay := combine(s.faults, s.instFaults[in.ID]).PublicIPRelease
	if delay == 0 {
		s.assignPublicIPLocked(now, in) // the caller commits
		return
	}
	in.PublicIPDue = now.Add(delay)
	s.wakeTimer()
}

// publicIPDueLocked assigns the new address whose return fell due, unless
// the reasons for it went away meanwhile (an EIP came back to the primary
// private IP, the instance stopped). The event is dated when it was due.
func (s *Sim) publicIPDueLocked(in *instRec) {
	at := in.PublicIPDue
	in.PublicIPDue = time.Time{}
	if len(in.ENIs) != 1 || !liveState(in) || in.PublicIP != "" || publicIPOf(s.w, in) != "" {
		return
	}
	s.assignPublicIPLocked(at, in)
	s.commitLocked(at)
}

func (s *Sim) assignPublicIPLocked(now time.Time, in *instRec) {
	in.PublicIP = s.nextAutoIPLocked()
	s.recordEventLocked(Event{Time: now, To: in.ID, Action: "public-ip-return", PublicIP: in.PublicIP})
}
