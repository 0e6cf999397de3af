package leader

import (
	"math"
	"slices"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/health"
)

// EC2 allows one EIP per private IP: associating a second one silently
// knocks the first off. So an EIP only ever goes to a private IP (a slot)
// that carries nothing, and an instance holds at most as many EIPs as it
// has private IPs on its primary ENI.

// selfInstance is this instance as the member list shows it, or as its
// identity describes it (primary IP only) before the list is known.
func (l *Loop) selfInstance() eip.Instance {
	if m := l.member(l.self.InstanceID); m != nil {
		return *m
	}
	return eip.Instance{InstanceID: l.self.InstanceID, State: "running", NetworkInterfaceID: l.self.NetworkInterfaceID,
		PrivateIP: l.self.PrivateIP}
}

// freeSlot returns a private IP of the instance's primary ENI that carries
// no EIP, or "". A slot counts as taken when the member list shows an
// association on it, or when the last read of a managed EIP (other than
// alloc) shows it there: whichever is newer may know of a move the other
// does not. Slots are tried starting from the EIP's place among the managed
// EIPs (sorted by allocation ID, the same on every member), so that two
// holders handing different EIPs to the same member at the same moment,
// each unaware of the other, pick different slots whenever the member has
// enough: EC2 has no conditional association, and the second would knock
// the first EIP off.
func (l *Loop) freeSlot(in eip.Instance, alloc string) string {
	slots := in.Slots()
	if len(slots) == 0 {
		return ""
	}
	now := l.cfg.Now()
	taken := func(ip string) bool {
		for id, st := range l.eips {
			if id == alloc {
				continue
			}
			if st.holding && st.ownSlot == ip && in.InstanceID == l.self.InstanceID {
				return true // ours, whatever a lagging read says
			}
			a := st.addr
			if a.Associated() && a.PrivateIP == ip &&
				(a.NetworkInterfaceID == in.NetworkInterfaceID || a.InstanceID == in.InstanceID) {
				return true
			}
			if st.reservedIP == ip && st.reservedENI == in.NetworkInterfaceID &&
				now.Before(st.reservedTil) && !(a.Associated() && a.PrivateIP == st.reservedIP && a.NetworkInterfaceID == st.reservedENI) {
				return true // kept for that EIP (see eipState.reserved)
			}
		}
		return false
	}
	start := 0
	if len(slots) > 1 {
		start = slices.Index(l.sortedIDs(), alloc) % len(slots)
		if start < 0 {
			start = int(hashString(alloc) % uint64(len(slots)))
		}
	}
	if st, ok := l.eips[alloc]; ok && !st.addr.Associated() && st.reservedENI == in.NetworkInterfaceID {
		// An EIP that was disassociated goes back where it was first.
		for i, s := range slots {
			if s.Address == st.reservedIP {
				start = i
			}
		}
	}
	for i := range slots {
		s := slots[(start+i)%len(slots)]
		// A listing that shows this very EIP on the slot lags behind
		// its move away: the slot is free for it.
		if (s.PublicIP == "" || l.ownsPublicIP(alloc, s.PublicIP)) && !taken(s.Address) {
			return s.Address
		}
	}
	return ""
}

// ownsPublicIP reports whether publicIP is the address of alloc itself.
func (l *Loop) ownsPublicIP(alloc, publicIP string) bool {
	st, ok := l.eips[alloc]
	return ok && st.addr.PublicIP != "" && st.addr.PublicIP == publicIP
}

// maxHold is ceil(EIPs / ready members), counting this instance when it is
// fit; 0 (no cap) with a single EIP.
func (l *Loop) maxHold() int {
	if len(l.eips) < 2 {
		return 0
	}
	ready := 0
	selfCounted := false
	for _, m := range l.members {
		if m.EIPDState == eip.StateReady {
			ready++
			if m.InstanceID == l.self.InstanceID {
				selfCounted = true
			}
		}
	}
	if !selfCounted && l.health.Status() == health.Up && l.drain == "" {
		ready++
	}
	if ready == 0 {
		return 0
	}
	return int(math.Ceil(float64(len(l.eips)) / float64(ready)))
}

func hashString(s string) uint64 {
	// FNV-1a, inline: the slot order needs no more.
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
