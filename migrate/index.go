package migrate

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
)

// IndexDef is an index definition as verify compares it: the name, the
// key with directions normalised (1/-1 whatever the numeric type; "text",
// "2dsphere", "hashed" as they are), and every other option as canonical
// Extended JSON. v, ns and background are left out: servers add or
// change them (mongorestore adds ns, 4.2 rewrites v, background is a
// build-time hint).
type IndexDef struct {
	Name    string            `json:"name"`
	Key     string            `json:"key"`
	Options map[string]string `json:"options,omitempty"`
}

func (d IndexDef) String() string {
	s := d.Name + " " + d.Key
	keys := make([]string, 0, len(d.Options))
	for k := range d.Options {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		s += " " + k + "=" + d.Options[k]
	}
	return s
}

// Equal compares two definitions.
func (d IndexDef) Equal(o IndexDef) bool { return d.String() == o.String() }

// ignoredIndexFields are not compared and not sent to createIndexes.
var ignoredIndexFields = map[string]bool{"v": true, "ns": true, "background": true, "dropDups": true, "safe": true}

// normalizeIndex turns a listIndexes (or metadata.json) specification
// into an IndexDef.
func normalizeIndex(spec bson.Raw) (IndexDef, error) {
	var d IndexDef
	elems, err := spec.Elements()
	if err != nil {
		return d, err
	}
	for _, e := range elems {
		k, v := e.Key(), e.Value()
		switch {
		case k == "name":
			d.Name = v.StringValue()
		case k == "key":
			kd, ok := v.DocumentOK()
			if !ok {
				return d, fmt.Errorf("index key is not a document")
			}
			ks, err := kd.Elements()
			if err != nil {
				return d, err
			}
			var parts []string
			for _, kv := range ks {
				parts = append(parts, strconv.Quote(kv.Key())+":"+keyDirection(kv.Value()))
			}
			d.Key = "{" + strings.Join(parts, ",") + "}"
		case ignoredIndexFields[k]:
		case k == "unique" || k == "sparse":
			if b, ok := v.BooleanOK(); ok && !b {
				continue // false is the default
			}
			if f, ok := v.AsFloat64OK(); ok && f == 0 {
				continue
			}
			if d.Options == nil {
				d.Options = map[string]string{}
			}
			d.Options[k] = "true"
		case k == "expireAfterSeconds":
			if d.Options == nil {
				d.Options = map[string]string{}
			}
			f, _ := v.AsFloat64OK()
			d.Options[k] = strconv.FormatInt(int64(f), 10)
		default:
			if d.Options == nil {
				d.Options = map[string]string{}
			}
			d.Options[k] = canonicalValue(v)
		}
	}
	if d.Name == "" {
		return d, fmt.Errorf("index without a name")
	}
	return d, nil
}

func keyDirection(v bson.RawValue) string {
	if s, ok := v.StringValueOK(); ok {
		return strconv.Quote(s)
	}
	f, ok := v.AsFloat64OK()
	if !ok {
		if i, ok := v.AsInt64OK(); ok {
			f = float64(i)
		}
	}
	switch {
	case f < 0:
		return "-1"
	case f > 0 || math.IsNaN(f):
		return "1"
	}
	return "1" // 0 is treated as ascending by the server
}

func canonicalValue(v bson.RawValue) string {
	doc := bson.D{{Key: "v", Value: v}}
	b, err := bson.MarshalExtJSON(doc, true, false)
	if err != nil {
		return v.String()
	}
	s := string(b)
	return strings.TrimSuffix(strings.TrimPrefix(s, `{"v":`), "}")
}

// createSpec is the specification sent to createIndexes: the source's,
// without the fields servers refuse or rewrite (v, ns, background, and
// the long-gone dropDups and safe that MongoDB 3.4+ rejects).
func createSpec(spec bson.Raw) (bson.D, error) {
	elems, err := spec.Elements()
	if err != nil {
		return nil, err
	}
	var out bson.D
	for _, e := range elems {
		if ignoredIndexFields[e.Key()] {
			continue
		}
		out = append(out, bson.E{Key: e.Key(), Value: e.Value()})
	}
	return out, nil
}
