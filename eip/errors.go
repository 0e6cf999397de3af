package eip

import (
	"context"
	"errors"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// PolicyPath is where the minimal IAM policy lives in the repository; the
// unauthorized error points operators at it.
const PolicyPath = "deploy/iam/eipd-policy.json"

var errorsIs = errors.Is

// classifiedError carries both the sentinel and the original SDK error, so
// errors.Is matches the sentinel and errors.As still finds the smithy.APIError.
type classifiedError struct {
	kind error
	err  error
	hint string
	// noAnswer: no answer came at all (ErrNoAnswer).
	noAnswer bool
}

func (e *classifiedError) Error() string {
	if e.hint != "" {
		return e.kind.Error() + " (" + e.hint + "): " + e.err.Error()
	}
	return e.kind.Error() + ": " + e.err.Error()
}

func (e *classifiedError) Unwrap() []error {
	if e.noAnswer {
		return []error{e.kind, ErrNoAnswer, e.err}
	}
	return []error{e.kind, e.err}
}

// isThrottleCode: the codes the SDK's standard retryer treats as throttling,
// EC2's RequestLimitExceeded among them. Using the SDK's own table keeps the
// classification in step with the retryer when the SDK learns a new code.
func isThrottleCode(code string) bool {
	_, ok := retry.DefaultThrottleErrorCodes[code]
	return ok
}

var unauthorizedCodes = map[string]bool{
	"UnauthorizedOperation": true,
	"AuthFailure":           true,
	"Blocked":               true,
	"OptInRequired":         true,
}

var serverCodes = map[string]bool{
	"InternalError":           true,
	"InternalFailure":         true,
	"Unavailable":             true,
	"ServiceUnavailable":      true,
	"RequestTimeout":          true,
	"RequestTimeoutException": true,
}

var invalidStateCodes = map[string]bool{
	"IncorrectInstanceState": true,
	"IncorrectState":         true,
	// Also "multiple interfaces attached": eipd never associates by
	// instance, so in practice this is the pending/terminated form.
	"InvalidInstanceID": true,
}

// Classify wraps an SDK error with the matching sentinel (see types.go).
// errors.Is works for both the sentinel and the original error. nil → nil.
// An error that is already classified is returned unchanged.
func Classify(err error) error {
	return classify("", err)
}

// classify is Classify with the operation known to the caller, so an IAM
// denial can name the action to grant even when the SDK error does not.
func classify(op string, err error) error {
	if err == nil {
		return nil
	}
	if alreadyClassified(err) {
		return err
	}
	if op == "" {
		var oe *smithy.OperationError
		if errors.As(err, &oe) {
			op = oe.OperationName
		}
	}
	kind := kindOf(err)
	ce := &classifiedError{kind: kind, err: err, noAnswer: kind == ErrUnavailable && noAnswer(err)}
	if kind == ErrUnauthorized {
		if op != "" {
			ce.hint = "grant the IAM action ec2:" + op + " to the instance role; the minimal policy is " + PolicyPath
		} else {
			ce.hint = "grant the IAM actions listed in " + PolicyPath + " to the instance role"
		}
	}
	return ce
}

// noAnswer reports whether err means the request got no answer at all:
// the client gave up (timeout, cancelled) or the connection failed. The
// request may have reached EC2 and taken effect. An HTTP answer, even a
// 5xx, is an answer: the call failed.
//
// The SDK wraps a failure to send or to read the answer in a ResponseError
// too, with status code 0 (smithy-go's client handler makes up an empty
// response): that is no answer, so only a real status code counts.
func noAnswer(err error) bool {
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && statusCode(re) != 0 {
		return false
	}
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return false
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Op == "dial" {
		return false // never sent
	}
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || errors.As(err, &ne) ||
		strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "EOF")
}

var sentinels = []error{
	ErrAlreadyAssociated, ErrStaleAssociation, ErrThrottled, ErrUnauthorized,
	ErrNotFound, ErrInvalidState, ErrUnavailable, ErrInvalidRequest, ErrDryRun,
}

func alreadyClassified(err error) bool {
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return true
		}
	}
	return false
}

func kindOf(err error) error {
	// The SDK's retry quota ran dry: it gives up without sending, after a
	// run of retried failures. Back off like a throttle.
	var qe ratelimit.QuotaExceededError
	if errors.As(err, &qe) || strings.Contains(err.Error(), "failed to get rate limit token") {
		return ErrThrottled
	}

	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		code := apiErr.ErrorCode()
		switch {
		case code == "Resource.AlreadyAssociated":
			return ErrAlreadyAssociated
		case code == "InvalidAssociationID.NotFound":
			return ErrStaleAssociation
		case code == "DryRunOperation":
			return ErrDryRun
		case isThrottleCode(code):
			return ErrThrottled
		case unauthorizedCodes[code]:
			return ErrUnauthorized
		case invalidStateCodes[code]:
			return ErrInvalidState
		case strings.HasSuffix(code, ".NotFound"):
			return ErrNotFound
		case serverCodes[code]:
			return ErrUnavailable
		}
		var re *smithyhttp.ResponseError
		if errors.As(err, &re) && statusCode(re) >= 500 {
			return ErrUnavailable
		}
		if apiErr.ErrorFault() == smithy.FaultServer {
			return ErrUnavailable
		}
		return ErrInvalidRequest
	}

	// No API error: the reply never arrived or was not understood.
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) {
		if s := statusCode(re); s >= 400 && s < 500 {
			switch s {
			case 401, 403:
				return ErrUnauthorized
			case 429:
				return ErrThrottled
			case 404:
				return ErrNotFound
			case 408:
				return ErrUnavailable
			}
			return ErrInvalidRequest
		}
		return ErrUnavailable
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return ErrUnavailable
	case errors.As(err, &ne):
		return ErrUnavailable
	}
	// Anything else (a reply that did not parse, a transport failure the SDK
	// wrapped opaquely): AWS state is unknown, which is what ErrUnavailable
	// means to the caller, and it is the fail-safe reading.
	return ErrUnavailable
}

// statusCode is the HTTP status code of re's response, 0 when no response
// came (the SDK then makes up an empty one).
func statusCode(re *smithyhttp.ResponseError) int {
	if re == nil || re.Response == nil || re.Response.Response == nil {
		return 0
	}
	return re.HTTPStatusCode()
}

// GoneError is ErrNotFound naming the allocations EC2 said do not exist
// (its message names the first one it found: "The allocation ID
// 'eipalloc-…' does not exist"), so a call on many can be made again
// without them.
type GoneError struct {
	IDs []string
	err error
}

func (e *GoneError) Error() string { return e.err.Error() }
func (e *GoneError) Unwrap() error { return e.err }

// GoneIn wraps an ErrNotFound that names some of ids in a GoneError (as
// Client.WriteLease does), for fakes of the client.
func GoneIn(err error, ids []string) error { return goneIDs(err, ids) }

// goneIDs wraps an ErrNotFound that names some of ids in a GoneError.
func goneIDs(err error, ids []string) error {
	if !errors.Is(err, ErrNotFound) {
		return err
	}
	var gone []string
	for _, id := range ids {
		if strings.Contains(err.Error(), "'"+id+"'") {
			gone = append(gone, id)
		}
	}
	if len(gone) == 0 {
		return err
	}
	return &GoneError{IDs: gone, err: err}
}

// Gone lists the allocations err says do not exist (nil when it names none).
func Gone(err error) []string {
	var g *GoneError
	if errors.As(err, &g) {
		return g.IDs
	}
	return nil
}
