package node

import (
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestReload: what a reload applies, what it says needs a restart, and that a refused
// configuration (invalid, or a certificate that does not load) changes nothing.
func TestReload(t *testing.T) {
	cfg := testConfig(t)
	level := new(slog.LevelVar)
	n := startNode(t, cfg, Options{LogLevel: level})

	next := cfg
	next.Log.Level = "warn"
	next.Queue.Lifetime = 3 * time.Hour
	next.Limits.MaxHeaderBytes = 4096
	next.Limits.MaxRecipients = 7              // go-smtp's: restart
	next.Listen.Submission = "127.0.0.1:1"     // restart
	next.Relay.AllowNetworks = []string{"::1"} // restart
	rep, err := n.Reload(next)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"log.level", "limits.max_header_bytes", "queue.lifetime"}; !slices.Equal(rep.Applied, want) {
		t.Errorf("applied %v, want %v", rep.Applied, want)
	}
	if want := []string{"limits.max_recipients", "listen", "relay"}; !slices.Equal(rep.NeedsRestart, want) {
		t.Errorf("needs restart %v, want %v", rep.NeedsRestart, want)
	}
	if level.Level() != slog.LevelWarn {
		t.Errorf("log level %v after reload, want WARN", level.Level())
	}
	if got := n.smtpSrv.Limits().MaxHeaderBytes; got != 4096 {
		t.Errorf("smtp max header bytes %d, want 4096", got)
	}
	if got := n.del.Lifetime(); got != 3*time.Hour {
		t.Errorf("queue lifetime in force %v, want 3h", got)
	}

	// Refused: invalid, then a certificate file that is not there. Nothing changes.
	bad := next
	bad.Queue.Lifetime = time.Hour
	bad.Limits.MaxHeaderBytes = 1 // below the range
	if _, err := n.Reload(bad); err == nil || !strings.Contains(err.Error(), "limits.max_header_bytes") {
		t.Errorf("invalid config: %v, want an error naming limits.max_header_bytes", err)
	}
	bad = next
	bad.Queue.Lifetime = time.Hour
	bad.TLS.CertFile = filepath.Join(t.TempDir(), "missing.pem")
	bad.TLS.KeyFile = bad.TLS.CertFile
	if _, err := n.Reload(bad); err == nil || !strings.Contains(err.Error(), "tls.cert_file") {
		t.Errorf("missing certificate: %v, want an error naming tls.cert_file", err)
	}
	if got := n.del.Lifetime(); got != 3*time.Hour {
		t.Errorf("a refused reload changed queue.lifetime to %v", got)
	}
	if rep, err := n.Reload(next); err != nil || len(rep.Applied) != 0 {
		t.Errorf("reload of the configuration in force: applied %v, %v; want nothing", rep.Applied, err)
	}
}
