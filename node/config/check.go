package config

import (
	"reflect"
	"strings"
	"time"

	"github.com/meshd/meshd/internal/yamlkey"
)

// The YAML tree is checked against Config before it is decoded
// (internal/yamlkey, in Parse), so that an unknown key or a value of the
// wrong type is reported with its full dotted key and line ("config: line
// 4: queue.retry.intial: unknown key"): yaml.v3's own errors name the Go
// type instead of the key.

var (
	typeOfConfig   = reflect.TypeFor[Config]()
	typeOfDuration = reflect.TypeFor[time.Duration]()
)

func joinKey(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
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
			if yamlkey.Inline(f, opts) {
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
