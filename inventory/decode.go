package inventory

import (
	"encoding"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Pos is a place in the inventory file, 1-based like editors show it.
type Pos struct {
	Line int `json:"line"`
	Col  int `json:"col"`
}

// decoder turns a yaml.Node tree into the typed inventory. Unlike
// yaml.v3's own decoder it keeps going after a problem, records where every
// value came from (so validation can point at it) and explains unknown keys.
type decoder struct {
	file      string
	problems  *Problems
	positions map[string]Pos  // field path → where its value starts
	keyPos    map[string]Pos  // field path → where its key starts
	failed    map[string]bool // field paths whose value could not be decoded
}

var textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()

func (d *decoder) problem(n *yaml.Node, path, format string, args ...any) {
	d.failed[path] = true
	d.problems.add(Problem{File: d.file, Pos: Pos{n.Line, n.Column}, Field: path, Message: fmt.Sprintf(format, args...)})
}

func (d *decoder) decode(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		d.positions[path] = Pos{n.Line, n.Column}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // leave the zero value: "key:" and "key: null" mean "not set"
	}
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, path, v.Elem())
		return
	}
	if reflect.PointerTo(v.Type()).Implements(textUnmarshalerType) {
		if n.Kind != yaml.ScalarNode {
			d.problem(n, path, "expected a single value, got %s", kindName(n))
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(n.Value)); err != nil {
			d.problem(n, path, "%v", err)
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		d.decodeStruct(n, path, v)
	case reflect.Slice:
		d.decodeSlice(n, path, v)
	case reflect.Map:
		d.decodeMap(n, path, v)
	case reflect.String:
		if !d.scalar(n, path, "a string") {
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		if !d.scalar(n, path, "true or false") {
			return
		}
		switch n.Value {
		case "true":
			v.SetBool(true)
		case "false":
			v.SetBool(false)
		default:
			d.problem(n, path, "expected true or false, got %q", n.Value)
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if !d.scalar(n, path, "a whole number") {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 10, 64)
		if err != nil || n.Tag == "!!str" {
			d.problem(n, path, "expected a whole number, got %q", n.Value)
			return
		}
		v.SetInt(i)
	default:
		// Only reachable when the schema uses a kind this decoder does not know.
		d.problem(n, path, "internal: cannot decode into %s", v.Type())
	}
}

func (d *decoder) scalar(n *yaml.Node, path, want string) bool {
	if n.Kind != yaml.ScalarNode {
		d.problem(n, path, "expected %s, got %s", want, kindName(n))
		return false
	}
	return true
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return fmt.Sprintf("%q", n.Value)
	}
	return "something else"
}

// field describes one YAML key of a struct.
type field struct {
	key   string
	index []int
}

func structFields(t reflect.Type) []field {
	var fs []field
	for i := range t.NumField() {
		sf := t.Field(i)
		tag := sf.Tag.Get("yaml")
		if tag == "-" || !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if opts == "inline" {
			for _, inner := range structFields(sf.Type) {
				fs = append(fs, field{inner.key, append([]int{i}, inner.index...)})
			}
			continue
		}
		if name == "" {
			continue
		}
		fs = append(fs, field{name, []int{i}})
	}
	return fs
}

func (d *decoder) decodeStruct(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		// A few types accept a short scalar form (e.g. a port "22" for a rule).
		if s, ok := v.Addr().Interface().(shortForm); ok && n.Kind == yaml.ScalarNode {
			if err := s.decodeShort(n.Value); err != nil {
				d.problem(n, path, "%v", err)
			}
			return
		}
		d.problem(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	fields := structFields(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key := k.Value
		sub := joinPath(path, key)
		if k.Kind != yaml.ScalarNode {
			d.problem(k, path, "keys must be plain words, got %s", kindName(k))
			continue
		}
		if key == "<<" {
			d.problem(k, path, "merge keys (<<) are not supported: write the fields out")
			continue
		}
		if seen[key] {
			d.problem(k, sub, "duplicate key %q", key)
			continue
		}
		seen[key] = true
		var f *field
		for j := range fields {
			if fields[j].key == key {
				f = &fields[j]
				break
			}
		}
		if f == nil {
			keys := make([]string, len(fields))
			for j, ff := range fields {
				keys[j] = ff.key
			}
			msg := fmt.Sprintf("unknown field %q", key)
			if hint := closest(key, keys); hint != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", hint)
			}
			d.problem(k, sub, "%s", msg)
			continue
		}
		d.keyPos[sub] = Pos{k.Line, k.Column}
		d.decode(val, sub, v.FieldByIndex(f.index))
	}
}

func (d *decoder) decodeSlice(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.SequenceNode {
		// A single value where a list is expected is a common slip; be strict
		// but say what to write.
		d.problem(n, path, "expected a list, got %s (write it as [ ... ] or one \"- item\" per line)", kindName(n))
		return
	}
	s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, item := range n.Content {
		d.decode(item, fmt.Sprintf("%s[%d]", path, i), s.Index(i))
	}
	v.Set(s)
}

func (d *decoder) decodeMap(n *yaml.Node, path string, v reflect.Value) {
	if n.Kind != yaml.MappingNode {
		d.problem(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	if v.Type().Key().Kind() != reflect.String {
		d.problem(n, path, "internal: map keys must be strings")
		return
	}
	m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		sub := joinPath(path, k.Value)
		if k.Kind != yaml.ScalarNode {
			d.problem(k, path, "keys must be plain words, got %s", kindName(k))
			continue
		}
		if m.MapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key())).IsValid() {
			d.problem(k, sub, "duplicate key %q", k.Value)
			continue
		}
		d.keyPos[sub] = Pos{k.Line, k.Column}
		elem := reflect.New(v.Type().Elem()).Elem()
		d.decode(val, sub, elem)
		m.SetMapIndex(reflect.ValueOf(k.Value).Convert(v.Type().Key()), elem)
	}
	v.Set(m)
}

// shortForm is implemented by structs that also accept a scalar, such as
// a secret reference written as just the variable name.
type shortForm interface {
	decodeShort(s string) error
}

func joinPath(parent, key string) string {
	if parent == "" {
		return key
	}
	return parent + "." + key
}

// closest returns the candidate nearest to s by edit distance, if it is near
// enough to be a plausible typo.
func closest(s string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := levenshtein(strings.ToLower(s), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	limit := max(2, len(s)/3)
	if bestD <= limit {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Problem is one thing wrong with an inventory, located in its file.
type Problem struct {
	File    string `json:"file"`
	Pos     `json:"pos"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

func (p Problem) String() string {
	field := p.Field
	if field == "" {
		field = "(top)"
	}
	return fmt.Sprintf("%s:%d:%d: %s: %s", p.File, p.Line, p.Col, field, p.Message)
}

// Problems is every problem found in one inventory; as an error it prints
// one per line, in file order.
type Problems []Problem

func (ps *Problems) add(p Problem) { *ps = append(*ps, p) }

func (ps Problems) sort() {
	sort.SliceStable(ps, func(i, j int) bool {
		if ps[i].Line != ps[j].Line {
			return ps[i].Line < ps[j].Line
		}
		return ps[i].Col < ps[j].Col
	})
}

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = p.String()
	}
	return strings.Join(lines, "\n")
}
