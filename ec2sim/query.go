package ec2sim

import (
	"fmt"
	"net"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// maxBodyBytes bounds a Query request body. CreateTags with 1000 resource
// IDs and 50 tags fits well within it.
const maxBodyBytes = 1 << 20

// request is one parsed EC2 Query request.
type request struct {
	Action  string
	Version string
	// Params holds every other form parameter (first value wins for
	// repeated keys, as AWS does).
	Params map[string]string
}

// apiError is an EC2 error response: the EC2 API error format (docs/ec2sim.md).
type apiError struct {
	Status  int
	Code    string
	Message string
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func badParam(format string, args ...any) *apiError {
	return errf(400, "InvalidParameterValue", format, args...)
}

func missingParam(name string) *apiError {
	return errf(400, "MissingParameter", "The request must contain the parameter %s", name)
}

// parseQuery decodes an application/x-www-form-urlencoded EC2 Query body.
// It is pure (no side effects) so it can be fuzzed. Errors are *apiError.
func parseQuery(body []byte) (request, error) {
	if len(body) > maxBodyBytes {
		return request{}, errf(400, "InvalidParameterValue", "The request body exceeds the maximum size of %d bytes", maxBodyBytes)
	}
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		return request{}, errf(400, "MalformedQueryString", "The query string contains a syntax error.")
	}
	return requestFromValues(vals)
}

func requestFromValues(vals url.Values) (request, error) {
	req := request{Params: make(map[string]string, len(vals))}
	for k, v := range vals {
		if len(v) == 0 || strings.HasPrefix(k, "X-Amz-") {
			continue // presigned-request auth parameters
		}
		switch k {
		case "Action":
			req.Action = v[0]
		case "Version":
			req.Version = v[0]
		default:
			req.Params[k] = v[0]
		}
	}
	if req.Action == "" {
		return request{}, errf(400, "MissingAction", "The request must contain the parameter Action")
	}
	if req.Version != "" && req.Version != "2016-11-15" {
		// AWS answers older versions with older shapes; this emulator only
		// speaks the current one.
		return request{}, errf(400, "InvalidParameterValue", "Invalid value '%s' for Version. Only 2016-11-15 is supported.", req.Version)
	}
	return req, nil
}

// checkParams rejects parameters the action does not know, as AWS does with
// UnknownParameter. allowed lists top-level names (the part before the
// first dot).
func (r request) checkParams(allowed []string) error {
	keys := make([]string, 0, len(r.Params))
	for k := range r.Params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		top, _, _ := strings.Cut(k, ".")
		ok := false
		for _, a := range allowed {
			if top == a {
				ok = true
				break
			}
		}
		if !ok {
			return errf(400, "UnknownParameter", "The parameter %s is not recognized", top)
		}
	}
	return nil
}

func (r request) str(name string) string { return r.Params[name] }

func (r request) has(name string) bool {
	_, ok := r.Params[name]
	return ok
}

// boolean parses an optional boolean parameter.
func (r request) boolean(name string, def bool) (bool, error) {
	v, ok := r.Params[name]
	if !ok || v == "" {
		return def, nil
	}
	switch strings.ToLower(v) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, badParam("Invalid value '%s' for %s. Expected a boolean.", v, name)
}

// integer parses an optional integer parameter; ok is false when absent.
func (r request) integer(name string) (n int, ok bool, err error) {
	v, present := r.Params[name]
	if !present || v == "" {
		return 0, false, nil
	}
	n, perr := strconv.Atoi(v)
	if perr != nil {
		return 0, false, badParam("Invalid value '%s' for %s. Expected an integer.", v, name)
	}
	return n, true, nil
}

// list returns the values of a flattened list Name.1, Name.2, … in index
// order. An empty-list marker (`Name=`) yields an empty list.
func (r request) list(name string) ([]string, error) {
	type iv struct {
		i int
		v string
	}
	var items []iv
	prefix := name + "."
	for k, v := range r.Params {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 1 {
			return nil, errf(400, "InvalidParameterValue", "The parameter %s is not a valid list index", k)
		}
		items = append(items, iv{n, v})
	}
	sort.Slice(items, func(a, b int) bool { return items[a].i < items[b].i })
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = it.v
	}
	return out, nil
}

// structs groups Name.N.Field parameters into one map per N, in index order.
// Field may itself be dotted (Filter.1.Value.2 → field "Value.2").
func (r request) structs(name string) ([]map[string]string, error) {
	byIdx := map[int]map[string]string{}
	prefix := name + "."
	for k, v := range r.Params {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		idx, field, ok := strings.Cut(rest, ".")
		n, err := strconv.Atoi(idx)
		if !ok || field == "" || err != nil || n < 1 {
			return nil, errf(400, "InvalidParameterValue", "The parameter %s is not a valid list member", k)
		}
		m := byIdx[n]
		if m == nil {
			m = map[string]string{}
			byIdx[n] = m
		}
		m[field] = v
	}
	idxs := make([]int, 0, len(byIdx))
	for i := range byIdx {
		idxs = append(idxs, i)
	}
	sort.Ints(idxs)
	out := make([]map[string]string, len(idxs))
	for i, n := range idxs {
		out[i] = byIdx[n]
	}
	return out, nil
}

// filter is one Filter.N: values are ORed, filters ANDed.
type filter struct {
	Name   string
	Values []string
}

func (r request) filters() ([]filter, error) {
	ss, err := r.structs("Filter")
	if err != nil {
		return nil, err
	}
	out := make([]filter, 0, len(ss))
	for i, m := range ss {
		name, ok := m["Name"]
		if !ok || name == "" {
			return nil, missingParam(fmt.Sprintf("Filter.%d.Name", i+1))
		}
		f := filter{Name: name}
		type iv struct {
			i int
			v string
		}
		var vs []iv
		for k, v := range m {
			if k == "Name" {
				continue
			}
			rest, ok := strings.CutPrefix(k, "Value.")
			n, err := strconv.Atoi(rest)
			if !ok || err != nil || n < 1 {
				if k == "Value" { // empty-list marker
					continue
				}
				return nil, errf(400, "UnknownParameter", "The parameter Filter.%d.%s is not recognized", i+1, k)
			}
			vs = append(vs, iv{n, v})
		}
		sort.Slice(vs, func(a, b int) bool { return vs[a].i < vs[b].i })
		for _, v := range vs {
			f.Values = append(f.Values, v.v)
		}
		out = append(out, f)
	}
	return out, nil
}

// globMatch matches EC2 filter wildcards: * any run, ? one character,
// backslash escapes. Greedy with single-star backtracking: O(len·len), so
// hostile patterns cannot make it hang.
func globMatch(pattern, s string) bool {
	if !strings.ContainsAny(pattern, `*?\`) {
		return pattern == s
	}
	const (
		lit = iota
		one
		star
	)
	type tok struct {
		kind int
		r    rune
	}
	var p []tok
	pr := []rune(pattern)
	for i := 0; i < len(pr); i++ {
		switch pr[i] {
		case '*':
			p = append(p, tok{kind: star})
		case '?':
			p = append(p, tok{kind: one})
		case '\\':
			if i+1 < len(pr) {
				i++
			}
			p = append(p, tok{kind: lit, r: pr[i]})
		default:
			p = append(p, tok{kind: lit, r: pr[i]})
		}
	}
	t := []rune(s)
	pi, ti := 0, 0
	starP, starT := -1, 0
	for ti < len(t) {
		switch {
		case pi < len(p) && p[pi].kind == star:
			starP, starT = pi, ti
			pi++
		case pi < len(p) && (p[pi].kind == one || p[pi].r == t[ti]):
			pi++
			ti++
		case starP >= 0:
			starT++
			pi, ti = starP+1, starT
		default:
			return false
		}
	}
	for pi < len(p) && p[pi].kind == star {
		pi++
	}
	return pi == len(p)
}

// anyMatch reports whether any of the candidate values matches any pattern.
func anyMatch(patterns []string, candidates ...string) bool {
	for _, c := range candidates {
		for _, p := range patterns {
			if globMatch(p, c) {
				return true
			}
		}
	}
	return false
}

func validIPv4(s string) bool {
	ip := net.ParseIP(s)
	return ip != nil && ip.To4() != nil && !strings.Contains(s, ":")
}
