package main

/*
#include "hot.h"
*/
import "C"

import (
	"os"
	"runtime"
	"time"
)

// How many Ps Go runs with. A Python thread that called into Go keeps one
// of Go's Ps while it waits outside Go (the runtime counts the time as a
// system call), so with as many Ps as CPUs, eight client threads queue for
// Ps and calls/s drops; with more Ps than busy threads, Go wakes idle
// threads to look for work on every hand-off, which costs a single thread
// ~10% of its calls/s and CPU. Measured on 2 CPUs: one client thread was
// fastest with 2 Ps, eight with 6-8.
//
// So the engine follows the number of Python threads that called into it
// in the last procsEpoch: Ps = that number, at least Go's default, at most
// maxProcs; it lowers the count only after procsSettle epochs wanting
// fewer, so a burst does not make it flap. The GOMAXPROCS environment
// variable still decides when set.
const (
	procsEpoch  = 100 * time.Millisecond
	procsSettle = 3
	maxProcs    = 32
)

func startProcs() {
	if os.Getenv("GOMAXPROCS") != "" {
		return
	}
	base := runtime.GOMAXPROCS(0) // Go's default: the CPUs this process may use
	go func() {
		lower := 0
		for range time.Tick(procsEpoch) {
			want := min(max(int(C.hot_epoch_end()), base), maxProcs)
			have := runtime.GOMAXPROCS(0)
			switch {
			case want > have:
				runtime.GOMAXPROCS(want)
				lower = 0
			case want < have:
				if lower++; lower >= procsSettle {
					runtime.GOMAXPROCS(want)
					lower = 0
				}
			default:
				lower = 0
			}
		}
	}()
}
