package status

import (
	"bytes"
	"context"
	"fmt"
	"sync"

	"github.com/goccy/go-graphviz"

	"github.com/meshd/meshd/linkstate"
)

// renderer is the process's one Graphviz context. go-graphviz keeps its
// WebAssembly instance in a package variable of its own (internal/wasm),
// shared by every graphviz.Graphviz value and not safe for concurrent
// calls, so the lock and the context that uses it are as wide as that
// variable: process-wide.
//
// Reusing one context matters for memory too: the library does not give
// all of its WebAssembly memory back after a rendering (measured with
// v0.2.10: about 25 KiB per rendering with a shared context, 38 KiB with a
// new context each time, and the linear memory never shrinks), so callers
// should render only when the DOT text changed (the handler caches).
var renderer struct {
	sync.Mutex
	gv *graphviz.Graphviz
}

// RenderSVG lays out DOT text with Graphviz's dot layout and returns it
// as an SVG document. Calls are serialised process-wide.
func RenderSVG(ctx context.Context, dot []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("status: render svg: %w", err)
	}
	renderer.Lock()
	defer renderer.Unlock()
	if renderer.gv == nil {
		gv, err := graphviz.New(ctx)
		if err != nil {
			return nil, fmt.Errorf("status: render svg: start graphviz: %w", err)
		}
		renderer.gv = gv
	}
	g, err := graphviz.ParseBytes(dot)
	if err != nil {
		return nil, fmt.Errorf("status: render svg: parse dot: %w", err)
	}
	defer g.Close()
	var buf bytes.Buffer
	if err := renderer.gv.Render(ctx, g, graphviz.SVG, &buf); err != nil {
		// Start from a fresh context next time rather than trust one that
		// failed half way through a layout.
		renderer.gv.Close()
		renderer.gv = nil
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
