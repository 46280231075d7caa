// Package yamlkey checks a YAML tree against the Go type it will be
// decoded into, before decoding, so that an unknown key or a value of the
// wrong type is reported with its dotted key and line ("line 4:
// connectors[1].cost: must be an integer"): yaml.v3's own errors name the
// Go type instead of the key. Check also returns the line of every key,
// so that a later semantic check can name the line of the key it refuses.
package yamlkey

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Error is a refusal naming the key and its line.
type Error struct {
	Line int
	Key  string
	Msg  string
}

func (e *Error) Error() string { return fmt.Sprintf("line %d: %s: %s", e.Line, e.Key, e.Msg) }

// Lines maps a dotted key ("connectors[1].cost") to the line it is on.
type Lines map[string]int

// Check walks n against t (a struct type with yaml tags) and returns the
// lines of every key it met.
func Check(n *yaml.Node, t reflect.Type) (Lines, error) {
	lines := Lines{}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		n = n.Content[0]
	}
	return lines, check(n, "", t, lines)
}

var typeOfDuration = reflect.TypeFor[time.Duration]()

func check(n *yaml.Node, path string, t reflect.Type, lines Lines) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if path != "" {
		if _, ok := lines[path]; !ok {
			lines[path] = n.Line
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty value keeps the default
	}
	switch t.Kind() {
	case reflect.Struct:
		if t == typeOfDuration {
			break
		}
		if n.Kind != yaml.MappingNode {
			return &Error{n.Line, path, "must be a mapping"}
		}
		fields := Fields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				return &Error{k.Line, key, "unknown key"}
			}
			if seen[k.Value] {
				return &Error{k.Line, key, "given twice"}
			}
			seen[k.Value] = true
			lines[key] = k.Line
			if err := check(v, key, f.Type, lines); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return &Error{n.Line, path, "must be a list"}
		}
		for i, e := range n.Content {
			if err := check(e, fmt.Sprintf("%s[%d]", path, i), t.Elem(), lines); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return &Error{n.Line, path, "must be a single value"}
	}
	return checkScalar(n, path, t)
}

func checkScalar(n *yaml.Node, path string, t reflect.Type) error {
	v := n.Value
	bad := func(format string) error { return &Error{n.Line, path, fmt.Sprintf(format, v)} }
	switch {
	case t == typeOfDuration:
		if _, err := time.ParseDuration(v); err != nil || n.Tag != "!!str" {
			return bad("must be a duration such as 30s, 5m or 48h, got %q")
		}
	case t.Kind() == reflect.String:
		if n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" && n.Tag != "!!bool" {
			return bad("must be a string, got %q")
		}
	case t.Kind() == reflect.Bool:
		if n.Tag != "!!bool" {
			return bad("must be true or false, got %q")
		}
	case t.Kind() >= reflect.Int && t.Kind() <= reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 0, 64)
		if err != nil || n.Tag != "!!int" || reflect.Zero(t).OverflowInt(i) {
			return bad("must be an integer, got %q")
		}
	case t.Kind() >= reflect.Uint && t.Kind() <= reflect.Uint64:
		u, err := strconv.ParseUint(strings.ReplaceAll(v, "_", ""), 0, 64)
		if err != nil || n.Tag != "!!int" || reflect.Zero(t).OverflowUint(u) {
			return bad("must be a whole number, got %q")
		}
	case t.Kind() == reflect.Float64 || t.Kind() == reflect.Float32:
		f, err := strconv.ParseFloat(v, 64)
		if (n.Tag != "!!int" && n.Tag != "!!float") || err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
			return bad("must be a number, got %q")
		}
	}
	return nil
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// Fields maps the yaml key of each exported field of struct type t to the
// field (a field without a tag is known by its lowercased name, as yaml.v3
// decodes it). The keys of an inline struct field (`yaml:",inline"`, a
// library type composed with keys of the user's own) are at t's level,
// their Index from t.
func Fields(t reflect.Type) map[string]reflect.StructField {
	m := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if Inline(f, opts) {
			for name, sub := range Fields(f.Type) {
				sub.Index = append(slices.Clone(f.Index), sub.Index...)
				m[name] = sub
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f
	}
	return m
}

// Inline reports whether field f, whose yaml tag options are opts, has its
// keys at its parent's level.
func Inline(f reflect.StructField, opts string) bool {
	return f.Type.Kind() == reflect.Struct && slices.Contains(strings.Split(opts, ","), "inline")
}
