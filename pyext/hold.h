/* Held sends: small messages a thread streams fast wait in C, per stream,
 * and cross into Go in batches (docs/ARCHITECTURE.md, "Streams: queues in
 * Go, batches across").
 *
 * A stream's hold takes a message without a call into Go. Its messages go
 * on into the engine, in order, when
 *   - the hold is full (hold_msgs messages or hold_bytes bytes), or a
 *     message does not fit it: the sending thread flushes (hotHoldSend);
 *   - the oldest held message is hold_bound_ns old when the sender hands
 *     over the next one: it flushes;
 *   - the oldest held message is hold_bound_ns old and nobody came back:
 *     the flusher thread hands them to the stream's sender goroutine
 *     without waiting (hotHoldFlush), whatever the sending thread does;
 *   - anything else happens to the stream on the engine's side (the
 *     status, initial metadata, a compression change, a half-close, the
 *     handler reading requests): that flushes first, so it comes after.
 * Cancelling the stream drops what is held, as the sender's queue does.
 *
 * Taking messages out sets busy until they are handed to the engine;
 * nobody else takes while it is set, so messages stay in order whoever
 * moves them. The hold owns a cgo handle of its Go stream (target) and is
 * counted: the capsule's reference (its context), the flusher's while it
 * is on the flusher's list, and a goroutine's that still moves messages.
 * The last one out frees it (hot_hold_unref). */
#ifndef GRPCGO_HOLD_H
#define GRPCGO_HOLD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

/* A hold's room: 256 messages / 16 KiB, or 64 / 8 KiB with
 * GRPCGO_STREAM_DEEP=0 (hold_msgs, hold_bytes; the receive queues take 256
 * small messages likewise: core/pump.go). */
#define HOLD_MSGS 256
#define HOLD_BYTES 16384
#define HOLD_MSG_MAX 1024 /* larger messages are sent as they come */

typedef struct hot_hold {
    pthread_mutex_t mu;
    pthread_cond_t idle; /* busy went back to 0 */
    atomic_int refs;
    uintptr_t target; /* the hold's own cgo handle of its Stream or ServerCall */
    int n, used;      /* messages held, bytes of data used */
    int busy;         /* messages taken out are on their way into the engine */
    int dead;         /* the stream takes no more messages */
    int registered;   /* on the flusher's list (holds a reference) */
    int64_t since;    /* CLOCK_MONOTONIC ns when the oldest held message came */
    struct hot_hold *next;
    uint32_t len[HOLD_MSGS];
    char data[HOLD_BYTES];
} hot_hold;

/* Tunables, read once from the environment (hold.c): GRPCGO_STREAM_HOLD=0
 * turns holding off; GRPCGO_STREAM_HOLD_US is the bound in microseconds. */
extern int hold_enabled;
extern int64_t hold_bound_ns;
extern int hold_msgs, hold_bytes;
/* A message is held only if the same thread's previous send on the same
 * stream ended less than this long before (the producer is in a loop). */
#define HOLD_GAP_NS 20000

int64_t hold_now(void);
/* Holds allocated and not yet freed (grpc._hot.holds_live(), for tests). */
extern atomic_int hold_live;
void hold_setup(void);

hot_hold *hot_hold_new(uintptr_t target);
void hot_hold_ref(hot_hold *h);
void hot_hold_unref(hot_hold *h);

/* GIL held. 1: held; 0: flush first (full, or the oldest held message is
 * due, or messages are on their way); 2: nothing is held or on its way and
 * the sender is not fast (send it as before); -1: the stream is dead. */
int hot_hold_put(hot_hold *h, const char *p, uint32_t n, int64_t now, int fast);
/* Whether anything is held or on its way (a send must flush first). */
int hot_hold_pending(hot_hold *h);

/* Takes every held message: their data into dst (cap bytes; the lengths
 * into lens), and sets busy. Returns how many, 0 if none are held, -1 if
 * busy (wait_idle, then try again), -2 if dst is too small (hot_hold_used
 * says how much is needed). */
int hot_hold_take(hot_hold *h, char *dst, int cap, uint32_t *lens);
int hot_hold_used(hot_hold *h);
/* The taken messages are in the engine (dead: the stream refused them). */
void hot_hold_done(hot_hold *h, int dead);
/* Waits, GIL released, until nothing is on its way. */
void hot_hold_wait_idle(hot_hold *h);
/* Drops what is held (the stream was cancelled); later puts say dead. */
void hot_hold_drop(hot_hold *h);
int hot_hold_dead(hot_hold *h);

#endif
