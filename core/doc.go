// Package core is grpcgo's engine: channels, calls and servers on
// google.golang.org/grpc that move raw message bytes.
//
// Serialization stays with the caller (the Python binding passes the user's
// serializers' output through unchanged), so every call here uses a
// pass-through codec. The package knows nothing of Python: pyext/ adapts it.
package core
