package core

import (
	"compress/zlib"
	"io"
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	_ "google.golang.org/grpc/encoding/gzip" // registers "gzip"
	"google.golang.org/grpc/status"
)

// grpcio's Compression enum values, in order: NoCompression, Deflate, Gzip.
var compressorNames = []string{"", "deflate", "gzip"}

// CompressorName maps grpcio's Compression value to grpc-go's compressor
// name; "" means no compression (and out-of-range values too).
func CompressorName(algorithm int) string {
	if algorithm < 0 || algorithm >= len(compressorNames) {
		return ""
	}
	return compressorNames[algorithm]
}

func init() { encoding.RegisterCompressor(deflate{}) }

// DisabledEncodings lists the encodings a C-core enabled-algorithms bitset
// (bit n: grpcio's Compression value n) leaves out; identity is always on.
func DisabledEncodings(bitset int64) []string {
	var off []string
	for algorithm, name := range compressorNames {
		if name != "" && bitset&(1<<algorithm) == 0 {
			off = append(off, name)
		}
	}
	return off
}

// refusedEncoding is the status of a call whose request encoding is one of
// disabled, as C-core's server answers it; nil otherwise.
func refusedEncoding(ss grpc.ServerStream, disabled []string) error {
	rs, ok := grpc.ServerTransportStreamFromContext(ss.Context()).(interface{ RecvCompress() string })
	if !ok {
		return nil
	}
	if enc := rs.RecvCompress(); enc != "" && slices.Contains(disabled, enc) {
		return status.Errorf(codes.Unimplemented, "Compression algorithm '%s' is disabled.", enc)
	}
	return nil
}

// deflate is gRPC's "deflate" message encoding: zlib-wrapped DEFLATE, as
// grpcio (and HTTP's deflate) use. grpc-go ships only gzip.
type deflate struct{}

var deflateWriters sync.Pool

func (deflate) Name() string { return "deflate" }

func (deflate) Compress(w io.Writer) (io.WriteCloser, error) {
	if z, ok := deflateWriters.Get().(*zlib.Writer); ok {
		z.Reset(w)
		return pooledDeflate{z}, nil
	}
	return pooledDeflate{zlib.NewWriter(w)}, nil
}

func (deflate) Decompress(r io.Reader) (io.Reader, error) { return zlib.NewReader(r) }

type pooledDeflate struct{ *zlib.Writer }

func (p pooledDeflate) Close() error {
	err := p.Writer.Close()
	deflateWriters.Put(p.Writer)
	return err
}

// setServerCompressor asks grpc-go to compress a call's responses with
// name, if the client said it can decode it.
func setServerCompressor(ss grpc.ServerStream, name string) error {
	if name == "" {
		name = encoding.Identity
	} else if supported, err := grpc.ClientSupportedCompressors(ss.Context()); err != nil || !slices.Contains(supported, name) {
		return nil
	}
	return grpc.SetSendCompressor(ss.Context(), name)
}

// setDefaultCompressor applies the server's compression (name, "" for none)
// to a new call. grpc-go answers in the request's encoding, grpcio only in
// the one its server or handler chose; and grpcio's response headers name
// no grpc-encoding when it compresses nothing. So with name "" the
// transport stream's send encoding is cleared (a compressed request had
// set it), rather than set to identity, which grpc-go would name.
func setDefaultCompressor(ss grpc.ServerStream, name string) {
	if name == "" {
		st := grpc.ServerTransportStreamFromContext(ss.Context())
		if rs, ok := st.(interface{ SendCompress() string }); ok && rs.SendCompress() == "" {
			return
		}
		if cs, ok := st.(interface{ SetSendCompress(string) error }); ok && cs.SetSendCompress("") == nil {
			return
		}
	}
	setServerCompressor(ss, name)
}
