package tracking

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestTrackerFindAndRotate(t *testing.T) {
	dir := t.TempDir()
	tr, err := Open(dir, "n1", "rg1", time.Now, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.max = 600 // a few events per file
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := range 12 {
		tr.add(Event{Time: at.Add(time.Duration(i) * time.Second), Event: Received, ID: fmt.Sprintf("id-%02d", i),
			MessageID: fmt.Sprintf("Msg-%02d@Client.Test", i)})
	}
	tr.add(Event{Event: DSN, ID: "id-11", DSNID: "dsn-11"})

	tests := []struct {
		name string
		keys []string
		want []string // IDs found, in file order
	}{
		{"by id", []string{"id-11"}, []string{"id-11", "id-11"}},
		{"by message-id with brackets and case", []string{"<msg-11@client.test>"}, []string{"id-11"}},
		{"by dsn id", []string{"dsn-11"}, []string{"id-11"}},
		{"several", []string{"id-10", "id-09"}, []string{"id-09", "id-10"}},
		{"rotated away", []string{"id-00"}, nil},
		{"unknown", []string{"nothing"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, ev := range tr.Find(tt.keys) {
				got = append(got, ev.ID)
				if ev.Node != "n1" || ev.RG != "rg1" {
					t.Errorf("event %+v lacks node and rg", ev)
				}
			}
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("find(%q) = %q, want %q", tt.keys, got, tt.want)
			}
		})
	}
	for _, p := range []string{trackFile, trackFile + ".1"} {
		fi, err := os.Stat(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Size() > 600 {
			t.Errorf("%s is %d bytes, over the bound", p, fi.Size())
		}
	}
}

func TestHopDepths(t *testing.T) {
	// x1 relays a to x2 as b; x2 relays b to x3 keeping the ID (same
	// recipients); x3 relays b on to x4 as c; x4 bounces and makes DSN d.
	evs := []Event{
		{Node: "x4", ID: "c", Event: Received},
		{Node: "x1", ID: "a", Event: Relayed, CopyID: "b", NextHop: "x2"},
		{Node: "x2", ID: "b", Event: Relayed, CopyID: "b", NextHop: "x3"},
		{Node: "x3", ID: "b", Event: Relayed, CopyID: "c", NextHop: "x4"},
		{Node: "x1", ID: "a", Event: Received},
		{Node: "x4", ID: "c", Event: Bounced},
		{Node: "x4", ID: "c", Event: DSN, DSNID: "d"},
		{Node: "x4", ID: "d", Event: Received},
	}
	want := map[[2]string]int{{"x1", "a"}: 0, {"x2", "b"}: 1, {"x3", "b"}: 2, {"x4", "c"}: 3, {"x4", "d"}: 4}
	got := hopDepths(evs)
	for h, d := range want {
		if got[h] != d {
			t.Errorf("depth of %v = %d, want %d", h, got[h], d)
		}
	}
}
