// Package queue is meshd's durable mail queue: every message a node has
// answered 250 for lives here until each of its recipients is delivered,
// failed permanently or expired.
//
// The store is badger v4 opened with SyncWrites. A message is three keys
// written in one synced transaction:
//
//	m/<id>  the envelope and the per-recipient state (a versioned JSON record)
//	b/<id>  the body, unchanged
//	d/<id>  the dedup marker, with a badger TTL of Options.DedupWindow
//
// Enqueue returns only after that transaction is on disk. All writes go
// through one committer goroutine that gathers whatever callers are waiting
// (Enqueue, Attempt, Record, Hold, ...) into a single transaction and commits
// it with one fsync, so concurrent SMTP sessions share the cost of the disk
// flush (group commit). While one batch is on its way to disk the next one
// accumulates; before committing, the committer waits a little (at most half
// a commit time) for callers that are already inside Enqueue, so that steady
// callers share one commit instead of alternating between two. Bodies up to
// 64 KiB are stored inline, so a commit costs one flush (msync) of badger's
// memtable WAL; badger also msyncs the current value-log file, which for
// inline values has no dirty pages. A repeated message ID within the dedup window is rejected with
// ErrDuplicate, also when both copies arrive in the same batch.
//
// The queue keeps in memory what the delivery loop asks for often: per message
// its size, whether it is held and the earliest NextAttempt over its pending
// recipients, in a min-heap. Due and NextDue read that index and fetch only
// the records they return; the index and the Messages/Bytes counters that
// enforce MaxMessages and MaxBytes are rebuilt by scanning m/ on Open.
//
// Delivery follows a fixed pattern: Due lists work, Attempt persists the
// backoff (Attempts+1, NextAttempt) before the attempt so a crash in the
// middle cannot cause a retry storm, and Record applies the per-recipient
// results. When no recipient is Pending any more the message and its body are
// deleted (the body stays while shadows of copies handed to other mesh nodes
// keep it, shadow.go and shadowbody.go); the dedup marker stays until its TTL expires so that a resend from
// the previous hop is still recognised. RecordMessage and Expire return the
// message as it stood after the change, which is what a DSN is built from.
//
// The contract names both a RcptState and an Outcome "Delivered"; the
// package declares Delivered as an untyped constant valid in both types.
//
// A background goroutine runs badger's value-log GC every Options.GCInterval.
// Close stops it and the committer and waits for both.
package queue
