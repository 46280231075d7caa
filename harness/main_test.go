package harness

import (
	"testing"

	"go.uber.org/goleak"
)

// Every run must stop what it started: nodes, senders, flap loops.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
