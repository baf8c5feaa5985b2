package inventory

import (
	"bytes"
	"fmt"
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"strings"
	"testing"
)

// TestReferenceIsCurrent regenerates the field reference from the schema's
// Go types and doc comments and compares it with docs/inventory.md, so the
// documentation cannot drift from the code (go test -update rewrites it).
func TestReferenceIsCurrent(t *testing.T) {
	got := reference(t)
	const path = "../docs/inventory.md"
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./inventory -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("docs/inventory.md is out of date: run go test ./inventory -run TestReferenceIsCurrent -update")
	}
}

// TestEveryFieldIsDocumented fails when a schema field has no doc comment.
func TestEveryFieldIsDocumented(t *testing.T) {
	docs := fieldDocs(t)
	var walk func(reflect.Type, map[reflect.Type]bool)
	walk = func(rt reflect.Type, seen map[reflect.Type]bool) {
		for rt.Kind() == reflect.Pointer || rt.Kind() == reflect.Slice {
			rt = rt.Elem()
		}
		if rt.Kind() != reflect.Struct || seen[rt] || rt.PkgPath() != reflect.TypeFor[Inventory]().PkgPath() {
			return
		}
		seen[rt] = true
		for _, f := range structFields(rt) {
			sf := rt.FieldByIndex(f.index)
			if docs[rt.Name()][sf.Name] == "" {
				t.Errorf("%s.%s (%s) has no doc comment", rt.Name(), sf.Name, f.key)
			}
			walk(sf.Type, seen)
		}
	}
	walk(reflect.TypeFor[Inventory](), map[reflect.Type]bool{})
}

func parseSchema(t *testing.T) *doc.Package {
	t.Helper()
	fset := token.NewFileSet()
	var files []*ast.File
	for _, name := range []string{"schema.go", "types.go"} {
		f, err := parser.ParseFile(fset, name, nil, parser.ParseComments)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, f)
	}
	p, err := doc.NewFromFiles(fset, files, "github.com/lghs/lghsctl/inventory")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// fieldDocs maps type name → Go field name → doc comment.
func fieldDocs(t *testing.T) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, typ := range parseSchema(t).Types {
		out[typ.Name] = map[string]string{}
		for _, spec := range typ.Decl.Specs {
			st, ok := spec.(*ast.TypeSpec).Type.(*ast.StructType)
			if !ok {
				continue
			}
			for _, f := range st.Fields.List {
				for _, n := range f.Names {
					out[typ.Name][n.Name] = strings.TrimSpace(f.Doc.Text())
				}
			}
		}
	}
	return out
}

func reference(t *testing.T) []byte {
	pkg := parseSchema(t)
	typeDocs := map[string]string{}
	for _, typ := range pkg.Types {
		typeDocs[typ.Name] = strings.TrimSpace(typ.Doc)
	}
	docs := fieldDocs(t)
	var b bytes.Buffer
	b.WriteString("# inventory.yaml reference\n\n")
	b.WriteString("<!-- Generated from inventory/schema.go by `go test ./inventory -update`; do not edit. -->\n\n")
	b.WriteString("An inventory describes everything lghsctl manages. `lghsctl validate` checks one and\n")
	b.WriteString("reports every problem as `file:line:col: field: message`. Unknown keys are errors.\n")
	b.WriteString("Secrets are never written in the inventory: fields of type *secret* name an\n")
	b.WriteString("environment variable or a file. The repository's `inventory.yaml` is a complete example.\n\n")
	seen := map[reflect.Type]bool{}
	queue := []reflect.Type{reflect.TypeFor[Inventory]()}
	for len(queue) > 0 {
		rt := queue[0]
		queue = queue[1:]
		if seen[rt] {
			continue
		}
		seen[rt] = true
		title := rt.Name()
		if rt == reflect.TypeFor[Inventory]() {
			title = "Top level"
		}
		fmt.Fprintf(&b, "## %s\n\n%s\n\n| field | type | description |\n|---|---|---|\n", title, strings.ReplaceAll(typeDocs[rt.Name()], "\n", " "))
		for _, f := range structFields(rt) {
			sf := rt.FieldByIndex(f.index)
			typ, next := describeType(sf.Type)
			if next != nil && !seen[next] {
				queue = append(queue, next)
			}
			d := strings.ReplaceAll(docs[rt.Name()][sf.Name], "\n", " ")
			d = strings.ReplaceAll(d, "|", "\\|")
			fmt.Fprintf(&b, "| `%s` | %s | %s |\n", f.key, typ, d)
		}
		b.WriteString("\n")
	}
	return b.Bytes()
}

// describeType names a field's type for users, and returns the struct type
// to document next, if any.
func describeType(rt reflect.Type) (string, reflect.Type) {
	switch rt {
	case reflect.TypeFor[SecretRef]():
		return "secret (`{env: NAME}` or `{file: PATH}`)", nil
	case reflect.TypeFor[Duration]():
		return "duration (`30d`, `12h`)", nil
	case reflect.TypeFor[Size]():
		return "size (`40GB`)", nil
	case reflect.TypeFor[Mode]():
		return "octal mode (`\"0750\"`)", nil
	case reflect.TypeFor[PortRange]():
		return "port or range (`22`, `8000-8100`)", nil
	}
	switch rt.Kind() {
	case reflect.Pointer:
		return describeType(rt.Elem())
	case reflect.Slice:
		inner, next := describeType(rt.Elem())
		return "list of " + inner, next
	case reflect.Struct:
		return fmt.Sprintf("[%s](#%s)", rt.Name(), strings.ToLower(rt.Name())), rt
	case reflect.Map:
		inner, next := describeType(rt.Elem())
		return "mapping of name to " + inner, next
	case reflect.Bool:
		return "boolean", nil
	case reflect.Int:
		return "integer", nil
	}
	return rt.Kind().String(), nil
}
