package delivery

import "testing"

func TestSizeFromName(t *testing.T) {
	tests := map[string]string{
		"1795612646.M589343P21617Q1R0c12.vm,S=802":     "802",
		"1795612646.M589343P21617Q1R0c12.vm,S=802:2,S": "802",
		"1795612646.M589343P21617Q1R0c12.vm,S=17,W=20": "17",
		"1795612646.M589343P21617Q1R0c12.vm":           "",
		"1795612646.M589343P21617Q1R0c12.vm:2,RS":      "",
	}
	for name, want := range tests {
		if got := sizeFromName(name); got != want {
			t.Errorf("sizeFromName(%q) = %q, want %q", name, got, want)
		}
	}
}

// TestCopyHeaderCarriesMark: the header of a local copy carries the mark
// findCopy looks for, so an in-doubt copy is found after a restart.
func TestCopyHeaderCarriesMark(t *testing.T) {
	hdr := copyHeader("a@far.test", "bob@example.test", "indoubt-written")
	want := "Return-Path: <a@far.test>\r\nDelivered-To: bob@example.test\r\nX-Meshd-ID: indoubt-written\r\n"
	if hdr != want {
		t.Errorf("copyHeader = %q, want %q", hdr, want)
	}
}
