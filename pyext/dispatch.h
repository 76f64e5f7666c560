/* How a server's incoming calls wake Python threads.
 *
 * A thread of the server's pool that has just finished a call lingers for
 * the next one on `workers`; the dispatcher thread sleeps on `poller` and is
 * woken only when no worker lingers, to hand the call to the pool. Under
 * load, calls then go straight from Go to the thread that runs them, one
 * wake-up each, instead of waking the dispatcher and then a pool thread.
 *
 * Go calls hot_dispatch_post once per queued call and hot_dispatch_stop
 * once when the server stops; neither touches a Python object, so both are
 * safe from any goroutine. A woken thread takes whichever call is queued
 * (Server.Take), so a post never belongs to one call and a wake-up that
 * finds nothing is harmless.
 *
 * `queued` counts posts minus calls taken, so a thread can see that nothing
 * is queued without asking Go. It never counts more calls than are queued:
 * a call whose post is still to come may be missing, and that post will
 * wake a thread that sees it.
 *
 * At most one lingering worker is on its way at a time (`transit`: woken,
 * and not yet come back for a call), as Go's scheduler keeps at most one
 * spinning thread: a post while one is on its way wakes nobody, and the
 * worker, once it has taken a call, wakes the next if calls are still
 * queued (hot_dispatch_arrived). A burst of calls that arrives while a
 * thread runs Python wakes one worker, not one per call: the others only
 * waited for the GIL, and most found their call taken by the thread that
 * held it (it takes what is queued before it lingers). */
#ifndef GRPCGO_DISPATCH_H
#define GRPCGO_DISPATCH_H

#include <errno.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    sem_t poller;
    sem_t workers;
    /* Lingering workers not yet claimed by a post. Each lingering worker
     * either withdraws its count or consumes one post of `workers`. */
    atomic_int idle;
    atomic_int stopped;
    atomic_int queued;
    /* Posts of `workers` not yet followed by their worker's take
     * (hot_dispatch_arrived). */
    atomic_int transit;
    atomic_long wakes; /* lingering workers woken by posts (tests look) */
} hot_dispatch;

/* The CLOCK_REALTIME instant `seconds` from now, as sem_timedwait takes it. */
static inline struct timespec hot_deadline(double seconds) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    long long ns = t.tv_nsec + (long long)(seconds * 1e9);
    t.tv_sec += ns / 1000000000LL;
    t.tv_nsec = ns % 1000000000LL;
    return t;
}

/* Freed (hot_dispatch_free) once the server's capsule is gone and the
 * server has stopped: nothing posts or waits on it then. */
static inline hot_dispatch *hot_dispatch_new(void) {
    hot_dispatch *d = (hot_dispatch *)calloc(1, sizeof(hot_dispatch));
    if (d != NULL) {
        sem_init(&d->poller, 0, 0);
        sem_init(&d->workers, 0, 0);
    }
    return d;
}

static inline void hot_dispatch_free(hot_dispatch *d) {
    sem_destroy(&d->poller);
    sem_destroy(&d->workers);
    free(d);
}

/* Claims one lingering worker, if there is one. */
static inline int hot_dispatch_claim(hot_dispatch *d) {
    int n = atomic_load(&d->idle);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&d->idle, &n, n - 1)) return 1;
    }
    return 0;
}

/* Wakes a lingering worker for a queued call, else posts the dispatcher
 * `calls` times (one pool task per call). */
static inline void hot_dispatch_wake(hot_dispatch *d, int calls) {
    if (hot_dispatch_claim(d)) {
        atomic_fetch_add(&d->transit, 1);
        atomic_fetch_add(&d->wakes, 1);
        sem_post(&d->workers);
    } else {
        for (int i = 0; i < calls; i++) sem_post(&d->poller);
    }
}

static inline void hot_dispatch_post(void *p) {
    hot_dispatch *d = (hot_dispatch *)p;
    atomic_fetch_add(&d->queued, 1);
    /* A worker on its way sees this call when it arrives (queued, above,
     * before transit, here; it decrements transit before it looks at
     * queued). */
    if (atomic_load(&d->transit) > 0) return;
    hot_dispatch_wake(d, 1);
}

static inline void hot_dispatch_stop(void *p) {
    hot_dispatch *d = (hot_dispatch *)p;
    atomic_store(&d->stopped, 1);
    while (hot_dispatch_claim(d)) {
        atomic_fetch_add(&d->transit, 1);
        sem_post(&d->workers);
    }
    sem_post(&d->poller);
}

/* A worker woken by a post (hot_dispatch_linger returned 1) has tried to
 * take a call: it is no longer on its way. Posts made while it was on its
 * way woke nobody, so once nobody is on the way every call still queued
 * needs a taker:
 * - it took one: it wakes the next lingering worker, which is on its way
 *   in turn; with none lingering, it posts the dispatcher once per queued
 *   call (each post starts one pool task, which takes one call; a task
 *   that finds its call taken ends);
 * - it took none: it stays on its way and looks again (returns 1; the
 *   caller takes a call, then arrives again), unless nothing is queued.
 * Returns 1 when the worker is on its way again. */
static inline int hot_dispatch_arrived(hot_dispatch *d, int took) {
    if (atomic_fetch_sub(&d->transit, 1) != 1 || atomic_load(&d->stopped)) return 0;
    int queued = atomic_load(&d->queued);
    if (queued <= 0) return 0;
    if (!took) {
        atomic_fetch_add(&d->transit, 1);
        return 1;
    }
    hot_dispatch_wake(d, queued);
    return 0;
}

/* Whether a call may be queued: worth asking Go for it. */
static inline int hot_dispatch_pending(hot_dispatch *d) {
    return atomic_load(&d->queued) > 0 || atomic_load(&d->stopped);
}

/* Waits (without the GIL) until `until` for a post as a lingering worker.
 * Returns 1 if posted (a call may be queued, or the server stopped: the
 * caller then calls hot_dispatch_arrived after its take), 2 if the server
 * stopped (no post taken), 0 if the time passed. */
static inline int hot_dispatch_linger(hot_dispatch *d, const struct timespec *until) {
    if (atomic_load(&d->stopped)) return 2;
    atomic_fetch_add(&d->idle, 1);
    /* A stop that ran between the check and the increment posted for
     * everyone counted then, not for us: leave at once. */
    int posted = !atomic_load(&d->stopped);
    if (posted) {
        int r;
        while ((r = sem_timedwait(&d->workers, until)) != 0 && errno == EINTR) {
        }
        if (r == 0) return 1;
    }
    if (hot_dispatch_claim(d)) return atomic_load(&d->stopped) ? 2 : 0; /* withdrawn */
    /* A post claimed this worker's count before it could withdraw: take it. */
    while (sem_wait(&d->workers) != 0) {
    }
    return 1;
}

#endif
