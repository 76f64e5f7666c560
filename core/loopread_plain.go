//go:build !grpcgo_patched

package core

import (
	"sync/atomic"

	"google.golang.org/grpc"
)

// Direct reads and the loop's reading need grpcgo's patch to grpc-go
// (loopread.go): without it every read goes through the receiver.

type directReader struct {
	on  atomic.Bool
	err error
}

func streamDone(grpc.ClientStream) <-chan struct{} { return nil }

// SetWaiterDrop: see loopread.go.
func SetWaiterDrop(func(*func())) {}

func (c *ServerCall) AioRecvDirect(*func()) (Msg, error, bool, bool) { return nil, nil, false, false }
func (c *ServerCall) AioArmDirect(w *func()) bool                    { (*w)(); return true }
func (c *ServerCall) AioLoopRead(bool) int                           { return -1 }
func (c *ServerCall) AioPump() bool                                  { return false }

func (s *Stream) AioSent()                                       {}
func (s *Stream) AioRecvDirect(*func()) (Msg, error, bool, bool) { return nil, nil, false, false }
func (s *Stream) AioArmDirect(w *func()) bool                    { (*w)(); return true }
func (s *Stream) AioLoopRead(bool) int                           { return -1 }
func (s *Stream) AioPump() bool                                  { return false }
func (s *Stream) handOff() bool                                  { return false }
func (s *Stream) resumeReceiver()                                {}

// LoopReadCounts: see loopread.go.
func LoopReadCounts() (direct, pumps int64) { return 0, 0 }
