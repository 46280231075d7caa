package main

import (
	"testing"

	"github.com/meshd/meshd/node/adminapi"
)

func TestTrackDone(t *testing.T) {
	recv := func(id string, rcpts ...string) adminapi.TrackEvent {
		return adminapi.TrackEvent{Event: "received", ID: id, Rcpts: rcpts}
	}
	relay := func(id, copyID string, rcpts ...string) adminapi.TrackEvent {
		return adminapi.TrackEvent{Event: "relayed", ID: id, CopyID: copyID, Rcpts: rcpts}
	}
	ev := func(kind, id string, rcpts ...string) adminapi.TrackEvent {
		return adminapi.TrackEvent{Event: kind, ID: id, Rcpts: rcpts}
	}
	tests := []struct {
		name string
		evs  []adminapi.TrackEvent
		want bool
	}{
		{"nothing", nil, false},
		{"only received", []adminapi.TrackEvent{recv("a", "x@b")}, false},
		{"relayed, next hop not yet seen", []adminapi.TrackEvent{recv("a", "x@b"), relay("a", "b", "x@b")}, false},
		{"relayed and received, not delivered", []adminapi.TrackEvent{recv("a", "x@b"), relay("a", "b", "x@b"), recv("b", "x@b")}, false},
		{"delivered at the end", []adminapi.TrackEvent{recv("a", "X@b"), relay("a", "b", "x@b"), recv("b", "x@b"), ev("delivered", "b", "x@B")}, true},
		{"deferred only", []adminapi.TrackEvent{recv("a", "x@b"), ev("deferred", "a", "x@b")}, false},
		{"split: one bounced, one delivered", []adminapi.TrackEvent{recv("a", "x@b", "y@c"), ev("bounced", "a", "x@b"), ev("delivered", "a", "y@c")}, true},
		{"split: one still pending", []adminapi.TrackEvent{recv("a", "x@b", "y@c"), ev("delivered", "a", "y@c")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := trackDone(adminapi.TrackResult{Events: tt.evs}); got != tt.want {
				t.Errorf("trackDone = %t, want %t", got, tt.want)
			}
		})
	}
}
