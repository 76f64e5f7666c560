package core

import (
	"bytes"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
)

// TestStreamDirectAndQueuedWritesKeepOrder: requests written by the
// calling goroutine (SendNow, SendNowMany: on the sending thread, in the
// transport writer's place when it is idle, streaminline.go) and queued to
// the stream's sender (Offer, Put) interleave on many streams of one
// channel at once, small (written inline) and larger than the inline
// bound (the writer's), with pauses that let the writer go idle; every
// stream's echo comes back complete and in order.
func TestStreamDirectAndQueuedWritesKeepOrder(t *testing.T) {
	forBackends(t, func(t *testing.T, ch *Channel) {
		const streams, n = 6, 240
		msg := func(s, i int) []byte {
			head := []byte(fmt.Sprintf("%d/%d:", s, i))
			if i%7 == 3 {
				return append(head, bytes.Repeat([]byte{'L'}, 6<<10)...) // past the inline bound
			}
			return head
		}
		var wg sync.WaitGroup
		errs := make(chan error, streams)
		for sn := 0; sn < streams; sn++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := ch.StartStream(spec(mBidi), true, true, nil, false)
				var got [][]byte
				readDone := run(func() { got = drain(t, s) })
				waitFor(t, "the stream to open", s.CanSendNow)
				for i := 0; i < n; {
					switch i % 5 {
					case 0, 1: // direct, one at a time (queued if not idle)
						if sent, _ := s.SendNow(BytesMsg(msg(sn, i))); !sent {
							sendAll(t, s, msg(sn, i))
						}
						i++
					case 2: // direct, a batch of up to three
						batch := []Msg{}
						for j := i; j < min(i+3, n); j++ {
							batch = append(batch, BytesMsg(msg(sn, j)))
						}
						k, _ := s.SendNowMany(batch)
						for j := k; j < len(batch); j++ {
							sendAll(t, s, batch[j].Materialize())
						}
						i += len(batch)
					default: // queued
						sendAll(t, s, msg(sn, i))
						i++
					}
					if i%40 == 0 {
						time.Sleep(time.Millisecond) // the writer goes idle
					}
				}
				s.CloseSend()
				closed(t, "reader", readDone)
				if len(got) != n {
					errs <- fmt.Errorf("stream %d: %d responses, want %d", sn, len(got), n)
					return
				}
				for i, m := range got {
					if !bytes.Equal(m, msg(sn, i)) {
						errs <- fmt.Errorf("stream %d: response %d = %q", sn, i, trunc(m))
						return
					}
				}
				if st := ended(t, s); st.Code != codes.OK {
					errs <- fmt.Errorf("stream %d: %v", sn, st.Code)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})
}
