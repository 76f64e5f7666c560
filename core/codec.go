package core

import (
	"fmt"

	"google.golang.org/grpc/mem"
)

// rawCodec moves message bytes through grpc-go untouched. Messages are
// passed as *[]byte (receive) or []byte (send).
type rawCodec struct{}

// Name is reported as the content-subtype; "proto" keeps the content-type
// every gRPC peer expects for ordinary services.
func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case []byte:
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	case *[]byte:
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	}
	return nil, fmt.Errorf("grpcgo: raw codec cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("grpcgo: raw codec cannot unmarshal into %T", v)
	}
	*p = data.Materialize()
	return nil
}
