//go:build !grpcgo_rt

package main

// Built with the runtime as it is (patches/go_runtime_patch.py found no
// snippet to edit, or GRPCGO_RUNTIME_PATCH=0): no hook.
func runtimeReturnMode() int   { return -1 }
func runtimePsReleased() int64 { return -1 }
func runtimeTakes() bool       { return false }
