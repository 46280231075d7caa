package status

import (
	"errors"
	"image"
	"image/png"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
)

// requireChromium fails the test when the browser is missing: the status
// page is only known to work if a real browser drew it.
func requireChromium(t *testing.T) { extern.Require(t, extern.FindChromium) }

// runChromium runs headless chromium once against url with extra flags.
func runChromium(t *testing.T, url string, extra ...string) []byte {
	return extern.Chromium(t, url, extra...)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// pixels counts what a screenshot shows: in all of it, and in the band
// where the page draws the topology.
type pixels struct {
	total, nonWhite, green, red int
	graphGreen, graphRed        int
	bounds                      image.Rectangle
}

// graphBand is the rows of a 1280x900 screenshot that only the topology
// can occupy: the page puts a header of two lines (no green or red) above
// the #graph box, which is 560 px high, and every table below it.
const graphTop, graphBottom = 70, 620

// countPixels classifies every pixel: near-white background, the up
// colour (StateUp.Color, a green) and the down colour (StateDown.Color, a
// red). The bounds are loose enough for anti-aliased edges and text.
func countPixels(img image.Image) pixels {
	p := pixels{bounds: img.Bounds()}
	for y := p.bounds.Min.Y; y < p.bounds.Max.Y; y++ {
		for x := p.bounds.Min.X; x < p.bounds.Max.X; x++ {
			r32, g32, b32, _ := img.At(x, y).RGBA()
			r, g, b := int(r32>>8), int(g32>>8), int(b32>>8)
			p.total++
			if r < 245 || g < 245 || b < 245 {
				p.nonWhite++
			}
			inGraph := y >= graphTop && y < graphBottom
			if g > 120 && r < 90 && b < 110 && g-r > 60 {
				p.green++
				if inGraph {
					p.graphGreen++
				}
			}
			if r > 170 && g < 90 && b < 90 {
				p.red++
				if inGraph {
					p.graphRed++
				}
			}
		}
	}
	return p
}

// screenshot loads url in chromium and returns the decoded PNG and where
// it was written.
func screenshot(t *testing.T, url, name string) (pixels, string) {
	t.Helper()
	dir := t.TempDir()
	if keep := os.Getenv("MESHD_SCREENSHOT_DIR"); keep != "" {
		if err := os.MkdirAll(keep, 0o755); err != nil {
			t.Fatal(err)
		}
		dir = keep
	}
	file := filepath.Join(dir, name)
	os.Remove(file)
	runChromium(t, url, "--screenshot="+file)
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot %s is not a PNG: %v", file, err)
	}
	p := countPixels(img)
	t.Logf("%s: %v, %d pixels, %d non-white, %d green, %d red; in the graph band %d green, %d red",
		file, p.bounds.Size(), p.total, p.nonWhite, p.green, p.red, p.graphGreen, p.graphRed)
	return p, file
}

var abRow = regexp.MustCompile(`(?s)<tr id="conn-a-ab" data-state="([a-z]+)">(.*?)</tr>`)
var tags = regexp.MustCompile(`<[^>]*>`)

// abState loads url with --dump-dom and returns the state attribute and
// the visible text of connector ab's row.
func abState(t *testing.T, url string) (state, text string) {
	t.Helper()
	dom := runChromium(t, url, "--dump-dom")
	m := abRow.FindSubmatch(dom)
	if m == nil {
		t.Fatalf("dumped DOM has no row for connector ab:\n%s", tail(string(dom), 3000))
	}
	return string(m[1]), strings.Join(strings.Fields(tags.ReplaceAllString(string(m[2]), " ")), " ")
}

// TestBrowserStatusPage draws the status page in headless chromium with
// connector ab up, then down, and checks what a person would see: a
// topology in the up colour, then the down colour on it and "down" in
// ab's row.
func TestBrowserStatusPage(t *testing.T) {
	requireChromium(t)
	src := &fakeSource{abUp: true}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: NewHandler(src, Options{}), ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-done; !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	url := "http://" + ln.Addr().String() + "/"

	up, upFile := screenshot(t, url, "status-up.png")
	if up.bounds.Dx() < 1000 || up.bounds.Dy() < 600 {
		t.Fatalf("screenshot is %v, want about 1280x900", up.bounds.Size())
	}
	if up.nonWhite < up.total/50 {
		t.Errorf("screenshot %s is nearly blank: %d of %d pixels non-white", upFile, up.nonWhite, up.total)
	}
	if up.graphGreen < 1000 {
		t.Errorf("screenshot %s shows %d pixels of the up colour where the topology goes, want a drawn topology (>= 1000)", upFile, up.graphGreen)
	}
	if up.green < up.graphGreen+200 {
		t.Errorf("screenshot %s shows no up badges in the connector table (%d green pixels in all, %d in the graph)", upFile, up.green, up.graphGreen)
	}
	if st, text := abState(t, url); st != "up" || !strings.Contains(text, "up") {
		t.Errorf("with ab up the page says state %q, row %q", st, text)
	}

	src.setAB(false)
	down, downFile := screenshot(t, url, "status-down.png")
	if down.graphRed < up.graphRed+200 {
		t.Errorf("after ab went down the topology in %s has %d red pixels, in %s it had %d: want at least 200 more",
			downFile, down.graphRed, upFile, up.graphRed)
	}
	if down.graphGreen >= up.graphGreen {
		t.Errorf("after ab went down the up colour did not shrink in the topology: %d -> %d pixels", up.graphGreen, down.graphGreen)
	}
	if down.red-down.graphRed < up.red-up.graphRed+200 {
		t.Errorf("after ab went down the tables show no more red: %d -> %d pixels", up.red-up.graphRed, down.red-down.graphRed)
	}
	st, text := abState(t, url)
	if st != "down" || !strings.Contains(text, "down") {
		t.Errorf("with ab down the page says state %q, row %q", st, text)
	}
	t.Logf("ab row with ab down: %q", text)
}

// TestBrowserLiveRefresh: the page's script re-fetches status.json and
// graph.svg and redraws without a reload. Connector ab goes down right
// after the page itself is served; the DOM that chromium dumps once the
// script has run must show it down, in the table and in the inline SVG.
func TestBrowserLiveRefresh(t *testing.T) {
	requireChromium(t)
	src := &fakeSource{abUp: true}
	h := NewHandler(src, Options{Refresh: 200 * time.Millisecond})
	flip := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		if r.URL.Path == "/" {
			src.setAB(false)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: flip, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	dom := string(runChromium(t, "http://"+ln.Addr().String()+"/", "--dump-dom", "--virtual-time-budget=5000"))
	if !strings.Contains(dom, "last update ok") {
		t.Fatalf("the page's script did not refresh:\n%s", tail(dom, 2000))
	}
	m := abRow.FindStringSubmatch(dom)
	if m == nil || m[1] != "down" {
		t.Errorf("after a refresh ab's row is %v, want data-state down", m)
	}
	if !strings.Contains(dom, `class="edge conn state-down"`) {
		t.Errorf("after a refresh the inline SVG does not draw ab down")
	}
}
