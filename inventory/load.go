// Package inventory is lghsctl's declarative description of a deployment:
// its schema, strict loading with file:line:col problems, defaults and
// validation.
//
// Loading never stops at the first problem: every unknown key, bad value
// and broken reference is reported at once, in file order, each as
// "file:line:col: field: message". Secrets never live in the inventory; it
// names environment variables or files (SecretRef) and Resolve reads them.
package inventory

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"

	"gopkg.in/yaml.v3"
)

// File is a loaded inventory with what lghsctl needs to talk about it: its
// path, its directory (relative paths are relative to it) and where each
// field was written.
type File struct {
	*Inventory
	// Path as given to Load.
	Path string
	// Dir is the directory of the inventory file.
	Dir string
	pos map[string]Pos
	// failed holds the fields that could not be decoded; validation stays
	// quiet about them so each mistake is reported once.
	failed map[string]bool
}

// Where returns "file:line:col" for a field path such as
// "hosts[0].image", falling back to the nearest enclosing field that was
// written in the file.
func (f *File) Where(path string) string {
	p := lookupPos(f.pos, path)
	return fmt.Sprintf("%s:%d:%d", f.Path, p.Line, p.Col)
}

// Problemf makes a Problem located at a field path, for checks done after
// loading (e.g. against the cloud at plan time).
func (f *File) Problemf(path, format string, args ...any) Problem {
	return Problem{File: f.Path, Pos: lookupPos(f.pos, path), Field: path, Message: fmt.Sprintf(format, args...)}
}

var indexSuffix = regexp.MustCompile(`(\[\d+\]|\.[^.\[\]]+)$`)

func lookupPos(pos map[string]Pos, path string) Pos {
	for path != "" {
		if p, ok := pos[path]; ok {
			return p
		}
		trimmed := indexSuffix.ReplaceAllString(path, "")
		if trimmed == path {
			break
		}
		path = trimmed
	}
	return Pos{1, 1}
}

// Load reads, decodes, defaults and validates the inventory at path. A
// returned error of type Problems lists everything wrong with the file; any
// other error means the file could not be read.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	return Parse(path, data)
}

// Parse is Load for bytes already read; path is used in messages and to
// resolve relative paths.
func Parse(path string, data []byte) (*File, error) {
	f := &File{Inventory: &Inventory{}, Path: path, Dir: filepath.Dir(path), pos: map[string]Pos{}}
	var problems Problems

	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			problems.add(Problem{File: path, Pos: Pos{1, 1}, Message: "the inventory is empty"})
			return nil, problems
		}
		problems.add(syntaxProblem(path, err))
		return nil, problems
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		problems.add(Problem{File: path, Pos: Pos{extra.Line, extra.Column}, Message: "only one YAML document is allowed (found a second \"---\")"})
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) == 1 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		problems.add(Problem{File: path, Pos: Pos{root.Line, root.Column}, Message: "the inventory must be a mapping of fields (version, name, hosts, ...)"})
		problems.sort()
		return nil, problems
	}
	f.failed = map[string]bool{}
	d := &decoder{file: path, problems: &problems, positions: f.pos, keyPos: map[string]Pos{}, failed: f.failed}
	d.decodeStruct(root, "", reflect.ValueOf(f.Inventory).Elem())

	f.applyDefaults()
	v := &validator{f: f, problems: &problems}
	v.validate()
	if len(problems) > 0 {
		problems.sort()
		return nil, problems
	}
	return f, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxProblem turns a yaml.v3 syntax error into a located Problem.
func syntaxProblem(path string, err error) Problem {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return Problem{File: path, Pos: Pos{line, 1}, Message: "YAML syntax: " + m[2]}
	}
	return Problem{File: path, Pos: Pos{1, 1}, Message: "YAML syntax: " + msg}
}
