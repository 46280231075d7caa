package status

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"html/template"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"
)

// Options configures the handler. The zero value is usable.
type Options struct {
	Logger        *slog.Logger     // default slog.Default()
	Now           func() time.Time // default time.Now
	Refresh       time.Duration    // how often the page re-fetches; default 2s
	RenderTimeout time.Duration    // bound on one SVG rendering; default 10s
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Refresh <= 0 {
		o.Refresh = 2 * time.Second
	}
	if o.RenderTimeout <= 0 {
		o.RenderTimeout = 10 * time.Second
	}
	return o
}

//go:embed page.html
var pageHTML string

// handler serves the status page and its data.
type handler struct {
	src  Source
	opts Options
	page *template.Template
	mux  *http.ServeMux

	mu      sync.Mutex // guards the one-entry SVG cache
	lastDOT []byte
	lastSVG []byte
	renders int // renderings done, for tests
}

// NewHandler returns the status handler for src:
//
//	GET /            HTML page: this node, topology drawn with live states, connectors, queues
//	GET /graph.svg   the topology as SVG (rendered again only when the DOT text changes)
//	GET /graph.dot   the topology as Graphviz DOT text (the source of graph.svg)
//	GET /status.json Status as JSON
//
// Paths are relative to where it is mounted (use http.StripPrefix).
func NewHandler(src Source, opts Options) http.Handler {
	h := &handler{
		src:  src,
		opts: opts.withDefaults(),
		page: template.Must(template.New("page").Funcs(template.FuncMap{"short": shortDigest, "penalty": formatPenalty}).Parse(pageHTML)),
		mux:  http.NewServeMux(),
	}
	h.mux.HandleFunc("GET /{$}", h.servePage)
	h.mux.HandleFunc("GET /graph.svg", h.serveSVG)
	h.mux.HandleFunc("GET /graph.dot", h.serveDOT)
	h.mux.HandleFunc("GET /status.json", h.serveJSON)
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

// svgOptions are the graph options of the drawn topology: without the
// damping penalties, which decay continuously and would make every poll a
// new rendering (see RenderSVG on memory); the connector table shows them.
func svgOptions(o GraphOptions) GraphOptions {
	o.Penalties = nil
	return o
}

// svg renders v's topology, reusing the last rendering while the DOT text
// is unchanged (the page polls; the topology rarely changes).
func (h *handler) svg(ctx context.Context, v view) ([]byte, error) {
	dot := Graph(v.recs, svgOptions(v.opts))
	h.mu.Lock()
	if h.lastSVG != nil && bytes.Equal(dot, h.lastDOT) {
		out := h.lastSVG
		h.mu.Unlock()
		return out, nil
	}
	h.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, h.opts.RenderTimeout)
	defer cancel()
	out, err := RenderSVG(ctx, dot)
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.lastDOT, h.lastSVG = dot, out
	h.renders++
	h.mu.Unlock()
	return out, nil
}

type pageData struct {
	Status
	SVG     template.HTML
	SVGErr  string
	Refresh int64 // milliseconds
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	v := read(h.src, h.opts.Now())
	d := pageData{Status: v.st, Refresh: h.opts.Refresh.Milliseconds()}
	if svg, err := h.svg(r.Context(), v); err != nil {
		h.log(err, "page")
		d.SVGErr = err.Error()
	} else {
		// Graphviz escapes every label it writes; the document is ours.
		d.SVG = template.HTML(inlineSVG(svg))
	}
	var buf bytes.Buffer
	if err := h.page.Execute(&buf, d); err != nil {
		h.log(err, "page")
		http.Error(w, "status: render page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

func (h *handler) serveSVG(w http.ResponseWriter, r *http.Request) {
	svg, err := h.svg(r.Context(), read(h.src, h.opts.Now()))
	if err != nil {
		h.log(err, "graph.svg")
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(svg)
}

func (h *handler) serveDOT(w http.ResponseWriter, _ *http.Request) {
	v := read(h.src, h.opts.Now())
	w.Header().Set("Content-Type", "text/vnd.graphviz; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(Graph(v.recs, svgOptions(v.opts)))
}

func (h *handler) serveJSON(w http.ResponseWriter, _ *http.Request) {
	b, err := json.MarshalIndent(read(h.src, h.opts.Now()).st, "", "  ")
	if err != nil {
		h.log(err, "status.json")
		http.Error(w, "status: encode json: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(append(b, '\n'))
}

func (h *handler) log(err error, what string) {
	// The logger already names this node and its routing group.
	h.opts.Logger.Warn("status page", "path", what, "err", err)
}

func formatPenalty(p *float64) string { return strconv.FormatFloat(*p, 'f', 0, 64) }

func shortDigest(d string) string {
	if len(d) > 16 {
		return d[:16]
	}
	return d
}
