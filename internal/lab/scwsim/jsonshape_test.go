package scwsim

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// shapeComparer compares a stand-in JSON answer with a recorded one. What it
// compares (documented here because it is the fidelity contract):
//
//   - objects: the same set of keys (except optionalKeys, which the real API
//     itself sends or omits from one call to the next); keys of
//     dynamic-key objects (the products map keyed by commercial type) are
//     data, and only the entries present on both sides are compared;
//   - every value: the same JSON type (null is a type: "address": null is not
//     "address": "1.2.3.4");
//   - UUIDs: by identity across the whole cassette: the first time a recorded
//     id is seen it is bound to the stand-in's id at the same place, later
//     occurrences must agree (so server.volumes.0.server.id must be the
//     server's id); strings embedding UUIDs (href_result, dns, Location) are
//     compared with their UUIDs bound the same way;
//   - timestamps: the same format (the Instance API's "+00:00" with
//     microseconds, the Block/IAM "Z");
//   - everything else by value: enums (state, state_detail, type,
//     volume_type, allowed_actions, protocol, action, direction, ...),
//     booleans, sizes, ports, positions, names, hostnames, ip_range
//     normalisation, messages, fingerprints. Generated names have their
//     date part ("2026-07-30_12-53") masked;
//   - only the JSON type of typeOnlyKeys: addresses, prefixes, gateways and
//     MAC addresses the stand-in allocates itself, the placement of a
//     running server (location.*), catalogue prices, and the long lists of
//     compatible commercial types (element type only).
type shapeComparer struct {
	ids   map[string]string
	diffs []string
	// dynamic tells whether the object at path has data keys.
	dynamic func(path string) bool
}

var (
	uuidFull   = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	uuidAny    = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	instantTS  = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}\+00:00$`)
	zuluTS     = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$`)
	nameDateRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}_\d{2}-\d{2}`)

	typeOnlyKeys = map[string]bool{
		"address": true, "prefix": true, "gateway": true, "mac_address": true,
		"platform_id": true, "cluster_id": true, "hypervisor_id": true, "node_id": true,
		"monthly_price": true, "hourly_price": true, "compatible_commercial_types": true,
	}
	optionalKeys = map[string]bool{"admin_password_encryption_ssh_key_id": true, "admin_password_encrypted_value": true}

	// listKeys pairs the elements of lists whose order follows ids (which
	// differ by nature) by a natural key instead of by index; the sequence
	// of "type" values is still compared in order.
	listKeys = map[string]func(map[string]any) string{
		"local_images": func(m map[string]any) string {
			return fmt.Sprint(m["type"], "/", m["arch"], "/", m["label"], "/", m["zone"])
		},
	}
)

func newShapeComparer() *shapeComparer {
	return &shapeComparer{ids: map[string]string{}, dynamic: func(string) bool { return false }}
}

func (c *shapeComparer) addf(path, format string, args ...any) {
	if path == "" {
		path = "$"
	}
	c.diffs = append(c.diffs, path+": "+fmt.Sprintf(format, args...))
}

// decodeJSON decodes with json.Number so sizes keep their digits.
func decodeJSON(b []byte) (any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return v, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	}
	return fmt.Sprintf("%T", v)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// bind checks (or records) that recorded id rec is the stand-in's act.
func (c *shapeComparer) bind(path, rec, act string) {
	if prev, seen := c.ids[rec]; seen {
		if prev != act {
			c.addf(path, "id %s was %s earlier in the cassette, now %s", rec, prev, act)
		}
		return
	}
	c.ids[rec] = act
}

// compare walks rec (recorded) and act (stand-in) together; key is the name
// of the field holding them.
func (c *shapeComparer) compare(path, key string, rec, act any) {
	if jsonType(rec) != jsonType(act) {
		c.addf(path, "type %s, recorded %s (stand-in %s, recorded %s)", jsonType(act), jsonType(rec), brief(act), brief(rec))
		return
	}
	switch r := rec.(type) {
	case map[string]any:
		a := act.(map[string]any)
		if c.dynamic(path) {
			for k, rv := range r {
				if av, found := a[k]; found {
					c.compare(join(path, k), k, rv, av)
				}
			}
			return
		}
		for _, k := range sortedKeys(r) {
			av, found := a[k]
			if !found {
				if !optionalKeys[k] {
					c.addf(join(path, k), "missing in the stand-in's answer (recorded %s)", brief(r[k]))
				}
				continue
			}
			c.compare(join(path, k), k, r[k], av)
		}
		for _, k := range sortedKeys(a) {
			if _, found := r[k]; !found && !optionalKeys[k] {
				c.addf(join(path, k), "not in the recorded answer (stand-in %s)", brief(a[k]))
			}
		}
	case []any:
		a := act.([]any)
		if typeOnlyKeys[key] {
			if len(r) > 0 {
				for i, av := range a {
					if jsonType(av) != jsonType(r[0]) {
						c.addf(fmt.Sprintf("%s[%d]", path, i), "type %s, recorded elements are %s", jsonType(av), jsonType(r[0]))
					}
				}
			}
			return
		}
		if len(r) != len(a) {
			c.addf(path, "%d elements, recorded %d (stand-in %s, recorded %s)", len(a), len(r), brief(a), brief(r))
			return
		}
		if keyOf := listKeys[key]; keyOf != nil {
			a = c.alignByKey(path, keyOf, r, a)
		}
		for i := range r {
			c.compare(fmt.Sprintf("%s[%d]", path, i), key, r[i], a[i])
		}
	case string:
		c.compareString(path, key, r, act.(string))
	case json.Number:
		if typeOnlyKeys[key] {
			return
		}
		rf, _, err1 := big.ParseFloat(r.String(), 10, 128, big.ToNearestEven)
		af, _, err2 := big.ParseFloat(act.(json.Number).String(), 10, 128, big.ToNearestEven)
		if err1 != nil || err2 != nil || rf.Cmp(af) != 0 {
			c.addf(path, "value %s, recorded %s", act, r)
		}
	case bool:
		if !typeOnlyKeys[key] && r != act.(bool) {
			c.addf(path, "value %v, recorded %v", act, r)
		}
	}
}

// alignByKey reorders act like rec by natural key, after checking that the
// "type" sequence is the same.
func (c *shapeComparer) alignByKey(path string, keyOf func(map[string]any) string, rec, act []any) []any {
	typeSeq := func(l []any) string {
		var ts []string
		for _, e := range l {
			if m, isObj := e.(map[string]any); isObj {
				ts = append(ts, fmt.Sprint(m["type"]))
			}
		}
		return strings.Join(ts, ",")
	}
	if typeSeq(rec) != typeSeq(act) {
		c.addf(path, "types in order %s, recorded %s", typeSeq(act), typeSeq(rec))
	}
	byKey := map[string]any{}
	for _, e := range act {
		if m, isObj := e.(map[string]any); isObj {
			byKey[keyOf(m)] = e
		}
	}
	out := make([]any, len(rec))
	for i, e := range rec {
		m, isObj := e.(map[string]any)
		if !isObj {
			return act
		}
		match, found := byKey[keyOf(m)]
		if !found {
			c.addf(fmt.Sprintf("%s[%d]", path, i), "no element like the recorded %s", keyOf(m))
			return act
		}
		out[i] = match
	}
	return out
}

func (c *shapeComparer) compareString(path, key, r, a string) {
	switch {
	case uuidFull.MatchString(r):
		if !uuidFull.MatchString(a) {
			c.addf(path, "value %q, recorded the id %s", a, r)
			return
		}
		c.bind(path, r, a)
	case uuidAny.MatchString(r):
		rm, am := uuidAny.ReplaceAllString(r, "<id>"), uuidAny.ReplaceAllString(a, "<id>")
		if rm != am {
			c.addf(path, "value %q, recorded %q", a, r)
			return
		}
		rids, aids := uuidAny.FindAllString(r, -1), uuidAny.FindAllString(a, -1)
		for i := range rids {
			c.bind(path, rids[i], aids[i])
		}
	case instantTS.MatchString(r):
		if !instantTS.MatchString(a) {
			c.addf(path, "timestamp %q, recorded the Instance format %q", a, r)
		}
	case zuluTS.MatchString(r):
		if !zuluTS.MatchString(a) {
			c.addf(path, "timestamp %q, recorded the Zulu format %q", a, r)
		}
	case typeOnlyKeys[key]:
	default:
		if nameDateRE.ReplaceAllString(r, "<date>") != nameDateRE.ReplaceAllString(a, "<date>") {
			c.addf(path, "value %q, recorded %q", a, r)
		}
	}
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func brief(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:77]) + "..."
	}
	return string(b)
}

// stateSignature lists every state-like value of an answer (state,
// state_detail, status at any depth) and the HTTP status: what the replay
// waits for before comparing.
func stateSignature(code int, body any) string {
	var parts []string
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for _, k := range sortedKeys(t) {
				if s, isStr := t[k].(string); isStr && (k == "state" || k == "state_detail" || k == "status") {
					parts = append(parts, join(path, k)+"="+s)
				}
				walk(join(path, k), t[k])
			}
		case []any:
			for i, e := range t {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("", body)
	slices.Sort(parts)
	return fmt.Sprintf("%d %s", code, strings.Join(parts, " "))
}
