//go:build grpcgo_patched

package core

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
)

// Built with -tags=grpcgo_patched, which patches/grpc_go_patch.py gives
// together with the -modfile that selects grpc-go with grpcgo's change.
func init() {
	transportPatched = true
	// grpc-go's writer batches up to 512 KiB per write: a 1 MiB message
	// leaves in 2 writes, not 32 (each wakes the peer's reader). Only with
	// the patch, whose write buffers live outside Go's heap
	// (patches/grpc-go/transport_writebuf_grpcgo.go.in).
	dialWindowDefaults = append(dialWindowDefaults, grpc.WithWriteBufferSize(patchedWriteBuffer))
	serverWindowDefaults = append(serverWindowDefaults, grpc.WriteBufferSize(patchedWriteBuffer))
	newLentBuffer = mem.GrpcgoNewOwnBuffer // message.go
	sizeFloor = grpc.GrpcgoSizeFloor()     // metadata.go
	sizeFloor.Store(defaultMetadataSoft)
	sendMsgs = grpc.GrpcgoSendMsgs // message.go
	setRecvDests, takeDest = mem.GrpcgoSetDests, mem.GrpcgoTakeDest
	destsOn, destsLive = mem.GrpcgoDestsOn, mem.GrpcgoDestsLive
	ServerInlineWrites = grpc.GrpcgoServerInline // servercall.go
	incomingMD = metadata.GrpcgoIncoming         // servercall.go
	userAgent = grpc.GrpcgoUserAgent             // options.go
	mdOptions = patchedMDOptions                 // call.go
}

const patchedWriteBuffer = 512 << 10

// patchedMDOptions: a unary call's header and trailer MDs without grpc-go's
// copies (call.go's mdOptions).
func patchedMDOptions(md *[2]metadata.MD) (grpc.CallOption, grpc.CallOption) {
	return grpc.GrpcgoStreamMD(md), grpc.EmptyCallOption{}
}
