package main

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshd/meshd/harness/extern"
	"github.com/meshd/meshd/internal/testkit"
)

// browse runs headless chromium once on url with extra flags, giving the
// page's script time to fetch the SVG before a screenshot is taken.
func browse(t *testing.T, url string, extra ...string) []byte {
	return extern.Chromium(t, url, append([]string{"--virtual-time-budget=3000"}, extra...)...)
}

// colours counts the pixels of the up colour (green) and the down colour
// (red) in the band of the page where the status page draws the topology.
func colours(t *testing.T, url, name string) (green, red, nonWhite int) {
	t.Helper()
	dir := t.TempDir()
	if keep := os.Getenv("MESHD_SCREENSHOT_DIR"); keep != "" {
		dir = keep
	}
	file := filepath.Join(dir, name)
	os.Remove(file)
	browse(t, url, "--screenshot="+file)
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r32, g32, b32, _ := img.At(x, y).RGBA()
			r, g, bl := int(r32>>8), int(g32>>8), int(b32>>8)
			if r < 245 || g < 245 || bl < 245 {
				nonWhite++
			}
			if y < 70 || y >= 620 { // the topology box of the page
				continue
			}
			if g > 120 && r < 90 && bl < 110 && g-r > 60 {
				green++
			}
			if r > 170 && g < 90 && bl < 90 {
				red++
			}
		}
	}
	t.Logf("%s: %v, %d non-white, topology band %d green, %d red", file, b.Size(), nonWhite, green, red)
	checkImage(t, img)
	return green, red, nonWhite
}

func checkImage(t *testing.T, img image.Image) {
	t.Helper()
	if s := img.Bounds().Size(); s.X < 1000 || s.Y < 600 {
		t.Fatalf("screenshot is %v, want about 1280x900", s)
	}
}

var (
	abRowRe = regexp.MustCompile(`(?s)<tr id="conn-rga-ab" data-state="([a-z]+)">(.*?)</tr>`)
	tagRe   = regexp.MustCompile(`<[^>]*>`)
)

// TestBrowserDemoStatusPage loads the status page of a running demo node
// in headless chromium: the topology is drawn with its connectors up; then
// `meshctl connector down ab` (run()) and the page shows ab down, in the
// drawing and in its row.
func TestBrowserDemoStatusPage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 6-node mesh and a browser")
	}
	extern.Require(t, extern.FindChromium)
	d, _ := startDemo(t)
	a1 := d.Info().Nodes[0]
	// The admin root redirects to the page.
	url := "http://" + a1.Admin + "/"

	green, red, nonWhite := colours(t, url, "demo-status-up.png")
	if nonWhite < 1280*900/50 {
		t.Errorf("page is nearly blank (%d non-white pixels)", nonWhite)
	}
	if green < 1000 {
		t.Errorf("topology shows %d pixels of the up colour, want a drawn mesh of up connectors (>= 1000)", green)
	}
	if st := abRow(t, url); st != "up" {
		t.Fatalf("before: connector ab's row says %q, want up", st)
	}

	var stdout, stderr bytes.Buffer
	if code := run([]string{"-admin", a1.Admin, "connector", "down", "ab"}, &stdout, &stderr); code != 0 {
		t.Fatalf("meshctl connector down ab: exit %d: %s", code, stderr.String())
	}
	t.Logf("meshctl: %s", strings.TrimSpace(stdout.String()))
	testkit.Eventually(t, 30*time.Second, "ab down on the page", func() error {
		if st := abRow(t, url); st != "down" {
			return errors.New("row says " + st)
		}
		return nil
	})
	green2, red2, _ := colours(t, url, "demo-status-down.png")
	if red2 < red+200 {
		t.Errorf("after ab down the topology shows %d red pixels (before %d), want the down colour drawn", red2, red)
	}
	if green2 >= green {
		t.Errorf("after ab down the topology shows %d green pixels, not fewer than before (%d)", green2, green)
	}
}

// abRow returns the state of connector ab's row in the page's DOM.
func abRow(t *testing.T, url string) string {
	t.Helper()
	dom := browse(t, url, "--dump-dom")
	m := abRowRe.FindSubmatch(dom)
	if m == nil {
		t.Fatalf("no row for connector ab in the page")
	}
	text := strings.Join(strings.Fields(tagRe.ReplaceAllString(string(m[2]), " ")), " ")
	t.Logf("ab row: %s: %s", m[1], text)
	return string(m[1])
}
