package eip

import (
	"context"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/smithy-go"
)

// fakeEC2 is a hand-written EC2API: each operation answers through an
// optional function, and every call is recorded in order.
type fakeEC2 struct {
	mu    sync.Mutex
	calls []fakeCall

	describeAddresses   func(*ec2.DescribeAddressesInput) (*ec2.DescribeAddressesOutput, error)
	associateAddress    func(*ec2.AssociateAddressInput) (*ec2.AssociateAddressOutput, error)
	disassociateAddress func(*ec2.DisassociateAddressInput) (*ec2.DisassociateAddressOutput, error)
	describeInstances   func(*ec2.DescribeInstancesInput) (*ec2.DescribeInstancesOutput, error)
	createTags          func(*ec2.CreateTagsInput) (*ec2.CreateTagsOutput, error)
}

type fakeCall struct {
	op    string
	input any
}

func (f *fakeEC2) record(op string, in any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, fakeCall{op, in})
}

func (f *fakeEC2) ops() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, c := range f.calls {
		out = append(out, c.op)
	}
	return out
}

func (f *fakeEC2) call(i int) any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[i].input
}

func (f *fakeEC2) DescribeAddresses(_ context.Context, in *ec2.DescribeAddressesInput, _ ...func(*ec2.Options)) (*ec2.DescribeAddressesOutput, error) {
	f.record(OpDescribeAddresses, in)
	if f.describeAddresses == nil {
		return &ec2.DescribeAddressesOutput{}, nil
	}
	return f.describeAddresses(in)
}

func (f *fakeEC2) AssociateAddress(_ context.Context, in *ec2.AssociateAddressInput, _ ...func(*ec2.Options)) (*ec2.AssociateAddressOutput, error) {
	f.record(OpAssociateAddress, in)
	if f.associateAddress == nil {
		return &ec2.AssociateAddressOutput{AssociationId: strp("eipassoc-new")}, nil
	}
	return f.associateAddress(in)
}

func (f *fakeEC2) DisassociateAddress(_ context.Context, in *ec2.DisassociateAddressInput, _ ...func(*ec2.Options)) (*ec2.DisassociateAddressOutput, error) {
	f.record(OpDisassociateAddress, in)
	if f.disassociateAddress == nil {
		return &ec2.DisassociateAddressOutput{}, nil
	}
	return f.disassociateAddress(in)
}

func (f *fakeEC2) DescribeInstances(_ context.Context, in *ec2.DescribeInstancesInput, _ ...func(*ec2.Options)) (*ec2.DescribeInstancesOutput, error) {
	// Record a copy: the client reuses the input across pages.
	cp := *in
	f.record(OpDescribeInstances, &cp)
	if f.describeInstances == nil {
		return &ec2.DescribeInstancesOutput{}, nil
	}
	return f.describeInstances(&cp)
}

func (f *fakeEC2) CreateTags(_ context.Context, in *ec2.CreateTagsInput, _ ...func(*ec2.Options)) (*ec2.CreateTagsOutput, error) {
	f.record(OpCreateTags, in)
	if f.createTags == nil {
		return &ec2.CreateTagsOutput{}, nil
	}
	return f.createTags(in)
}

func strp(s string) *string { return &s }

func apiErr(code string) error {
	return &smithy.GenericAPIError{Code: code, Message: code + " message"}
}

// fakeObserver records what the client reports.
type fakeObserver struct {
	mu   sync.Mutex
	ec2  []string // "op outcome"
	imds []string
}

func (o *fakeObserver) ObserveEC2(op, outcome string, _ time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.ec2 = append(o.ec2, op+" "+outcome)
}

func (o *fakeObserver) ObserveIMDS(outcome string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.imds = append(o.imds, outcome)
}

func (o *fakeObserver) ec2Calls() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.ec2...)
}

func (o *fakeObserver) imdsCalls() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.imds...)
}
