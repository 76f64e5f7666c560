package echo

import (
	"context"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestCasesAgainstGoServer runs every client case against the grpc-go
// server: the two halves of the test peer must agree before they are used to
// judge grpcgo.
func TestCasesAgainstGoServer(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	Register(s)
	go s.Serve(lis)
	defer s.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(ClientStats{}))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()

	for _, c := range Cases {
		t.Run(c.Name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := c.Run(ctx, conn); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestParseCode(t *testing.T) {
	for in, want := range map[string]string{"5": "NotFound", "NOT_FOUND": "NotFound", "unavailable": "Unavailable", "0": "OK"} {
		c, err := ParseCode(in)
		if err != nil || c.String() != want {
			t.Errorf("ParseCode(%q) = %v, %v; want %s", in, c, err, want)
		}
	}
	for _, in := range []string{"17", "-1", "NOPE", ""} {
		if _, err := ParseCode(in); err == nil {
			t.Errorf("ParseCode(%q) succeeded", in)
		}
	}
}
