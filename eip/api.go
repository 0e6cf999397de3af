package eip

import (
	"context"
	"time"

	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// EC2API is the subset of *ec2.Client eipd uses. It keeps the SDK's own
// signatures so that *ec2.Client satisfies it and tests can pass a fake.
type EC2API interface {
	DescribeAddresses(ctx context.Context, params *ec2.DescribeAddressesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error)
	AssociateAddress(ctx context.Context, params *ec2.AssociateAddressInput, optFns ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error)
	DisassociateAddress(ctx context.Context, params *ec2.DisassociateAddressInput, optFns ...func(*ec2.Options)) (*ec2.DisassociateAddressOutput, error)
	DescribeInstances(ctx context.Context, params *ec2.DescribeInstancesInput, optFns ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error)
	CreateTags(ctx context.Context, params *ec2.CreateTagsInput, optFns ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error)
}

// IMDSAPI is the subset of *imds.Client eipd uses.
type IMDSAPI interface {
	GetMetadata(ctx context.Context, params *imds.GetMetadataInput, optFns ...func(*imds.Options)) (*imds.GetMetadataOutput, error)
	GetInstanceIdentityDocument(ctx context.Context, params *imds.GetInstanceIdentityDocumentInput, optFns ...func(*imds.Options)) (*imds.GetInstanceIdentityDocumentOutput, error)
}

var (
	_ EC2API  = (*ec2.Client)(nil)
	_ IMDSAPI = (*imds.Client)(nil)
)

// Observer receives per-call figures; the metrics package implements it.
// Outcomes are one of the Outcome* constants.
type Observer interface {
	ObserveEC2(operation, outcome string, d time.Duration)
	ObserveIMDS(outcome string)
}

// Outcomes of an EC2 call, as reported to the Observer.
const (
	OutcomeSuccess      = "success"
	OutcomeThrottled    = "throttled"
	OutcomeUnauthorized = "unauthorized"
	OutcomeConflict     = "conflict"
	OutcomeNotFound     = "not_found"
	OutcomeClientError  = "client_error"
	OutcomeServerError  = "server_error"
	OutcomeDryRun       = "dry_run"
)

// Outcomes of an IMDS call, as reported to the Observer.
const (
	IMDSOutcomeSuccess  = "success"
	IMDSOutcomeNotFound = "not_found"
	IMDSOutcomeError    = "error"
)

// EC2 operation names as reported to the Observer.
const (
	OpDescribeAddresses   = "DescribeAddresses"
	OpAssociateAddress    = "AssociateAddress"
	OpDisassociateAddress = "DisassociateAddress"
	OpDescribeInstances   = "DescribeInstances"
	OpCreateTags          = "CreateTags"
)

// Operations lists every EC2 operation the daemon calls. Metrics initialise
// their labels from it and the IAM policy test checks the policy covers it,
// so a new call added here without a policy change fails CI.
var Operations = []string{
	OpDescribeAddresses,
	OpAssociateAddress,
	OpDisassociateAddress,
	OpDescribeInstances,
	OpCreateTags,
}

// Outcomes lists every EC2 call outcome.
var Outcomes = []string{
	OutcomeSuccess,
	OutcomeThrottled,
	OutcomeUnauthorized,
	OutcomeConflict,
	OutcomeNotFound,
	OutcomeClientError,
	OutcomeServerError,
	OutcomeDryRun,
}

// IMDSOutcomes lists every IMDS call outcome.
var IMDSOutcomes = []string{IMDSOutcomeSuccess, IMDSOutcomeNotFound, IMDSOutcomeError}

// Outcome maps a classified error to the outcome reported to the Observer.
func Outcome(err error) string {
	switch {
	case err == nil:
		return OutcomeSuccess
	case errorsIs(err, ErrDryRun):
		return OutcomeDryRun
	case errorsIs(err, ErrThrottled):
		return OutcomeThrottled
	case errorsIs(err, ErrUnauthorized):
		return OutcomeUnauthorized
	case errorsIs(err, ErrAlreadyAssociated), errorsIs(err, ErrStaleAssociation):
		return OutcomeConflict
	case errorsIs(err, ErrNotFound):
		return OutcomeNotFound
	case errorsIs(err, ErrInvalidState), errorsIs(err, ErrInvalidRequest):
		return OutcomeClientError
	default:
		return OutcomeServerError
	}
}

type nopObserver struct{}

func (nopObserver) ObserveEC2(string, string, time.Duration) {}
func (nopObserver) ObserveIMDS(string)                       {}
