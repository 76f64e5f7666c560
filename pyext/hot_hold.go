package main

/*
#include "hot.h"
#include "hold.h"
*/
import "C"

import (
	"time"
	"unsafe"

	"grpcgo/core"

	"google.golang.org/grpc/mem"
)

// holdTarget is a stream whose small messages a hold (hold.h) batches:
// client requests (*core.Stream) or server responses (*core.ServerCall).
type holdTarget interface {
	directSender
	Offer(core.Msg) (queued, alive bool)
	Put(core.Msg, <-chan struct{}) (queued, alive bool)
	SendNowMany([]core.Msg) (sent int, alive bool)
}

// holdWait is what a goroutine moving held messages waits on besides room
// in the queue (a stream's sender stops by itself when the call ends).
func holdWait(t holdTarget) <-chan struct{} {
	if c, ok := t.(*core.ServerCall); ok {
		return c.Context().Done()
	}
	return nil
}

// hotHoldTarget makes the hold's own handle of the stream a capsule holds.
//
//export hotHoldTarget
func hotHoldTarget(h C.uintptr_t) C.uintptr_t {
	switch v := cgoHandle(h).Value().(type) {
	case *core.Stream:
		return C.uintptr_t(core.NewHandle(holdTarget(v)))
	case *core.ServerCall:
		return C.uintptr_t(core.NewHandle(holdTarget(v)))
	}
	return 0
}

// hotHoldFree deletes a hold's handle (its last reference went; any thread).
//
//export hotHoldFree
func hotHoldFree(target C.uintptr_t) {
	if target != 0 {
		cgoHandle(target).Delete()
	}
}

// takeHeld takes what h holds as messages in one Go allocation; nil if
// nothing is held, busy if someone else is moving messages.
func takeHeld(h *C.hot_hold) (msgs []core.Msg, busy bool) {
	var lens [C.HOLD_MSGS]C.uint32_t
	for {
		used := int(C.hot_hold_used(h))
		buf := make([]byte, max(used, 1))
		n := int(C.hot_hold_take(h, (*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)), &lens[0]))
		switch {
		case n == -1:
			return nil, true
		case n == -2: // more came between the two looks
			continue
		case n == 0:
			return nil, false
		}
		// Four allocations for the batch, none per message: each message
		// is a one-buffer slice of bufs, each buffer a pointer into sbs.
		msgs = make([]core.Msg, n)
		bufs := make([]mem.Buffer, n)
		sbs := make([]mem.SliceBuffer, n)
		off := 0
		for i := range msgs {
			l := int(lens[i])
			sbs[i] = buf[off : off+l : off+l]
			bufs[i] = &sbs[i]
			msgs[i] = bufs[i : i+1 : i+1]
			off += l
		}
		return msgs, false
	}
}

// hotHoldSend moves what h holds into the engine, in order, on the calling
// thread (GIL held on entry): written at once (GIL released) when nothing
// is queued before them, else queued, waiting for room as a send does. It
// first waits for messages someone else is moving. 1 if the stream takes
// more messages, 0 if not, -1 if a signal handler raised while the main
// thread waited (the exception is set; what was not queued is dropped).
//
//export hotHoldSend
func hotHoldSend(h *C.hot_hold) C.int {
	t := cgoHandle(C.uintptr_t(h.target)).Value().(holdTarget)
	msgs, busy := takeHeld(h)
	for busy {
		withoutGIL(func() { C.hot_hold_wait_idle(h) })
		msgs, busy = takeHeld(h)
	}
	if msgs == nil {
		return C.int(b2i(C.hot_hold_dead(h) == 0))
	}
	alive, interrupted := sendHeld(t, msgs)
	C.hot_hold_done(h, C.int(b2i(!alive && !interrupted)))
	if interrupted {
		return -1
	}
	return C.int(b2i(alive))
}

// sendHeld sends msgs in order (GIL held on entry); alive is false if the
// stream refused them. (Held messages are plain Go memory: one not sent
// has no buffer to give back.)
func sendHeld(t holdTarget, msgs []core.Msg) (alive, interrupted bool) {
	i := 0
	alive = true
	main := isMainThread()
	if !main && t.CanSendNow() {
		withoutGIL(func() { i, alive = t.SendNowMany(msgs) })
	}
	for ; i < len(msgs) && alive; i++ {
		var queued bool
		if queued, alive = t.Offer(msgs[i]); queued || !alive {
			continue
		}
		if !main {
			withoutGIL(func() { queued, alive = t.Put(msgs[i], holdWait(t)) })
			alive = alive && queued // not queued: the call ended while waiting
			continue
		}
		// The queue is full: the main thread waits for room without the
		// GIL in slices, so Ctrl-C still works.
		for !queued && alive {
			tick := make(chan struct{})
			stop := time.AfterFunc(signalSlice, func() { close(tick) })
			withoutGIL(func() { queued, alive = t.Put(msgs[i], tick) })
			stop.Stop()
			if !queued && alive && C.hot_check_signals() != 0 {
				interrupted, alive = true, false
			}
		}
	}
	return alive, interrupted
}

// hotHoldFlush hands what h holds to its stream's sender goroutine without
// waiting (the flusher thread: no GIL, no Python). Messages the queue has
// no room for go on a goroutine of their own, in order, before anyone
// takes from the hold again.
//
//export hotHoldFlush
func hotHoldFlush(h *C.hot_hold) {
	t := cgoHandle(C.uintptr_t(h.target)).Value().(holdTarget)
	msgs, _ := takeHeld(h)
	if msgs == nil {
		return // a taker was at it, or it took them all
	}
	for i, m := range msgs {
		queued, alive := t.Offer(m)
		if !alive {
			C.hot_hold_done(h, 1)
			return
		}
		if !queued {
			C.hot_hold_ref(h)
			go putHeld(h, t, msgs[i:])
			return
		}
	}
	C.hot_hold_done(h, 0)
}

// putHeld queues msgs in order, waiting for room; then the hold is free.
func putHeld(h *C.hot_hold, t holdTarget, msgs []core.Msg) {
	wait := holdWait(t)
	alive := true
	for _, m := range msgs {
		if queued, _ := t.Put(m, wait); !queued {
			alive = false // the call ended
			break
		}
	}
	C.hot_hold_done(h, C.int(b2i(!alive)))
	C.hot_hold_unref(h)
}
