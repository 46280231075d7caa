package status

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine behind (the
// HTTP servers and chromium waiters of the tests all have owners).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
