//go:build grpcgo_patched

package core

// Built with -tags=grpcgo_patched, which patches/grpc_go_patch.py gives
// together with the -modfile that selects grpc-go with grpcgo's change.
func init() { transportPatched = true }
