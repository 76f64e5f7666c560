package core

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// These tests put core's Server under a plain grpc-go client, and core's
// Channel in front of a grpc-go server using the standard proto codec.

func grpcGoCtx(t *testing.T, md ...string) context.Context {
	ctx := testCtx(t)
	if len(md) > 0 {
		ctx = metadata.NewOutgoingContext(ctx, metadata.Pairs(md...))
	}
	return ctx
}

func TestGrpcGoClientUnary(t *testing.T) {
	checkLeaks(t)
	_, target := newTestServer(t, coreEcho)
	cc := newGrpcGoClient(t, target)
	var resp []byte
	var header, trailer metadata.MD
	err := cc.Invoke(grpcGoCtx(t, echoPairs...), mUnary, []byte("from grpc-go"), &resp, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "response", resp, []byte("from grpc-go"))
	wantMD(t, "header", header, echoedHeader())
	wantMD(t, "trailer", trailer, echoedTrailer())

	err = cc.Invoke(grpcGoCtx(t, "x-code", "7", "x-details", "no way", "x-k-bin", "\x00"), mUnary, []byte("x"), &resp, grpc.Trailer(&trailer))
	if st := status.Convert(err); st.Code() != codes.PermissionDenied || st.Message() != "no way" {
		t.Fatalf("error = %v, want PermissionDenied \"no way\"", err)
	}
	wantMD(t, "trailer on error", trailer, metadata.MD{"t-x-k-bin": {"\x00"}})
}

func TestGrpcGoClientStreams(t *testing.T) {
	checkLeaks(t)
	_, target := newTestServer(t, coreEcho)
	cc := newGrpcGoClient(t, target)

	// Server streaming.
	cs, err := cc.NewStream(grpcGoCtx(t, echoPairs...), &grpc.StreamDesc{ServerStreams: true}, mServerStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := cs.SendMsg([]byte("1,2,3")); err != nil {
		t.Fatal(err)
	}
	cs.CloseSend()
	header, err := cs.Header()
	if err != nil {
		t.Fatal(err)
	}
	wantMD(t, "header", header, echoedHeader())
	var got []string
	for {
		var m []byte
		if err := cs.RecvMsg(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, string(m))
	}
	if strings.Join(got, " ") != "1 2 3" {
		t.Fatalf("responses %q", got)
	}
	wantMD(t, "trailer", cs.Trailer(), echoedTrailer())

	// Client streaming.
	cs, err = cc.NewStream(grpcGoCtx(t), &grpc.StreamDesc{ClientStreams: true}, mClientStream)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"a", "", "c"} {
		if err := cs.SendMsg([]byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	cs.CloseSend()
	var resp []byte
	if err := cs.RecvMsg(&resp); err != nil {
		t.Fatal(err)
	}
	wantBytes(t, "response", resp, []byte("a,,c"))
	if err := cs.RecvMsg(&resp); err != io.EOF {
		t.Fatalf("after the response: %v", err)
	}

	// Bidi, ping-pong, ending in an error.
	cs, err = cc.NewStream(grpcGoCtx(t, "x-code", "14", "x-details", "bye"), &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, mBidi)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := cs.SendMsg([]byte(itoa(i))); err != nil {
			t.Fatal(err)
		}
		var m []byte
		if err := cs.RecvMsg(&m); err != nil {
			t.Fatal(err)
		}
		wantBytes(t, "echo", m, []byte(itoa(i)))
	}
	cs.CloseSend()
	var m []byte
	err = cs.RecvMsg(&m)
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != "bye" {
		t.Fatalf("end of bidi: %v, want Unavailable \"bye\"", err)
	}
}

// TestGrpcGoClientDeadlineAndCancel: a grpc-go client's deadline and
// cancellation reach core's server call.
func TestGrpcGoClientDeadlineAndCancel(t *testing.T) {
	checkLeaks(t)
	h := newHang()
	_, target := newTestServer(t, h.serve)
	cc := newGrpcGoClient(t, target)

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	var resp []byte
	err := cc.Invoke(ctx, "/x/Hang", []byte("x"), &resp)
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("error = %v, want DeadlineExceeded", err)
	}
	c, _ := recvChan(t, "server call", h.calls)
	if !c.HasDeadline {
		t.Error("server call has no deadline")
	}
	if err, _ := recvChan(t, "server end", h.died); !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		t.Errorf("server call context: %v", err)
	}

	ctx, cancel = context.WithCancel(context.Background())
	cs, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, "/x/Hang")
	if err != nil {
		t.Fatal(err)
	}
	cs.SendMsg([]byte("x"))
	c, _ = recvChan(t, "server call", h.calls)
	if c.HasDeadline {
		t.Error("server call without a client deadline has one")
	}
	cancel()
	if err, _ := recvChan(t, "server end", h.died); !errors.Is(err, context.Canceled) {
		t.Errorf("server call context: %v, want canceled", err)
	}
	if err := cs.RecvMsg(new([]byte)); status.Code(err) != codes.Canceled {
		t.Errorf("client stream: %v", err)
	}
}

// TestProtoServerInterop: core's channel, moving bytes the caller
// serialized, talks to a grpc-go server using the standard proto codec.
func TestProtoServerInterop(t *testing.T) {
	checkLeaks(t)
	desc := grpc.ServiceDesc{
		ServiceName: "proto.Echo",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Upper",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				req := new(wrapperspb.StringValue)
				if err := dec(req); err != nil {
					return nil, err
				}
				if req.Value == "fail" {
					return nil, status.Error(codes.InvalidArgument, "bad value")
				}
				return wrapperspb.String(strings.ToUpper(req.Value)), nil
			},
		}},
		Streams: []grpc.StreamDesc{{StreamName: "Count", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
			req := new(wrapperspb.Int32Value)
			if err := ss.RecvMsg(req); err != nil {
				return err
			}
			for i := int32(0); i < req.Value; i++ {
				if err := ss.SendMsg(wrapperspb.Int32(i)); err != nil {
					return err
				}
			}
			return nil
		}}},
	}
	lisTarget := func() string {
		// A server with grpc-go's default codec (proto), not bytesCodec.
		l := listenLoopback(t)
		gs := grpc.NewServer()
		gs.RegisterService(&desc, struct{}{})
		done := run(func() { gs.Serve(l) })
		t.Cleanup(func() { gs.Stop(); <-done })
		return l.Addr().String()
	}()
	ch := dial(t, lisTarget)

	req, _ := proto.Marshal(wrapperspb.String("hello"))
	resp, _, st := ch.Unary(spec("/proto.Echo/Upper"), BytesMsg(req))
	wantStatus(t, st, codes.OK, "")
	out := new(wrapperspb.StringValue)
	if err := proto.Unmarshal(resp.Materialize(), out); err != nil || out.Value != "HELLO" {
		t.Fatalf("response %q (%v)", out.Value, err)
	}
	req, _ = proto.Marshal(wrapperspb.String("fail"))
	_, _, st = ch.Unary(spec("/proto.Echo/Upper"), BytesMsg(req))
	wantStatus(t, st, codes.InvalidArgument, "bad value")
	// Bytes that are not the message the server expects.
	_, _, st = ch.Unary(spec("/proto.Echo/Upper"), BytesMsg([]byte{0xff, 0xff, 0xff}))
	wantCode(t, st, codes.Internal)

	req, _ = proto.Marshal(wrapperspb.Int32(5))
	s := ch.StartStream(spec("/proto.Echo/Count"), true, false, BytesMsg(req), true)
	got := drain(t, s)
	wantStatus(t, ended(t, s), codes.OK, "")
	if len(got) != 5 {
		t.Fatalf("%d responses, want 5", len(got))
	}
	for i, m := range got {
		v := new(wrapperspb.Int32Value)
		if err := proto.Unmarshal(m, v); err != nil || v.Value != int32(i) {
			t.Fatalf("response %d: %v (%v)", i, v.Value, err)
		}
	}
}
