package echo

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

type msg = wrapperspb.StringValue

// EchoServer is the server API of grpcgo.testing.Echo.
type EchoServer interface {
	UnaryEcho(context.Context, *msg) (*msg, error)
	ServerStream(*msg, grpc.ServerStreamingServer[msg]) error
	ClientStream(grpc.ClientStreamingServer[msg, msg]) error
	BidiStream(grpc.BidiStreamingServer[msg, msg]) error
}

// ServiceDesc describes grpcgo.testing.Echo for grpc.Server.RegisterService,
// as protoc-gen-go-grpc would have generated it.
var ServiceDesc = grpc.ServiceDesc{
	ServiceName: ServiceName,
	HandlerType: (*EchoServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "UnaryEcho",
		Handler:    unaryEchoHandler,
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "ServerStream",
		Handler:       serverStreamHandler,
		ServerStreams: true,
	}, {
		StreamName:    "ClientStream",
		Handler:       clientStreamHandler,
		ClientStreams: true,
	}, {
		StreamName:    "BidiStream",
		Handler:       bidiStreamHandler,
		ServerStreams: true,
		ClientStreams: true,
	}},
}

func unaryEchoHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(msg)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(EchoServer).UnaryEcho(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: UnaryEchoMethod}
	return interceptor(ctx, in, info, func(ctx context.Context, req any) (any, error) {
		return srv.(EchoServer).UnaryEcho(ctx, req.(*msg))
	})
}

func serverStreamHandler(srv any, stream grpc.ServerStream) error {
	in := new(msg)
	if err := stream.RecvMsg(in); err != nil {
		return err
	}
	return srv.(EchoServer).ServerStream(in, &grpc.GenericServerStream[msg, msg]{ServerStream: stream})
}

func clientStreamHandler(srv any, stream grpc.ServerStream) error {
	return srv.(EchoServer).ClientStream(&grpc.GenericServerStream[msg, msg]{ServerStream: stream})
}

func bidiStreamHandler(srv any, stream grpc.ServerStream) error {
	return srv.(EchoServer).BidiStream(&grpc.GenericServerStream[msg, msg]{ServerStream: stream})
}

// Server is the grpc-go implementation of grpcgo.testing.Echo.
type Server struct{}

var _ EchoServer = Server{}

// Register adds the Echo service to s.
func Register(s *grpc.Server) { s.RegisterService(&ServiceDesc, Server{}) }

// echoUnaryMetadata sends the metadata echo for a unary RPC.
func echoUnaryMetadata(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	header, trailer := echoMetadata(md)
	if err := grpc.SetTrailer(ctx, trailer); err != nil {
		return err
	}
	if header.Len() > 0 {
		return grpc.SendHeader(ctx, header)
	}
	return nil
}

// echoStreamMetadata sends the metadata echo for a streaming RPC.
func echoStreamMetadata(stream grpc.ServerStream) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	header, trailer := echoMetadata(md)
	stream.SetTrailer(trailer)
	if header.Len() > 0 {
		return stream.SendHeader(header)
	}
	return nil
}

func (Server) UnaryEcho(ctx context.Context, in *msg) (*msg, error) {
	if err := echoUnaryMetadata(ctx); err != nil {
		return nil, err
	}
	if err := directive(ctx, in.GetValue()); err != nil {
		return nil, err
	}
	return wrapperspb.String(in.GetValue()), nil
}

func (Server) ServerStream(in *msg, stream grpc.ServerStreamingServer[msg]) error {
	if err := echoStreamMetadata(stream); err != nil {
		return err
	}
	text := in.GetValue()
	if isDirective(text) {
		if err := directive(stream.Context(), text); err != nil {
			return err
		}
		return stream.Send(wrapperspb.String(text))
	}
	n, body, final, err := parseServerStream(text)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	for i := range n {
		if err := stream.Send(wrapperspb.String(body + "-" + strconv.Itoa(i))); err != nil {
			return err
		}
	}
	if final != "" {
		return statusDirective(final)
	}
	return nil
}

func (Server) ClientStream(stream grpc.ClientStreamingServer[msg, msg]) error {
	if err := echoStreamMetadata(stream); err != nil {
		return err
	}
	var texts []string
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if err := directive(stream.Context(), in.GetValue()); err != nil {
			return err
		}
		texts = append(texts, in.GetValue())
	}
	return stream.SendAndClose(wrapperspb.String(strings.Join(texts, JoinSeparator)))
}

func (Server) BidiStream(stream grpc.BidiStreamingServer[msg, msg]) error {
	if err := echoStreamMetadata(stream); err != nil {
		return err
	}
	for {
		in, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := directive(stream.Context(), in.GetValue()); err != nil {
			return err
		}
		if err := stream.Send(wrapperspb.String(in.GetValue())); err != nil {
			return err
		}
	}
}
