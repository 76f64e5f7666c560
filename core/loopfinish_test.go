//go:build grpcgo_patched

package core

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// An event loop's thread finishes a quick call itself (FinishNoWait):
// the response and the status are queued, and written to the socket there
// when the call is alone on its connection, with no goroutine started for
// the call's end. Anything that could wait (responses queued before it, a
// large or compressed last response, large trailers) goes to a goroutine
// as Finish does. These pin which path each finish takes (LoopFinishes,
// the server's inline counter), that the client gets the same thing either
// way, and that FinishNoWait never waits.

// finishNoWait is FinishNoWait, failing the test if it took long: it must
// never wait (a generous bound only a wait breaks).
func finishNoWait(t *testing.T, c *ServerCall, code codes.Code, details string, last Msg) error {
	start := time.Now()
	err := c.FinishNoWait(code, details, last)
	if d := time.Since(start); d > longWait/2 {
		t.Errorf("FinishNoWait took %v", d)
	}
	return err
}

func TestFinishNoWaitQuickEndsOnCaller(t *testing.T) {
	if !aioFinishHere {
		t.Skip("GRPCGO_AIO_FINISH_HERE=0")
	}
	checkLeaks(t)
	_, target := newTestServer(t, func(c *ServerCall) {
		m, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, "no request", nil)
			return
		}
		req := string(m.Materialize())
		m.Free()
		c.SetTrailer(metadata.Pairs("id", req))
		switch {
		case strings.HasPrefix(req, "e"): // an error status, no response
			finishNoWait(t, c, codes.NotFound, "nf-"+req, nil)
		case strings.HasPrefix(req, "h"): // headers sent first
			c.SendHeader(metadata.Pairs("hid", req))
			finishNoWait(t, c, codes.OK, "", BytesMsg([]byte("r-"+req)))
		default:
			finishNoWait(t, c, codes.OK, "", BytesMsg([]byte("r-"+req)))
		}
	})
	ch := dial(t, target)
	loop := LoopFinishes()
	inline, _ := ServerInlineWrites()
	const n = 60
	for i := 0; i < n; i++ {
		req := []string{"p", "e", "h"}[i%3] + strconv.Itoa(i)
		resp, header, st := ch.Unary(spec("/x/quick"), BytesMsg([]byte(req)))
		if st.Trailer.Get("id")[0] != req {
			t.Fatalf("call %s: trailer %v", req, st.Trailer)
		}
		switch req[0] {
		case 'e':
			wantStatus(t, st, codes.NotFound, "nf-"+req)
		case 'h':
			wantCode(t, st, codes.OK)
			if got := header.Get("hid"); len(got) != 1 || got[0] != req {
				t.Fatalf("call %s: header %v", req, header)
			}
			fallthrough
		default:
			wantCode(t, st, codes.OK)
			wantBytes(t, "response", resp.Materialize(), []byte("r-"+req))
			resp.Free()
		}
	}
	if got := LoopFinishes() - loop; got != n {
		t.Fatalf("%d of %d quick calls finished on their finisher's goroutine", got, n)
	}
	// One call at a time: alone on its connection, and grpc-go's writer
	// idle (but for the rounds where it is still busy with a window update,
	// the new stream or the headers sent first). On a loaded machine the
	// writer may still be awake for every one of the n calls: then paced
	// calls, each after a pause that lets the writer park, until one
	// writes its frames itself (a bound only a broken inline write meets).
	after, _ := ServerInlineWrites()
	t.Logf("written to the socket by the finisher: %d of %d", after-inline, n)
	for extra := 0; after == inline && extra < 300; extra++ {
		time.Sleep(2 * time.Millisecond)
		req := "p" + strconv.Itoa(n+extra)
		resp, _, st := ch.Unary(spec("/x/quick"), BytesMsg([]byte(req)))
		wantCode(t, st, codes.OK)
		wantBytes(t, "response", resp.Materialize(), []byte("r-"+req))
		resp.Free()
		after, _ = ServerInlineWrites()
		if after != inline {
			t.Logf("paced calls until one wrote inline: %d", extra+1)
		}
	}
	if after == inline {
		t.Fatal("no quick finish wrote its frames on its finisher's goroutine")
	}
}

func TestFinishNoWaitSlowPathsGoToAGoroutine(t *testing.T) {
	checkLeaks(t)
	big := bytes.Repeat([]byte{'b'}, quickLast+1)
	compressible := bytes.Repeat([]byte{'z'}, 2000)
	largeTrailer := strings.Repeat("t", quickTrailer+1000)
	_, target := newTestServer(t, func(c *ServerCall) {
		m, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, "no request", nil)
			return
		}
		m.Free()
		switch c.Method {
		case "/x/big": // larger than a quick finish takes
			finishNoWait(t, c, codes.OK, "", BytesMsg(big))
		case "/x/gzip": // compressed
			if err := c.SetCompressor("gzip"); err != nil {
				t.Error(err)
			}
			finishNoWait(t, c, codes.OK, "", BytesMsg(compressible))
		case "/x/queued": // responses queued before the last one
			for i := 0; i < 3; i++ {
				if !put(c, []byte(fmt.Sprint("s", i))) {
					t.Error("Put failed")
				}
			}
			finishNoWait(t, c, codes.OK, "", BytesMsg([]byte("last")))
		case "/x/trailer": // a header block that may not fit the writer's buffer
			c.SetTrailer(metadata.Pairs("big", largeTrailer))
			finishNoWait(t, c, codes.OK, "", BytesMsg([]byte("small")))
		}
	})
	// The large trailer is over the client's default soft limit (8 KiB).
	ch := dial(t, target, Option{Key: "grpc.max_metadata_size", Int: 64 << 10, IsInt: true},
		Option{Key: "grpc.absolute_max_metadata_size", Int: 64 << 10, IsInt: true})
	loop := LoopFinishes()

	resp, _, st := ch.Unary(spec("/x/big"), BytesMsg([]byte("q")))
	wantCode(t, st, codes.OK)
	wantBytes(t, "big response", resp.Materialize(), big)
	resp.Free()

	gz := spec("/x/gzip")
	gz.Compressor = "gzip" // the client accepts it
	resp, _, st = ch.Unary(gz, BytesMsg([]byte("q")))
	wantCode(t, st, codes.OK)
	wantBytes(t, "compressed response", resp.Materialize(), compressible)
	resp.Free()

	s := ch.StartStream(spec("/x/queued"), true, true, nil, false)
	sendAll(t, s, []byte("q"))
	s.CloseSend()
	if got, want := drain(t, s), msgs("s0", "s1", "s2", "last"); !equalMsgs(got, want) {
		t.Fatalf("streamed responses %q, want %q", got, want)
	}
	wantCode(t, ended(t, s), codes.OK)

	resp, _, st = ch.Unary(spec("/x/trailer"), BytesMsg([]byte("q")))
	wantCode(t, st, codes.OK)
	wantBytes(t, "response", resp.Materialize(), []byte("small"))
	resp.Free()
	if got := st.Trailer.Get("big"); len(got) != 1 || got[0] != largeTrailer {
		t.Fatalf("large trailer lost: %d values", len(got))
	}

	if got := LoopFinishes() - loop; got != 0 {
		t.Fatalf("%d finishes that could wait ended on their finisher's goroutine", got)
	}
}

// A call that dies (deadline, cancel) before, while or after it is
// finished ends exactly once, with the status of whichever came first,
// and is counted out; FinishNoWait on a dead call returns at once.
func TestFinishNoWaitRacesTheCallsDeath(t *testing.T) {
	checkLeaks(t)
	reached := make(chan string, 2)
	_, target := newTestServer(t, func(c *ServerCall) {
		m, err := c.RecvOne()
		if err != nil {
			c.Finish(codes.Internal, "no request", nil)
			return
		}
		req := string(m.Materialize())
		m.Free()
		if strings.HasPrefix(req, "dead") {
			reached <- req
			<-c.Context().Done()
			finishNoWait(t, c, codes.OK, "", BytesMsg([]byte("late")))
			return
		}
		// Racing the deadline: the call may die at any point of this.
		d, _ := strconv.Atoi(req)
		time.Sleep(time.Duration(d%400) * time.Microsecond)
		finishNoWait(t, c, codes.OK, "", BytesMsg([]byte("r")))
	})
	ch := dial(t, target)
	sp := spec("/x/dead")
	sp.Timeout = 50 * time.Millisecond
	_, _, st := ch.Unary(sp, BytesMsg([]byte("dead-deadline")))
	wantCode(t, st, codes.DeadlineExceeded)
	recvChan(t, "the first call at the server", reached)

	call := ch.StartUnary(spec("/x/dead"), BytesMsg([]byte("dead-cancel")))
	recvChan(t, "the second call at the server", reached)
	call.Cancel()
	closed(t, "the cancelled call", call.Done)
	wantCode(t, call.Status, codes.Canceled)

	for i := 0; i < 200; i++ {
		sp := spec("/x/race")
		sp.Timeout = time.Duration(100+i%5*100) * time.Microsecond
		resp, _, st := ch.Unary(sp, BytesMsg([]byte(strconv.Itoa(i*37))))
		switch st.Code {
		case codes.OK:
			wantBytes(t, "response", resp.Materialize(), []byte("r"))
			resp.Free()
		case codes.DeadlineExceeded:
		default:
			t.Fatalf("call %d: %v", i, st)
		}
	}
	// The server still serves, quick finishes on their finisher.
	loop := LoopFinishes()
	resp, _, st := ch.Unary(spec("/x/after"), BytesMsg([]byte("1")))
	wantCode(t, st, codes.OK)
	resp.Free()
	if LoopFinishes() == loop {
		t.Fatal("the call after the races was not finished on its finisher")
	}
	waitFor(t, "every server call counted out", func() bool { return ReadCounters().ServerCalls == 0 })
}
