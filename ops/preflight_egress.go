package ops

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/eipd/eipd/eip"
)

// egressFix is what to do when a member's API access depends on the EIP.
const egressFix = "give the subnets a route to the EC2 API that does not depend on the EIP: VPC interface endpoints for ec2 and autoscaling with private DNS (the example stack's VpcEndpoints), or dual-stack endpoints over IPv6 (docs/install.md, API access that does not depend on the EIP)"

// egressEnv is how preflight looks at this instance's way to the EC2 API;
// the real resolver and proxy settings in production, fakes in tests.
type egressEnv struct {
	// endpoint is the EC2 endpoint the SDK calls.
	endpoint *url.URL
	// lookup resolves a host name (net.DefaultResolver.LookupIPAddr).
	lookup func(ctx context.Context, host string) ([]net.IPAddr, error)
	// proxy is the proxy for a URL, nil for none (http.ProxyFromEnvironment).
	proxy func(*url.URL) (*url.URL, error)
}

func defaultEgressEnv(endpoint *url.URL) egressEnv {
	return egressEnv{endpoint: endpoint, lookup: net.DefaultResolver.LookupIPAddr,
		proxy: func(u *url.URL) (*url.URL, error) { return http.ProxyFromEnvironment(&http.Request{URL: u}) }}
}

// describeSelf reads this instance as EC2 describes it (its network
// interfaces, their public IPv4 addresses and who owns each).
func describeSelf(ctx context.Context, api probeEC2, id string) (types.Instance, error) {
	out, err := api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return types.Instance{}, eip.Classify(err)
	}
	for _, r := range out.Reservations {
		for _, in := range r.Instances {
			if aws.ToString(in.InstanceId) == id {
				return in, nil
			}
		}
	}
	return types.Instance{}, fmt.Errorf("DescribeInstances does not list %s", id)
}

// preflightEgress checks that this member reaches the EC2 API in a way that
// does not depend on a managed EIP. Instances in the public subnets an EIP
// needs go out through the public IPv4 address of their primary private IP;
// AWS releases an auto-assigned one as soon as an EIP is associated with the
// primary network interface, and gives a new one only minutes after the EIP
// leaves (never with a second network interface attached). managed are the
// group's EIPs.
func preflightEgress(ctx context.Context, r *preflightReport, env egressEnv, self types.Instance, selfErr error, managed []eip.Address) {
	if env.endpoint == nil {
		r.skip("API access independent of the EIP could not be checked: the EC2 endpoint is unknown")
		return
	}
	host := env.endpoint.Hostname()
	if p, err := env.proxy(env.endpoint); err == nil && p != nil {
		r.skip(fmt.Sprintf("API access independent of the EIP could not be checked: EC2 calls go through the proxy %s; make sure its own way out does not depend on the EIP", p.Redacted()))
		return
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else {
		ips, err := env.lookup(ctx, host)
		if err != nil {
			r.skip(fmt.Sprintf("API access independent of the EIP could not be checked: cannot resolve %s: %v", host, err))
			return
		}
		for _, ip := range ips {
			if a, ok := netip.AddrFromSlice(ip.IP); ok {
				addrs = append(addrs, a.Unmap())
			}
		}
	}
	if len(addrs) > 0 && !slices.ContainsFunc(addrs, isPublic) {
		r.ok(fmt.Sprintf("API access does not depend on the EIP: the EC2 endpoint %s resolves to private addresses %v (a VPC endpoint)", host, addrs))
		return
	}
	if selfErr != nil {
		r.skip(fmt.Sprintf("API access independent of the EIP could not be checked: %v", selfErr))
		return
	}
	var eth0 *types.InstanceNetworkInterface
	enis := 0
	hasIPv6 := false
	for i, n := range self.NetworkInterfaces {
		enis++
		if len(n.Ipv6Addresses) > 0 {
			hasIPv6 = true
		}
		if n.Attachment != nil && aws.ToInt32(n.Attachment.DeviceIndex) == 0 && aws.ToInt32(n.Attachment.NetworkCardIndex) == 0 {
			eth0 = &self.NetworkInterfaces[i]
		}
	}
	if hasIPv6 && slices.ContainsFunc(addrs, func(a netip.Addr) bool { return a.Is6() && isPublic(a) }) {
		r.ok(fmt.Sprintf("API access does not depend on the EIP: the EC2 endpoint %s has IPv6 addresses and this instance has one (a dual-stack endpoint over IPv6)", host))
		return
	}
	if eth0 == nil {
		r.skip("API access independent of the EIP could not be checked: EC2 lists no primary network interface for this instance")
		return
	}
	// The public IPv4 address of the primary private IP is the instance's
	// source address on the way out through the internet gateway.
	var public, owner string
	for _, p := range eth0.PrivateIpAddresses {
		if aws.ToBool(p.Primary) && p.Association != nil {
			public, owner = aws.ToString(p.Association.PublicIp), aws.ToString(p.Association.IpOwnerId)
		}
	}
	if public == "" && eth0.Association != nil {
		public, owner = aws.ToString(eth0.Association.PublicIp), aws.ToString(eth0.Association.IpOwnerId)
	}
	comeback := "minutes after the EIP leaves"
	if enis > 1 {
		comeback = fmt.Sprintf("never, since %d network interfaces are attached", enis)
	}
	isManaged := slices.ContainsFunc(managed, func(a eip.Address) bool { return a.PublicIP != "" && a.PublicIP == public })
	switch {
	case public == "":
		r.ok(fmt.Sprintf("API access does not depend on the EIP: this instance has no public IPv4 address, so it reaches the EC2 endpoint %s another way (NAT, a proxy)", host))
	case isManaged:
		r.warn(egressFix, fmt.Errorf("this instance reaches the EC2 endpoint %s (public %v) through the EIP %s it holds: once the EIP moves away it has no public IPv4 address until AWS assigns a new one (%s), and it cannot take an EIP back meanwhile", host, addrs, public, comeback))
	case owner == "amazon":
		r.warn(egressFix, fmt.Errorf("this instance reaches the EC2 endpoint %s (public %v) through its auto-assigned public IPv4 address %s, which AWS releases when an EIP is associated with it: after a handoff it has no public IPv4 address until AWS assigns a new one (%s), and it cannot take an EIP back meanwhile", host, addrs, public, comeback))
	default:
		r.ok(fmt.Sprintf("API access does not depend on the EIP: this instance reaches the EC2 endpoint %s through the Elastic IP %s, which eipd does not manage", host, public))
	}
}

// isPublic: an address reachable only through the internet (or a NAT), not
// a VPC endpoint's private address.
func isPublic(a netip.Addr) bool {
	switch {
	case a.IsLoopback(), a.IsPrivate(), a.IsLinkLocalUnicast(), a.IsUnspecified():
		return false
	case netip.MustParsePrefix("100.64.0.0/10").Contains(a):
		// Shared address space (RFC 6598): inside a carrier or VPC network.
		return false
	}
	return true
}
