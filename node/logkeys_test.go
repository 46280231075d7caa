package node

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestLogAttributeNames holds the whole code base to docs/logging.md:
// every literal attribute key given to a slog call (Debug/Info/Warn/Error
// and With) is snake_case, is not one of slog's own keys, and is listed
// in the document.
func TestLogAttributeNames(t *testing.T) {
	doc, err := os.ReadFile("../docs/logging.md")
	if err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for _, m := range regexp.MustCompile("`([a-z0-9_-]+)`").FindAllSubmatch(doc, -1) {
		documented[string(m[1])] = true
	}
	reserved := map[string]bool{"msg": true, "time": true, "level": true, "source": true}
	snake := regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	n := 0
	err = filepath.WalkDir("..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && p != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, p, nil, 0)
		if err != nil {
			return err
		}
		ast.Inspect(f, func(x ast.Node) bool {
			for _, k := range logKeys(x) {
				n++
				key, _ := strconv.Unquote(k.Value)
				switch {
				case reserved[key]:
					t.Errorf("%s: log key %q collides with slog's own", fset.Position(k.Pos()), key)
				case !snake.MatchString(key):
					t.Errorf("%s: log key %q is not snake_case", fset.Position(k.Pos()), key)
				case !documented[key]:
					t.Errorf("%s: log key %q is not in docs/logging.md", fset.Position(k.Pos()), key)
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 100 {
		t.Fatalf("only %d log keys found: the scan is broken", n)
	}
}

// logKeys returns the literal keys of a slog call: Debug/Info/Warn/Error
// with a literal message (the key-value pairs follow it), or With.
func logKeys(x ast.Node) []*ast.BasicLit {
	c, ok := x.(*ast.CallExpr)
	if !ok {
		return nil
	}
	sel, ok := c.Fun.(*ast.SelectorExpr)
	if !ok {
		return nil
	}
	start := -1
	switch sel.Sel.Name {
	case "Debug", "Info", "Warn", "Error":
		if len(c.Args) == 0 {
			return nil
		}
		switch c.Args[0].(type) {
		case *ast.BasicLit, *ast.BinaryExpr:
			start = 1
		}
	case "With":
		start = 0
	}
	if start < 0 {
		return nil
	}
	var out []*ast.BasicLit
	for i := start; i < len(c.Args); i += 2 {
		if bl, ok := c.Args[i].(*ast.BasicLit); ok && bl.Kind == token.STRING {
			out = append(out, bl)
		}
	}
	return out
}

// syncBuffer is a bytes.Buffer for a logger written from many goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLogLinesParse runs a node with the JSON log format and delivers
// one message: every line it logs is a JSON object without a repeated key
// (a parser would keep one value and lose the other), and the "delivered"
// event keeps both its message and the queue ID.
func TestLogLinesParse(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", "logkeys")
	n := startNode(t, testConfig(t), Options{Logger: logger})
	if err := send(n.SMTPAddr(), "alice@example.test", []string{"bob@example.test"}, message("logkeys")); err != nil {
		t.Fatal(err)
	}
	var qid string
	waitFor(t, 10*time.Second, "a delivered log line", func() bool {
		for _, line := range strings.Split(buf.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == "delivered" {
				qid, _ = m["qid"].(string)
				return true
			}
		}
		return false
	})
	if qid == "" {
		t.Errorf("the delivered line has no qid")
	}
	lines := 0
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		lines++
		if dup := repeatedKey(line); dup != "" {
			t.Errorf("log line repeats key %q: %s", dup, line)
		}
	}
	t.Logf("%d JSON log lines checked; delivered qid=%s", lines, qid)
}

// repeatedKey returns a top-level key that occurs twice in a JSON object.
func repeatedKey(line string) string {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return "(not a JSON object)"
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return "(bad JSON)"
		}
		k, _ := tok.(string)
		if seen[k] {
			return k
		}
		seen[k] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return "(bad JSON)"
		}
	}
	return ""
}
