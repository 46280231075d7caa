package channel

import (
	"bytes"
	"context"
	"errors"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTrackFrames(t *testing.T) {
	tests := []struct {
		name    string
		keys    []string
		events  [][]byte
		reqErr  bool
		payload []byte // decoded as a request when set
	}{
		{name: "empty", keys: []string{}, events: [][]byte{}},
		{name: "some", keys: []string{"abc", "<m@x>"}, events: [][]byte{[]byte(`{"event":"received"}`), {}}},
		{name: "truncated request", payload: []byte{0, 2, 0, 1, 'a'}, reqErr: true},
		{name: "too many keys", payload: []byte{0xff, 0xff}, reqErr: true},
		{name: "trailing bytes", payload: []byte{0, 0, 1}, reqErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.payload != nil {
				if _, err := decodeTrackReq(tt.payload); (err != nil) != tt.reqErr {
					t.Fatalf("decodeTrackReq error %v, want error %t", err, tt.reqErr)
				}
				return
			}
			keys, err := decodeTrackReq(encodeTrackReq(tt.keys))
			if err != nil || !slices.Equal(keys, tt.keys) {
				t.Fatalf("keys round trip: %q, %v", keys, err)
			}
			evs, err := decodeTrackResp(encodeTrackResp(tt.events))
			if err != nil || len(evs) != len(tt.events) {
				t.Fatalf("events round trip: %q, %v", evs, err)
			}
			for i := range evs {
				if !bytes.Equal(evs[i], tt.events[i]) {
					t.Errorf("event %d = %q, want %q", i, evs[i], tt.events[i])
				}
			}
		})
	}
	if _, err := decodeTrackResp([]byte{0, 0, 0, 9}); err == nil {
		t.Error("a response claiming 9 events in 4 bytes decoded")
	}
}

// TestTrackListener puts a TrackListener in front of a real Server: track
// clients are answered by the function, dump clients still reach the
// server through it.
func TestTrackListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan []string, 4)
	tl := TrackListener(ln, func(_ context.Context, keys []string) [][]byte {
		asked <- keys
		var out [][]byte
		for _, k := range keys {
			if k == "known" {
				out = append(out, []byte(`{"id":"known"}`))
			}
		}
		return out
	})
	srv := NewServer(ServerConfig{Listener: tl, Node: "n1", RG: "rg1",
		Records: func() [][]byte { return [][]byte{[]byte("rec-1")} }, Master: func() string { return "n1" }})
	defer srv.Close()
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	evs, err := Track(ctx, nil, nil, addr, []string{"known", "other"})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || string(evs[0]) != `{"id":"known"}` {
		t.Errorf("Track = %q", evs)
	}
	if got := <-asked; !slices.Equal(got, []string{"known", "other"}) {
		t.Errorf("function asked for %q", got)
	}
	recs, err := Dump(ctx, nil, nil, addr)
	if err != nil {
		t.Fatalf("dump through the track listener: %v", err)
	}
	if len(recs) != 1 || string(recs[0]) != "rec-1" {
		t.Errorf("Dump = %q", recs)
	}
	// A client that sends garbage is handed to the server, which refuses it.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("EHLO x\r\n")); err != nil {
		t.Fatal(err)
	}
	typ, p, err := readFrame(c)
	if err != nil || typ != fRefuse || !strings.Contains(decodeRefuse(p).Text, "HELLO") {
		t.Errorf("garbage got frame %d %q %v, want REFUSE expected HELLO", typ, p, err)
	}
	// Closing the server closes the wrapped listener.
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Track(ctx, nil, nil, addr, []string{"known"}); err == nil {
		t.Error("Track after close succeeded")
	}
	var ne *net.OpError
	_, err = net.DialTimeout("tcp", addr, time.Second)
	if err == nil || !errors.As(err, &ne) {
		t.Errorf("listener still accepts after close: %v", err)
	}
}
