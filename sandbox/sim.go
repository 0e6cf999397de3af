// Package sandbox holds the commands that need no AWS account and never
// leave loopback: `eipd sim` (the EC2 + IMDS emulator of package ec2sim, as
// a process of its own) and `eipd demo` (a whole group on this machine,
// package demo).
package sandbox

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/eipd/eipd/ec2sim"
	"github.com/eipd/eipd/internal/cli"
	"github.com/eipd/eipd/internal/logging"
)

const simUsage = `Usage: eipd sim [flags]

Runs the EC2 + IMDS emulator on loopback for tests and demos: instances,
EIPs, IMDSv2 per instance, fault injection and a control API. It prints one
JSON line with its endpoints, then serves until interrupted. Point eipd at it
with AWS_ENDPOINT_URL_EC2 and AWS_EC2_METADATA_SERVICE_ENDPOINT (and
AWS_ENDPOINT_URL_AUTO_SCALING, the same URL, for lifecycle hooks).
Reference: docs/ec2sim.md (https://github.com/eipd/eipd/blob/main/docs/ec2sim.md).

`

// Sim is `eipd sim`: it runs the EC2 + IMDS emulator on loopback. It prints exactly one
// JSON line with the endpoints on stdout when ready, then logs on stderr
// only, and serves until SIGINT or SIGTERM.
func Sim(ctx context.Context, args []string, env cli.Env) error {
	stdout, stderr := env.Stdout, env.Stderr
	fs := flag.NewFlagSet("eipd sim", flag.ContinueOnError)
	instances := fs.Int("instances", 3, "number of simulated instances")
	eips := fs.Int("eips", 1, "number of Elastic IPs")
	group := fs.String("group", "demo", "eipd:group tag of the instances and EIPs")
	listen := fs.String("listen", "127.0.0.1:0", "EC2 API and control listener (port 0 = any free port)")
	targetPort := fs.Int("target-port", 80, "port EIP traffic is forwarded to on the holder's private IP")
	enis := fs.Int("enis", 1, "network interfaces per instance")
	privateIPs := fs.Int("private-ips", 1, fmt.Sprintf("private IPs on each instance's primary network interface (1..%d), each can carry an EIP", ec2sim.MaxPrivateIPs))
	propagation := fs.Duration("propagation-delay", 0, "how long a new association takes to carry traffic")
	asg := fs.String("asg", "", "put every instance in an Auto Scaling group of this name (tag aws:autoscaling:groupName); empty: none")
	hook := fs.String("lifecycle-hook", "", "a termination lifecycle hook of the --asg group, completed with CompleteLifecycleAction")
	autoPublic := fs.Bool("auto-assign-public-ip", false, "give each instance an auto-assigned public IPv4 address, released while an EIP is on its primary private IP (a public subnet)")
	logLevel := fs.String("log-level", "info", "trace, debug, info, warn or error")
	usage := func(w io.Writer) {
		fmt.Fprint(w, simUsage)
		fs.PrintDefaults()
	}
	if err := cli.ParseFlags(fs, args, stderr, usage); err != nil {
		return err
	}
	// The emulator always allocates at least one EIP (ec2sim.Options
	// treats 0 as the default, 1), so 0 is refused rather than ignored.
	switch {
	case fs.NArg() > 0:
		return cli.Usagef("unexpected arguments %q (see 'eipd sim -h')", fs.Args())
	case *instances < 1 || *instances > 200:
		return cli.Usagef("--instances %d: must be between 1 and 200", *instances)
	case *eips < 1 || *eips > 100:
		return cli.Usagef("--eips %d: must be between 1 and 100 (more can be allocated with AllocateAddress)", *eips)
	case *targetPort < 1 || *targetPort > 65535:
		return cli.Usagef("--target-port %d: must be a TCP port", *targetPort)
	case *enis < 1 || *enis > 8:
		return cli.Usagef("--enis %d: must be between 1 and 8", *enis)
	case *privateIPs < 1 || *privateIPs > ec2sim.MaxPrivateIPs:
		return cli.Usagef("--private-ips %d: must be between 1 and %d", *privateIPs, ec2sim.MaxPrivateIPs)
	case *hook != "" && *asg == "":
		return cli.Usagef("--lifecycle-hook needs --asg: a hook belongs to an Auto Scaling group")
	}
	var hooks []string
	if *hook != "" {
		hooks = []string{*hook}
	}
	log := logging.New(*logLevel, "text", stderr).Named("ec2sim")
	sim, err := ec2sim.Start(ctx, ec2sim.Options{
		Instances: *instances, EIPs: *eips, Group: *group, Listen: *listen, TargetPort: *targetPort,
		ENIsPerInstance: *enis, PrivateIPs: *privateIPs, PropagationDelay: *propagation, AutoScalingGroup: *asg,
		LifecycleHooks: hooks, AutoAssignPublicIP: *autoPublic, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("start simulator: %w", err)
	}
	fmt.Fprintf(stdout, "%s\n", sim.Info().JSON())
	log.Info("serving; stop with Ctrl-C", "ec2_endpoint", sim.Info().EC2Endpoint)
	<-ctx.Done()
	start := time.Now()
	err = sim.Close()
	log.Info("stopped", "took", time.Since(start))
	return err
}
