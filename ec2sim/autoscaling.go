package ec2sim

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The Auto Scaling Query API, the calls eipd makes: CompleteLifecycleAction
// (--lifecycle-hook) and SetInstanceHealth (--asg-health). It is served on
// the EC2 listener and told apart by the SigV4 credential
// scope's service name ("autoscaling"), so AWS_ENDPOINT_URL_AUTO_SCALING can
// point at the same URL as AWS_ENDPOINT_URL_EC2.
//
// With Options.AutoScalingGroup set, every instance is in that group (tag
// aws:autoscaling:groupName, as EC2 Auto Scaling adds it) and each of
// Options.LifecycleHooks is a termination hook of the group. Setting an
// instance's target lifecycle state to Terminated (SetLifecycleState, the
// control API) starts one lifecycle action per hook, as the group entering
// Terminating:Wait does; CompleteLifecycleAction completes it, and the
// simulator records who completed it, when, and with what result. It does
// not terminate the instance afterwards: the test or operator does.
//
// SetInstanceHealth with HealthStatus=Unhealthy takes the instance out of
// service as Auto Scaling does before it replaces it: its target lifecycle
// state becomes Terminated, which starts the termination lifecycle actions
// (and instance metadata says so). Healthy changes nothing. Every call is
// counted in Stats under its caller, and logged.

const autoScalingNamespace = "http://autoscaling.amazonaws.com/doc/2011-01-01/"

// asgNameRE: Auto Scaling group and lifecycle hook names (API reference:
// 1 to 255 characters; hook names [A-Za-z0-9\-_\/]+).
var (
	asgNameRE  = lazyRegexp(`^[\x20-\x7e]{1,255}$`)
	hookNameRE = lazyRegexp(`^[A-Za-z0-9\-_/]{1,255}$`)
)

// LifecycleAction is one termination lifecycle action of an instance.
type LifecycleAction struct {
	InstanceID string    `json:"instance_id"`
	Group      string    `json:"auto_scaling_group_name"`
	Hook       string    `json:"lifecycle_hook_name"`
	Started    time.Time `json:"started"`
	// Completed is set by CompleteLifecycleAction, with its Result
	// (CONTINUE or ABANDON) and the caller (an instance ID, "" for the
	// operator).
	Completed *time.Time `json:"completed,omitempty"`
	Result    string     `json:"result,omitempty"`
	Caller    string     `json:"caller,omitempty"`
}

// startLifecycleActionsLocked starts the termination lifecycle actions of
// instance id, once per hook.
func (s *Sim) startLifecycleActionsLocked(now time.Time, id string) {
	if s.opts.AutoScalingGroup == "" {
		return
	}
	for _, h := range s.opts.LifecycleHooks {
		open := slices.ContainsFunc(s.lifecycleActions, func(a *LifecycleAction) bool {
			return a.InstanceID == id && a.Hook == h && a.Completed == nil
		})
		if !open {
			s.lifecycleActions = append(s.lifecycleActions, &LifecycleAction{InstanceID: id, Group: s.opts.AutoScalingGroup, Hook: h, Started: now})
		}
	}
}

// LifecycleActions returns every lifecycle action so far, in start order.
func (s *Sim) LifecycleActions() []LifecycleAction {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]LifecycleAction, len(s.lifecycleActions))
	for i, a := range s.lifecycleActions {
		out[i] = *a
		if a.Completed != nil {
			t := *a.Completed
			out[i].Completed = &t
		}
	}
	return out
}

// asgError is an Auto Scaling (awsquery) error.
type asgError struct {
	Status  int
	Type    string // Sender or Receiver
	Code    string
	Message string
}

func asgValidation(format string, args ...any) *asgError {
	return &asgError{Status: 400, Type: "Sender", Code: "ValidationError", Message: fmt.Sprintf(format, args...)}
}

// serveAutoScaling is POST / signed for service autoscaling.
func (s *Sim) serveAutoScaling(w http.ResponseWriter, r *http.Request) {
	if !s.enter() {
		http.Error(w, "simulator closing", http.StatusServiceUnavailable)
		return
	}
	defer s.leave()
	reqID := newRequestID()
	if r.Method != http.MethodPost {
		writeASGError(w, reqID, &asgError{Status: 405, Type: "Sender", Code: "InvalidHttpRequest", Message: "The HTTP method " + r.Method + " is not supported."})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil || len(body) > maxBodyBytes {
		writeASGError(w, reqID, &asgError{Status: 400, Type: "Sender", Code: "MalformedQueryString", Message: "The query string contains a syntax error."})
		return
	}
	action := vals.Get("Action")
	caller, authErr := s.callerOf(r, "autoscaling")
	known := action == "CompleteLifecycleAction" || action == "SetInstanceHealth"
	stat := action
	if !known {
		stat = "(invalid)"
	}
	fail := func(e *asgError) {
		s.count(stat, caller, e.Code)
		writeASGError(w, reqID, e)
	}
	// The Auto Scaling endpoint is on the internet too: an instance that
	// needs a public IPv4 address to reach EC2 needs it here.
	s.mu.Lock()
	s.tickLocked(time.Now())
	cutOff := authErr == nil && caller != "" && combine(s.faults, s.instFaults[caller]).EgressNeedsPublicIP &&
		!s.hasPublicIPLocked(caller)
	s.mu.Unlock()
	if cutOff {
		s.count(stat, caller, "no-public-ip")
		s.hang(w, r)
		return
	}
	switch {
	case authErr != nil:
		fail(&asgError{Status: authErr.Status, Type: "Sender", Code: authErr.Code, Message: authErr.Message})
		return
	case action == "":
		fail(&asgError{Status: 400, Type: "Sender", Code: "MissingAction", Message: "The request must contain the parameter Action"})
		return
	case !known:
		fail(&asgError{Status: 400, Type: "Sender", Code: "InvalidAction", Message: "The action " + action + " is not valid for this web service."})
		return
	case vals.Get("Version") != "2011-01-01":
		fail(&asgError{Status: 400, Type: "Sender", Code: "InvalidParameterValue", Message: "Invalid value for Version. Only 2011-01-01 is supported."})
		return
	}
	s.mu.Lock()
	f := combine(s.faults, s.instFaults[caller])
	s.mu.Unlock()
	if f.denies(action) {
		user := "arn:aws:iam::" + simAccountID + ":user/operator"
		if caller != "" {
			user = "arn:aws:sts::" + simAccountID + ":assumed-role/" + simRoleName + "/" + caller
		}
		group := vals.Get("AutoScalingGroupName")
		if group == "" {
			// SetInstanceHealth names the instance; IAM evaluates its group.
			group = s.opts.AutoScalingGroup
		}
		fail(&asgError{Status: 403, Type: "Sender", Code: "AccessDenied", Message: fmt.Sprintf(
			"User: %s is not authorized to perform: autoscaling:%s on resource: arn:aws:autoscaling:%s:%s:autoScalingGroup:*:autoScalingGroupName/%s because no identity-based policy allows the autoscaling:%s action",
			user, action, s.opts.Region, simAccountID, group, action)})
		return
	}
	var e *asgError
	result := true
	if action == "SetInstanceHealth" {
		e, result = s.setInstanceHealth(vals, caller), false
	} else {
		e = s.completeLifecycleAction(vals, caller)
	}
	if e != nil {
		fail(e)
		return
	}
	s.count(action, caller, "ok")
	var x xmlw
	x.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	x.WriteString(`<` + action + `Response xmlns="` + autoScalingNamespace + `">`)
	if result {
		x.WriteString("<" + action + "Result/>")
	}
	x.WriteString("<ResponseMetadata>")
	x.el("RequestId", reqID)
	x.WriteString("</ResponseMetadata></" + action + "Response>")
	writeCommonHeaders(w, reqID)
	w.Header().Set("Content-Length", strconv.Itoa(x.Len()))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(x.Bytes())
}

// completeLifecycleAction validates as the API reference describes the
// parameters, then completes the open action of the instance for the hook.
func (s *Sim) completeLifecycleAction(vals url.Values, caller string) *asgError {
	for k := range vals {
		switch k {
		case "Action", "Version", "LifecycleHookName", "AutoScalingGroupName", "LifecycleActionResult", "InstanceId", "LifecycleActionToken":
		default:
			return &asgError{Status: 400, Type: "Sender", Code: "InvalidParameterValue", Message: "The parameter " + k + " is not recognized"}
		}
	}
	hook, group, result, id := vals.Get("LifecycleHookName"), vals.Get("AutoScalingGroupName"), vals.Get("LifecycleActionResult"), vals.Get("InstanceId")
	var missing []string
	for _, p := range []struct{ name, v string }{{"lifecycleHookName", hook}, {"autoScalingGroupName", group}, {"lifecycleActionResult", result}} {
		if p.v == "" {
			missing = append(missing, fmt.Sprintf("Value null at '%s' failed to satisfy constraint: Member must not be null", p.name))
		}
	}
	if len(missing) > 0 {
		return asgValidation("%d validation error(s) detected: %s", len(missing), strings.Join(missing, "; "))
	}
	switch {
	case !hookNameRE().MatchString(hook):
		return asgValidation("Value '%s' at 'lifecycleHookName' failed to satisfy constraint: Member must satisfy regular expression pattern: [A-Za-z0-9\\-_\\/]+", hook)
	case !asgNameRE().MatchString(group):
		return asgValidation("Value '%s' at 'autoScalingGroupName' failed to satisfy constraint: Member must have length less than or equal to 255", group)
	case result != "CONTINUE" && result != "ABANDON":
		return asgValidation("Lifecycle action result %s is not valid: use CONTINUE or ABANDON", result)
	case id == "":
		// eipd names the instance; tokens come from notifications the
		// simulator does not send.
		return asgValidation("Either the lifecycle action token or the instance ID must be specified")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.lifecycleActions {
		if a.InstanceID == id && a.Hook == hook && a.Group == group && a.Completed == nil {
			now := time.Now()
			a.Completed, a.Result, a.Caller = &now, result, caller
			s.logger.Info("lifecycle action completed", "instance_id", id, "hook", hook, "result", result, "caller", caller)
			return nil
		}
	}
	return asgValidation("No active Lifecycle Action found with instance ID %s", id)
}

// setInstanceHealth validates as the API reference describes the
// parameters; Unhealthy takes the instance out of service (target lifecycle
// state Terminated, which starts its termination lifecycle actions), as Auto
// Scaling does before replacing it. There is no health check grace period
// here: ShouldRespectGracePeriod is accepted and has no effect.
func (s *Sim) setInstanceHealth(vals url.Values, caller string) *asgError {
	for k := range vals {
		switch k {
		case "Action", "Version", "InstanceId", "HealthStatus", "ShouldRespectGracePeriod":
		default:
			return &asgError{Status: 400, Type: "Sender", Code: "InvalidParameterValue", Message: "The parameter " + k + " is not recognized"}
		}
	}
	id, status := vals.Get("InstanceId"), vals.Get("HealthStatus")
	var missing []string
	for _, p := range []struct{ name, v string }{{"instanceId", id}, {"healthStatus", status}} {
		if p.v == "" {
			missing = append(missing, fmt.Sprintf("Value null at '%s' failed to satisfy constraint: Member must not be null", p.name))
		}
	}
	if len(missing) > 0 {
		return asgValidation("%d validation error(s) detected: %s", len(missing), strings.Join(missing, "; "))
	}
	switch g := vals.Get("ShouldRespectGracePeriod"); {
	case status != "Healthy" && status != "Unhealthy":
		return asgValidation("Valid instance health states are: [Healthy, Unhealthy].")
	case g != "" && g != "true" && g != "false":
		return asgValidation("Value '%s' at 'shouldRespectGracePeriod' failed to satisfy constraint: Member must be a boolean", g)
	}
	notManaged := asgValidation("Instance Id not found - No managed instance found for instance ID: %s", id)
	if s.opts.AutoScalingGroup == "" {
		return notManaged
	}
	err := s.withInstance(id, func(now time.Time, in *instRec) error {
		if in.State == "terminated" {
			return ErrNotFound
		}
		s.logger.Info("instance health set", "instance_id", id, "health_status", status, "caller", caller)
		if status == "Unhealthy" && in.Lifecycle != "Terminated" {
			in.Lifecycle = "Terminated"
			s.startLifecycleActionsLocked(now, id)
		}
		return nil
	})
	if err != nil {
		return notManaged
	}
	return nil
}

func writeASGError(w http.ResponseWriter, requestID string, e *asgError) {
	var x xmlw
	x.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	x.WriteString(`<ErrorResponse xmlns="` + autoScalingNamespace + `"><Error>`)
	x.el("Type", e.Type)
	x.el("Code", e.Code)
	x.el("Message", e.Message)
	x.WriteString("</Error>")
	x.el("RequestId", requestID)
	x.WriteString("</ErrorResponse>")
	writeCommonHeaders(w, requestID)
	w.Header().Set("Content-Length", strconv.Itoa(x.Len()))
	w.WriteHeader(e.Status)
	_, _ = w.Write(x.Bytes())
}
