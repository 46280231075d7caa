package netem

import (
	"errors"
	"fmt"
	"syscall"
)

// Sentinel reasons carried by *FaultError. Callers branch on them with errors.Is.
var (
	// ErrLinkDown: the link between the two hosts is cut (Cut, CutOneWay, Partition, Isolate, Flap).
	ErrLinkDown = errors.New("netem: link down")
	// ErrDropped: a new connection was refused by the Drop probability.
	ErrDropped = errors.New("netem: connection dropped")
	// ErrHostDown: one of the hosts is crashed (Crash until Restart).
	ErrHostDown = errors.New("netem: host crashed")
	// ErrClosed: the network was closed.
	ErrClosed = errors.New("netem: network closed")
)

// FaultError is the error a dial, read or write fails with because of an injected fault. It
// unwraps both to its reason (ErrLinkDown, ErrDropped, ErrHostDown, ErrClosed) and to the errno a
// real socket would have reported (ECONNREFUSED for dials, ECONNRESET for broken connections), so
// code that checks errors.Is(err, syscall.ECONNREFUSED) behaves as with a real network.
type FaultError struct {
	From, To string // hosts; To is "" when the address belongs to no host
	Reason   error
	Errno    syscall.Errno
}

func (e *FaultError) Error() string {
	to := e.To
	if to == "" {
		to = "?"
	}
	return fmt.Sprintf("%v (%s -> %s): %v", e.Reason, e.From, to, e.Errno)
}

// Unwrap returns the reason and the errno.
func (e *FaultError) Unwrap() []error { return []error{e.Reason, e.Errno} }
