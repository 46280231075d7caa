package status

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/goccy/go-graphviz"

	"github.com/meshd/meshd/linkstate"
)

// renderMu serialises every use of go-graphviz in the process. The library
// keeps its WebAssembly instance in a package variable of its own
// (internal/wasm), shared by all graphviz.Graphviz values and not safe for
// concurrent calls, so the lock has to be as wide as that variable.
var renderMu sync.Mutex

// RenderSVG lays out DOT text with Graphviz's dot layout and returns it
// as an SVG document. Calls are serialised process-wide.
func RenderSVG(ctx context.Context, dot []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("status: render svg: %w", err)
	}
	renderMu.Lock()
	defer renderMu.Unlock()
	gv, err := graphviz.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("status: render svg: start graphviz: %w", err)
	}
	defer gv.Close()
	g, err := graphviz.ParseBytes(dot)
	if err != nil {
		return nil, fmt.Errorf("status: render svg: parse dot: %w", err)
	}
	defer g.Close()
	var buf bytes.Buffer
	if err := gv.Render(ctx, g, graphviz.SVG, &buf); err != nil {
		return nil, fmt.Errorf("status: render svg: %w", err)
	}
	return buf.Bytes(), nil
}

// SVG draws the topology of records (Graph with default options) as SVG.
func SVG(records []*linkstate.Record) ([]byte, error) {
	return RenderSVG(context.Background(), Graph(records, GraphOptions{}))
}

// inlineSVG strips the XML declaration, doctype and comments before the
// <svg> element so the document can be embedded in HTML.
func inlineSVG(doc []byte) []byte {
	if i := bytes.Index(doc, []byte("<svg")); i >= 0 {
		return doc[i:]
	}
	return doc
}
