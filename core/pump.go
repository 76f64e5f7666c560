package core

import (
	"errors"
	"os"
	"sync"
	"sync/atomic"
)

// msgStream is what grpc-go's client and server streams share.
type msgStream interface {
	SendMsg(m any) error
	RecvMsg(m any) error
}

// queueDepth bounds how many messages a stream buffers in each direction.
// Buffering lets the binding hand over and take several messages per
// crossing without waiting for the network each time.
const queueDepth = 64

// A deep receive queue also takes small messages (smallMsgMax bytes at
// most) beyond queueDepth, up to smallQueueDepth in all: a stream of small
// messages then crosses to Python in batches of up to 256 (the readers
// take that many at once), while larger ones still wait once 64 are
// queued (the 192 more hold 24 KiB at most). Its reader must call took
// after every take from the first on (a large message beyond 64 waits for
// that). The binding's readers all do, and it sets ReadersTake;
// GRPCGO_STREAM_DEEP=0 keeps every queue at queueDepth (A/B runs;
// pyext's holds read it too).
const (
	smallQueueDepth = 256
	smallMsgMax     = 128
)

// A sender's queue is deep the same way (StreamDeep): queueDepth messages
// of any size, small ones beyond that up to smallQueueDepth. A batch of
// small messages written at once (a grpc.aio writer's, up to 256) is then
// queued whole, with no operation left waiting for room, and the writer
// goes on while the goroutine writes; large ones still wait at 64.

// wakeBatch bounds how many messages a receiver queues before it wakes
// its reader while more are already received whole (see run): the reader
// then starts on them while the rest are read.
const wakeBatch = 64

// StreamDeep reports whether deep queues are on (GRPCGO_STREAM_DEEP).
var StreamDeep = os.Getenv("GRPCGO_STREAM_DEEP") != "0"

// ReadersTake is set (before the first stream) by a binding whose readers
// of Responses() and Requests() call TookResponses / TookRequests after
// every take: its receive queues are then deep (StreamDeep).
var ReadersTake bool

// receiver reads a stream ahead into a bounded queue. The queue is closed
// when the stream ends; err (read only after the close) holds the reason,
// io.EOF on a clean end.
type receiver struct {
	q    chan Msg
	err  error
	stop chan struct{} // closed when nobody will read the queue any more
	once sync.Once
	// waiter, if set, runs once on the reading goroutine after the next
	// message is queued or the queue closes (see setWaiter).
	waiter atomic.Pointer[func()]
	// A reader that calls took after taking messages (the binding's)
	// lets run, once the queue is full, wait until half of it was taken
	// (waitRoom) instead of being woken for every message taken.
	coop atomic.Bool
	// handoff, if set, is asked after each message queued: true ends run
	// there, the queue left open, the reading handed to the stream's
	// reader itself (a grpc.aio client stream's ping-pong, loopread.go).
	handoff func() bool
	full    atomic.Bool   // run waits in waitRoom
	low     atomic.Int32  // ... until this many are queued at most
	room    chan struct{} // took's signal to waitRoom (1 deep)
}

func newReceiver() *receiver { return newReceiverFor(StreamDeep && ReadersTake) }

// newReceiverFor makes a receiver, deep (its reader calls took from the
// first take on) or not (64 messages; took optional).
func newReceiverFor(deep bool) *receiver {
	r := &receiver{stop: make(chan struct{}), room: make(chan struct{}, 1)}
	if deep {
		r.q = make(chan Msg, smallQueueDepth)
		r.coop.Store(true)
	} else {
		r.q = make(chan Msg, queueDepth)
	}
	return r
}

// fits reports whether m may be queued on q now, a receiver's or a
// sender's: below queueDepth any message, beyond it (up to the channel's
// capacity) only a small one.
func fits(q chan Msg, m Msg) bool {
	n := len(q)
	return n < queueDepth || n < cap(q) && m.Len() <= smallMsgMax
}

// run reads until the stream ends, on the calling goroutine. before runs
// first; after runs once the stream ended, before the queue closes, so
// whatever it sets is visible to whoever sees the close.
func (r *receiver) run(s msgStream, before func(), after func(error)) (handedOff bool) {
	defer r.wake()
	defer func() {
		if !handedOff {
			close(r.q)
		}
	}()
	if before != nil {
		before()
	}
	for {
		var m Msg
		if err := s.RecvMsg(&m); err != nil {
			r.err = err
			if after != nil {
				after(err)
			}
			return
		}
		m = emptyIfNil(m)
		if fits(r.q, m) {
			// Only run sends on q, so there is room.
			r.q <- m
			// The next message already here whole (the rest of a frame
			// that held several: a batch the peer sent at once) is
			// queued before the reader is woken, up to wakeBatch: one
			// wake-up per batch rather than per message. A message that
			// came alone (a ping-pong) wakes it at once, as before. With
			// no waiter set (a reader blocked on the queue itself) there
			// is nobody to wake and nothing to ask: asking the stream
			// takes its lock, ~10% of a sync reader's messages/s.
			if r.waiter.Load() != nil && (len(r.q) >= wakeBatch || !nextBuffered(s)) {
				r.wake()
			}
			if r.handoff != nil && r.handoff() {
				// The stream's reader reads on directly (loopread.go):
				// this returns between messages, the queue left open.
				return true
			}
			continue
		}
		// The reader must see what is queued before this waits for room.
		r.wake()
		// A reader that calls took: wait until half was taken (a large
		// message in a deep queue: half of queueDepth).
		ok := !r.coop.Load() || r.waitRoom(m)
		if ok {
			select {
			case r.q <- m:
				r.wake()
				continue
			case <-r.stop:
			}
		}
		r.err = errAbandoned
		if after != nil {
			after(r.err)
		}
		return
	}
}

// waitRoom waits until the reader took at least half of a full queue (or
// the queue was abandoned: false): half of queueDepth for a large message
// m, half of the channel for a small one. Without it, a full queue's
// sender is woken (a goroutine made ready, often a thread woken) for
// every message the reader takes, however many it takes at once.
func (r *receiver) waitRoom(m Msg) bool {
	low := cap(r.q) / 2
	if m.Len() > smallMsgMax {
		low = min(low, queueDepth/2)
	}
	r.low.Store(int32(low))
	for {
		r.full.Store(true)
		if len(r.q) <= low {
			r.full.Store(false)
			return true
		}
		select {
		case <-r.room:
		case <-r.stop:
			return false
		}
	}
}

// took is called by a reader after it took messages from the queue: run
// may then wait for room in halves (see waitRoom). A reader that calls it
// once must call it after every take.
func (r *receiver) took() {
	if !r.coop.Load() {
		r.coop.Store(true)
	}
	if r.full.Load() && len(r.q) <= int(r.low.Load()) {
		select {
		case r.room <- struct{}{}:
		default:
		}
	}
}

// wake runs the waiter, if one is set (once).
func (r *receiver) wake() {
	if w := r.waiter.Swap(nil); w != nil {
		(*w)()
	}
}

// setWaiter makes w run once, on the reading goroutine, after the next
// message is queued or the queue closes, so a reader that found the queue
// empty learns when to look again without a goroutine waiting for it. It
// returns the waiter it replaced (never run, and now never will be). The
// caller looks at the queue again after setting it: a message queued just
// before may have found no waiter.
func (r *receiver) setWaiter(w *func()) (old *func()) { return r.waiter.Swap(w) }

// clearWaiter removes w if it is still set; false if it ran or was replaced.
func (r *receiver) clearWaiter(w *func()) bool { return r.waiter.CompareAndSwap(w, nil) }

// abandon tells the reading goroutine that nobody reads the queue any more.
func (r *receiver) abandon() { r.once.Do(func() { close(r.stop) }) }

// Queue is where received messages appear; it is closed at the end.
func (r *receiver) Queue() <-chan Msg { return r.q }

var errAbandoned = errors.New("stream abandoned")

// sender writes queued messages to a stream from its own goroutine, so that
// handing over a message does not wait for flow control unless the queue is
// full. A nil entry ends the sending side: last() runs (the client's
// half-close) and the goroutine exits.
type sender struct {
	q        chan Msg
	done     chan struct{} // closed when the goroutine has exited
	stop     chan struct{} // closed to abandon whatever is queued
	stopOnce sync.Once
	ended    atomic.Bool
	failed   atomic.Bool

	// A message offered while nothing is queued may be written at once by
	// the caller (sendNow), sparing a wake-up of the goroutine. writing is
	// held around every write, by either; queued counts messages offered
	// to the goroutine and not yet written, so a direct write never
	// overtakes them.
	writing sync.Mutex
	queued  atomic.Int32
	direct  atomic.Pointer[func(Msg) error] // set once the stream is open
	// many, if set (before start), writes several messages in order as one
	// write (grpc.GrpcgoSendMsgs): how many it took (freed or given on),
	// and the stream's error if it failed. Used once direct is set.
	many func([]Msg) (taken int, err error)
	// inline, if set, brackets direct writes: a client stream's messages
	// go out to the socket on the sending thread (streaminline.go).
	inline directInline
	// room, if set, is closed by the goroutine when it next takes from the
	// queue: a large message waits on it while queueDepth are queued and
	// the channel still has room (for small ones only; see fits).
	room atomic.Pointer[chan struct{}]
}

// directInline brackets one or more direct writes made under the
// sender's writing lock (begin before the first, with how many messages
// they carry; end after the last).
type directInline interface {
	begin(n int)
	end()
}

func newSender() *sender {
	depth := queueDepth
	if StreamDeep {
		depth = smallQueueDepth
	}
	return &sender{q: make(chan Msg, depth), done: make(chan struct{}), stop: make(chan struct{})}
}

// roomSignal returns the channel the goroutine closes when it next takes
// from the queue.
func (w *sender) roomSignal() <-chan struct{} {
	for {
		if p := w.room.Load(); p != nil {
			return *p
		}
		ch := make(chan struct{})
		if w.room.CompareAndSwap(nil, &ch) {
			return ch
		}
	}
}

// tookSome tells a large message waiting for room (put) that the
// goroutine took from the queue.
func (w *sender) tookSome() {
	if p := w.room.Swap(nil); p != nil {
		close(*p)
	}
}

// start runs the writing goroutine. open waits for the stream to exist and
// returns nil if it never will.
func (w *sender) start(open func() msgStream, last func() error) {
	w.startWith(func() func(Msg) error {
		s := open()
		if s == nil {
			return nil
		}
		return func(m Msg) error { return s.SendMsg(m) }
	}, last)
}

// startWith is start with a custom send function (nil: the stream never opened).
func (w *sender) startWith(open func() func(Msg) error, last func() error) {
	go func() {
		defer close(w.done)
		defer w.tookSome() // a large message waiting for room looks again
		defer w.dropQueued()
		send := open()
		if send == nil {
			w.failed.Store(true)
			return
		}
		w.direct.Store(&send)
		var batch []Msg
		for {
			select {
			case <-w.stop:
				return
			case m := <-w.q:
				// What else is queued goes with m, in one write, up to
				// the end marker.
				batch = append(batch[:0], m)
				end := m == nil
				for !end && w.many != nil && len(batch) < queueDepth {
					select {
					case m = <-w.q:
						if end = m == nil; !end {
							batch = append(batch, m)
						}
						continue
					default:
					}
					break
				}
				w.tookSome()
				if batch[0] != nil {
					w.writing.Lock()
					if !w.failed.Load() {
						if taken, err := w.writeMany(batch, send); err != nil {
							w.failed.Store(true)
							freeMsgs(batch[taken:])
						}
					} else {
						freeMsgs(batch) // never written: give their buffers back now
					}
					w.writing.Unlock()
					w.queued.Add(-int32(len(batch)))
					clear(batch)
				}
				if end {
					w.writing.Lock()
					if last != nil && !w.failed.Load() {
						last()
					}
					w.writing.Unlock()
					return
				}
			}
		}
	}()
}

// Only small messages are written together: a batch is one copy of its
// messages into one buffer, where a large message goes from its own
// buffers (by reference from 4 KiB on: the transport's vectored writes).
const (
	batchMsgMax   = 2 << 10  // larger messages are written alone
	batchBytesMax = 32 << 10 // the most bytes of messages in one write
)

// writeMany writes ms in order (writing held): each run of small messages
// in one write if the stream can take several at once, the others one by
// one. It returns how many it took (see many).
func (w *sender) writeMany(ms []Msg, send func(Msg) error) (taken int, err error) {
	for taken < len(ms) {
		end, size := taken, 0
		for end < len(ms) && w.many != nil {
			n := ms[end].Len()
			if n > batchMsgMax || size+n > batchBytesMax {
				break
			}
			size += n
			end++
		}
		if end-taken > 1 {
			n, err := w.many(ms[taken:end])
			if taken += n; err != nil {
				return taken, err
			}
			continue
		}
		taken++
		if err := send(ms[taken-1]); err != nil {
			return taken, err
		}
	}
	return taken, nil
}

func freeMsgs(ms []Msg) {
	for _, m := range ms {
		m.Free()
	}
}

// dropQueued gives back the buffers of queued messages nobody will write
// (a lent Python object is released at once, not when collected).
func (w *sender) dropQueued() {
	for {
		select {
		case m := <-w.q:
			m.Free()
		default:
			return
		}
	}
}

// offer queues m without waiting. It reports whether m was queued and
// whether the stream can still take messages at all.
func (w *sender) offer(m Msg) (queued, alive bool) {
	if w.dead() {
		return false, false
	}
	if !fits(w.q, m) {
		return false, true
	}
	w.queued.Add(1)
	select {
	case w.q <- m:
		return true, w.afterQueue()
	case <-w.stop:
		w.queued.Add(-1)
		return false, false
	default:
		w.queued.Add(-1)
		return false, true
	}
}

// afterQueue covers a message queued while the sender was being abandoned
// (a select picks at random between a free slot and the stop): the
// goroutine may have drained the queue already, so drain it here too. It
// reports whether the stream is still alive.
func (w *sender) afterQueue() bool {
	select {
	case <-w.stop:
		w.dropQueued()
		return false
	default:
		return true
	}
}

// idle reports whether sendNow is likely to write at once.
func (w *sender) idle() bool {
	return w.direct.Load() != nil && w.queued.Load() == 0 && !w.dead()
}

// sendNow writes m on the calling goroutine if nothing is queued before
// it: sent reports whether it did (the result of the write is then the
// stream's, as for a queued message), alive whether the stream can still
// take messages. It may wait for flow control.
func (w *sender) sendNow(m Msg) (sent, alive bool) {
	send := w.direct.Load()
	if send == nil || w.queued.Load() != 0 || !w.writing.TryLock() {
		return false, !w.dead()
	}
	defer w.writing.Unlock()
	if w.queued.Load() != 0 || w.dead() {
		return false, !w.dead()
	}
	if w.inline != nil {
		w.inline.begin(1)
		defer w.inline.end()
	}
	if err := (*send)(m); err != nil {
		w.failed.Store(true)
		return true, false
	}
	return true, true
}

// sendNowIf is sendNow for a caller that must not wait at all (an event
// loop's thread): it writes nothing unless ok, asked under the writing
// lock, says the write cannot wait.
func (w *sender) sendNowIf(m Msg, ok func() bool) (sent, alive bool) {
	send := w.direct.Load()
	if send == nil || w.queued.Load() != 0 || !w.writing.TryLock() {
		return false, !w.dead()
	}
	defer w.writing.Unlock()
	if w.queued.Load() != 0 || w.dead() || !ok() {
		return false, !w.dead()
	}
	if w.inline != nil {
		w.inline.begin(1)
		defer w.inline.end()
	}
	if err := (*send)(m); err != nil {
		w.failed.Store(true)
		return true, false
	}
	return true, true
}

// sendNowMany is sendNow for several messages, written in order (in one
// write where the stream can): sent is how many it took; the caller keeps
// ms[sent:] (sent is 0 if something is queued before them).
func (w *sender) sendNowMany(ms []Msg) (sent int, alive bool) {
	send := w.direct.Load()
	if send == nil || w.queued.Load() != 0 || !w.writing.TryLock() {
		return 0, !w.dead()
	}
	defer w.writing.Unlock()
	if w.queued.Load() != 0 || w.dead() {
		return 0, !w.dead()
	}
	if w.inline != nil {
		w.inline.begin(len(ms))
		defer w.inline.end()
	}
	sent, err := w.writeMany(ms, *send)
	if err != nil {
		w.failed.Store(true)
		return sent, false
	}
	return sent, true
}

// put queues m, waiting for room until the stream is abandoned or wait's
// channel fires. It reports whether m was queued and whether the stream is
// still alive.
func (w *sender) put(m Msg, wait <-chan struct{}) (queued, alive bool) {
	if queued, alive = w.offer(m); queued || !alive {
		return queued, alive
	}
	// A large message waits until fewer than queueDepth are queued (the
	// channel itself may have room for small ones). The signal is taken
	// before looking again, so a take between the look and the wait
	// closes it.
	for m.Len() > smallMsgMax && len(w.q) >= queueDepth {
		room := w.roomSignal()
		if len(w.q) < queueDepth {
			break
		}
		select {
		case <-room:
			if w.dead() { // the goroutine failed and dropped the queue
				return false, false
			}
		case <-w.stop:
			return false, false
		case <-wait:
			return false, true
		}
	}
	w.queued.Add(1)
	select {
	case w.q <- m:
		return true, w.afterQueue()
	case <-w.stop:
		alive = false
	case <-wait:
		alive = true
	}
	w.queued.Add(-1)
	return false, alive
}

// dead reports whether the sender takes no more messages. The stop check
// comes first: a select with room in the queue would otherwise pick
// between queueing and the stop at random, and accept messages after an
// abandon.
func (w *sender) dead() bool {
	select {
	case <-w.stop:
		return true
	default:
	}
	return w.ended.Load() || w.failed.Load()
}

// end queues the end-of-sending marker once.
func (w *sender) end() {
	if w.ended.Swap(true) {
		return
	}
	select {
	case w.q <- nil:
	case <-w.stop:
	}
}

// abandon drops whatever is queued and stops the goroutine.
func (w *sender) abandon() { w.stopOnce.Do(func() { close(w.stop) }) }
