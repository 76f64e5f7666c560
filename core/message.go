package core

import (
	"math/bits"
	"sync"
	"unsafe"

	"google.golang.org/grpc/mem"
)

// Msg is one message as grpc-go's transport holds it: a list of buffers,
// usually from grpc-go's buffer pool. Received messages keep the transport's
// own buffers (no copy into a fresh slice), so the binding copies each
// message once, straight into its own object; large messages then cost no
// Go heap allocation and no garbage collection.
//
// A nil Msg means "no message"; an empty message is a non-nil Msg of
// length 0. Whoever ends up with a received Msg may Free it once done with
// it, which returns its buffers to the pool; one never freed is collected
// by the garbage collector like any other value.
//
// Ownership: a Msg has one holder at a time. A holder gives it on (to
// grpc-go, which frees what it was handed, or to a queue) or frees it, and
// in the same step drops its own reference: a struct that outlives the
// message (a finished call, a result) keeps no Msg it gave away. grpc-go
// recycles a buffer's object at its last Free, so a reference kept past
// that point is a reference to whatever buffer the object carries next: it
// keeps that buffer reachable, and a lent one (see NewLentBuffer) that
// grpc-go dropped without freeing would then never be collected.
type Msg = mem.BufferSlice

// NewLentBuffer wraps memory the binding lends to grpc-go (data stays
// valid until pool.Put(data)) as a buffer whose object nobody else
// references: with grpc-go carrying grpcgo's change, one made for it, not a
// recycled one (grpc-go itself keeps references to some freed buffers' objects,
// such as the last DATA frame its reader parsed). So a lent buffer is
// unreachable once its holders let it go, and the binding's cleanup can
// give back one grpc-go dropped without freeing. A plain grpc-go build
// falls back to mem.NewBuffer.
func NewLentBuffer(data *[]byte, pool mem.BufferPool) mem.Buffer { return newLentBuffer(data, pool) }

var newLentBuffer = mem.NewBuffer

// BytesMsg wraps b, without copying, as a message.
func BytesMsg(b []byte) Msg {
	if b == nil {
		b = []byte{}
	}
	return Msg{mem.SliceBuffer(b)}
}

// emptyIfNil turns "no message" into the empty message: grpc-go hands a
// zero-length message to the codec as nil.
func emptyIfNil(m Msg) Msg {
	if m == nil {
		return Msg{}
	}
	return m
}

// BufferPool holds the buffers a binding copies outgoing messages into, and
// is grpc-go's pool for its own (the data frames it reads, the messages it
// assembles) in every channel and server. grpc-go's default pool zeroes
// each buffer it hands out; every user overwrites what it asked for, so
// this pool skips that (for a 1 MiB message the zeroing cost as much as the
// copy, and the reader zeroed every frame it read: 2% of a 1 MiB client).
var BufferPool mem.BufferPool = newDirtyPool()

// dirtyPool is a pool of buffers in power-of-two size classes from 4 KiB to
// 16 MiB; larger requests are plain allocations. Buffers come back dirty.
type dirtyPool struct {
	classes [dirtyMaxShift - dirtyMinShift + 1]sync.Pool
}

const (
	dirtyMinShift = 12
	dirtyMaxShift = 24
)

func newDirtyPool() *dirtyPool { return &dirtyPool{} }

// class is the size class that holds n bytes, or -1 if none does.
func (p *dirtyPool) class(n int) int {
	shift := max(bits.Len(uint(n-1)), dirtyMinShift)
	if shift > dirtyMaxShift {
		return -1
	}
	return shift - dirtyMinShift
}

func (p *dirtyPool) Get(n int) *[]byte {
	c := p.class(n)
	if c < 0 {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.classes[c].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<(c+dirtyMinShift))
	return &b
}

func (p *dirtyPool) Put(b *[]byte) {
	// Only buffers this pool made (a whole size class) go back.
	size := cap(*b)
	if c := p.class(size); c >= 0 && size == 1<<(c+dirtyMinShift) {
		*b = (*b)[:0]
		p.classes[c].Put(b)
	}
}

// sendMsgs writes several messages of a stream as one (grpc-go with
// grpcgo's change: grpc.GrpcgoSendMsgs); nil without the change.
var sendMsgs func(s any, ms []any) (taken int, err error)

// msgsAny is ms as SendMsg's argument type, one each.
func msgsAny(ms []Msg) []any {
	as := make([]any, len(ms))
	for i, m := range ms {
		as[i] = m
	}
	return as
}

// Receiving into the binding's memory (grpc-go with grpcgo's change; see
// mem.GrpcgoDest): set by patched.go.
var (
	setRecvDests func(lead int, alloc func(int) unsafe.Pointer, free func(unsafe.Pointer))
	takeDest     func(mem.BufferSlice) (unsafe.Pointer, int)
	destsOn      = func() bool { return false }
	destsLive    = func() int64 { return 0 }
)

// ReceiveDestsOn says whether SetReceiveDests turned receiving into the
// binding's memory on; ReceiveDestsLive counts such memories neither
// taken nor freed (tests).
func ReceiveDestsOn() bool { return destsOn() }

func ReceiveDestsLive() int64 { return destsLive() }

// SetReceiveDests has the transports read each large received message
// (64 KiB to 16 MiB, uncompressed) into memory from alloc(lead+n+1), the
// message at lead bytes in, so that the binding may take it over whole
// (TakeWhole) instead of copying it; free gives back what it does not
// take. Call once, before any connection. False without grpcgo's change.
func SetReceiveDests(lead int, alloc func(size int) unsafe.Pointer, free func(unsafe.Pointer)) bool {
	if setRecvDests == nil {
		return false
	}
	setRecvDests(lead, alloc, free)
	return true
}

// TakeWhole takes over the memory m was read into, if m is exactly one
// such message and nothing else references it: the memory (lead bytes,
// then the message) then belongs to the caller, and freeing m afterwards
// only drops its buffers. nil otherwise, and m is left as it is.
func TakeWhole(m Msg) unsafe.Pointer {
	if takeDest == nil {
		return nil
	}
	p, _ := takeDest(m)
	return p
}
