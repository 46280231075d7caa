package config

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

var (
	typeOfConfig   = reflect.TypeFor[Config]()
	typeOfDuration = reflect.TypeFor[time.Duration]()
)

// checkNode walks the YAML tree against the Go type t before decoding, so
// that an unknown key or a value of the wrong type is reported with its full
// dotted key and line ("config: line 4: queue.retry.intial: unknown key").
// yaml.v3's own errors name the Go type instead of the key.
func checkNode(n *yaml.Node, path string, t reflect.Type) error {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // an empty value keeps the default
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return nodeError(n, path, "must be a mapping")
		}
		fields := yamlFields(t)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := joinKey(path, k.Value)
			f, ok := fields[k.Value]
			if !ok {
				return nodeError(k, key, "unknown key")
			}
			if err := checkNode(v, key, f.Type); err != nil {
				return err
			}
		}
		return nil
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nodeError(n, path, "must be a list")
		}
		for i, e := range n.Content {
			if err := checkNode(e, fmt.Sprintf("%s[%d]", path, i), t.Elem()); err != nil {
				return err
			}
		}
		return nil
	}
	if n.Kind != yaml.ScalarNode {
		return nodeError(n, path, "must be a single value")
	}
	return checkScalar(n, path, t)
}

func checkScalar(n *yaml.Node, path string, t reflect.Type) error {
	v := n.Value
	switch {
	case t == typeOfDuration:
		if _, err := time.ParseDuration(v); err != nil || n.Tag != "!!str" {
			return nodeError(n, path, fmt.Sprintf("must be a duration such as 30s, 5m or 48h, got %q", v))
		}
	case t.Kind() == reflect.String:
		if n.Tag != "!!str" && n.Tag != "!!int" && n.Tag != "!!float" && n.Tag != "!!bool" {
			return nodeError(n, path, fmt.Sprintf("must be a string, got %q", v))
		}
	case t.Kind() == reflect.Bool:
		if n.Tag != "!!bool" {
			return nodeError(n, path, fmt.Sprintf("must be true or false, got %q", v))
		}
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		i, err := strconv.ParseInt(strings.ReplaceAll(v, "_", ""), 0, 64)
		if err != nil || n.Tag != "!!int" || (t.Kind() == reflect.Int && (i > math.MaxInt32 && strconv.IntSize == 32)) {
			return nodeError(n, path, fmt.Sprintf("must be an integer, got %q", v))
		}
	case t.Kind() == reflect.Float64:
		if n.Tag != "!!int" && n.Tag != "!!float" {
			return nodeError(n, path, fmt.Sprintf("must be a number, got %q", v))
		}
	}
	return nil
}

func nodeError(n *yaml.Node, key, msg string) error {
	return fmt.Errorf("config: line %d: %s: %s", n.Line, key, msg)
}

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// yamlFields maps the yaml key of each field of struct type t to the
// field (the keys of an inline field at t's level, Index from t).
func yamlFields(t reflect.Type) map[string]reflect.StructField {
	m := make(map[string]reflect.StructField, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if inline(f, opts) {
			for name, sub := range yamlFields(f.Type) {
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

// inline reports whether field f has its keys at its parent's level
// (`yaml:",inline"`, as a library type composed with keys of the node's own).
func inline(f reflect.StructField, opts string) bool {
	return f.Type.Kind() == reflect.Struct && slices.Contains(strings.Split(opts, ","), "inline")
}

// Keys lists every dotted key of the configuration schema (list
// elements as key[]), in declaration order. docs/config.md documents each.
func Keys() []string {
	var keys []string
	var walk func(t reflect.Type, path string)
	walk = func(t reflect.Type, path string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if inline(f, opts) {
				walk(f.Type, path)
				continue
			}
			if name == "" || name == "-" {
				continue
			}
			key := joinKey(path, name)
			ft := f.Type
			switch {
			case ft.Kind() == reflect.Struct && ft != typeOfDuration:
				walk(ft, key)
			case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
				walk(ft.Elem(), key+"[]")
			default:
				keys = append(keys, key)
			}
		}
	}
	walk(typeOfConfig, "")
	return keys
}
