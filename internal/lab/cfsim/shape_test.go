package cfsim

import (
	"fmt"
	"reflect"
	"slices"
	"sort"
	"strings"
)

// shapeRules are the documented exceptions when comparing an answer of the
// stand-in with a recorded real one. Paths are dotted, "[]" for array
// elements: "result[].meta.source". Every exception carries its reason.
type shapeRules struct {
	// absentOK: fields of the fixture the answer may lack.
	absentOK map[string]string
	// extraOK: fields the answer may have that the fixture lacks.
	extraOK map[string]string
	// nullable: fields the answer may send as null where the fixture has a
	// value (the real API sends null for them on full-setup zones).
	nullable map[string]string
	// values: fields whose values must be equal (enums, codes, counts…).
	values []string
}

func kindOf(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case float64:
		return "number"
	case bool:
		return "bool"
	}
	return fmt.Sprintf("%T", v)
}

// diffShape compares the answer got with the recorded fixture: same field
// sets (modulo rules), same JSON kinds, same values where rules.values says
// so. It returns one line per difference; none means the shapes match.
func diffShape(fixture, got any, rules shapeRules) []string {
	var diffs []string
	var walk func(path string, f, g any)
	walk = func(path string, f, g any) {
		fk, gk := kindOf(f), kindOf(g)
		if fk != gk {
			if gk == "null" && rules.nullable[path] != "" {
				return
			}
			diffs = append(diffs, fmt.Sprintf("%s: fixture has %s, answer has %s", display(path), fk, gk))
			return
		}
		switch fv := f.(type) {
		case map[string]any:
			gv := g.(map[string]any)
			if len(fv) == 0 {
				return // an open map in the fixture ({}): any object fits
			}
			for _, k := range sortedKeys(fv) {
				p := join(path, k)
				gvk, ok := gv[k]
				if !ok {
					if rules.absentOK[p] == "" {
						diffs = append(diffs, fmt.Sprintf("%s: missing in the answer", p))
					}
					continue
				}
				walk(p, fv[k], gvk)
			}
			for _, k := range sortedKeys(gv) {
				if _, ok := fv[k]; !ok && rules.extraOK[join(path, k)] == "" {
					diffs = append(diffs, fmt.Sprintf("%s: not in the fixture", join(path, k)))
				}
			}
		case []any:
			gv := g.([]any)
			if len(fv) == 0 {
				return
			}
			for i, e := range gv {
				walk(path+"[]", fv[min(i, len(fv)-1)], e)
			}
		}
	}
	walk("", fixture, got)
	for _, p := range rules.values {
		fv, gv := valuesAt(fixture, p), valuesAt(got, p)
		if !reflect.DeepEqual(fv, gv) {
			diffs = append(diffs, fmt.Sprintf("%s: fixture value %v, answer value %v", p, fv, gv))
		}
	}
	return diffs
}

func display(p string) string {
	if p == "" {
		return "(root)"
	}
	return p
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// valuesAt collects the values at a dotted path, expanding "[]".
func valuesAt(v any, path string) []any {
	cur := []any{v}
	for _, part := range strings.Split(path, ".") {
		arr := strings.HasSuffix(part, "[]")
		part = strings.TrimSuffix(part, "[]")
		var next []any
		for _, c := range cur {
			m, ok := c.(map[string]any)
			if !ok {
				continue
			}
			x, ok := m[part]
			if !ok {
				continue
			}
			if arr {
				if a, ok := x.([]any); ok {
					next = append(next, a...)
				}
				continue
			}
			next = append(next, x)
		}
		cur = next
	}
	return slices.Clip(cur)
}
