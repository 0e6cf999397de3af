package ec2sim

import (
	"strings"
	"time"
)

var (
	instanceIDRE = lazyRegexp(`^i-([0-9a-f]{8}|[0-9a-f]{17})$`)
	allocIDRE    = lazyRegexp(`^eipalloc-([0-9a-f]{8}|[0-9a-f]{17})$`)
	assocIDRE    = lazyRegexp(`^eipassoc-([0-9a-f]{8}|[0-9a-f]{17})$`)
	eniIDRE      = lazyRegexp(`^eni-([0-9a-f]{8}|[0-9a-f]{17})$`)
)

func malformedAlloc(id string) *apiError {
	return errf(400, "InvalidAllocationID.Malformed", "Invalid id: \"%s\" (expecting \"eipalloc-...\")", id)
}
func notFoundAlloc(id string) *apiError {
	return errf(400, "InvalidAllocationID.NotFound", "The allocation ID '%s' does not exist", id)
}
func malformedInstance(id string) *apiError {
	return errf(400, "InvalidInstanceID.Malformed", "Invalid id: \"%s\"", id)
}
func malformedENI(id string) *apiError {
	return errf(400, "InvalidNetworkInterfaceID.Malformed", "Invalid id: \"%s\" (expecting \"eni-...\")", id)
}
func notFoundENI(id string) *apiError {
	return errf(400, "InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '%s' does not exist", id)
}

// notFoundInstances is AWS's message for one or several unknown IDs.
func notFoundInstances(ids []string) *apiError {
	if len(ids) == 1 {
		return errf(400, "InvalidInstanceID.NotFound", "The instance ID '%s' does not exist", ids[0])
	}
	return errf(400, "InvalidInstanceID.NotFound", "The instance IDs '%s' do not exist", strings.Join(ids, ", "))
}

// checkFilterNames rejects unknown filter names (InvalidParameterValue).
func checkFilterNames(fs []filter, known map[string]bool, tags bool) error {
	for _, f := range fs {
		if known[f.Name] || (tags && (f.Name == "tag-key" || (strings.HasPrefix(f.Name, "tag:") && len(f.Name) > 4))) {
			continue
		}
		return badParam("The filter '%s' is invalid", f.Name)
	}
	return nil
}

// matchAll applies filters (ANDed; values ORed). get returns the candidate
// values of a filter for the resource.
func matchAll(fs []filter, get func(name string) []string) bool {
	for _, f := range fs {
		if !anyMatch(f.Values, get(f.Name)...) {
			return false
		}
	}
	return true
}

// tagValues answers tag:<k> and tag-key filters.
func tagValues(w *world, id, name string) ([]string, bool) {
	if name == "tag-key" {
		var ks []string
		for _, kv := range w.sortedTags(id) {
			ks = append(ks, kv[0])
		}
		return ks, true
	}
	if k, ok := strings.CutPrefix(name, "tag:"); ok {
		if v, ok := w.tags[id][k]; ok {
			return []string{v}, true
		}
		return nil, true
	}
	return nil, false
}

var addressFilters = map[string]bool{
	"allocation-id": true, "association-id": true, "instance-id": true, "network-border-group": true,
	"network-interface-id": true, "network-interface-owner-id": true, "private-ip-address": true,
	"public-ip": true, "domain": true, "public-ipv4-pool": true,
}

func describeAddresses(c *call) error {
	allocs, err := c.req.list("AllocationId")
	if err != nil {
		return err
	}
	ips, err := c.req.list("PublicIp")
	if err != nil {
		return err
	}
	fs, err := c.req.filters()
	if err != nil {
		return err
	}
	for _, id := range allocs {
		if !allocIDRE().MatchString(id) {
			return malformedAlloc(id)
		}
	}
	for _, ip := range ips {
		if !validIPv4(ip) {
			return badParam("Invalid value '%s' for PublicIp. Not a valid IPv4 address.", ip)
		}
	}
	if err := checkFilterNames(fs, addressFilters, true); err != nil {
		return err
	}
	if err := c.checkDryRun(); err != nil {
		return err
	}
	w := c.view()
	for _, id := range allocs {
		if w.address(id) == nil {
			return notFoundAlloc(id)
		}
	}
	for _, ip := range ips {
		if w.addressByIP(ip) == nil {
			return errf(400, "InvalidAddress.NotFound", "Address '%s' not found.", ip)
		}
	}
	region := c.s.opts.Region
	c.x.open("addressesSet")
	for _, a := range w.addresses {
		if len(allocs) > 0 && !hasString(allocs, a.AllocationID) {
			continue
		}
		if len(ips) > 0 && !hasString(ips, a.PublicIP) {
			continue
		}
		// MixedReads: AWS documents no snapshot across an address's
		// association and its tags, so each may come from its own
		// moment of the lag window (the address itself exists in w).
		tw := w
		if c.mixed && c.lag > 0 {
			tw = c.mixedView()
			if m := c.mixedView().address(a.AllocationID); m != nil {
				a = m
			}
		}
		ok := matchAll(fs, func(name string) []string {
			if v, ok := tagValues(tw, a.AllocationID, name); ok {
				return v
			}
			switch name {
			case "allocation-id":
				return []string{a.AllocationID}
			case "association-id":
				return nonEmpty(a.AssociationID)
			case "instance-id":
				return nonEmpty(a.InstanceID)
			case "network-border-group":
				return []string{region}
			case "network-interface-id":
				return nonEmpty(a.ENIID)
			case "network-interface-owner-id":
				if a.ENIID != "" {
					return []string{simAccountID}
				}
			case "private-ip-address":
				return nonEmpty(a.PrivateIP)
			case "public-ip":
				return []string{a.PublicIP}
			case "domain":
				return []string{"vpc"}
			case "public-ipv4-pool":
				return []string{"amazon"}
			}
			return nil
		})
		if !ok {
			continue
		}
		c.x.open("item")
		c.x.el("publicIp", a.PublicIP)
		c.x.el("allocationId", a.AllocationID)
		c.x.el("domain", "vpc")
		c.x.opt("instanceId", a.InstanceID)
		c.x.opt("associationId", a.AssociationID)
		c.x.opt("networkInterfaceId", a.ENIID)
		if a.ENIID != "" {
			c.x.el("networkInterfaceOwnerId", simAccountID)
		}
		c.x.opt("privateIpAddress", a.PrivateIP)
		c.x.tagSet(tw.sortedTags(a.AllocationID))
		c.x.el("publicIpv4Pool", "amazon")
		c.x.el("networkBorderGroup", region)
		c.x.close("item")
	}
	c.x.close("addressesSet")
	return nil
}

func hasString(list []string, v string) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

func nonEmpty(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// parseTagSpecs reads TagSpecification.N.{ResourceType,Tag.M.Key,Tag.M.Value}
// for the given resource type.
func parseTagSpecs(req request, resourceType string) ([][2]string, error) {
	specs, err := req.structs("TagSpecification")
	if err != nil {
		return nil, err
	}
	var out [][2]string
	for i, sp := range specs {
		if rt := sp["ResourceType"]; rt != resourceType {
			return nil, badParam("'%s' is not a valid taggable resource type for this operation.", rt)
		}
		sub := request{Params: map[string]string{}}
		for k, v := range sp {
			if rest, ok := strings.CutPrefix(k, "Tag."); ok {
				sub.Params["Tag."+rest] = v
			} else if k != "ResourceType" && k != "Tag" {
				return nil, errf(400, "UnknownParameter", "The parameter TagSpecification.%d.%s is not recognized", i+1, k)
			}
		}
		tags, err := parseTags(sub, true)
		if err != nil {
			return nil, err
		}
		for _, t := range tags {
			out = append(out, [2]string{t.key, t.value})
		}
	}
	return out, nil
}

func allocateAddress(c *call) error {
	if d := c.req.str("Domain"); d != "" && d != "vpc" {
		return badParam("Invalid value '%s' for domain.", d)
	}
	for _, p := range []string{"Address", "PublicIpv4Pool", "CustomerOwnedIpv4Pool", "IpamPoolId"} {
		if v := c.req.str(p); v != "" && !(p == "PublicIpv4Pool" && v == "amazon") {
			return badParam("Invalid value '%s' for %s: only Amazon's pool is simulated.", v, p)
		}
	}
	if g := c.req.str("NetworkBorderGroup"); g != "" && g != c.s.opts.Region {
		return badParam("Invalid value '%s' for NetworkBorderGroup.", g)
	}
	tags, err := parseTagSpecs(c.req, "elastic-ip")
	if err != nil {
		return err
	}
	w := c.s.w
	if err := c.checkDryRun(); err != nil {
		return err
	}
	if len(w.addresses) >= max(5, c.s.opts.EIPs) {
		return errf(400, "AddressLimitExceeded", "The maximum number of addresses has been reached.")
	}
	ip := c.s.nextPublicIPLocked()
	if ip == "" {
		return errf(400, "AddressLimitExceeded", "The maximum number of addresses has been reached.")
	}
	a := &addrRec{AllocationID: newResourceID("eipalloc"), PublicIP: ip}
	if err := c.s.startForwarderLocked(a.AllocationID); err != nil {
		return err
	}
	w.addresses = append(w.addresses, a)
	for _, t := range tags {
		w.setTag(a.AllocationID, t[0], t[1])
	}
	c.s.commitLocked(c.now)
	c.x.el("publicIp", a.PublicIP)
	c.x.el("domain", "vpc")
	c.x.el("allocationId", a.AllocationID)
	c.x.el("publicIpv4Pool", "amazon")
	c.x.el("networkBorderGroup", c.s.opts.Region)
	return nil
}

func releaseAddress(c *call) error {
	id := c.req.str("AllocationId")
	if id == "" {
		if c.req.str("PublicIp") != "" {
			return badParam("You must specify an allocation id when releasing a VPC elastic IP address")
		}
		return missingParam("AllocationId")
	}
	if !allocIDRE().MatchString(id) {
		return malformedAlloc(id)
	}
	w := c.s.w
	a := w.address(id)
	if a == nil {
		return notFoundAlloc(id)
	}
	if err := c.checkDryRun(); err != nil {
		return err
	}
	if a.AssociationID != "" {
		return errf(400, "InvalidIPAddress.InUse", "Address %s is in use.", a.PublicIP)
	}
	c.s.releaseLocked(c.now, a, c.caller)
	c.x.boolean("return", true)
	return nil
}

// releaseLocked removes an unassociated address from the account, stops
// its forwarder and records a "release" event.
func (s *Sim) releaseLocked(now time.Time, a *addrRec, caller string) {
	w := s.w
	for i, x := range w.addresses {
		if x == a {
			w.addresses = append(w.addresses[:i:i], w.addresses[i+1:]...)
			break
		}
	}
	delete(w.tags, a.AllocationID)
	if f := s.fwds[a.AllocationID]; f != nil {
		f.cancel() // Close waits for its goroutine
		delete(s.fwds, a.AllocationID)
	}
	delete(s.targets, a.AllocationID)
	s.recordEventLocked(Event{Time: now, AllocationID: a.AllocationID, Caller: caller, Action: "release"})
	s.commitLocked(now)
}

func associateAddress(c *call) error {
	allocID, publicIP := c.req.str("AllocationId"), c.req.str("PublicIp")
	instID, eniID, privIP := c.req.str("InstanceId"), c.req.str("NetworkInterfaceId"), c.req.str("PrivateIpAddress")
	allowReassoc, err := c.req.boolean("AllowReassociation", true)
	if err != nil {
		return err
	}
	w := c.s.w
	var a *addrRec
	switch {
	case allocID != "":
		if !allocIDRE().MatchString(allocID) {
			return malformedAlloc(allocID)
		}
		if a = w.address(allocID); a == nil {
			return notFoundAlloc(allocID)
		}
	case publicIP != "":
		var err error
		if a, err = addressByPublicIP(w, publicIP); err != nil {
			return err
		}
	default:
		return missingParam("AllocationId")
	}
	if instID != "" && eniID != "" {
		return errf(400, "InvalidParameterCombination", "You may specify either an instance ID or a network interface ID, but not both")
	}
	var in *instRec
	var eni *eniRec
	switch {
	case instID != "":
		if !instanceIDRE().MatchString(instID) {
			return malformedInstance(instID)
		}
		if in = w.instance(instID); in == nil {
			return notFoundInstances([]string{instID})
		}
		if len(in.ENIs) > 1 {
			return errf(400, "InvalidInstanceID", "There are multiple interfaces attached to instance '%s'. Please specify an interface ID for the operation instead.", in.ID)
		}
		if len(in.ENIs) == 1 {
			eni = &in.ENIs[0]
		} // none: terminated, refused below after DryRun
	case eniID != "":
		if !eniIDRE().MatchString(eniID) {
			return malformedENI(eniID)
		}
		if in, eni = w.eni(eniID); eni == nil {
			return notFoundENI(eniID)
		}
	default:
		return missingParam("InstanceId")
	}
	var ip string
	if eni != nil {
		ip = eni.PrivateIPs[0]
		if privIP != "" {
			if !hasString(eni.PrivateIPs, privIP) {
				return badParam("The private IP address %s is not assigned to interface %s", privIP, eni.ID)
			}
			ip = privIP
		}
	}
	if err := c.checkDryRun(); err != nil {
		return err
	}
	// State checks: after DryRun (see checkDryRun).
	switch {
	case instID != "" && (eni == nil || in.State == "pending" || in.State == "shutting-down" || in.State == "terminated"):
		return errf(400, "InvalidInstanceID", "The %s instance '%s' is not in a valid state for this operation.", in.State, in.ID)
	case eniID != "" && in.State == "pending":
		return errf(400, "IncorrectInstanceState", "The pending-instance-creation instance to which '%s' is attached is not in a valid state for this operation", eni.ID)
	}
	same := a.ENIID == eni.ID && a.PrivateIP == ip
	if !allowReassoc && a.AssociationID != "" && !same {
		return errf(400, "Resource.AlreadyAssociated", "resource %s is already associated with associate-id %s", a.AllocationID, a.AssociationID)
	}
	assocID := a.AssociationID
	if !same {
		// The ID answered is the one the write creates, late or not.
		assocID = newResourceID("eipassoc")
		c.write(c.s.associateWrite(a.AllocationID, eni.ID, ip, allowReassoc, assocID))
	}
	c.x.boolean("return", true)
	c.x.el("associationId", assocID)
	return nil
}

// associateWrite is the effect of an accepted AssociateAddress. Applied
// late, it re-checks what AWS would then: the EIP and the network
// interface still exist, the instance is not pending, and with
// AllowReassociation=false the EIP is not associated elsewhere by now
// (sebdah/aws-ec2-assign-elastic-ip#24: both racing calls answered 200,
// one took effect). Otherwise it has no effect ("late-dropped"). An EIP
// already on that private IP by then gets the answered association ID
// all the same (a "move" to where it is), so the ID its caller holds is
// the current one.
func (s *Sim) associateWrite(allocID, eniID, ip string, allowReassoc bool, assocID string) writeFunc {
	return func(now time.Time, o origin) {
		a := s.w.address(allocID)
		in, eni := s.w.eni(eniID)
		if a == nil || eni == nil || in.State == "pending" ||
			(!allowReassoc && a.AssociationID != "" && (a.ENIID != eniID || a.PrivateIP != ip)) {
			e := Event{Time: now, AllocationID: allocID, Action: "late-dropped", AssociationID: assocID}
			if a != nil {
				e.From = a.InstanceID
			}
			if in != nil {
				e.To = in.ID
			}
			o.stamp(&e)
			s.recordEventLocked(e)
			return
		}
		s.associateLocked(now, a, in, eni, ip, o, assocID)
	}
}

// associateLocked points a at (in, eni, ip) under the association ID
// assocID, disassociating whatever EIP was on that private IP, and
// records the events. The previous association ID becomes stale. An
// auto-assigned public IPv4 address on that private IP is released, and
// one may come back where a left (publicip.go).
func (s *Sim) associateLocked(now time.Time, a *addrRec, in *instRec, eni *eniRec, ip string, o origin, assocID string) {
	if old := s.w.addressOn(eni.ID, ip); old != nil && old != a {
		e := Event{Time: now, AllocationID: old.AllocationID, From: old.InstanceID, Action: "displaced"}
		o.stamp(&e)
		s.recordEventLocked(e)
		old.AssociationID, old.ENIID, old.PrivateIP, old.InstanceID = "", "", "", ""
	}
	from, fromENI, fromIP := a.InstanceID, a.ENIID, a.PrivateIP
	action := "associate"
	if a.AssociationID != "" {
		action = "move"
	}
	a.AssociationID, a.ENIID, a.PrivateIP, a.InstanceID = assocID, eni.ID, ip, in.ID
	e := Event{Time: now, AllocationID: a.AllocationID, From: from, To: in.ID, Action: action, AssociationID: a.AssociationID}
	o.stamp(&e)
	s.recordEventLocked(e)
	if onPrimaryIP(in, eni.ID, ip) {
		s.releasePublicIPLocked(now, in, a.AllocationID, o)
	}
	if fromENI != "" && (fromENI != eni.ID || fromIP != ip) {
		s.eipLeftLocked(now, fromENI, fromIP)
	}
	s.commitLocked(now)
}

// disassociateLocked removes a's association and records the event; a
// public IPv4 address may come back where it was. The caller commits.
func disassociateLocked(s *Sim, now time.Time, a *addrRec, o origin, action string) {
	from, eniID, ip := a.InstanceID, a.ENIID, a.PrivateIP
	a.AssociationID, a.ENIID, a.PrivateIP, a.InstanceID = "", "", "", ""
	e := Event{Time: now, AllocationID: a.AllocationID, From: from, Action: action}
	o.stamp(&e)
	s.recordEventLocked(e)
	s.eipLeftLocked(now, eniID, ip)
}

// disassociateWrite is the effect of an accepted DisassociateAddress of
// association assocID. Applied late, an association ID that is no longer
// current (the EIP moved or was disassociated meanwhile) has no effect
// ("late-dropped"), as the call itself would then fail.
func (s *Sim) disassociateWrite(allocID, from, assocID string) writeFunc {
	return func(now time.Time, o origin) {
		a := s.w.addressByAssociation(assocID)
		if a == nil {
			e := Event{Time: now, AllocationID: allocID, From: from, Action: "late-dropped", AssociationID: assocID}
			o.stamp(&e)
			s.recordEventLocked(e)
			return
		}
		disassociateLocked(s, now, a, o, "disassociate")
		s.commitLocked(now)
	}
}

func disassociateAddress(c *call) error {
	assocID, publicIP := c.req.str("AssociationId"), c.req.str("PublicIp")
	w := c.s.w
	var a *addrRec
	switch {
	case assocID != "":
		if !assocIDRE().MatchString(assocID) {
			return errf(400, "InvalidAssociationID.Malformed", "Invalid id: \"%s\" (expecting \"eipassoc-...\")", assocID)
		}
		if a = w.addressByAssociation(assocID); a == nil {
			return errf(400, "InvalidAssociationID.NotFound", "The association ID '%s' does not exist", assocID)
		}
	case publicIP != "":
		var err error
		if a, err = addressByPublicIP(w, publicIP); err != nil {
			return err
		}
	default:
		return missingParam("AssociationId")
	}
	if err := c.checkDryRun(); err != nil {
		return err
	}
	if a.AssociationID != "" {
		c.write(c.s.disassociateWrite(a.AllocationID, a.InstanceID, a.AssociationID))
	}
	c.x.boolean("return", true)
	return nil
}

// addressByPublicIP finds an address by the deprecated PublicIp parameter
// of AssociateAddress and DisassociateAddress.
func addressByPublicIP(w *world, publicIP string) (*addrRec, error) {
	if !validIPv4(publicIP) {
		return nil, badParam("Invalid value '%s' for PublicIp. Not a valid IPv4 address.", publicIP)
	}
	a := w.addressByIP(publicIP)
	if a == nil {
		return nil, errf(400, "InvalidAddress.NotFound", "Address '%s' not found.", publicIP)
	}
	return a, nil
}
