package echo

import (
	"context"
	"errors"
	"io"
	"strconv"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	_ "google.golang.org/grpc/encoding/gzip" // the compressor x-compress-response names
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
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

// echoUnaryMetadata sends the metadata echo for a unary RPC and applies
// the response compression and report conventions.
func echoUnaryMetadata(ctx context.Context) error {
	md, _ := metadata.FromIncomingContext(ctx)
	header, trailer := echoMetadata(md)
	if err := applyConventions(ctx, md, trailer); err != nil {
		return err
	}
	if err := grpc.SetTrailer(ctx, trailer); err != nil {
		return err
	}
	if header.Len() > 0 {
		return grpc.SendHeader(ctx, header)
	}
	return nil
}

// echoStreamMetadata is echoUnaryMetadata for a streaming RPC.
func echoStreamMetadata(stream grpc.ServerStream) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	header, trailer := echoMetadata(md)
	if err := applyConventions(stream.Context(), md, trailer); err != nil {
		return err
	}
	stream.SetTrailer(trailer)
	if header.Len() > 0 {
		return stream.SendHeader(header)
	}
	return nil
}

// applyConventions sets the response compressor asked for and adds the
// report to trailer.
func applyConventions(ctx context.Context, md metadata.MD, trailer metadata.MD) error {
	if names := md.Get(CompressResponseKey); len(names) > 0 {
		if err := grpc.SetSendCompressor(ctx, names[0]); err != nil {
			return status.Errorf(codes.InvalidArgument, "%s: %v", CompressResponseKey, err)
		}
	}
	if len(md.Get(ReportKey)) == 0 {
		return nil
	}
	trailer.Set(ReportKey+"-authority", strings.Join(md.Get(":authority"), ","))
	serverName := ""
	if p, ok := peer.FromContext(ctx); ok {
		if info, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			serverName = info.State.ServerName
		}
	}
	trailer.Set(ReportKey+"-server-name", serverName)
	encoding := ""
	if s, ok := grpc.ServerTransportStreamFromContext(ctx).(interface{ RecvCompress() string }); ok {
		encoding = s.RecvCompress()
	}
	trailer.Set(ReportKey+"-request-encoding", encoding)
	if auth := md.Get("authorization"); len(auth) > 0 {
		trailer.Set(ReportKey+"-authorization", auth...)
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
