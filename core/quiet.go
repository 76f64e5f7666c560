package core

// QuietRelease decides when the engine gives its free heap back to the OS:
// once it allocated at least After bytes since the last release and then
// less than Quiet bytes a period for Periods periods (it went quiet after a
// burst). Under load Go's heap cycles between its live size and the
// collector's goal and keeps those pages resident; a process that served a
// burst of calls kept that memory, idle, for good. The binding ticks it
// with the heap's cumulative allocations (pyext/tuning.go).
type QuietRelease struct {
	After, Quiet uint64
	Periods      int

	started  bool
	last     uint64 // allocations at the last tick
	released uint64 // allocations at the last release
	quiet    int    // consecutive quiet periods
}

// Tick takes the heap's cumulative allocated bytes at the end of a period
// and says whether to release the free heap now.
func (q *QuietRelease) Tick(allocated uint64) bool {
	if !q.started {
		q.started, q.last, q.released = true, allocated, allocated
		return false
	}
	if allocated-q.last < q.Quiet {
		q.quiet++
	} else {
		q.quiet = 0
	}
	q.last = allocated
	if q.quiet >= q.Periods && allocated-q.released >= q.After {
		q.released = allocated
		return true
	}
	return false
}
