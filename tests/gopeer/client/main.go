// Command client runs the grpcgo.testing.Echo client cases with grpc-go
// against a server (grpcgo's Python server in the end-to-end tests). It exits
// 0 when every case it ran passed, 1 when one failed and 2 on bad usage,
// printing "PASS <case>" or "FAIL <case>: <what differed>" for each case.
//
// Usage: client --target 127.0.0.1:PORT --case NAME [--timeout 30s]
// where NAME is unary, server_stream, client_stream, bidi, metadata, status,
// deadline, unimplemented, compression or all (these), or interceptor,
// stop_in_grace or stop_after_grace (echo.ExtraCases: they need a server
// the test set up for them).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"grpcgo/tests/gopeer/echo"
)

func main() {
	target := flag.String("target", "", "server address, host:port")
	name := flag.String("case", "all", "case to run: "+strings.Join(echo.CaseNames(), ", "))
	timeout := flag.Duration("timeout", 30*time.Second, "time limit for each case")
	flag.Parse()
	if *target == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: client --target host:port --case NAME")
		os.Exit(2)
	}

	var cases []echo.Case
	if *name == "all" {
		cases = echo.Cases
	} else if c, ok := echo.FindCase(*name); ok {
		cases = []echo.Case{c}
	} else {
		fmt.Fprintf(os.Stderr, "unknown case %q; want one of %s\n", *name, strings.Join(echo.CaseNames(), ", "))
		os.Exit(2)
	}

	conn, err := grpc.NewClient(*target, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(echo.ClientStats{}))
	if err != nil {
		fmt.Fprintf(os.Stderr, "FAIL: client for %s: %v\n", *target, err)
		os.Exit(1)
	}
	defer conn.Close()

	failed := 0
	for _, c := range cases {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		start := time.Now()
		err := c.Run(ctx, conn)
		cancel()
		if err != nil {
			failed++
			fmt.Printf("FAIL %s: %v\n", c.Name, err)
		} else {
			fmt.Printf("PASS %s (%v)\n", c.Name, time.Since(start).Round(time.Millisecond))
		}
	}
	if failed > 0 {
		conn.Close()
		os.Exit(1)
	}
}
