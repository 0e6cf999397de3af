package ops

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"

	"github.com/eipd/eipd/eip"
	"github.com/eipd/eipd/internal/config"
)

// eni is a network interface as DescribeInstances lists it: its device
// index, the public IPv4 address of its primary private IP and that
// address's owner ("amazon" for an auto-assigned one, the account for an
// EIP), and whether it has an IPv6 address.
func eni(index int32, public, owner string, ipv6 bool) types.InstanceNetworkInterface {
	n := types.InstanceNetworkInterface{
		Attachment: &types.InstanceNetworkInterfaceAttachment{DeviceIndex: aws.Int32(index), NetworkCardIndex: aws.Int32(0)},
		PrivateIpAddresses: []types.InstancePrivateIpAddress{{
			PrivateIpAddress: aws.String("10.0.1.5"), Primary: aws.Bool(true),
		}},
	}
	if public != "" {
		assoc := &types.InstanceNetworkInterfaceAssociation{PublicIp: aws.String(public), IpOwnerId: aws.String(owner)}
		n.Association = assoc
		n.PrivateIpAddresses[0].Association = assoc
	}
	if ipv6 {
		n.Ipv6Addresses = []types.InstanceIpv6Address{{Ipv6Address: aws.String("2001:db8::5")}}
	}
	return n
}

func resolvesTo(ips ...string) func(context.Context, string) ([]net.IPAddr, error) {
	return func(context.Context, string) ([]net.IPAddr, error) {
		var out []net.IPAddr
		for _, ip := range ips {
			out = append(out, net.IPAddr{IP: net.ParseIP(ip)})
		}
		return out, nil
	}
}

func noProxy(*url.URL) (*url.URL, error) { return nil, nil }

// TestPreflightEgress: one case per diagnosis of the egress check.
func TestPreflightEgress(t *testing.T) {
	regional, _ := url.Parse("https://ec2.eu-west-1.amazonaws.com")
	managed := []eip.Address{{AllocationID: "eipalloc-0123456789abcdef0", PublicIP: "203.0.113.10"}}
	public := resolvesTo("52.95.120.1")
	for _, c := range []struct {
		name    string
		env     egressEnv
		self    types.Instance
		selfErr error
		prefix  string   // the line's first word: ok, WARN or skip
		want    []string // in the output
	}{
		{"VPC endpoint", egressEnv{endpoint: regional, lookup: resolvesTo("10.0.1.200", "10.0.2.200"), proxy: noProxy},
			types.Instance{NetworkInterfaces: []types.InstanceNetworkInterface{eni(0, "203.0.113.10", "123456789012", false)}}, nil,
			"ok", []string{"does not depend on the EIP", "resolves to private addresses [10.0.1.200 10.0.2.200] (a VPC endpoint)"}},
		{"holder through its EIP", egressEnv{endpoint: regional, lookup: public, proxy: noProxy},
			types.Instance{NetworkInterfaces: []types.InstanceNetworkInterface{eni(0, "203.0.113.10", "123456789012", false)}}, nil,
			"WARN", []string{"VPC interface endpoints for ec2 and autoscaling", "through the EIP 203.0.113.10 it holds", "minutes after the EIP leaves"}},
		{"standby through its auto-assigned address", egressEnv{endpoint: regional, lookup: public, proxy: noProxy},
			types.Instance{NetworkInterfaces: []types.InstanceNetworkInterface{eni(0, "54.1.2.3", "amazon", false)}}, nil,
			"WARN", []string{"dual-stack endpoints over IPv6", "auto-assigned public IPv4 address 54.1.2.3, which AWS releases when an EIP is associated"}},
		{"two network interfaces: never back", egressEnv{endpoint: regional, lookup: public, proxy: noProxy},
			types.Instance{NetworkInterfaces: []types.InstanceNetworkInterface{eni(1, "", "", false), eni(0, "54.1.2.3", "amazon", false)}}, nil,
			"WARN", []string{"never, since 2 network interfaces are attached"}},
		{"an EIP eipd does not manage", egressEnv{endpoint: regional, lookup: public, proxy: noProxy},
			types.Instance{NetworkInterfaces: []types.InstanceNetworkInterface{eni(0, "198.51.100.7", "123456789012", false)}}, nil,
			"ok", []string{"through the Elastic IP 198.51.100.7, which eipd does not manage"}},
		{"dual-stack over IPv6", egressEnv{endpoint: regional, lookup: resolvesTo("52.95.120.1", "2600:1f18::1"), proxy: noProxy},
			types.Instance{NetworkInterfaces: []types.InstanceNetworkInterface{eni(0, "54.1.2.3", "amazon", true)}}, nil,
			"ok", []string{"dual-stack endpoint over IPv6"}},
		{"no public IPv4 address", egressEnv{endpoint: regional, lookup: public, proxy: noProxy},
			types.Instance{NetworkInterfaces: []types.InstanceNetworkInterface{eni(0, "", "", false)}}, nil,
			"ok", []string{"no public IPv4 address"}},
		{"through a proxy", egressEnv{endpoint: regional, lookup: public, proxy: func(*url.URL) (*url.URL, error) {
			return url.Parse("http://user:secret@proxy.internal:3128")
		}}, types.Instance{}, nil, "skip", []string{"through the proxy http://user:xxxxx@proxy.internal:3128"}},
		{"endpoint does not resolve", egressEnv{endpoint: regional, lookup: func(context.Context, string) ([]net.IPAddr, error) {
			return nil, errors.New("no such host")
		}, proxy: noProxy}, types.Instance{}, nil, "skip", []string{"cannot resolve ec2.eu-west-1.amazonaws.com"}},
		{"instance not described", egressEnv{endpoint: regional, lookup: public, proxy: noProxy},
			types.Instance{}, errors.New("not authorized"), "skip", []string{"not authorized"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			r := &preflightReport{w: &out}
			preflightEgress(context.Background(), r, c.env, c.self, c.selfErr, managed)
			lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
			if first := strings.Fields(lines[0]); len(first) == 0 || first[0] != c.prefix {
				t.Fatalf("want a %s line, got:\n%s", c.prefix, out.String())
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
			if r.failed != 0 {
				t.Errorf("the egress check never fails preflight, it warns: %d failure(s)", r.failed)
			}
			if c.prefix == "WARN" && (r.warned != 1 || r.result() != nil || !strings.Contains(out.String(), "all checks passed; 1 warning(s)")) {
				t.Errorf("a warning: counted %d, result not a pass with the warning:\n%s", r.warned, out.String())
			}
		})
	}
}

// TestPreflightEgressOnTheEmulator: the emulator's endpoint is on loopback,
// like a VPC endpoint's private address: the check passes.
func TestPreflightEgressOnTheEmulator(t *testing.T) {
	s := pfSim(t)
	pfEnv(t, s, 0)
	out, stderr, code := preflight(t, nil)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	wantLine(t, out, "ok    API access does not depend on the EIP: the EC2 endpoint 127.0.0.1 resolves to private addresses")
}

// TestPreflightAutoScaling: --lifecycle-hook and --asg-health need the
// instance to be in an Auto Scaling group.
func TestPreflightAutoScaling(t *testing.T) {
	inGroup := types.Instance{Tags: []types.Tag{{Key: aws.String("aws:autoscaling:groupName"), Value: aws.String("eipd-proxy-prod")}}}
	for _, c := range []struct {
		name   string
		cfg    config.Config
		self   types.Instance
		prefix string
		want   string
	}{
		{"neither flag", config.Config{}, types.Instance{}, "", ""},
		{"in a group", config.Config{ASGHealth: true}, inGroup, "ok", "in Auto Scaling group eipd-proxy-prod for --asg-health"},
		{"not in a group", config.Config{ASGHealth: true, LifecycleHook: "eipd-handoff"}, types.Instance{}, "FAIL",
			"unset --lifecycle-hook and --asg-health"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out bytes.Buffer
			r := &preflightReport{w: &out}
			preflightAutoScaling(r, &c.cfg, c.self, nil)
			if c.prefix == "" {
				if out.Len() != 0 {
					t.Errorf("output without the flags:\n%s", out.String())
				}
				return
			}
			if !strings.HasPrefix(out.String(), c.prefix) || !strings.Contains(out.String(), c.want) {
				t.Errorf("want a %s line with %q:\n%s", c.prefix, c.want, out.String())
			}
		})
	}
}
