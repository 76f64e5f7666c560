package main

/*
#include "hot.h"
*/
import "C"

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"

	"grpcgo/core"
)

// How the Go runtime is tuned for life inside a Python process. One
// goroutine wakes every tuneEvery and adjusts two things, each unless its
// environment variable (GOMAXPROCS, GOGC) decides; it also collects lent
// buffers grpc-go dropped (hot_lend.go).
//
// Ps. A Python thread that called into Go keeps one of Go's Ps while it
// waits outside Go (the runtime counts the time as a system call), so with
// as many Ps as CPUs, eight client threads queue for Ps and calls/s drops;
// with more Ps than busy threads, Go wakes idle threads to look for work on
// every hand-off, which costs a single thread ~10% of its calls/s and CPU.
// Measured on 2 CPUs: one client thread was fastest with 2 Ps, eight with
// 6-8. So Ps follow the number of Python threads that called into the
// engine in the last period (hotmodule.c counts them): at least Go's
// default, at most maxProcs, lowered only after procsSettle periods wanting
// fewer, so a burst does not make it flap.
//
// Except threads that called in only for blocking unary calls: such a
// thread runs Go for a call's start only and waits for its end in C, where
// a Go thread that needs a P takes the one it holds at once (the runtime's
// take, rt_return.go). Counting them gave eight client threads 8 Ps on 2
// CPUs, and the spare Ps' threads spinning and parking around every
// hand-off cost the client 6-20% of its CPU per call against Go's default
// (docs/benchmarks-history.md, "The client's Ps"). They count as before
// without the take, or with GRPCGO_UNARY_CALLER_PS=1.
//
// Garbage collection. The engine's live heap is 1-2 MiB (1.2 MiB of it
// xDS's protobuf descriptors), so Go's default (collect when the heap has
// doubled, at least at 4 MiB) made a busy server collect ~30 times a
// second, each cycle marking the same descriptors. While the live heap is
// tiny (under gcTinyHeap) the collector waits for it to grow fivefold, at
// least to 16 MiB (GOGC 400): collections per call -60%. Up to gcSmallHeap
// it waits for it to triple (GOGC 200, at least 8 MiB): 8 client threads
// +10% calls/s and -10% CPU in both processes. So the heap's goal is at
// most 20 MiB for a tiny live heap and 3x for a small one; a large live
// heap (big messages in flight) goes back to Go's default. The quiet
// release below gives the difference back when the work stops.
//
// Going quiet. Under load the heap cycles between its live size (~2 MiB for
// a busy server) and the collector's goal (8 MiB at least), and Go keeps the
// pages of that cycle resident: a server that served a burst of calls kept
// ~9 MiB more than before it, idle, for good (the background scavenger only
// returns what lies beyond the goal). So once the engine allocated at least
// releaseAfter bytes since the last release and then nothing to speak of
// (under quietBytes a period) for quietPeriods periods, it collects and
// returns the free heap to the OS (debug.FreeOSMemory), once per burst: a
// few ms of CPU, and the next burst faults its pages back in. The library's
// code and read-only data that the burst faulted back in (~8 MiB after
// 100,000 calls; trim.go) are dropped again at the same moment. Not when
// the GOGC environment variable is set.
const (
	tuneEvery      = 100 * time.Millisecond
	procsSettle    = 3
	maxProcs       = 32
	gcTinyHeap     = 4 << 20 // live heaps below this get gcTinyPercent
	gcTinyPercent  = 400
	gcSmallHeap    = 16 << 20 // below this, gcSmallPercent
	gcSmallPercent = 200
	releaseAfter   = 16 << 20 // bytes allocated since the last release
	quietBytes     = 256 << 10
	quietPeriods   = 2
)

func startTuning() {
	tuneProcs := os.Getenv("GOMAXPROCS") == ""
	tuneGC := os.Getenv("GOGC") == ""
	p := procsTuner{base: runtime.GOMAXPROCS(0)} // Go's default: the CPUs this process may use
	unaryCallersNeedPs := !runtimeTakes() || os.Getenv("GRPCGO_UNARY_CALLER_PS") == "1"
	g := gcTuner{percent: 100}
	q := quietRelease{q: core.QuietRelease{After: releaseAfter, Quiet: quietBytes, Periods: quietPeriods}}
	go func() {
		for range time.Tick(tuneEvery) {
			if tuneProcs {
				var unaryOnly C.int
				threads := int(C.hot_epoch_end(&unaryOnly))
				if unaryCallersNeedPs {
					threads += int(unaryOnly)
				}
				p.tune(threads)
			}
			if tuneGC {
				g.tune()
				q.tune()
			}
			collectStuckLoans() // hot_lend.go
		}
	}()
}

type procsTuner struct {
	base  int
	lower int // consecutive periods that wanted fewer Ps
}

func (p *procsTuner) tune(threads int) {
	want := min(max(threads, p.base), maxProcs)
	have := runtime.GOMAXPROCS(0)
	switch {
	case want > have:
		runtime.GOMAXPROCS(want)
		p.lower = 0
	case want < have:
		if p.lower++; p.lower >= procsSettle {
			runtime.GOMAXPROCS(want)
			p.lower = 0
		}
	default:
		p.lower = 0
	}
}

type gcTuner struct {
	percent int
	sample  [1]metrics.Sample
}

func (g *gcTuner) tune() {
	g.sample[0].Name = "/gc/heap/live:bytes"
	metrics.Read(g.sample[:])
	if g.sample[0].Value.Kind() != metrics.KindUint64 {
		return
	}
	want := 100
	switch live := g.sample[0].Value.Uint64(); {
	case live < gcTinyHeap:
		want = gcTinyPercent
	case live < gcSmallHeap:
		want = gcSmallPercent
	}
	if want != g.percent {
		debug.SetGCPercent(want)
		g.percent = want
	}
}

// quietRelease gives the heap back to the OS when the engine goes quiet
// after a burst (see "Going quiet" above; the decision is core's).
type quietRelease struct {
	sample [1]metrics.Sample
	q      core.QuietRelease
}

func (r *quietRelease) tune() {
	r.sample[0].Name = "/gc/heap/allocs:bytes"
	metrics.Read(r.sample[:])
	if r.sample[0].Value.Kind() == metrics.KindUint64 && r.q.Tick(r.sample[0].Value.Uint64()) {
		debug.FreeOSMemory()
		trimLibrary() // trim.go: the library's pages the burst faulted back in
	}
}
