package core

import "time"

// Unary calls started for the binding run on worker goroutines. A worker
// that finished a call waits workerIdle for the next one, so its stack,
// already grown to what a call needs, is reused rather than a new
// goroutine growing one again (the server side does the same through
// grpc-go's stream workers). With 8 client threads this cut the client's
// CPU per call ~7%.
const workerIdle = 250 * time.Millisecond

var callWork = make(chan func())

// goCall runs f on an idle worker, or on a new one if none is idle.
func goCall(f func()) {
	select {
	case callWork <- f:
	default:
		go callWorker(f)
	}
}

func callWorker(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-callWork:
		case <-idle.C:
			return
		}
	}
}
