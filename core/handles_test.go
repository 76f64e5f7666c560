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
	for i := 0; i < b.N; i++ {
		h := NewHandle(b)
		_ = HandleValue(h)
		_ = HandleValue(h)
		DeleteHandle(h)
	}
}
