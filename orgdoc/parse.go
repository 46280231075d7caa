package orgdoc

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/meshd/meshd/internal/yamlkey"
)

// MaxYAML bounds an org.yaml file.
const MaxYAML = 1 << 20

// Error is a refusal of a document naming the key (and, for a document
// read from YAML, its line).
type Error struct {
	Line int // 0 when the document did not come from YAML
	Key  string
	Msg  string
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("org: line %d: %s: %s", e.Line, e.Key, e.Msg)
	}
	return fmt.Sprintf("org: %s: %s", e.Key, e.Msg)
}

func keyError(key, format string, args ...any) error {
	return &Error{Key: key, Msg: fmt.Sprintf(format, args...)}
}

// Parse reads an org.yaml file and validates it (Validate). Every error is
// an *Error naming the key and line. Version may be 0 (the next version).
func Parse(src []byte) (*Document, error) {
	if len(src) > MaxYAML {
		return nil, fmt.Errorf("org: document is %d bytes, at most %d", len(src), MaxYAML)
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(src))
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("org: empty document")
		}
		return nil, fmt.Errorf("org: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("org: more than one YAML document in the file")
	}
	lines, err := yamlkey.Check(&root, reflect.TypeFor[Document]())
	if err != nil {
		var ke *yamlkey.Error
		if errors.As(err, &ke) {
			return nil, &Error{Line: ke.Line, Key: ke.Key, Msg: ke.Msg}
		}
		return nil, fmt.Errorf("org: %w", err)
	}
	var d Document
	if err := root.Decode(&d); err != nil {
		return nil, fmt.Errorf("org: %w", err)
	}
	if err := d.validate(); err != nil {
		var e *Error
		if errors.As(err, &e) {
			e.Line = lineOf(lines, e.Key)
		}
		return nil, err
	}
	d.normalize()
	return &d, nil
}

// lineOf is the line of key, or of the nearest enclosing key that has one
// (a missing key is reported at its parent).
func lineOf(lines yamlkey.Lines, key string) int {
	for key != "" {
		if l, ok := lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 1
}
