package eip

import (
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
)

// GuardRequestBody is an ec2.Options function that works around a client
// race in the SDK (aws-sdk-go-v2#2737, #1825): smithy closes the request
// body as soon as the HTTP client returns, while net/http's write loop may
// still make its final read of it; the body's WriteTo then returns io.EOF,
// the transport treats that as a failed write and closes the connection,
// and a response larger than one read buffer fails with "use of closed
// network connection". Seen on 5–25 % of DescribeInstances calls against
// the emulator and against a bare httptest server. Hiding WriteTo makes
// io.Copy read the body normally, where that EOF is just the end.
//
// It matters for eipd beyond noise: a DisassociateAddress whose response
// is lost that way and then retried comes back
// InvalidAssociationID.NotFound, which looks like a lost race.
func GuardRequestBody(o *ec2.Options) {
	base := o.HTTPClient
	if base == nil {
		base = http.DefaultClient
	}
	o.HTTPClient = bodyGuard{base}
}

type bodyGuard struct{ next ec2.HTTPClient }

func (g bodyGuard) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = struct{ io.ReadCloser }{r.Body}
	}
	return g.next.Do(r)
}
