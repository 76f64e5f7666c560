package core

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The echo service, implemented twice: on core's Server (coreEcho) and on a
// plain grpc-go server with a hand-written ServiceDesc (grpcGoEcho), so the
// same client-side checks run against both.
//
//   - every "x-" request metadata key comes back in the initial metadata,
//     and again as "t-"+key in the trailing metadata;
//   - "x-code" and "x-details" (or "x-details-bin") choose the final
//     status (default OK);
//   - Unary echoes the request;
//   - ServerStream answers "a,b,c" with the responses "a", "b", "c" (the
//     last one is dropped when the status is not OK);
//   - ClientStream answers the requests joined with ",";
//   - Bidi echoes each request as it arrives.
const (
	mUnary        = "/test.Echo/Unary"
	mServerStream = "/test.Echo/ServerStream"
	mClientStream = "/test.Echo/ClientStream"
	mBidi         = "/test.Echo/Bidi"
)

func echoMD(in metadata.MD) (header, trailer metadata.MD) {
	header, trailer = metadata.MD{}, metadata.MD{}
	for k, v := range in {
		if strings.HasPrefix(k, "x-") {
			header[k] = append([]string(nil), v...)
			trailer["t-"+k] = append([]string(nil), v...)
		}
	}
	return header, trailer
}

func echoStatus(in metadata.MD) (codes.Code, string) {
	code := codes.OK
	if v := in.Get("x-code"); len(v) > 0 {
		n, _ := strconv.Atoi(v[0])
		code = codes.Code(n)
	}
	details := ""
	if v := in.Get("x-details"); len(v) > 0 {
		details = v[0]
	}
	if v := in.Get("x-details-bin"); len(v) > 0 { // any UTF-8 text
		details = v[0]
	}
	return code, details
}

// coreEcho is the echo service on core's ServerCall.
func coreEcho(c *ServerCall) {
	header, trailer := echoMD(c.Metadata)
	code, details := echoStatus(c.Metadata)
	if len(header) > 0 {
		if err := c.SendHeader(header); err != nil {
			c.Finish(codes.Internal, "SendHeader: "+err.Error(), nil)
			return
		}
	}
	c.SetTrailer(trailer)
	switch c.Method {
	case mUnary:
		req, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, "RecvOne: "+err.Error(), nil)
			return
		}
		c.Finish(code, details, req)
	case mServerStream:
		req, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, "RecvOne: "+err.Error(), nil)
			return
		}
		parts := bytes.Split(req.Materialize(), []byte(","))
		for _, p := range parts[:len(parts)-1] {
			if q, alive := c.Offer(BytesMsg(p)); !q && alive {
				if !put(c, p) {
					return
				}
			}
		}
		c.Finish(code, details, BytesMsg(parts[len(parts)-1]))
	case mClientStream:
		c.Finish(code, details, BytesMsg(bytes.Join(requests(c), []byte(","))))
	case mBidi:
		for m := range c.Requests() {
			if !put(c, m.Materialize()) {
				break
			}
		}
		c.Finish(code, details, nil)
	default:
		c.Finish(codes.Unimplemented, "unknown method "+c.Method, nil)
	}
}

// bytesCodec is the tests' own raw-bytes codec for plain grpc-go peers.
type bytesCodec struct{}

func (bytesCodec) Name() string { return "proto" }

func (bytesCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	}
	return nil, fmt.Errorf("bytesCodec cannot marshal %T", v)
}

func (bytesCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("bytesCodec cannot unmarshal into %T", v)
	}
	*p = append([]byte{}, data...)
	return nil
}

// grpcGoEcho is the echo service as a hand-written grpc-go ServiceDesc.
var grpcGoEcho = grpc.ServiceDesc{
	ServiceName: "test.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Unary",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req []byte
			if err := dec(&req); err != nil {
				return nil, err
			}
			md, _ := metadata.FromIncomingContext(ctx)
			header, trailer := echoMD(md)
			if len(header) > 0 {
				if err := grpc.SendHeader(ctx, header); err != nil {
					return nil, err
				}
			}
			grpc.SetTrailer(ctx, trailer)
			if code, details := echoStatus(md); code != codes.OK {
				return nil, status.Error(code, details)
			}
			return req, nil
		},
	}},
	Streams: []grpc.StreamDesc{
		{StreamName: "ServerStream", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
			code, details := goStreamStart(ss)
			var req []byte
			if err := ss.RecvMsg(&req); err != nil {
				return err
			}
			parts := bytes.Split(req, []byte(","))
			if code != codes.OK {
				parts = parts[:len(parts)-1]
			}
			for _, p := range parts {
				if err := ss.SendMsg(p); err != nil {
					return err
				}
			}
			return status.Error(code, details)
		}},
		{StreamName: "ClientStream", ClientStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
			code, details := goStreamStart(ss)
			var all [][]byte
			for {
				var m []byte
				if err := ss.RecvMsg(&m); err != nil {
					break
				}
				all = append(all, m)
			}
			if code != codes.OK {
				return status.Error(code, details)
			}
			return ss.SendMsg(bytes.Join(all, []byte(",")))
		}},
		{StreamName: "Bidi", ServerStreams: true, ClientStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
			code, details := goStreamStart(ss)
			for {
				var m []byte
				if err := ss.RecvMsg(&m); err != nil {
					break
				}
				if err := ss.SendMsg(m); err != nil {
					return err
				}
			}
			return status.Error(code, details)
		}},
	},
}

func goStreamStart(ss grpc.ServerStream) (codes.Code, string) {
	md, _ := metadata.FromIncomingContext(ss.Context())
	header, trailer := echoMD(md)
	if len(header) > 0 {
		ss.SendHeader(header)
	}
	ss.SetTrailer(trailer)
	return echoStatus(md)
}

// newGrpcGoServer serves desc with a plain grpc-go server on 127.0.0.1 and
// returns its address; it stops when the test ends.
func newGrpcGoServer(t *testing.T, desc *grpc.ServiceDesc, opts ...grpc.ServerOption) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer(append([]grpc.ServerOption{grpc.ForceServerCodec(bytesCodec{})}, opts...)...)
	gs.RegisterService(desc, struct{}{})
	done := run(func() { gs.Serve(lis) })
	t.Cleanup(func() {
		gs.Stop()
		<-done
	})
	return lis.Addr().String()
}

// newGrpcGoClient is a plain grpc-go client with the tests' raw codec.
func newGrpcGoClient(t *testing.T, target string, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(target, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(bytesCodec{})),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// backend is an echo server for the table-driven client tests.
type backend struct {
	name  string
	start func(t *testing.T) string // returns a target
}

var backends = []backend{
	{"core", func(t *testing.T) string {
		_, target := newTestServer(t, coreEcho)
		return target
	}},
	{"grpc-go", func(t *testing.T) string {
		return newGrpcGoServer(t, &grpcGoEcho)
	}},
}

// forBackends runs f once against each echo backend.
func forBackends(t *testing.T, f func(t *testing.T, ch *Channel)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			checkLeaks(t)
			ch := dial(t, b.start(t))
			f(t, ch)
		})
	}
}

type serverStream = grpc.ServerStream

// grpcGoStream is a bidi-streaming method for a hand-written ServiceDesc.
func grpcGoStream(name string, h func(ss grpc.ServerStream) error) grpc.StreamDesc {
	return grpc.StreamDesc{StreamName: name, ServerStreams: true, ClientStreams: true,
		Handler: func(_ any, ss grpc.ServerStream) error { return h(ss) }}
}

// sizeDesc is sizeHandler as a plain grpc-go service.
func sizeDesc() *grpc.ServiceDesc {
	return &grpc.ServiceDesc{
		ServiceName: "size",
		HandlerType: (*any)(nil),
		Methods: []grpc.MethodDesc{{
			MethodName: "Respond",
			Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				var req []byte
				if err := dec(&req); err != nil {
					return nil, err
				}
				return make([]byte, atoi(string(req))), nil
			},
		}},
		Streams: []grpc.StreamDesc{
			{StreamName: "Stream", ServerStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
				var req []byte
				if err := ss.RecvMsg(&req); err != nil {
					return err
				}
				return ss.SendMsg(make([]byte, atoi(string(req))))
			}},
			{StreamName: "Count", ClientStreams: true, Handler: func(_ any, ss grpc.ServerStream) error {
				n := 0
				for {
					var m []byte
					err := ss.RecvMsg(&m)
					if err == io.EOF {
						break
					}
					if err != nil {
						return err
					}
					n += len(m)
				}
				return ss.SendMsg([]byte(itoa(n)))
			}},
		},
	}
}

// deadAddress is a loopback address nobody listens on.
func deadAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// listenLoopback listens on a free 127.0.0.1 port.
func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}
