package config

import (
	"fmt"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/meshd/meshd/internal/yamlkey"
)

// TestDocsStateTheDefaults: every default docs/config.md states as a plain
// value is the value Default holds, so the reference and the code cannot
// drift apart (derived defaults such as `<data_dir>/maildir` are skipped).
func TestDocsStateTheDefaults(t *testing.T) {
	doc, err := os.ReadFile("../../docs/config.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `([a-z_.]+)` \\| `([^`]*)`( \\(off\\))? \\|")
	def := reflect.ValueOf(Default())
	checked := 0
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		key, want := m[1], m[2]
		v, ok := lookup(def, key)
		if !ok {
			t.Errorf("docs/config.md: `%s` is not a key of Config", key)
			continue
		}
		if isKey(want) || strings.HasPrefix(want, "<") {
			continue // derived from another key
		}
		if got := formatDefault(v); got != want {
			t.Errorf("docs/config.md: `%s` defaults to `%s`, Default() has `%s`", key, want, got)
		}
		checked++
	}
	t.Logf("%d defaults of docs/config.md checked", checked)
	if checked < 80 {
		t.Errorf("checked only %d defaults of docs/config.md", checked)
	}
}

// TestDefaultRoundTrip: Default written out as YAML (durations as "5m")
// reads back as itself, so every field of every composed library type
// has the key the config documents.
func TestDefaultRoundTrip(t *testing.T) {
	def := Default()
	out, err := yaml.Marshal(toYAML(reflect.ValueOf(def)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	// Compared as YAML trees: an empty list reads back as [], not nil.
	if !reflect.DeepEqual(toYAML(reflect.ValueOf(got)), toYAML(reflect.ValueOf(def))) {
		t.Errorf("Default() read back from its YAML differs:\n got %+v\nwant %+v\n%s", got, def, out)
	}
	for _, k := range Keys() {
		if _, ok := lookup(reflect.ValueOf(def), k); !ok && !strings.Contains(k, "[]") {
			t.Errorf("key %s is not a field of Default()", k)
		}
	}
}

func isKey(s string) bool {
	_, ok := lookup(reflect.ValueOf(Default()), s)
	return ok && strings.Contains(s, ".")
}

// lookup walks a dotted key through v's yaml field names.
func lookup(v reflect.Value, key string) (reflect.Value, bool) {
	for _, part := range strings.Split(key, ".") {
		f, ok := yamlkey.Fields(v.Type())[part]
		if !ok {
			return reflect.Value{}, false
		}
		v = v.FieldByIndex(f.Index)
	}
	return v, true
}

// formatDefault writes v the way docs/config.md does.
func formatDefault(v reflect.Value) string {
	switch {
	case v.Type() == typeOfDuration:
		return fmtDur(time.Duration(v.Int()))
	case v.Kind() == reflect.String && v.String() == "":
		return `""`
	case v.Kind() == reflect.Slice:
		var parts []string
		for i := range v.Len() {
			parts = append(parts, formatDefault(v.Index(i)))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case v.Kind() == reflect.Float64:
		return fmt.Sprintf("%g", v.Float())
	}
	return fmt.Sprint(v.Interface())
}

// toYAML is v as plain maps and lists, durations written as in a config
// file (yaml.v3 would write nanoseconds, which the config refuses).
func toYAML(v reflect.Value) any {
	switch {
	case v.Type() == typeOfDuration:
		return time.Duration(v.Int()).String()
	case v.Kind() == reflect.Struct:
		m := map[string]any{}
		for name, f := range yamlkey.Fields(v.Type()) {
			m[name] = toYAML(v.FieldByIndex(f.Index))
		}
		return m
	case v.Kind() == reflect.Slice:
		out := []any{}
		for i := range v.Len() {
			out = append(out, toYAML(v.Index(i)))
		}
		return out
	}
	return v.Interface()
}
