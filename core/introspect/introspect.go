// Package introspect is the cold, read-only view of the engine that the
// Python package exposes as grpc._introspect: versions and a snapshot of
// live objects.
//
// It is bound to Python with gopy (see tools/gen_gopy.sh), so its surface is
// kept to what gopy binds cleanly: functions returning strings, ints and a
// plain struct of ints. No callbacks, no []byte, no errors.
package introspect

import (
	"runtime"

	"grpcgo/core"
)

// Version returns the grpcgo engine version.
func Version() string { return core.Version }

// GrpcGoVersion returns the version of google.golang.org/grpc compiled in.
func GrpcGoVersion() string { return core.GrpcGoVersion() }

// GoVersion returns the Go toolchain version that built the engine.
func GoVersion() string { return core.GoVersion() }

// Counters is a snapshot of the engine's live objects.
type Counters struct {
	Channels    int
	Servers     int
	ClientCalls int
	ServerCalls int
	// Handles is how many engine objects the binding holds for Python.
	Handles int
	// GoProcs is how many Ps Go runs with now (GOMAXPROCS); the binding
	// adjusts it to the Python threads using the engine.
	GoProcs int
	// ReturnMode is how a Python thread returning from Go treats its P
	// (pyext/rt_return.go; -1: the runtime was built without the hook).
	ReturnMode int
	// PsReleased counts the Ps returning Python threads gave up.
	PsReleased int
	// PsTaken counts the Ps taken from Python threads running Python by
	// Go threads that needed one and found none idle.
	PsTaken int
	// NapMode is how a Go thread about to steal the goroutine a running P
	// readied last waits for that P first (GRPCGO_RT_NAP: 0 Go's 3 us
	// sleep, 1 a spin, 2 a yield; -1: the runtime was built without the
	// hook).
	NapMode int
	// Naps counts the waits done as NapMode says instead of the sleep.
	Naps int
}

// Live returns the current number of live channels, servers and in-flight
// client and server calls.
func Live() Counters {
	c := core.ReadCounters()
	out := Counters{
		Channels:    int(c.Channels),
		Servers:     int(c.Servers),
		ClientCalls: int(c.ClientCalls),
		ServerCalls: int(c.ServerCalls),
		Handles:     int(c.Handles),
		GoProcs:     runtime.GOMAXPROCS(0),
	}
	mode, released, taken := core.PythonPs()
	out.ReturnMode, out.PsReleased, out.PsTaken = mode, int(released), int(taken)
	napMode, naps := core.StealNaps()
	out.NapMode, out.Naps = napMode, int(naps)
	return out
}
