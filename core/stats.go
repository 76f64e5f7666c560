package core

import "sync/atomic"

// Live object counters, read by the introspection surface.
var (
	liveChannels    atomic.Int64
	liveServers     atomic.Int64
	liveClientCalls atomic.Int64
	liveServerCalls atomic.Int64
	liveHandles     atomic.Int64
)

// PythonPs, set by the binding when its runtime has grpcgo's hook
// (patches/go_runtime_patch.py), reports how a Python thread returning
// from the engine treats its P (mode; -1 without the hook), how many Ps
// such threads gave up, and how many Ps held by Python threads running
// Python were taken by a thread that needed one.
var PythonPs = func() (mode int, released, taken int64) { return -1, -1, -1 }

// StealNaps, set by the binding when its runtime has grpcgo's hook, reports
// how a Go thread about to steal a running P's last readied goroutine
// waits for that P first (GRPCGO_RT_NAP's mode; -1 without the hook) and
// how many such waits were done that way instead of Go's 3 us sleep.
var StealNaps = func() (mode int, naps int64) { return -1, -1 }

// CountHandles adds delta to the handles the binding holds for Python (its
// references to engine objects), for introspection.
func CountHandles(delta int64) { liveHandles.Add(delta) }

// Counters is a snapshot of the engine's live objects.
type Counters struct {
	Channels    int64
	Servers     int64
	ClientCalls int64
	ServerCalls int64
	Handles     int64
}

// ReadCounters returns the current number of live channels, servers and
// in-flight calls on each side.
func ReadCounters() Counters {
	return Counters{
		Channels:    liveChannels.Load(),
		Servers:     liveServers.Load(),
		ClientCalls: liveClientCalls.Load(),
		ServerCalls: liveServerCalls.Load(),
		Handles:     liveHandles.Load(),
	}
}
