//go:build grpcgo_patched

package core

import (
	"context"
	"reflect"
	"testing"

	"google.golang.org/grpc/metadata"
)

// A server call's metadata is the context's own MD, not grpc-go's copy of
// it (metadata.GrpcgoIncoming), when its keys are lower case as the
// transport's are; an MD with an upper-case key is copied and lowered.
func TestIncomingMDIsNotCopied(t *testing.T) {
	md := metadata.MD{"a-key": {"1", "2"}, ":authority": {"x"}}
	got, ok := incomingMD(metadata.NewIncomingContext(context.Background(), md))
	if !ok || reflect.ValueOf(got).UnsafePointer() != reflect.ValueOf(md).UnsafePointer() {
		t.Fatalf("incomingMD = %v (same map: false), want the context's own MD", got)
	}
	upper := metadata.MD{"A-Key": {"1"}}
	got, ok = incomingMD(metadata.NewIncomingContext(context.Background(), upper))
	if !ok || reflect.ValueOf(got).UnsafePointer() == reflect.ValueOf(upper).UnsafePointer() ||
		!reflect.DeepEqual(got, metadata.MD{"a-key": {"1"}}) {
		t.Fatalf("incomingMD = %v, want a lowered copy", got)
	}
	if _, ok := incomingMD(context.Background()); ok {
		t.Fatal("incomingMD found metadata in a context without any")
	}
}

// AppendOrderedPairs appends to the buffer it is given, in OrderedPairs's
// order, and allocates nothing for a few pairs when the buffer has room.
func TestAppendOrderedPairs(t *testing.T) {
	md := metadata.MD{"b": {"2"}, "a": {"1", "1b"}, ":path": {"/x"}, MDRecvKey: {"9"}}
	var buf [8]MDPair
	got := AppendOrderedPairs(buf[:0], md)
	want := []MDPair{{"a", "1"}, {"a", "1b"}, {"b", "2"}}
	if !reflect.DeepEqual(got, want) || !reflect.DeepEqual(OrderedPairs(md), want) {
		t.Fatalf("AppendOrderedPairs = %v, OrderedPairs = %v, want %v", got, OrderedPairs(md), want)
	}
	if &got[0] != &buf[0] {
		t.Fatal("AppendOrderedPairs did not use the buffer it was given")
	}
	one := metadata.MD{"user-agent": {"x"}, ":authority": {"h"}}
	if n := testing.AllocsPerRun(100, func() {
		var b [8]MDPair
		_ = AppendOrderedPairs(b[:0], one)
	}); n != 0 {
		t.Fatalf("AppendOrderedPairs allocated %v times for one pair", n)
	}
}
