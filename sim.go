package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/eipd/eipd/ec2sim"
)

// cmdSim runs the EC2 + IMDS emulator on loopback. It prints exactly one
// JSON line with the endpoints on stdout when ready, then logs on stderr
// only, and serves until SIGINT or SIGTERM.
func cmdSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eipd sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	instances := fs.Int("instances", 3, "number of simulated instances")
	eips := fs.Int("eips", 1, "number of Elastic IPs")
	group := fs.String("group", "demo", "eipd:group tag of the instances and EIPs")
	listen := fs.String("listen", "127.0.0.1:0", "EC2 API and control listener (port 0 = any free port)")
	targetPort := fs.Int("target-port", 80, "port EIP traffic is forwarded to on the holder's private IP")
	enis := fs.Int("enis", 1, "network interfaces per instance")
	propagation := fs.Duration("propagation-delay", 0, "how long a new association takes to carry traffic")
	logLevel := fs.String("log-level", "info", "trace, debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return usageErr(err)
	}
	switch {
	case *instances < 1 || *instances > 200:
		return fmt.Errorf("%w: --instances must be between 1 and 200", errUsage)
	case *eips < 0 || *eips > 100:
		return fmt.Errorf("%w: --eips must be between 0 and 100", errUsage)
	case *targetPort < 1 || *targetPort > 65535:
		return fmt.Errorf("%w: --target-port must be a TCP port", errUsage)
	case *enis < 1 || *enis > 8:
		return fmt.Errorf("%w: --enis must be between 1 and 8", errUsage)
	}
	log := newLogger(*logLevel, "text", stderr).Named("ec2sim")
	sim, err := ec2sim.Start(ctx, ec2sim.Options{
		Instances: *instances, EIPs: *eips, Group: *group, Listen: *listen, TargetPort: *targetPort,
		ENIsPerInstance: *enis, PropagationDelay: *propagation, Logger: log,
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
