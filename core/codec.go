package core

import (
	"fmt"

	"google.golang.org/grpc/mem"
)

// rawCodec moves message bytes through grpc-go untouched. Messages are sent
// as Msg (ownership passes to grpc-go, which frees it once written) or
// []byte, and received into *Msg (the transport's buffers, referenced) or
// *[]byte (a copy).
type rawCodec struct{}

// Name is reported as the content-subtype: none, so requests carry
// content-type "application/grpc" as grpcio's (and grpc-go's own by
// default) do, not "application/grpc+proto".
func (rawCodec) Name() string { return "" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case Msg:
		return m, nil
	case plainMsg:
		return m.Msg, nil
	case *outgoing:
		m.taken = true
		return m.msg, nil
	case []byte:
		return mem.BufferSlice{mem.SliceBuffer(m)}, nil
	case *[]byte:
		return mem.BufferSlice{mem.SliceBuffer(*m)}, nil
	}
	return nil, fmt.Errorf("grpcgo: raw codec cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	switch p := v.(type) {
	case *Msg:
		data.Ref() // grpc-go frees data when Unmarshal returns
		*p = data
		return nil
	case *[]byte:
		*p = data.Materialize()
		return nil
	}
	return fmt.Errorf("grpcgo: raw codec cannot unmarshal into %T", v)
}

// outgoing is a message handed to grpc-go that it may never take: grpc-go
// frees a message once it marshalled it, so if it did not (the call failed
// before sending), the sender frees it.
type outgoing struct {
	msg   Msg
	taken bool
}

// freeUntaken frees the message unless grpc-go took it.
func (o *outgoing) freeUntaken() {
	if !o.taken {
		o.msg.Free()
	}
}
