package core

import "sync"

// Handles: how a Go object travels through C (the binding's capsules) as a
// number. runtime/cgo.Handle does the same with a sync.Map and a counter
// that never reuses a number: ~185 ns and three allocations for a handle
// made, read twice and deleted (go test -bench, 2 vCPUs), and the binding
// makes one per call at each end. This table is a slice under a mutex
// (~39 ns, one allocation): a deleted slot is reused, and the handle
// carries the slot's generation, so a handle used after its Delete (or a
// number that never was a handle) panics as cgo.Handle's misuse does
// instead of reaching the slot's next object.
//
// A handle is never 0. On 64-bit platforms the generation is the upper 32
// bits; where uintptr has 32, there is none (every slot reads 0).

const handleGenShift = 32

type handleSlot struct {
	v   any // nil: free (NewHandle refuses nil)
	gen uint32
}

var handles struct {
	mu    sync.Mutex
	slots []handleSlot
	free  []uint32
}

// NewHandle returns a handle for v (not nil).
func NewHandle(v any) uintptr {
	if v == nil {
		panic("grpcgo: a handle of nil")
	}
	handles.mu.Lock()
	var i uint32
	if n := len(handles.free); n > 0 {
		i = handles.free[n-1]
		handles.free = handles.free[:n-1]
	} else {
		i = uint32(len(handles.slots))
		handles.slots = append(handles.slots, handleSlot{})
	}
	s := &handles.slots[i]
	s.gen++
	h := uintptr(i) + 1 | uintptr(s.gen)<<handleGenShift
	s.gen = uint32(h >> handleGenShift) // 0 where uintptr has 32 bits
	s.v = v
	handles.mu.Unlock()
	return h
}

// slot returns h's slot (mu held), panicking if h is not a live handle.
func handleSlotOf(h uintptr) *handleSlot {
	i := uint32(h) - 1 // the lower 32 bits: the slot's index + 1
	if uint64(i) >= uint64(len(handles.slots)) {
		handles.mu.Unlock()
		panic("grpcgo: misuse of an invalid handle")
	}
	s := &handles.slots[i]
	if s.v == nil || s.gen != uint32(h>>handleGenShift) {
		handles.mu.Unlock()
		panic("grpcgo: misuse of an invalid handle")
	}
	return s
}

// HandleValue returns the value h was made for; it panics if h is not a
// live handle.
func HandleValue(h uintptr) any {
	handles.mu.Lock()
	v := handleSlotOf(h).v
	handles.mu.Unlock()
	return v
}

// DeleteHandle invalidates h (its slot is reused); it panics if h is not a
// live handle.
func DeleteHandle(h uintptr) {
	handles.mu.Lock()
	s := handleSlotOf(h)
	s.v = nil
	handles.free = append(handles.free, uint32(h)-1)
	handles.mu.Unlock()
}
