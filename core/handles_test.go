package core

import (
	"sync"
	"testing"
)

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s: no panic", what)
		}
	}()
	f()
}

func TestHandlesRoundTripAndReuse(t *testing.T) {
	a, b := new(int), new(string)
	ha, hb := NewHandle(a), NewHandle(b)
	if ha == 0 || hb == 0 || ha == hb {
		t.Fatalf("handles %d %d", ha, hb)
	}
	if HandleValue(ha).(*int) != a || HandleValue(hb).(*string) != b {
		t.Fatal("wrong values")
	}
	DeleteHandle(ha)
	mustPanic(t, "value after delete", func() { HandleValue(ha) })
	mustPanic(t, "delete twice", func() { DeleteHandle(ha) })
	c := new(float64)
	hc := NewHandle(c) // reuses a's slot, with another generation
	if hc == ha {
		t.Fatal("a reused slot gave the same handle")
	}
	mustPanic(t, "stale handle of a reused slot", func() { HandleValue(ha) })
	if HandleValue(hc).(*float64) != c {
		t.Fatal("wrong value in the reused slot")
	}
	mustPanic(t, "zero", func() { HandleValue(0) })
	mustPanic(t, "out of range", func() { HandleValue(1 << 31) })
	mustPanic(t, "nil", func() { NewHandle(nil) })
	DeleteHandle(hb)
	DeleteHandle(hc)
}

func TestHandlesFromManyGoroutines(t *testing.T) {
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				v := &[2]int{g, i}
				h := NewHandle(v)
				if HandleValue(h).(*[2]int) != v {
					t.Error("wrong value")
					return
				}
				DeleteHandle(h)
			}
		}(g)
	}
	wg.Wait()
}

func BenchmarkHandle(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h := NewHandle(b)
		_ = HandleValue(h)
		_ = HandleValue(h)
		DeleteHandle(h)
	}
}

// BenchmarkHandleChurn: a steady population of 1,000 live handles (calls
// in flight), the oldest deleted and a new one made per iteration.
func BenchmarkHandleChurn(b *testing.B) {
	const live = 1000
	ring := make([]uintptr, live)
	for i := range ring {
		ring[i] = NewHandle(b)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k := i % live
		DeleteHandle(ring[k])
		ring[k] = NewHandle(b)
		_ = HandleValue(ring[k])
	}
	b.StopTimer()
	for _, h := range ring {
		DeleteHandle(h)
	}
}

// BenchmarkHandleParallel: every P makes, reads and deletes its own
// handles (the engine's calls at both ends, from many threads).
func BenchmarkHandleParallel(b *testing.B) {
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h := NewHandle(b)
			_ = HandleValue(h)
			DeleteHandle(h)
		}
	})
}

func handleTable() (n, capacity, free, freeCap int) {
	handles.mu.Lock()
	defer handles.mu.Unlock()
	return len(handles.slots), cap(handles.slots), len(handles.free), cap(handles.free)
}

// A burst of 100,000 handles, then a few: the table gives the burst's
// memory back (it kept ~3 MB for good), stale handles of the slots it cut
// still panic, and it grows again as before.
func TestHandlesTableShrinksAfterABurst(t *testing.T) {
	base, _, _, _ := handleTable()
	keep := []uintptr{NewHandle(new(int)), NewHandle(new(int))}
	burst := make([]uintptr, 100000)
	for i := range burst {
		burst[i] = NewHandle(new(int))
	}
	if n, _, _, _ := handleTable(); n < len(burst) {
		t.Fatalf("table of %d slots for %d handles", n, len(burst))
	}
	// A handle made last, high in the table, keeps it until it goes.
	last := NewHandle(new(int))
	for _, h := range burst {
		DeleteHandle(h)
	}
	if n, _, _, _ := handleTable(); n < len(burst) {
		t.Fatalf("table cut below a live handle: %d slots", n)
	}
	DeleteHandle(last)
	n, capacity, free, freeCap := handleTable()
	limit := base + len(keep) + 64 // other tests' handles may be live
	if n > limit || capacity > 4*limit+handleShrinkMin || free > limit || freeCap > 4*limit+handleShrinkMin {
		t.Fatalf("after the burst: %d slots (capacity %d), %d free (capacity %d)", n, capacity, free, freeCap)
	}
	for _, h := range append(burst[len(burst)-10:], last) {
		mustPanic(t, "stale handle of a cut slot", func() { HandleValue(h) })
	}
	// Grown again over the cut slots: new generations, old handles panic.
	again := make([]uintptr, 100000)
	for i := range again {
		v := new(int)
		again[i] = NewHandle(v)
		if HandleValue(again[i]).(*int) != v {
			t.Fatal("wrong value")
		}
	}
	for _, h := range append(burst[len(burst)-10:], last) {
		mustPanic(t, "stale handle of a slot made anew", func() { HandleValue(h) })
	}
	for _, h := range again {
		DeleteHandle(h)
	}
	for _, h := range keep {
		if HandleValue(h) == nil {
			t.Fatal("a handle kept through the burst lost its value")
		}
		DeleteHandle(h)
	}
}

// In a steady state (calls coming and going), handles allocate nothing.
func TestHandlesSteadyStateAllocatesNothing(t *testing.T) {
	ring := make([]uintptr, 5000)
	for i := range ring {
		ring[i] = NewHandle(t)
	}
	k := 0
	allocs := testing.AllocsPerRun(20000, func() {
		DeleteHandle(ring[k])
		ring[k] = NewHandle(t)
		k = (k + 7) % len(ring)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per handle", allocs)
	}
	for _, h := range ring {
		DeleteHandle(h)
	}
}
