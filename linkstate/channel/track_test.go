package channel

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"strings"
	"sync/atomic"
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

// TestServerTrack: the link-state server answers tracking clients with its
// Track function, over TLS when it has TLS, only from the addresses
// AllowTrack lets in; dumps are still served beside it.
func TestServerTrack(t *testing.T) {
	serverTLS, clientTLS := testTLS(t)
	for _, tc := range []struct {
		name   string
		server *tls.Config
		client *tls.Config
	}{{"plaintext", nil, nil}, {"tls", serverTLS, clientTLS}} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			asked := make(chan []string, 4)
			var allow atomic.Bool
			allow.Store(true)
			srv := NewServer(ServerConfig{Listener: ln, TLS: tc.server, Node: "n1", RG: "rg1", Delegate: Funcs{
				RecordsFunc: func() [][]byte { return [][]byte{[]byte("rec-1")} }, MasterFunc: func() string { return "n1" },
				TrackFunc: func(_ context.Context, keys []string) [][]byte {
					asked <- keys
					var out [][]byte
					for _, k := range keys {
						if k == "known" {
							out = append(out, []byte(`{"id":"known"}`))
						}
					}
					return out
				},
				AllowTrackFunc: func(remote net.Addr) error {
					if allow.Load() && strings.HasPrefix(remote.String(), "127.0.0.1:") {
						return nil
					}
					return errors.New("not a mesh peer")
				},
			}})
			defer srv.Close()
			addr := ln.Addr().String()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			evs, err := Track(ctx, nil, tc.client, addr, []string{"known", "other"})
			if err != nil {
				t.Fatal(err)
			}
			if len(evs) != 1 || string(evs[0]) != `{"id":"known"}` {
				t.Errorf("Track = %q", evs)
			}
			if got := <-asked; !slices.Equal(got, []string{"known", "other"}) {
				t.Errorf("function asked for %q", got)
			}
			recs, err := Dump(ctx, nil, tc.client, addr)
			if err != nil || len(recs) != 1 || string(recs[0]) != "rec-1" {
				t.Errorf("Dump = %q, %v", recs, err)
			}
			if tc.server != nil {
				if _, err := Track(ctx, nil, nil, addr, []string{"known"}); err == nil {
					t.Error("plaintext tracking answered by a TLS server")
				}
			}
			allow.Store(false)
			_, err = Track(ctx, nil, tc.client, addr, []string{"known"})
			var r *RefusedError
			if !errors.As(err, &r) || r.Code != RefuseUnknownPeer {
				t.Errorf("Track from an address not allowed: %v, want refusal %d", err, RefuseUnknownPeer)
			}
			if len(asked) != 0 {
				t.Errorf("Track function asked for a refused client: %q", <-asked)
			}
		})
	}
	// Without a Track function, tracking clients are refused.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := NewServer(ServerConfig{Listener: ln, Node: "n1", RG: "rg1", Delegate: Funcs{RecordsFunc: func() [][]byte { return nil }, MasterFunc: func() string { return "n1" }}})
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r *RefusedError
	if _, err := Track(ctx, nil, nil, ln.Addr().String(), []string{"x"}); !errors.As(err, &r) || r.Code != RefuseBadGreeting {
		t.Errorf("Track without a Track function: %v, want refusal %d", err, RefuseBadGreeting)
	}
}
