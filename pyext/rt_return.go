//go:build grpcgo_rt

package main

import (
	"os"
	"strconv"
	"sync/atomic"
	_ "unsafe" // go:linkname

	"grpcgo/core"
)

// The runtime hooks of patches/go-runtime/grpcgo_return.go.in
// (docs/ARCHITECTURE.md, "A Python thread's P"): whether a Go thread that
// finds no idle P may take one a Python thread holds in C
// (GRPCGO_RT_TAKE=0: no), and how a Python thread returning from the
// engine treats its P (GRPCGO_RT_RETURN, 0-4).

//go:linkname grpcgoReturnMode runtime.grpcgoReturnMode
var grpcgoReturnMode uint32

//go:linkname grpcgoPsReleased runtime.grpcgoPsReleased
var grpcgoPsReleased uint64

const defaultReturnMode = 0

func init() {
	mode := uint32(defaultReturnMode)
	if v, err := strconv.ParseUint(os.Getenv("GRPCGO_RT_RETURN"), 10, 8); err == nil && v <= 4 {
		mode = uint32(v)
	}
	atomic.StoreUint32(&grpcgoReturnMode, mode)
}

// runtimeReturnMode and runtimePsReleased report the hook's state (-1 when the
// runtime was built without it).
func runtimeReturnMode() int   { return int(atomic.LoadUint32(&grpcgoReturnMode)) }
func runtimePsReleased() int64 { return int64(atomic.LoadUint64(&grpcgoPsReleased)) }

func init() {
	core.PythonPs = func() (int, int64, int64) {
		return runtimeReturnMode(), runtimePsReleased(), int64(atomic.LoadUint64(&grpcgoPsTaken))
	}
}

//go:linkname grpcgoTakeMode runtime.grpcgoTakeMode
var grpcgoTakeMode uint32

//go:linkname grpcgoPsTaken runtime.grpcgoPsTaken
var grpcgoPsTaken uint64

func init() {
	take := uint32(1)
	if os.Getenv("GRPCGO_RT_TAKE") == "0" {
		take = 0
	}
	atomic.StoreUint32(&grpcgoTakeMode, take)
}

//go:linkname grpcgoNapMode runtime.grpcgoNapMode
var grpcgoNapMode uint32

//go:linkname grpcgoNaps runtime.grpcgoNaps
var grpcgoNaps uint64

// How a Go thread about to steal a running P's last readied goroutine
// waits for that P first (GRPCGO_RT_NAP: 0 sleeps 3 us as Go does, 1 spins
// until the P took it, at most 3 us, 2 yields the CPU once).
const defaultNapMode = 2

func init() {
	mode := uint32(defaultNapMode)
	if v, err := strconv.ParseUint(os.Getenv("GRPCGO_RT_NAP"), 10, 8); err == nil && v <= 2 {
		mode = uint32(v)
	}
	atomic.StoreUint32(&grpcgoNapMode, mode)
	core.StealNaps = func() (int, int64) {
		return int(atomic.LoadUint32(&grpcgoNapMode)), int64(atomic.LoadUint64(&grpcgoNaps))
	}
}

// runtimeTakes reports whether a Go thread that finds no idle P takes one
// a Python thread holds in C.
func runtimeTakes() bool { return atomic.LoadUint32(&grpcgoTakeMode) != 0 }
