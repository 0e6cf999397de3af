package eip

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// EgressHint is what to do when the EC2 API does not answer at all. The
// usual cause on a proxy of an eipd group: the instance reached the API
// through its public IPv4 address, and that address is gone. AWS releases
// an instance's auto-assigned public IPv4 address when an Elastic IP is
// associated with its primary network interface, and gives it a new one
// only minutes after the EIP leaves (never when a second network interface
// is attached). eipd refuses to claim while AWS state is unknown, so such a
// member cannot take over until the API answers again.
const EgressHint = "if this instance reached the EC2 API through a public IPv4 address that an Elastic IP replaced, it has no route until AWS assigns a new one, minutes after the EIP left (never with a second network interface): give the subnets VPC interface endpoints for ec2 and autoscaling, or another route that does not depend on the EIP (docs/install.md, API access that does not depend on the EIP; eipd preflight checks it)"

// Reachability says whether the EC2 API answered the calls lately. Any
// answer counts, an error included (a denial, a throttle, a 5xx): only a
// call that got no answer at all (DNS, connection, timeout) makes the API
// unreachable. Calls that were never sent (the client-side budget, a
// cancelled context) change nothing.
type Reachability struct {
	// Known is false until a call was sent.
	Known bool
	// Reachable: the last call sent got an answer.
	Reachable bool
	// Since is when the current state began: the first call without an
	// answer after one with, or the reverse.
	Since time.Time
	// LastAnswer is when EC2 last answered; zero if it never did.
	LastAnswer time.Time
	// Cause is, while unreachable, what the last call ran into, e.g.
	// "no answer from ec2.eu-west-1.amazonaws.com:443 (timed out)".
	Cause string
}

// ReachabilityObserver is told when the EC2 API stops or starts answering;
// an Observer that implements it (the metrics package does) gets the
// transitions, and every answer's time.
type ReachabilityObserver interface {
	SetAWSReachable(reachable bool, lastAnswer time.Time)
}

// reach keeps the Reachability of a Client.
type reach struct {
	mu sync.Mutex
	r  Reachability
}

// Reachability returns whether the EC2 API answered lately; safe for
// concurrent use.
func (c *Client) Reachability() Reachability {
	c.reach.mu.Lock()
	defer c.reach.mu.Unlock()
	return c.reach.r
}

// noteAnswer records how a sent call ended: err is the SDK's error, at
// the time done. It logs the transitions, with the cause and the fix.
func (c *Client) noteAnswer(op string, err error, done time.Time) {
	answered, known := answerOf(err)
	if !known {
		return
	}
	c.reach.mu.Lock()
	prev := c.reach.r
	r := prev
	r.Known = true
	if answered {
		r.LastAnswer = done
		r.Cause = ""
	} else {
		r.Cause = unreachableCause(err, c.cfg.Endpoint)
	}
	if !prev.Known || prev.Reachable != answered {
		r.Since = done
	}
	r.Reachable = answered
	c.reach.r = r
	c.reach.mu.Unlock()

	if ro, ok := c.obs.(ReachabilityObserver); ok {
		ro.SetAWSReachable(answered, r.LastAnswer)
	}
	switch {
	case !answered && (!prev.Known || prev.Reachable):
		args := []any{"operation", op, "cause", r.Cause, "hint", EgressHint}
		if !prev.LastAnswer.IsZero() {
			args = append(args, "last_answer", prev.LastAnswer.UTC().Format(time.RFC3339))
		}
		c.log.Warn("the EC2 API does not answer: AWS state is unknown, so this member claims no EIP until it does", args...)
	case !answered && prev.Cause != r.Cause:
		c.log.Debug("the EC2 API still does not answer", "operation", op, "cause", r.Cause)
	case answered && prev.Known && !prev.Reachable:
		c.log.Info("the EC2 API answers again", "operation", op, "unreachable_for", done.Sub(prev.Since).Round(time.Millisecond))
	}
}

// answerOf says whether a sent call got an answer from the endpoint, and
// whether that can be told at all (a call the caller cancelled, or that the
// SDK's retry quota kept from being sent, says nothing).
func answerOf(err error) (answered, known bool) {
	if err == nil {
		return true, true
	}
	var ae smithy.APIError
	var re *smithyhttp.ResponseError
	var qe ratelimit.QuotaExceededError
	switch {
	case errors.As(err, &ae):
		return true, true
	case errors.As(err, &re) && re.HTTPStatusCode() != 0:
		// The SDK wraps a failed send in a ResponseError too, with no
		// response (status 0).
		return true, true
	case errors.As(err, &qe):
		return false, false
	case errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded):
		return false, false
	}
	return false, true
}

// unreachableCause says in a few words what a call without an answer ran
// into, naming the endpoint as the error does, else as endpoint (the
// configured one, "" when unknown).
func unreachableCause(err error, endpoint string) string {
	what := "the EC2 endpoint"
	if endpoint != "" {
		what = endpoint
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			what = u.Host
		}
	}
	var dns *net.DNSError
	var ne net.Error
	switch {
	case errors.As(err, &dns):
		return fmt.Sprintf("cannot resolve %s (%s)", dns.Name, dns.Err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return what + " refused the connection"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "no route to " + what
	case errors.Is(err, syscall.ECONNRESET):
		return what + " reset the connection"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "no answer from " + what + " (timed out)"
	}
	return fmt.Sprintf("no answer from %s: %v", what, err)
}
