package queue

import (
	"github.com/meshd/meshd/smtp/reply"

	"context"
	"time"
)

// The team contract's signatures, checked at compile time so a change that
// breaks the node package fails here first.
var (
	_ func(Options) (*Queue, error)                         = Open
	_ func(*Queue) error                                    = (*Queue).Close
	_ func(*Queue, context.Context, Envelope, []byte) error = (*Queue).Enqueue
	_ func(*Queue, string) (*Message, error)                = (*Queue).Get
	_ func(*Queue, string) ([]byte, error)                  = (*Queue).Body
	_ func(*Queue, time.Time, int) ([]*Message, error)      = (*Queue).Due
	_ func(*Queue) (time.Time, bool)                        = (*Queue).NextDue
	_ func(*Queue) <-chan struct{}                          = (*Queue).Notify
	_ func(*Queue, string, []string, time.Time) error       = (*Queue).Attempt
	_ func(*Queue, string, []Result) error                  = (*Queue).Record
	_ func(*Queue, string) error                            = (*Queue).MarkDelayNotified
	_ func(*Queue, string) error                            = (*Queue).Hold
	_ func(*Queue, string) error                            = (*Queue).Release
	_ func(*Queue, string) error                            = (*Queue).Retry
	_ func(*Queue, string) error                            = (*Queue).Delete
	_ func(*Queue, Filter) ([]*Message, error)              = (*Queue).List
	_ func(*Queue) Stats                                    = (*Queue).Stats
	_ func(Backoff, int, func() float64) time.Duration      = Backoff.Next
	_                                                       = []RcptState{Pending, Delivered, Failed, Expired}
	_                                                       = []Outcome{Delivered, TempFail, PermFail}
	_                                                       = Result{Addr: "", Outcome: Delivered, Reply: reply.Reply{}}
	_                                                       = Recipient{Rcpt: Rcpt{Addr: "", Notify: nil, ORcpt: ""}, State: Pending, Attempts: 0,
		NextAttempt: time.Time{}, LastError: "", LastAttempt: time.Time{}}
	_ = Message{Envelope: Envelope{}, Recipients: nil, Held: false, Size: 0, DelayNotified: false, NextAttempt: time.Time{}}
	_ = Filter{Held: new(bool), Limit: 0}
	_ = Stats{Messages: 0, Bytes: 0, Oldest: time.Time{}}
	_ = Backoff{Initial: 0, Max: 0, Factor: 0, Jitter: 0}
	_ = Options{Dir: "", InMemory: false, MaxMessages: 0, MaxBytes: 0, DedupWindow: 0,
		Now: time.Now, Logger: nil, GCInterval: 0}
	_ = Envelope{ID: "", From: "", Rcpts: nil, Ret: "", EnvID: "", SMTPUTF8: false, EightBit: false,
		ReceivedAt: time.Time{}, Trace: nil, Source: "", ClientAddr: "", AuthUser: ""}
	_ = []error{ErrFull, ErrDuplicate, ErrNotFound}
)
