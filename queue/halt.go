package queue

// Halt makes the queue stop as its process would if it were killed at this
// instant: every write not yet committed, and every later one, fails with
// ErrClosed and never reaches the disk, while reads go on. It is for tests
// of crash orders that run the node in the test's own process, where the
// goroutines of a "killed" node still run to their end: what they record
// after Halt is lost, as it would be. Close still releases the files; a
// queue opened again on them sees what was committed before Halt.
func (q *Queue) Halt() { q.halted.Store(true) }
