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

// The table gives memory back after a burst (100k calls in flight at once
// left ~3 MB held for good): a handle takes the lowest free slot (the free
// slots are a min-heap), so once the burst drains the live handles sit
// low, and when fewer than a quarter of a table of more than
// handleShrinkMin slots are live, the free slots at its end are cut off
// (and the slice reallocated once it uses under a quarter of its
// capacity). A slot cut off keeps nothing: a slot made anew at its index
// starts from genFloor, above every generation a cut slot had, so a stale
// handle of the old slot still panics. Their indices stay in the heap as
// stale entries (the largest there: a slot is only appended when no free
// slot is left), dropped when they surface or when they are half of it.
// In a steady state nothing allocates; the heap costs O(log free slots).
// A handle that stays live high in the table keeps the slots below it.
const handleShrinkMin = 1024

type handleSlot struct {
	v   any // nil: free (NewHandle refuses nil)
	gen uint32
}

var handles struct {
	mu       sync.Mutex
	slots    []handleSlot
	free     []uint32 // min-heap of free slots; entries >= len(slots) are stale
	live     int
	stale    int    // entries of free >= len(slots)
	genFloor uint32 // a slot appended starts from this generation
}

// NewHandle returns a handle for v (not nil).
func NewHandle(v any) uintptr {
	if v == nil {
		panic("grpcgo: a handle of nil")
	}
	handles.mu.Lock()
	i := uint32(len(handles.slots))
	if free := handles.free; len(free) > 0 {
		if j := free[0]; j < i {
			i = j // the heap's pop, inline
			last := len(free) - 1
			free[0] = free[last]
			handles.free = free[:last]
			if last > 1 {
				freeDown(0)
			}
		} else {
			// The smallest is stale, so all are: the table has no free slot.
			dropFree()
		}
	}
	if i == uint32(len(handles.slots)) {
		handles.slots = append(handles.slots, handleSlot{gen: handles.genFloor})
	}
	handles.live++
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
	freePush(uint32(h) - 1)
	handles.live--
	if n := len(handles.slots); n > handleShrinkMin && handles.live < n/4 {
		shrinkHandles()
	}
	handles.mu.Unlock()
}

// shrinkHandles cuts the free slots off the table's end (mu held). Its
// work is what it cuts, and a filter of the heap once half of it is
// stale, so each Delete pays O(1) for it over time.
func shrinkHandles() {
	slots := handles.slots
	n := len(slots)
	for n > 0 && slots[n-1].v == nil {
		n--
		if g := slots[n].gen; g > handles.genFloor {
			handles.genFloor = g
		}
	}
	if n == len(slots) {
		return
	}
	handles.stale += len(slots) - n
	if cap(slots) > handleShrinkMin && cap(slots) > 4*n {
		handles.slots = append(make([]handleSlot, 0, 2*n), slots[:n]...)
	} else {
		clear(slots[n:])
		handles.slots = slots[:n]
	}
	if handles.stale*2 > len(handles.free) {
		// Drop the stale entries; the rest is heapified anew.
		free := handles.free[:0]
		for _, j := range handles.free {
			if j < uint32(n) {
				free = append(free, j)
			}
		}
		if cap(free) > handleShrinkMin && cap(free) > 4*len(free) {
			free = append(make([]uint32, 0, 2*len(free)), free...)
		}
		handles.free, handles.stale = free, 0
		for k := len(free)/2 - 1; k >= 0; k-- {
			freeDown(k)
		}
	}
}

// dropFree empties the heap, whose entries are all stale (mu held).
func dropFree() {
	if cap(handles.free) > handleShrinkMin {
		handles.free = nil
	} else {
		handles.free = handles.free[:0]
	}
	handles.stale = 0
}

func freePush(i uint32) {
	free := append(handles.free, i)
	k := len(free) - 1
	for k > 0 {
		p := (k - 1) / 2
		if free[p] <= i {
			break
		}
		free[k] = free[p]
		k = p
	}
	free[k] = i
	handles.free = free
}

func freeDown(k int) {
	free := handles.free
	n := len(free)
	x := free[k]
	for {
		c := 2*k + 1
		if c >= n {
			break
		}
		if c+1 < n && free[c+1] < free[c] {
			c++
		}
		if x <= free[c] {
			break
		}
		free[k] = free[c]
		k = c
	}
	free[k] = x
}
