package ec2sim

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"
)

type tagKV struct {
	key, value string
	hasValue   bool
}

// parseTags reads Tag.N.Key / Tag.N.Value. forCreate applies CreateTags'
// key and value rules.
func parseTags(req request, forCreate bool) ([]tagKV, error) {
	ss, err := req.structs("Tag")
	if err != nil {
		return nil, err
	}
	out := make([]tagKV, 0, len(ss))
	for i, m := range ss {
		for k := range m {
			if k != "Key" && k != "Value" {
				return nil, errf(400, "UnknownParameter", "The parameter Tag.%d.%s is not recognized", i+1, k)
			}
		}
		key, ok := m["Key"]
		if !ok {
			return nil, missingParam(fmt.Sprintf("Tag.%d.Key", i+1))
		}
		v, hasV := m["Value"]
		t := tagKV{key: key, value: v, hasValue: hasV}
		if forCreate {
			switch {
			case key == "":
				return nil, badParam("Tag key cannot be empty")
			case len([]rune(key)) > 128:
				return nil, badParam("Tag key exceeds the maximum length of 128 characters")
			case len([]rune(v)) > 256:
				return nil, badParam("Tag value exceeds the maximum length of 256 characters")
			case strings.HasPrefix(strings.ToLower(key), "aws:"):
				return nil, badParam("Tag keys starting with 'aws:' are reserved for internal use")
			}
		}
		out = append(out, t)
	}
	return out, nil
}

// resourceType is the DescribeTags resource type of an existing resource
// ("" if it does not exist).
func (w *world) resourceType(id string) string {
	switch {
	case strings.HasPrefix(id, "i-"):
		if w.instance(id) != nil {
			return "instance"
		}
	case strings.HasPrefix(id, "eipalloc-"):
		if w.address(id) != nil {
			return "elastic-ip"
		}
	case strings.HasPrefix(id, "eni-"):
		if _, e := w.eni(id); e != nil {
			return "network-interface"
		}
	}
	return ""
}

// checkResources validates tag target IDs: malformed → InvalidID, unknown
// → the resource type's NotFound.
func checkResources(w *world, ids []string) error {
	if len(ids) == 0 {
		return missingParam("ResourceId.1")
	}
	if len(ids) > 1000 {
		return badParam("Too many resource IDs: at most 1000 are allowed")
	}
	for _, id := range ids {
		switch {
		case instanceIDRE().MatchString(id):
			if w.instance(id) == nil {
				return notFoundInstances([]string{id})
			}
		case allocIDRE().MatchString(id):
			if w.address(id) == nil {
				return notFoundAlloc(id)
			}
		case eniIDRE().MatchString(id):
			if _, e := w.eni(id); e == nil {
				return notFoundENI(id)
			}
		default:
			return errf(400, "InvalidID", "The ID '%s' is not valid", id)
		}
	}
	return nil
}

const maxTagsPerResource = 50

func createTags(c *call) error {
	ids, err := c.req.list("ResourceId")
	if err != nil {
		return err
	}
	tags, err := parseTags(c.req, true)
	if err != nil {
		return err
	}
	w := c.s.w
	if err := checkResources(w, ids); err != nil {
		return err
	}
	if len(tags) == 0 {
		return missingParam("Tag.1.Key")
	}
	if err := c.checkDryRun(); err != nil {
		return err
	}
	for _, id := range ids {
		n := len(w.tags[id])
		for _, t := range tags {
			if _, ok := w.tags[id][t.key]; !ok {
				n++
			}
		}
		if n > maxTagsPerResource {
			return errf(400, "TagLimitExceeded", "The maximum number of Tags for a resource has been reached.")
		}
	}
	c.write(c.s.createTagsWrite(ids, tags))
	c.x.boolean("return", true)
	return nil
}

// createTagsWrite is the effect of an accepted CreateTags. Applied late
// it simply lands then, over whatever is there, on the resources that
// still exist (a released EIP, a terminated instance's ENIs are gone).
func (s *Sim) createTagsWrite(ids []string, tags []tagKV) writeFunc {
	return func(now time.Time, o origin) {
		for _, id := range ids {
			if s.w.resourceType(id) == "" {
				continue
			}
			written := map[string]string{}
			for _, t := range tags {
				s.w.setTag(id, t.key, t.value)
				written[t.key] = t.value
			}
			s.recordTagWriteLocked(now, id, o, "create", written)
		}
		s.commitLocked(now)
	}
}

func deleteTags(c *call) error {
	ids, err := c.req.list("ResourceId")
	if err != nil {
		return err
	}
	tags, err := parseTags(c.req, false)
	if err != nil {
		return err
	}
	w := c.s.w
	if err := checkResources(w, ids); err != nil {
		return err
	}
	for _, t := range tags {
		if strings.HasPrefix(strings.ToLower(t.key), "aws:") {
			return badParam("Tag keys starting with 'aws:' are reserved for internal use")
		}
	}
	if err := c.checkDryRun(); err != nil {
		return err
	}
	c.write(c.s.deleteTagsWrite(ids, tags))
	c.x.boolean("return", true)
	return nil
}

// deleteTagsWrite is the effect of an accepted DeleteTags. Applied late,
// the keys (and values, where the call named them) are matched against
// the tags there when it lands.
func (s *Sim) deleteTagsWrite(ids []string, tags []tagKV) writeFunc {
	return func(now time.Time, o origin) {
		for _, id := range ids {
			m := s.w.tags[id]
			deleted := map[string]string{}
			if len(tags) == 0 {
				for k, v := range m {
					if !strings.HasPrefix(k, "aws:") {
						delete(m, k)
						deleted[k] = v
					}
				}
			}
			for _, t := range tags {
				if v, ok := m[t.key]; ok && (!t.hasValue || v == t.value) {
					delete(m, t.key)
					deleted[t.key] = v
				}
			}
			s.recordTagWriteLocked(now, id, o, "delete", deleted)
		}
		s.commitLocked(now)
	}
}

// pageArgs validates MaxResults (5..1000) and decodes NextToken into an
// offset. Tokens are bound to the action so one cannot be replayed elsewhere.
func pageArgs(req request, action string) (limit, offset int, err error) {
	n, has, err := req.integer("MaxResults")
	if err != nil {
		return 0, 0, err
	}
	limit = 1000
	if has {
		if n < 5 || n > 1000 {
			return 0, 0, badParam("Value ( %d ) for parameter maxResults is invalid. Expecting a value between 5 and 1000.", n)
		}
		limit = n
	}
	if tok := req.str("NextToken"); tok != "" {
		b, derr := base64.RawURLEncoding.DecodeString(tok)
		rest, ok := strings.CutPrefix(string(b), "ec2sim1:"+action+":")
		o, aerr := strconv.Atoi(rest)
		if derr != nil || !ok || aerr != nil || o < 0 {
			return 0, 0, errf(400, "InvalidPaginationToken", "The specified pagination token is not valid or is expired.")
		}
		offset = o
	}
	return limit, offset, nil
}

func nextToken(action string, offset int) string {
	return base64.RawURLEncoding.EncodeToString([]byte("ec2sim1:" + action + ":" + strconv.Itoa(offset)))
}

var tagFilters = map[string]bool{"key": true, "value": true, "resource-id": true, "resource-type": true}

func describeTags(c *call) error {
	fs, err := c.req.filters()
	if err != nil {
		return err
	}
	if err := checkFilterNames(fs, tagFilters, true); err != nil {
		return err
	}
	limit, offset, err := pageArgs(c.req, "DescribeTags")
	if err != nil {
		return err
	}
	if err := c.checkDryRun(); err != nil {
		return err
	}
	w := c.view()
	var ids []string
	for _, in := range w.instances {
		ids = append(ids, in.ID)
		for _, e := range in.ENIs {
			ids = append(ids, e.ID)
		}
	}
	for _, a := range w.addresses {
		ids = append(ids, a.AllocationID)
	}
	type row struct{ id, typ, k, v string }
	var rows []row
	for _, id := range ids {
		typ := w.resourceType(id)
		for _, kv := range w.sortedTags(id) {
			ok := matchAll(fs, func(name string) []string {
				if v, ok := tagValues(w, id, name); ok {
					return v
				}
				switch name {
				case "key":
					return []string{kv[0]}
				case "value":
					return []string{kv[1]}
				case "resource-id":
					return []string{id}
				case "resource-type":
					return []string{typ}
				}
				return nil
			})
			if ok {
				rows = append(rows, row{id, typ, kv[0], kv[1]})
			}
		}
	}
	c.x.open("tagSet")
	end := min(len(rows), offset+limit)
	for i := offset; i < end; i++ {
		r := rows[i]
		c.x.open("item")
		c.x.el("resourceId", r.id)
		c.x.el("resourceType", r.typ)
		c.x.el("key", r.k)
		c.x.el("value", r.v)
		c.x.close("item")
	}
	c.x.close("tagSet")
	if end < len(rows) {
		c.x.el("nextToken", nextToken("DescribeTags", end))
	}
	return nil
}
