package header

import "testing"

func TestContainsFold(t *testing.T) {
	tests := []struct {
		s, sub string
		want   bool
	}{
		{"Subject: x\r\nX-Meshd-ID: abc\r\n", "x-meshd-id", true},
		{"Subject: x\r\nx-MESHD-id: abc\r\n", "X-Meshd-ID", true},
		{"Subject: x\r\nX-Meshd-I", "x-meshd-id", false},
		{"", "x", false},
		{"abc", "", true},
		{"X-Meshd-Trac", "x-meshd-trace", false},
		{"xx-meshd-trace", "X-Meshd-Trace", true},
		{"X-Me\xc5\xbfhd-ID: 1", "x-meshd-id", false}, // U+017F is not ASCII s
		{"1-2-3", "2-3", true},
	}
	for _, tt := range tests {
		if got := ContainsFold([]byte(tt.s), tt.sub); got != tt.want {
			t.Errorf("ContainsFold(%q, %q) = %v, want %v", tt.s, tt.sub, got, tt.want)
		}
	}
}
