package ec2sim

import (
	"io"
	"net/http"
	"strings"
	"time"
)

// call is one EC2 request being served, with the simulator locked.
type call struct {
	s      *Sim
	req    request
	caller string // instance ID, "" for the operator
	now    time.Time
	lag    time.Duration
	mixed  bool // Faults.MixedReads
	dryRun bool
	x      xmlw
	// late is Faults.LateWrites; pending holds the call's writes until
	// the answer is out (late.go).
	late    time.Duration
	pending []writeFunc
}

// view is the (possibly lagged) state Describe* read.
func (c *call) view() *world { return c.s.viewLocked(c.now, c.lag) }

// mixedView is the state at a moment drawn at random within the lag
// window [now - lag, now], for MixedReads.
func (c *call) mixedView() *world {
	return c.s.viewLocked(c.now, time.Duration(c.s.rnd.Int64N(int64(c.lag)+1)))
}

// checkDryRun is called by each action once its parameters are validated
// and the resources they name are found, and before the checks of
// resource state and any change. AWS documents DryRun as a permission
// check: "If you have the required permissions, the error response is
// DryRunOperation. Otherwise, it is UnauthorizedOperation"
// (https://docs.aws.amazon.com/AWSEC2/latest/APIReference/API_AssociateAddress.html).
// So the order is: request syntax and IDs, authorization (the deny fault,
// before the action runs), DryRun, then state: Resource.AlreadyAssociated,
// InvalidIPAddress.InUse, instance states, limits. A dry run never fails
// on the state a real call would change or find, as moto does too.
func (c *call) checkDryRun() error {
	if c.dryRun {
		return errf(412, "DryRunOperation", "Request would have succeeded, but DryRun flag is set.")
	}
	return nil
}

type actionSpec struct {
	params []string // allowed top-level parameter names
	run    func(c *call) error
}

func ec2Actions() map[string]actionSpec {
	return map[string]actionSpec{
		"DescribeAddresses":      {[]string{"AllocationId", "PublicIp", "Filter", "DryRun"}, describeAddresses},
		"AllocateAddress":        {[]string{"Domain", "Address", "PublicIpv4Pool", "NetworkBorderGroup", "CustomerOwnedIpv4Pool", "TagSpecification", "IpamPoolId", "DryRun"}, allocateAddress},
		"ReleaseAddress":         {[]string{"AllocationId", "PublicIp", "NetworkBorderGroup", "DryRun"}, releaseAddress},
		"AssociateAddress":       {[]string{"AllocationId", "InstanceId", "PublicIp", "NetworkInterfaceId", "PrivateIpAddress", "AllowReassociation", "DryRun"}, associateAddress},
		"DisassociateAddress":    {[]string{"AssociationId", "PublicIp", "DryRun"}, disassociateAddress},
		"DescribeInstances":      {[]string{"InstanceId", "Filter", "MaxResults", "NextToken", "DryRun", "IncludeManagedResources"}, describeInstances},
		"DescribeInstanceStatus": {[]string{"InstanceId", "Filter", "MaxResults", "NextToken", "DryRun", "IncludeAllInstances"}, describeInstanceStatus},
		"CreateTags":             {[]string{"ResourceId", "Tag", "DryRun"}, createTags},
		"DeleteTags":             {[]string{"ResourceId", "Tag", "DryRun"}, deleteTags},
		"DescribeTags":           {[]string{"Filter", "MaxResults", "NextToken", "DryRun"}, describeTags},
	}
}

var credentialRE = lazyRegexp(`Credential=([^/,\s]+)/([^/]*)/([^/]*)/([^/]*)/aws4_request`)

// callerOf identifies the caller from the SigV4 access key ID. Signatures
// are not verified. Unknown keys are the operator ("").
// The credential scope must name the region and service (ec2 or
// autoscaling).
func (s *Sim) callerOf(r *http.Request, service string) (string, *apiError) {
	auth := r.Header.Get("Authorization")
	var m []string
	if auth != "" {
		m = credentialRE().FindStringSubmatch(auth)
		if m == nil || !strings.HasPrefix(auth, "AWS4-HMAC-SHA256 ") {
			return "", errf(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
		}
	} else if qc := r.URL.Query().Get("X-Amz-Credential"); qc != "" {
		m = credentialRE().FindStringSubmatch("Credential=" + qc)
		if m == nil {
			return "", errf(401, "AuthFailure", "AWS was not able to validate the provided access credentials")
		}
	} else {
		return "", errf(401, "MissingAuthenticationToken", "Request is missing Authentication Token")
	}
	if m[3] != s.opts.Region {
		return "", errf(401, "AuthFailure", "Credential should be scoped to a valid region. ")
	}
	if m[4] != service {
		return "", errf(401, "AuthFailure", "Credential should be scoped to correct service: '%s'. ", service)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.akids[m[1]], nil
}

// serveQuery sends a request to the API its signature names: Auto Scaling
// for service "autoscaling", EC2 for anything else (EC2 then refuses a
// signature for another service).
func (s *Sim) serveQuery(w http.ResponseWriter, r *http.Request) {
	if m := credentialRE().FindStringSubmatch(r.Header.Get("Authorization")); m != nil && m[4] == "autoscaling" {
		s.serveAutoScaling(w, r)
		return
	}
	s.serveEC2(w, r)
}

// serveEC2 is POST / (and GET /?Action=…): the EC2 Query API.
func (s *Sim) serveEC2(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "simulator closing", http.StatusServiceUnavailable)
		return
	}
	defer s.leave()
	reqID := newRequestID()

	var req request
	var perr error
	switch r.Method {
	case http.MethodPost:
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
		if err != nil {
			return // client went away
		}
		req, perr = parseQuery(body)
	case http.MethodGet:
		req, perr = requestFromValues(r.URL.Query())
	default:
		writeError(w, reqID, errf(405, "InvalidHttpRequest", "The HTTP method %s is not supported.", r.Method))
		return
	}
	actions := ec2Actions()
	spec, known := actions[req.Action]
	statAction := req.Action
	if perr != nil || !known {
		statAction = "(invalid)"
	}
	caller, authErr := s.callerOf(r, "ec2")

	s.mu.Lock()
	s.tickLocked(time.Now())
	f := combine(s.faults, s.instFaults[caller])
	// An instance in a public subnet with neither VPC endpoints nor NAT
	// reaches the API only through its public IPv4 address.
	cutOff := f.EgressNeedsPublicIP && caller != "" && !s.hasPublicIPLocked(caller)
	s.mu.Unlock()

	if f.Partition || cutOff {
		outcome := "partitioned"
		if !f.Partition {
			outcome = "no-public-ip"
		}
		s.count(statAction, caller, outcome)
		s.hang(w, r)
		return
	}
	// Latency models a slow answer, not a slow request: the action below
	// is applied as the request arrives and only the answer waits, so a
	// client that gives up first still had its write applied, as on AWS
	// (a timed-out call is not a call that did not happen). A client gone
	// by then gets nothing.
	answer := func(write func()) {
		if f.Latency > 0 {
			t := time.NewTimer(f.Latency)
			defer t.Stop()
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			case <-s.closing:
				return
			}
		}
		write()
	}
	fail := func(e *apiError) {
		s.count(statAction, caller, e.Code)
		answer(func() { writeError(w, reqID, e) })
	}
	if perr != nil {
		fail(perr.(*apiError))
		return
	}
	if authErr != nil {
		fail(authErr)
		return
	}
	if !known {
		fail(errf(400, "InvalidAction", "The action %s is not valid for this web service.", req.Action))
		return
	}
	if err := req.checkParams(spec.params); err != nil {
		fail(err.(*apiError))
		return
	}
	dryRun, err := req.boolean("DryRun", false)
	if err != nil {
		fail(err.(*apiError))
		return
	}
	if f.denies(req.Action) {
		fail(s.unauthorized(req, caller))
		return
	}

	now := time.Now()
	s.mu.Lock()
	if e := s.injectLocked(now, req, f); e != nil {
		s.mu.Unlock()
		fail(e)
		return
	}
	s.tickLocked(now)
	c := &call{s: s, req: req, caller: caller, now: now, lag: f.DescribeLag, mixed: f.MixedReads, dryRun: dryRun,
		late: f.LateWrites}
	runErr := spec.run(c)
	var lostMode string
	lost := false
	if runErr == nil {
		lostMode, lost = s.loseLocked(caller, req.Action)
	}
	s.mu.Unlock()
	if runErr != nil {
		e, ok := runErr.(*apiError)
		if !ok {
			e = errf(500, "InternalError", "An internal error has occurred")
			s.logger.Error("ec2sim action failed", "action", req.Action, "error", runErr)
		}
		fail(e)
		return
	}
	// Late writes count from when the answer went out, or would have.
	defer s.scheduleLate(c)
	if lost {
		s.count(statAction, caller, "lost")
		s.loseAnswer(w, r, lostMode, f.Latency)
		return
	}
	s.count(statAction, caller, "ok")
	answer(func() { writeSuccess(w, req.Action, reqID, c.x.Bytes()) })
}

// injectLocked applies throttling and random server errors.
func (s *Sim) injectLocked(now time.Time, req request, f Faults) *apiError {
	if f.Throttle {
		key, capacity, refill := bucketFor(req)
		b := s.buckets[key]
		if b == nil {
			b = &bucket{capacity: capacity, refill: refill, tokens: capacity, last: now}
			s.buckets[key] = b
		}
		if !b.take(now) {
			return errf(503, "RequestLimitExceeded", "Request limit exceeded.")
		}
	}
	if f.ThrottleRatio > 0 && s.rnd.Float64() < f.ThrottleRatio {
		return errf(503, "RequestLimitExceeded", "Request limit exceeded.")
	}
	if f.ErrorRatio > 0 && s.rnd.Float64() < f.ErrorRatio {
		if s.rnd.IntN(2) == 0 {
			return errf(500, "InternalError", "An internal error has occurred")
		}
		return errf(503, "Unavailable", "The service is unavailable. Please try again shortly.")
	}
	return nil
}

func (s *Sim) count(action, caller, outcome string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.countLocked(action, caller, outcome)
}

// unauthorized builds AWS's UnauthorizedOperation message for a denied call.
func (s *Sim) unauthorized(req request, caller string) *apiError {
	user := "arn:aws:iam::" + simAccountID + ":user/operator"
	if caller != "" {
		user = "arn:aws:sts::" + simAccountID + ":assumed-role/" + simRoleName + "/" + caller
	}
	res := "*"
	arn := "arn:aws:ec2:" + s.opts.Region + ":" + simAccountID + ":"
	switch {
	case req.str("AllocationId") != "":
		res = arn + "elastic-ip/" + req.str("AllocationId")
	case req.str("InstanceId") != "":
		res = arn + "instance/" + req.str("InstanceId")
	case req.str("ResourceId.1") != "":
		res = arn + "*/" + req.str("ResourceId.1")
	}
	return errf(403, "UnauthorizedOperation",
		"You are not authorized to perform this operation. User: %s is not authorized to perform: ec2:%s on resource: %s because no identity-based policy allows the ec2:%s action. Encoded authorization failure message: %s",
		user, req.Action, res, req.Action, randHex(64))
}
