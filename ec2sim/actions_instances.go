package ec2sim

import (
	"strconv"
	"strings"
)

var instanceFilters = map[string]bool{
	"instance-id": true, "instance-state-name": true, "instance-state-code": true, "availability-zone": true,
	"private-ip-address": true, "ip-address": true, "vpc-id": true, "subnet-id": true, "instance-type": true,
	"image-id": true, "reservation-id": true, "private-dns-name": true, "owner-id": true, "dns-name": true,
	"network-interface.network-interface-id": true, "network-interface.mac-address": true,
	"network-interface.association.public-ip": true, "network-interface.addresses.association.public-ip": true,
	"network-interface.association.allocation-id": true, "network-interface.addresses.private-ip-address": true,
	"network-interface.private-dns-name": true, "network-interface.subnet-id": true, "network-interface.vpc-id": true,
	"network-interface.attachment.device-index": true, "network-interface.status": true,
	"placement-group-name": true, "tenancy": true, "architecture": true,
}

// instanceIDs validates InstanceId.N: malformed IDs fail first.
func instanceIDs(req request) ([]string, error) {
	ids, err := req.list("InstanceId")
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		if !instanceIDRE().MatchString(id) {
			return nil, malformedInstance(id)
		}
	}
	return ids, nil
}

// selectInstances resolves explicit IDs (all must exist) or all instances.
func selectInstances(w *world, ids []string) ([]*instRec, error) {
	if len(ids) == 0 {
		return w.instances, nil
	}
	var missing []string
	var out []*instRec
	for _, in := range w.instances {
		if hasString(ids, in.ID) {
			out = append(out, in)
		}
	}
	for _, id := range ids {
		if w.instance(id) == nil && !hasString(missing, id) {
			missing = append(missing, id)
		}
	}
	if len(missing) > 0 {
		return nil, notFoundInstances(missing)
	}
	return out, nil
}

func publicDNS(ip, region string) string {
	if region == "us-east-1" {
		return "ec2-" + strings.ReplaceAll(ip, ".", "-") + ".compute-1.amazonaws.com"
	}
	return "ec2-" + strings.ReplaceAll(ip, ".", "-") + "." + region + ".compute.amazonaws.com"
}

// instanceFilterValues answers DescribeInstances filters for one instance.
func instanceFilterValues(w *world, in *instRec, region, name string) []string {
	if v, ok := tagValues(w, in.ID, name); ok {
		return v
	}
	var eniVals func(e eniRec) []string
	switch name {
	case "instance-id":
		return []string{in.ID}
	case "instance-state-name":
		return []string{in.State}
	case "instance-state-code":
		return []string{strconv.Itoa(instanceStateCodes[in.State])}
	case "availability-zone":
		return []string{in.AZ}
	case "private-ip-address":
		if len(in.ENIs) > 0 {
			return []string{in.PrimaryIP}
		}
		return nil
	case "private-dns-name":
		if len(in.ENIs) > 0 {
			return []string{ec2DNSName(in.PrimaryIP, region)}
		}
		return nil
	case "ip-address", "dns-name":
		if ip := publicIPOf(w, in); ip != "" {
			if name == "dns-name" {
				return []string{publicDNS(ip, region)}
			}
			return []string{ip}
		}
		return nil
	case "vpc-id", "network-interface.vpc-id":
		if in.State == "terminated" {
			return nil
		}
		return []string{in.VPCID}
	case "subnet-id", "network-interface.subnet-id":
		if in.State == "terminated" {
			return nil
		}
		return []string{in.SubnetID}
	case "instance-type":
		return []string{simInstanceType}
	case "image-id":
		return []string{simImageID}
	case "reservation-id":
		return []string{in.ReservationID}
	case "owner-id":
		return []string{simAccountID}
	case "tenancy":
		return []string{"default"}
	case "architecture":
		return []string{"x86_64"}
	case "placement-group-name":
		return nil
	case "network-interface.network-interface-id":
		eniVals = func(e eniRec) []string { return []string{e.ID} }
	case "network-interface.mac-address":
		eniVals = func(e eniRec) []string { return []string{e.MAC} }
	case "network-interface.addresses.private-ip-address":
		eniVals = func(e eniRec) []string { return e.PrivateIPs }
	case "network-interface.private-dns-name":
		eniVals = func(e eniRec) []string { return []string{ec2DNSName(e.PrivateIPs[0], region)} }
	case "network-interface.attachment.device-index":
		eniVals = func(e eniRec) []string { return []string{strconv.Itoa(e.DeviceIndex)} }
	case "network-interface.status":
		eniVals = func(e eniRec) []string { return []string{"in-use"} }
	case "network-interface.association.public-ip":
		eniVals = func(e eniRec) []string {
			if pub, _ := ipAssociation(w, in, e, e.PrivateIPs[0]); pub != "" {
				return []string{pub}
			}
			return nil
		}
	case "network-interface.addresses.association.public-ip":
		eniVals = func(e eniRec) []string {
			var out []string
			for _, ip := range e.PrivateIPs {
				if pub, _ := ipAssociation(w, in, e, ip); pub != "" {
					out = append(out, pub)
				}
			}
			return out
		}
	case "network-interface.association.allocation-id":
		eniVals = func(e eniRec) []string {
			var out []string
			for _, ip := range e.PrivateIPs {
				if a := w.addressOn(e.ID, ip); a != nil {
					out = append(out, a.AllocationID)
				}
			}
			return out
		}
	default:
		return nil
	}
	var out []string
	for _, e := range in.ENIs {
		out = append(out, eniVals(e)...)
	}
	return out
}

func describeInstances(c *call) error {
	ids, err := instanceIDs(c.req)
	if err != nil {
		return err
	}
	if len(ids) > 0 && c.req.has("MaxResults") {
		return errf(400, "InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	fs, err := c.req.filters()
	if err != nil {
		return err
	}
	if err := checkFilterNames(fs, instanceFilters, true); err != nil {
		return err
	}
	if _, err := c.req.boolean("IncludeManagedResources", false); err != nil {
		return err
	}
	limit, offset, err := pageArgs(c.req, "DescribeInstances")
	if err != nil {
		return err
	}
	if err := c.checkDryRun(); err != nil {
		return err
	}
	w := c.view()
	sel, err := selectInstances(w, ids)
	if err != nil {
		return err
	}
	region := c.s.opts.Region
	var match []*instRec
	for _, in := range sel {
		if matchAll(fs, func(name string) []string { return instanceFilterValues(w, in, region, name) }) {
			match = append(match, in)
		}
	}
	end := min(len(match), offset+limit)
	c.x.open("reservationSet")
	for i := offset; i < end; i++ {
		in := match[i]
		c.x.open("item")
		c.x.el("reservationId", in.ReservationID)
		c.x.el("ownerId", simAccountID)
		c.x.WriteString("<groupSet/>")
		c.x.open("instancesSet")
		writeInstance(&c.x, w, in, region)
		c.x.close("instancesSet")
		c.x.close("item")
	}
	c.x.close("reservationSet")
	if end < len(match) {
		c.x.el("nextToken", nextToken("DescribeInstances", end))
	}
	return nil
}

// ipAssociation is the public IPv4 address on private IP ip of ENI e and
// its owner, as DescribeInstances shows them: an EIP (owner the account),
// or on the primary private IP of the primary ENI the auto-assigned
// address (owner "amazon", as in AWS's describe-instances example); ""
// for none.
func ipAssociation(w *world, in *instRec, e eniRec, ip string) (publicIP, owner string) {
	if a := w.addressOn(e.ID, ip); a != nil {
		return a.PublicIP, simAccountID
	}
	if in.PublicIP != "" && onPrimaryIP(in, e.ID, ip) {
		return in.PublicIP, "amazon"
	}
	return "", ""
}

func writeInstance(x *xmlw, w *world, in *instRec, region string) {
	live := len(in.ENIs) > 0
	public := publicIPOf(w, in)
	x.open("item")
	x.el("instanceId", in.ID)
	x.el("imageId", simImageID)
	x.open("instanceState")
	x.num("code", instanceStateCodes[in.State])
	x.el("name", in.State)
	x.close("instanceState")
	if live {
		x.el("privateDnsName", ec2DNSName(in.PrimaryIP, region))
	}
	if public != "" {
		x.el("dnsName", publicDNS(public, region))
	}
	x.opt("reason", in.Reason)
	x.num("amiLaunchIndex", 0)
	x.el("instanceType", simInstanceType)
	x.time("launchTime", in.LaunchTime)
	x.open("placement")
	x.el("availabilityZone", in.AZ)
	x.el("tenancy", "default")
	x.close("placement")
	x.open("monitoring")
	x.el("state", "disabled")
	x.close("monitoring")
	if live {
		x.el("subnetId", in.SubnetID)
		x.el("vpcId", in.VPCID)
		x.el("privateIpAddress", in.PrimaryIP)
	}
	if public != "" {
		x.el("ipAddress", public)
	}
	if live {
		x.boolean("sourceDestCheck", true)
	}
	if in.State == "stopped" || in.State == "terminated" {
		x.open("stateReason")
		x.el("code", "Client.UserInitiatedShutdown")
		x.el("message", "Client.UserInitiatedShutdown: User initiated shutdown")
		x.close("stateReason")
	}
	x.el("architecture", "x86_64")
	x.el("rootDeviceType", "ebs")
	x.el("rootDeviceName", "/dev/xvda")
	x.el("virtualizationType", "hvm")
	x.tagSet(w.sortedTags(in.ID))
	x.el("hypervisor", "xen")
	if live {
		x.open("networkInterfaceSet")
		for _, e := range in.ENIs {
			writeENI(x, w, in, e, region)
		}
		x.close("networkInterfaceSet")
	}
	x.boolean("ebsOptimized", false)
	x.boolean("enaSupport", true)
	x.close("item")
}

func writeENI(x *xmlw, w *world, in *instRec, e eniRec, region string) {
	assoc := func(ip string) {
		pub, owner := ipAssociation(w, in, e, ip)
		if pub == "" {
			return
		}
		x.open("association")
		x.el("publicIp", pub)
		x.el("publicDnsName", publicDNS(pub, region))
		x.el("ipOwnerId", owner)
		x.close("association")
	}
	x.open("item")
	x.el("networkInterfaceId", e.ID)
	x.el("subnetId", in.SubnetID)
	x.el("vpcId", in.VPCID)
	x.el("ownerId", simAccountID)
	x.el("status", "in-use")
	x.el("macAddress", e.MAC)
	x.el("privateIpAddress", e.PrivateIPs[0])
	x.el("privateDnsName", ec2DNSName(e.PrivateIPs[0], region))
	x.boolean("sourceDestCheck", true)
	x.open("attachment")
	x.el("attachmentId", e.AttachmentID)
	x.num("deviceIndex", e.DeviceIndex)
	x.el("status", "attached")
	x.time("attachTime", in.LaunchTime)
	x.boolean("deleteOnTermination", e.DeviceIndex == 0)
	x.num("networkCardIndex", 0)
	x.close("attachment")
	assoc(e.PrivateIPs[0])
	x.open("privateIpAddressesSet")
	for i, ip := range e.PrivateIPs {
		x.open("item")
		x.el("privateIpAddress", ip)
		x.el("privateDnsName", ec2DNSName(ip, region))
		x.boolean("primary", i == 0)
		assoc(ip)
		x.close("item")
	}
	x.close("privateIpAddressesSet")
	x.el("interfaceType", "interface")
	x.close("item")
}

var statusFilters = map[string]bool{
	"availability-zone": true, "instance-state-name": true, "instance-state-code": true,
	"event.code": true, "event.description": true, "event.instance-event-id": true,
	"instance-status.status": true, "instance-status.reachability": true,
	"system-status.status": true, "system-status.reachability": true,
}

func describeInstanceStatus(c *call) error {
	ids, err := instanceIDs(c.req)
	if err != nil {
		return err
	}
	if len(ids) > 100 {
		return badParam("The maximum number of instance IDs is 100")
	}
	if len(ids) > 0 && c.req.has("MaxResults") {
		return errf(400, "InvalidParameterCombination", "The parameter instancesSet cannot be used with the parameter maxResults")
	}
	fs, err := c.req.filters()
	if err != nil {
		return err
	}
	if err := checkFilterNames(fs, statusFilters, false); err != nil {
		return err
	}
	all, err := c.req.boolean("IncludeAllInstances", false)
	if err != nil {
		return err
	}
	limit, offset, err := pageArgs(c.req, "DescribeInstanceStatus")
	if err != nil {
		return err
	}
	if err := c.checkDryRun(); err != nil {
		return err
	}
	w := c.view()
	sel, err := selectInstances(w, ids)
	if err != nil {
		return err
	}
	status := func(in *instRec) (string, string) {
		switch in.State {
		case "running":
			return "ok", "passed"
		case "pending":
			return "initializing", "initializing"
		}
		return "not-applicable", ""
	}
	var match []*instRec
	for _, in := range sel {
		if !all && in.State != "running" {
			continue
		}
		st, reach := status(in)
		ok := matchAll(fs, func(name string) []string {
			var out []string
			switch name {
			case "availability-zone":
				return []string{in.AZ}
			case "instance-state-name":
				return []string{in.State}
			case "instance-state-code":
				return []string{strconv.Itoa(instanceStateCodes[in.State])}
			case "instance-status.status", "system-status.status":
				return []string{st}
			case "instance-status.reachability", "system-status.reachability":
				return nonEmpty(reach)
			case "event.code":
				for _, e := range activeEvents(in) {
					out = append(out, e.Code)
				}
			case "event.description":
				for _, e := range activeEvents(in) {
					out = append(out, e.Description)
				}
			case "event.instance-event-id":
				for _, e := range activeEvents(in) {
					out = append(out, e.EventID)
				}
			}
			return out
		})
		if ok {
			match = append(match, in)
		}
	}
	end := min(len(match), offset+limit)
	c.x.open("instanceStatusSet")
	for i := offset; i < end; i++ {
		in := match[i]
		st, reach := status(in)
		c.x.open("item")
		c.x.el("instanceId", in.ID)
		c.x.el("availabilityZone", in.AZ)
		if evs := activeEvents(in); len(evs) > 0 {
			c.x.open("eventsSet")
			for _, e := range evs {
				c.x.open("item")
				c.x.el("instanceEventId", e.EventID)
				c.x.el("code", e.Code)
				c.x.el("description", e.Description)
				c.x.time("notBefore", e.NotBefore)
				c.x.time("notAfter", e.NotAfter)
				c.x.close("item")
			}
			c.x.close("eventsSet")
		}
		c.x.open("instanceState")
		c.x.num("code", instanceStateCodes[in.State])
		c.x.el("name", in.State)
		c.x.close("instanceState")
		for _, name := range []string{"systemStatus", "instanceStatus"} {
			c.x.open(name)
			c.x.el("status", st)
			if reach != "" {
				c.x.WriteString("<details><item><name>reachability</name>")
				c.x.el("status", reach)
				c.x.WriteString("</item></details>")
			}
			c.x.close(name)
		}
		c.x.close("item")
	}
	c.x.close("instanceStatusSet")
	if end < len(match) {
		c.x.el("nextToken", nextToken("DescribeInstanceStatus", end))
	}
	return nil
}

// activeEvents are the scheduled maintenance events not yet completed or
// canceled.
func activeEvents(in *instRec) []MaintenanceEvent {
	var out []MaintenanceEvent
	for _, e := range in.Maintenance {
		if e.State != "completed" && e.State != "canceled" {
			out = append(out, e)
		}
	}
	return out
}
