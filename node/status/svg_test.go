package status

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"html"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/meshd/meshd/linkstate"
)

// svgElements parses doc as XML and returns the number of elements and
// the set of title texts (Graphviz writes one <title> per node and edge).
func svgElements(t *testing.T, doc []byte) (int, map[string]bool) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(doc))
	d.Strict = false
	d.Entity = xml.HTMLEntity
	n, titles, inTitle := 0, map[string]bool{}, false
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("SVG does not parse: %v", err)
		}
		switch tk := tok.(type) {
		case xml.StartElement:
			n++
			inTitle = tk.Name.Local == "title"
		case xml.EndElement:
			inTitle = false
		case xml.CharData:
			if inTitle {
				titles[string(tk)] = true
			}
		}
	}
	return n, titles
}

func TestSVG(t *testing.T) {
	svg, err := SVG(meshRecords(false))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(svg, []byte("<svg")) {
		t.Fatalf("not an SVG document:\n%.300s", svg)
	}
	n, titles := svgElements(t, svg)
	if n < 50 {
		t.Errorf("SVG has %d elements, want a drawn graph", n)
	}
	for _, want := range []string{"rg:a", "rg:b", "rg:c", "rg:d", "ext:internet", "ext:smarthost:127.0.0.1:2500"} {
		if !titles[want] {
			t.Errorf("SVG has no node titled %q (titles %v)", want, titles)
		}
	}
	if !titles["rg:a->rg:b"] {
		t.Errorf("SVG has no edge titled rg:a->rg:b")
	}
	// The down connector is drawn in the down colour with its id.
	s := html.UnescapeString(string(svg))
	i := strings.Index(s, `id="conn-a-ab"`)
	if i < 0 {
		t.Fatalf("no element with id conn-a-ab in SVG")
	}
	end := strings.Index(s[i:], "</g>")
	if edge := s[i : i+end]; !strings.Contains(edge, `stroke="#d62728"`) || !strings.Contains(edge, "cost 10") {
		t.Errorf("edge ab not drawn down:\n%s", edge)
	}
	// Rendering is deterministic.
	again, err := SVG(meshRecords(false))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(svg, again) {
		t.Error("two renderings of the same records differ")
	}
}

func TestRenderSVGErrors(t *testing.T) {
	if _, err := RenderSVG(context.Background(), []byte("digraph { a -> ")); err == nil {
		t.Error("RenderSVG accepted broken DOT")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := RenderSVG(ctx, Graph(nil, GraphOptions{})); !errors.Is(err, context.Canceled) {
		t.Errorf("RenderSVG with a cancelled context: %v, want context.Canceled", err)
	}
	// A good graph still renders after a bad one: the shared instance survives.
	if _, err := SVG(meshRecords(true)); err != nil {
		t.Fatalf("render after a parse error: %v", err)
	}
}

// TestRenderSVGConcurrent: the library's one WebAssembly instance is
// shared by the whole process; concurrent callers must all succeed.
func TestRenderSVGConcurrent(t *testing.T) {
	want, err := SVG(meshRecords(true))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := SVG(meshRecords(true))
			if err == nil && !bytes.Equal(got, want) {
				err = errors.New("concurrent rendering differs")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkSVG(b *testing.B) {
	recs := meshRecords(true)
	for b.Loop() {
		if _, err := SVG(recs); err != nil {
			b.Fatal(err)
		}
	}
}

// TestSVGEscapes: names come from the network (signed, but still data);
// the SVG is inlined in the page, so Graphviz must escape them.
func TestSVGEscapes(t *testing.T) {
	evil := `<script>alert("x")</script>`
	recs := []*linkstate.Record{{RG: evil, Master: `m"><img src=x>`,
		Connectors: []linkstate.Connector{{ID: `c"onmouseover="x`, From: evil, To: "b", Cost: 1}}}}
	svg, err := RenderSVG(context.Background(), Graph(recs, GraphOptions{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"<script", "<img", `"onmouseover`} {
		if strings.Contains(string(svg), bad) {
			t.Errorf("SVG contains unescaped %q", bad)
		}
	}
	svgElements(t, svg) // still well-formed XML
}
