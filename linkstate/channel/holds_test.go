package channel

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/meshd/meshd/internal/testkit"
)

func TestHoldsFrames(t *testing.T) {
	ids := []string{"copy-a", "copy-b", ""}
	got, err := decodeHoldsReq(encodeHoldsReq(ids))
	if err != nil || !slices.Equal(got, ids) {
		t.Fatalf("request round trip: %q %v", got, err)
	}
	ans := []Held{HeldQueued, HeldUnknown, HeldDone}
	back, err := decodeHoldsResp(encodeHoldsResp(ans), 3)
	if err != nil || !slices.Equal(back, ans) {
		t.Fatalf("response round trip: %v %v", back, err)
	}
	for name, p := range map[string][]byte{
		"count mismatch": encodeHoldsResp(ans[:2]),
		"answer 5":       {0, 3, 1, 5, 0},
		"trailing":       append(encodeHoldsResp(ans), 0),
		"short":          {0, 3, 1},
	} {
		if _, err := decodeHoldsResp(p, 3); err == nil {
			t.Errorf("%s: response decoded", name)
		}
	}
	if _, err := decodeHoldsReq([]byte{0xff, 0xff}); err == nil {
		t.Error("request of 65535 IDs decoded")
	}
}

// TestServerHolds: over mutual TLS an organisation's node gets one answer
// per copy ID; an intruder with a certificate of another CA, or none, is
// refused before the holds function is asked, and a listener without one
// refuses the role.
func TestServerHolds(t *testing.T) {
	ca := testkit.NewCA(t)
	serverTLS := ca.Node(t, "a1", "rga").ServerTLS()
	memberTLS := ca.Node(t, "b1", "rgb").ClientTLS()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	asked := make(chan []string, 4)
	srv := NewServer(ServerConfig{Listener: ln, TLS: serverTLS, Node: "a1", RG: "rga", Identities: true,
		Delegate: Funcs{RecordsFunc: func() [][]byte { return nil }, MasterFunc: func() string { return "a1" },
			IdentifyFunc:   func(cs *tls.ConnectionState) (string, string, bool) { return "b1", "rgb", len(cs.PeerCertificates) > 0 },
			AllowTrackFunc: func(net.Addr) error { return nil }},
		Holds: func(_ context.Context, ids []string) []Held {
			asked <- ids
			out := make([]Held, len(ids))
			for i, id := range ids {
				switch id {
				case "copy-queued":
					out[i] = HeldQueued
				case "copy-done":
					out[i] = HeldDone
				}
			}
			return out
		},
	})
	defer srv.Close()
	addr := ln.Addr().String()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, err := Holds(ctx, nil, memberTLS, addr, "b1", []string{"copy-done", "copy-never", "copy-queued"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Held{HeldDone, HeldUnknown, HeldQueued}; !slices.Equal(got, want) {
		t.Errorf("Holds = %v, want %v", got, want)
	}
	<-asked

	outsider := testkit.NewCA(t).Node(t, "b1", "rgb").ClientTLS()
	noCert := &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec // the intruder
	for name, tc := range map[string]*tls.Config{"other CA": outsider, "no certificate": noCert, "plaintext": nil} {
		if ans, err := Holds(ctx, nil, tc, addr, "b1", []string{"copy-done"}); err == nil {
			t.Errorf("%s: answered %v", name, ans)
		}
	}
	if len(asked) != 0 {
		t.Errorf("holds function asked for an intruder: %q", <-asked)
	}

	ln2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv2 := NewServer(ServerConfig{Listener: ln2, Node: "n1", RG: "rg1", Delegate: Funcs{RecordsFunc: func() [][]byte { return nil }, MasterFunc: func() string { return "n1" }}})
	defer srv2.Close()
	var r *RefusedError
	if _, err := Holds(ctx, nil, nil, ln2.Addr().String(), "b1", []string{"x"}); !errors.As(err, &r) || r.Code != RefuseBadGreeting {
		t.Errorf("Holds without a Holds function: %v, want refusal %d", err, RefuseBadGreeting)
	}
}

func FuzzHoldsDecode(f *testing.F) {
	f.Add(encodeHoldsReq([]string{"copy-a", "copy-b"}), uint8(2))
	f.Add(encodeHoldsResp([]Held{HeldDone, HeldUnknown}), uint8(2))
	f.Fuzz(func(t *testing.T, p []byte, n uint8) {
		if ids, err := decodeHoldsReq(p); err == nil {
			if back, err := decodeHoldsReq(encodeHoldsReq(ids)); err != nil || !slices.Equal(back, ids) {
				t.Fatalf("request does not round-trip: %q", ids)
			}
		}
		if ans, err := decodeHoldsResp(p, int(n)); err == nil {
			if back, err := decodeHoldsResp(encodeHoldsResp(ans), int(n)); err != nil || !slices.Equal(back, ans) {
				t.Fatalf("response does not round-trip: %v", ans)
			}
		}
	})
}
