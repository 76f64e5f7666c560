// Command server serves the grpcgo.testing.Echo test service with grpc-go on
// the loopback interface, for end-to-end tests of grpcgo's Python client.
//
// It prints exactly one line, "LISTENING <port>", on stdout once the port is
// bound, then serves until its standard input closes or it gets SIGTERM or
// SIGINT. See package tests/gopeer/echo for the service's conventions.
//
// Usage: server [--port N] [--tls_cert FILE --tls_key FILE]
// (port 0, the default, picks a free port; with the two files it serves TLS)
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"grpcgo/tests/gopeer/echo"
)

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 to listen on; 0 picks a free one")
	certFile := flag.String("tls_cert", "", "PEM certificate chain: serve TLS (with --tls_key)")
	keyFile := flag.String("tls_key", "", "PEM private key of --tls_cert")
	flag.Parse()
	log.SetPrefix("gopeer server: ")
	log.SetFlags(0)

	lis, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	var opts []grpc.ServerOption
	if *certFile != "" || *keyFile != "" {
		creds, err := credentials.NewServerTLSFromFile(*certFile, *keyFile)
		if err != nil {
			log.Fatalf("tls: %v", err)
		}
		opts = append(opts, grpc.Creds(creds))
	}
	s := grpc.NewServer(opts...)
	echo.Register(s)

	stop := make(chan string, 2)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- "stdin closed"
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { stop <- (<-sigs).String() }()

	served := make(chan error, 1)
	go func() { served <- s.Serve(lis) }()
	fmt.Printf("LISTENING %d\n", lis.Addr().(*net.TCPAddr).Port)

	select {
	case why := <-stop:
		log.Printf("stopping: %s", why)
	case err := <-served:
		log.Fatalf("serve: %v", err)
	}
	done := make(chan struct{})
	go func() { s.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		s.Stop()
	}
}
