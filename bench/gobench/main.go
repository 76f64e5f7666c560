// Command gobench is the grpc-go contender of the benchmark (bench/run.py):
// the grpcgo.bench.Bench service (bench/bench.proto) served and driven by
// plain grpc-go with a raw-bytes codec, the floor a Python binding can
// approach. It speaks exactly what bench/server.py and bench/client.py speak,
// so it pairs with either.
//
//	gobench server [-cpuprofile F]
//	    prints IMPL {...} and PORT <n>, serves on 127.0.0.1 until stdin
//	    closes, SIGTERM/SIGINT, or -max-seconds pass.
//	gobench client -target 127.0.0.1:PORT [-server-pid PID] [-workloads ...]
//	    [counts...] [-cpuprofile F]
//	    prints IMPL {...} and one RESULT {json} line per workload (see
//	    bench/client.py for the workloads and their fields).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	service      = "grpcgo.bench.Bench"
	unaryMethod  = "/" + service + "/Unary"
	sstreamPath  = "/" + service + "/ServerStream"
	cstreamPath  = "/" + service + "/ClientStream"
	bidiPath     = "/" + service + "/Bidi"
	mib          = 1 << 20
	clkTck       = 100 // USER_HZ on Linux
	startTimeout = 30 * time.Second
)

// rawCodec passes message bytes through untouched ([]byte out, *[]byte in).
// Its name keeps the ordinary application/grpc+proto content-type.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	switch m := v.(type) {
	case []byte:
		return m, nil
	case *[]byte:
		return *m, nil
	}
	return nil, fmt.Errorf("gobench: cannot marshal %T", v)
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	p, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("gobench: cannot unmarshal into %T", v)
	}
	*p = append((*p)[:0], data...)
	return nil
}

// --- Blob payloads (bench/benchproto.py) ---------------------------------

func varint(n int) []byte {
	var out []byte
	for {
		b := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

func wrap(data []byte) []byte {
	return append(append([]byte{0x0a}, varint(len(data))...), data...)
}

// blob is a serialized Blob of exactly size bytes (as benchproto.blob).
func blob(size int) []byte {
	for n := size - 2; n >= 0 && n > size-12; n-- {
		if 1+len(varint(n))+n == size {
			return wrap([]byte(strings.Repeat("x", n)))
		}
	}
	for n := size - 3; n >= 0; n-- {
		if 2+len(varint(n))+n == size {
			l := varint(n)
			l[len(l)-1] |= 0x80
			l = append(l, 0)
			return append(append([]byte{0x0a}, l...), []byte(strings.Repeat("x", n))...)
		}
	}
	panic("blob: size too small")
}

func unwrap(m []byte) ([]byte, error) {
	if len(m) == 0 {
		return nil, nil
	}
	if m[0] != 0x0a {
		return nil, errors.New("not a Blob")
	}
	n, shift, i := 0, 0, 1
	for {
		if i >= len(m) {
			return nil, errors.New("truncated Blob")
		}
		b := m[i]
		n |= int(b&0x7f) << shift
		i++
		if b&0x80 == 0 {
			break
		}
		shift += 7
	}
	if i+n > len(m) {
		return nil, errors.New("truncated Blob")
	}
	return m[i : i+n], nil
}

func announce() {
	info, _ := json.Marshal(map[string]string{"impl": "grpc-go", "version": grpc.Version, "file": os.Args[0]})
	fmt.Printf("IMPL %s\n", info)
}

// --- server ----------------------------------------------------------------

type benchServer struct{}

func unaryHandler(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	var req []byte
	if err := dec(&req); err != nil {
		return nil, err
	}
	return onPool(req), nil
}

// pool is -pool's threads: goroutines locked to their OS threads, as the
// Python threads of a binding's thread pool are; nil: handlers answer on
// their own goroutines. An experiment for bench/floors.py: the least a
// binding that runs handlers on threads of a pool pays for that hand-off,
// with no Python at all.
var pool chan poolJob

type poolJob struct {
	req   []byte
	reply chan []byte
}

func startPool(n int) {
	pool = make(chan poolJob)
	for range n {
		go func() {
			runtime.LockOSThread()
			for j := range pool {
				j.reply <- j.req
			}
		}()
	}
}

// onPool echoes req through a pool thread when -pool is set.
func onPool(req []byte) []byte {
	if pool == nil {
		return req
	}
	reply := make(chan []byte, 1)
	pool <- poolJob{req, reply}
	return <-reply
}

func serverStream(_ any, s grpc.ServerStream) error {
	var req []byte
	if err := s.RecvMsg(&req); err != nil {
		return err
	}
	data, err := unwrap(req)
	if err != nil {
		return err
	}
	var count, size int
	if _, err := fmt.Sscanf(string(data), "%d %d", &count, &size); err != nil {
		return err
	}
	msg := blob(size)
	for range count {
		if err := s.SendMsg(msg); err != nil {
			return err
		}
	}
	return nil
}

func clientStream(_ any, s grpc.ServerStream) error {
	count := 0
	var req []byte
	for {
		if err := s.RecvMsg(&req); err == io.EOF {
			break
		} else if err != nil {
			return err
		}
		count++
	}
	return s.SendMsg(wrap([]byte(strconv.Itoa(count))))
}

func bidi(_ any, s grpc.ServerStream) error {
	for {
		// A fresh buffer each time: the transport may still be writing the
		// previous one when SendMsg returns.
		var req []byte
		if err := s.RecvMsg(&req); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
		if err := s.SendMsg(onPool(req)); err != nil {
			return err
		}
	}
}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: service,
	HandlerType: (*any)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Unary", Handler: unaryHandler}},
	Streams: []grpc.StreamDesc{
		{StreamName: "ServerStream", Handler: serverStream, ServerStreams: true},
		{StreamName: "ClientStream", Handler: clientStream, ClientStreams: true},
		{StreamName: "Bidi", Handler: bidi, ServerStreams: true, ClientStreams: true},
	},
	Metadata: "bench/bench.proto",
}

// windowHelp documents -window: grpcgo's engine uses 4 MiB per stream and
// 16 MiB per connection; grpc-go's default starts at 64 KiB and grows by
// bandwidth-delay estimation.
const windowHelp = "fixed flow-control window per stream in bytes (4x per connection); 0: grpc-go's default"

func runServer(args []string) {
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	maxSeconds := fs.Float64("max-seconds", 1800, "stop after this many seconds")
	cpuprofile := fs.String("cpuprofile", "", "write a Go CPU profile here")
	window := fs.Int("window", 0, windowHelp)
	workers := fs.Int("workers", 0, "grpc.NumStreamWorkers (grpcgo's engine uses 16); 0: a goroutine per stream")
	poolN := fs.Int("pool", 0, "answer unary and bidi requests on this many goroutines locked to OS threads (a binding's thread pool); 0: on the handler's goroutine")
	_ = fs.Parse(args)
	if *poolN > 0 {
		startPool(*poolN)
	}

	announce()
	stopProfile := startProfile(*cpuprofile)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatalf("listen: %v", err)
	}
	sopts := []grpc.ServerOption{grpc.ForceServerCodec(rawCodec{})}
	if *window > 0 {
		sopts = append(sopts, grpc.InitialWindowSize(int32(*window)), grpc.InitialConnWindowSize(int32(4**window)))
	}
	if *workers > 0 {
		sopts = append(sopts, grpc.NumStreamWorkers(uint32(*workers)))
	}
	s := grpc.NewServer(sopts...)
	s.RegisterService(&serviceDesc, benchServer{})
	go func() { _ = s.Serve(lis) }()
	fmt.Printf("PORT %d\n", lis.Addr().(*net.TCPAddr).Port)

	stop := make(chan struct{}, 3)
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); stop <- struct{}{} }()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sigs; stop <- struct{}{} }()
	select {
	case <-stop:
	case <-time.After(time.Duration(*maxSeconds * float64(time.Second))):
	}
	s.Stop()
	stopProfile()
}

func startProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err != nil {
		log.Fatalf("cpuprofile: %v", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		log.Fatalf("cpuprofile: %v", err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }
}

// --- client ------------------------------------------------------------------

type options struct {
	serverPID                              int
	size, warmup, unaryN, unary8N, threads int
	streamN, bidiN, bigN, bigSize, loadN   int
	// lockThread pins each calling goroutine to its OS thread, as a Python
	// thread calling into the engine is: an experiment for profiling.
	lockThread bool
}

type result map[string]any

func selfCPU() float64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

func procCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return math.NaN()
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / clkTck
}

type cpuMeter struct {
	pid    int
	c0, s0 float64
}

func (m *cpuMeter) start() {
	m.c0 = selfCPU()
	if m.pid > 0 {
		m.s0 = procCPU(m.pid)
	}
}

func (m *cpuMeter) stop(calls int, r result) {
	r["client_cpu_s_per_10k"] = (selfCPU() - m.c0) * 10000 / float64(calls)
	if m.pid > 0 {
		r["server_cpu_s_per_10k"] = (procCPU(m.pid) - m.s0) * 10000 / float64(calls)
	}
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := max(1, int(math.Ceil(p*float64(len(sorted))/100)))
	return sorted[min(rank, len(sorted))-1]
}

func invoke(cc *grpc.ClientConn, msg []byte, resp *[]byte) error {
	return cc.Invoke(context.Background(), unaryMethod, msg, resp)
}

func wUnary(cc *grpc.ClientConn, o options) (result, error) {
	if o.lockThread {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
	}
	msg := blob(o.size)
	var resp []byte
	for range o.warmup {
		if err := invoke(cc, msg, &resp); err != nil {
			return nil, err
		}
	}
	lat := make([]time.Duration, o.unaryN)
	m := cpuMeter{pid: o.serverPID}
	m.start()
	start := time.Now()
	for i := range lat {
		t0 := time.Now()
		if err := invoke(cc, msg, &resp); err != nil {
			return nil, err
		}
		lat[i] = time.Since(t0)
	}
	el := time.Since(start).Seconds()
	r := result{"calls": o.unaryN, "seconds": el, "calls_per_s": float64(o.unaryN) / el}
	m.stop(o.unaryN, r)
	slices.Sort(lat)
	r["p50_us"] = float64(percentile(lat, 50)) / 1e3
	r["p99_us"] = float64(percentile(lat, 99)) / 1e3
	return r, nil
}

func threaded(cc *grpc.ClientConn, o options, n, threads int, m *cpuMeter) (result, error) {
	msg := blob(o.size)
	threads = max(1, threads)
	warm := max(1, o.warmup/threads)
	var ready, done sync.WaitGroup
	gate := make(chan struct{})
	errs := make(chan error, threads)
	for i := range threads {
		count := n / threads
		if i < n%threads {
			count++
		}
		ready.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			if o.lockThread {
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
			}
			var resp []byte
			for range warm {
				if err := invoke(cc, msg, &resp); err != nil {
					errs <- err
				}
			}
			ready.Done()
			<-gate
			for range count {
				if err := invoke(cc, msg, &resp); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	ready.Wait()
	if m != nil {
		m.start()
	}
	start := time.Now()
	close(gate)
	done.Wait()
	el := time.Since(start).Seconds()
	select {
	case err := <-errs:
		return nil, err
	default:
	}
	r := result{"calls": n, "threads": threads, "seconds": el, "calls_per_s": float64(n) / el}
	if m != nil {
		m.stop(n, r)
	}
	return r, nil
}

func serverStreamCall(cc *grpc.ClientConn, count, size int) (int, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, sstreamPath)
	if err != nil {
		return 0, err
	}
	if err := s.SendMsg(wrap(fmt.Appendf(nil, "%d %d", count, size))); err != nil {
		return 0, err
	}
	if err := s.CloseSend(); err != nil {
		return 0, err
	}
	got := 0
	var m []byte
	for {
		if err := s.RecvMsg(&m); err == io.EOF {
			return got, nil
		} else if err != nil {
			return got, err
		}
		got++
	}
}

func wSstream(cc *grpc.ClientConn, o options) (result, error) {
	if _, err := serverStreamCall(cc, max(1, o.warmup), o.size); err != nil {
		return nil, err
	}
	start := time.Now()
	got, err := serverStreamCall(cc, o.streamN, o.size)
	el := time.Since(start).Seconds()
	if err != nil {
		return nil, err
	}
	if got != o.streamN {
		return nil, fmt.Errorf("sstream: got %d messages, wanted %d", got, o.streamN)
	}
	return result{"messages": o.streamN, "seconds": el, "msgs_per_s": float64(o.streamN) / el}, nil
}

func clientStreamCall(cc *grpc.ClientConn, count, size int) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ClientStreams: true}, cstreamPath)
	if err != nil {
		return err
	}
	msg := blob(size)
	for range count {
		if err := s.SendMsg(msg); err != nil {
			return err
		}
	}
	if err := s.CloseSend(); err != nil {
		return err
	}
	var resp []byte
	if err := s.RecvMsg(&resp); err != nil {
		return err
	}
	if data, _ := unwrap(resp); string(data) != strconv.Itoa(count) {
		return fmt.Errorf("cstream: the server counted %q, wanted %d", data, count)
	}
	return nil
}

func wCstream(cc *grpc.ClientConn, o options) (result, error) {
	if err := clientStreamCall(cc, max(1, o.warmup), o.size); err != nil {
		return nil, err
	}
	start := time.Now()
	err := clientStreamCall(cc, o.streamN, o.size)
	el := time.Since(start).Seconds()
	if err != nil {
		return nil, err
	}
	return result{"messages": o.streamN, "seconds": el, "msgs_per_s": float64(o.streamN) / el}, nil
}

func pingPong(cc *grpc.ClientConn, n, size int) (float64, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	s, err := cc.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, bidiPath)
	if err != nil {
		return 0, err
	}
	msg := blob(size)
	var resp []byte
	for range n {
		if err := s.SendMsg(msg); err != nil {
			return 0, err
		}
		if err := s.RecvMsg(&resp); err != nil {
			return 0, err
		}
	}
	el := time.Since(start).Seconds()
	if err := s.CloseSend(); err != nil {
		return 0, err
	}
	if err := s.RecvMsg(&resp); err != io.EOF {
		return 0, fmt.Errorf("bidi: wanted the end of the stream, got %v", err)
	}
	return el, nil
}

func wBidi(cc *grpc.ClientConn, o options) (result, error) {
	if _, err := pingPong(cc, max(1, o.warmup), o.size); err != nil {
		return nil, err
	}
	el, err := pingPong(cc, o.bidiN, o.size)
	if err != nil {
		return nil, err
	}
	return result{"round_trips": o.bidiN, "seconds": el, "rt_per_s": float64(o.bidiN) / el}, nil
}

func wBig(cc *grpc.ClientConn, o options) (result, error) {
	msg := blob(o.bigSize)
	var resp []byte
	for range 2 {
		if err := invoke(cc, msg, &resp); err != nil {
			return nil, err
		}
	}
	start := time.Now()
	for range o.bigN {
		if err := invoke(cc, msg, &resp); err != nil {
			return nil, err
		}
	}
	el := time.Since(start).Seconds()
	if len(resp) != len(msg) {
		return nil, errors.New("big: the echo differs from the request")
	}
	moved := 2 * float64(o.bigN) * float64(len(msg)) / mib
	return result{"calls": o.bigN, "bytes": len(msg), "seconds": el, "mib_per_s": moved / el}, nil
}

func runClient(args []string) {
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	target := fs.String("target", "", "host:port of the server")
	var o options
	fs.IntVar(&o.serverPID, "server-pid", 0, "the server's pid, to measure its CPU")
	workloads := fs.String("workloads", "unary,unary8,sstream,cstream,bidi,big", "comma-separated workloads")
	fs.IntVar(&o.size, "size", 16, "message size in bytes")
	fs.IntVar(&o.warmup, "warmup", 200, "warm-up calls or messages")
	fs.IntVar(&o.unaryN, "unary-n", 10000, "ping-pong unary calls")
	fs.IntVar(&o.unary8N, "unary8-n", 10000, "unary calls across -threads")
	fs.IntVar(&o.threads, "threads", 8, "client threads (goroutines) for unary8 and load")
	fs.IntVar(&o.streamN, "stream-n", 100000, "messages per streaming call")
	fs.IntVar(&o.bidiN, "bidi-n", 10000, "bidi round trips")
	fs.IntVar(&o.bigN, "big-n", 100, "large unary calls")
	fs.IntVar(&o.bigSize, "big-size", mib, "large message size")
	fs.IntVar(&o.loadN, "load-n", 100000, "unary calls for the load workload")
	fs.BoolVar(&o.lockThread, "lock-os-thread", false,
		"run each unary caller locked to its OS thread, as Python threads are (experiment)")
	cpuprofile := fs.String("cpuprofile", "", "write a Go CPU profile here")
	window := fs.Int("window", 0, windowHelp)
	_ = fs.Parse(args)
	if *target == "" {
		log.Fatal("client: -target is required")
	}

	announce()
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.ForceCodec(rawCodec{})),
	}
	if *window > 0 {
		dopts = append(dopts, grpc.WithInitialWindowSize(int32(*window)), grpc.WithInitialConnWindowSize(int32(4**window)))
	}
	cc, err := grpc.NewClient(*target, dopts...)
	if err != nil {
		log.Fatalf("client: %v", err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	var resp []byte
	if err := cc.Invoke(ctx, unaryMethod, blob(o.size), &resp, grpc.WaitForReady(true)); err != nil {
		log.Fatalf("client: the server did not answer: %v", err)
	}

	stopProfile := startProfile(*cpuprofile)
	defer stopProfile()
	for _, name := range strings.Split(*workloads, ",") {
		var r result
		switch name {
		case "":
			continue
		case "unary":
			r, err = wUnary(cc, o)
		case "unary8":
			r, err = threaded(cc, o, o.unary8N, o.threads, &cpuMeter{pid: o.serverPID})
		case "load":
			r, err = threaded(cc, o, o.loadN, o.threads, nil)
		case "sstream":
			r, err = wSstream(cc, o)
		case "cstream":
			r, err = wCstream(cc, o)
		case "bidi":
			r, err = wBidi(cc, o)
		case "big":
			r, err = wBig(cc, o)
		default:
			log.Fatalf("client: unknown workload %q", name)
		}
		if err != nil {
			stopProfile()
			log.Fatalf("client: %s: %v", name, err)
		}
		r["workload"] = name
		r["impl"] = "grpc-go"
		line, _ := json.Marshal(r)
		fmt.Printf("RESULT %s\n", line)
	}
}

func main() {
	log.SetFlags(0)
	log.SetPrefix("gobench: ")
	if len(os.Args) < 2 {
		log.Fatal("usage: gobench server|client [flags]")
	}
	switch os.Args[1] {
	case "server":
		runServer(os.Args[2:])
	case "client":
		runClient(os.Args[2:])
	default:
		log.Fatalf("unknown command %q (server or client)", os.Args[1])
	}
}
