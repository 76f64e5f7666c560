/* Completion queues: how the engine tells an asyncio event loop that work it
 * started has completed.
 *
 * Each event loop that uses grpc.aio owns one queue. An operation started
 * for the loop carries the queue and a token (a number Python chose); when
 * it completes, a goroutine appends the token here and, if the loop has not
 * been woken since its last drain, writes the queue's eventfd once. The
 * loop watches that fd (loop.add_reader) and drains every token in one call
 * on its own thread, with the GIL it already holds. So no Go thread ever
 * takes the GIL for a completion, no thread polls, and a burst of
 * completions costs the loop one wake-up.
 *
 * Ownership: a queue is counted. The Python capsule holds one count, every
 * operation in flight one more (taken when it starts, given back by
 * hot_cq_complete); the last one frees the queue. So Go may complete an
 * operation after Python dropped the queue: the token then goes nowhere.
 * Nothing here touches a Python object except hot_cq_drain, which runs with
 * the GIL held. */
#ifndef GRPCGO_CQ_H
#define GRPCGO_CQ_H

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

typedef struct {
    pthread_mutex_t mu;
    atomic_int refs;
    int rfd, wfd;      /* the same eventfd on Linux; a pipe elsewhere */
    int signalled;     /* under mu: a wake-up is pending since the last drain */
    uint64_t *items;   /* under mu: completed tokens, in completion order */
    size_t n, cap;
} hot_cq;

/* A new queue with one count (Python's), or NULL with errno set. */
static inline hot_cq *hot_cq_new(void) {
    hot_cq *q = calloc(1, sizeof *q);
    if (q == NULL) return NULL;
#ifdef __linux__
    q->rfd = q->wfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (q->rfd < 0) {
        free(q);
        return NULL;
    }
#else
    int fds[2];
    if (pipe(fds) != 0) {
        free(q);
        return NULL;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    q->rfd = fds[0];
    q->wfd = fds[1];
#endif
    pthread_mutex_init(&q->mu, NULL);
    atomic_init(&q->refs, 1);
    return q;
}

static inline void hot_cq_ref(hot_cq *q) { atomic_fetch_add(&q->refs, 1); }

static inline void hot_cq_unref(hot_cq *q) {
    if (atomic_fetch_sub(&q->refs, 1) != 1) return;
    close(q->rfd);
    if (q->wfd != q->rfd) close(q->wfd);
    pthread_mutex_destroy(&q->mu);
    free(q->items);
    free(q);
}

static inline int hot_cq_fd(hot_cq *q) { return q->rfd; }

/* Writes the fd: the loop wakes (mu not needed). */
static inline void hot_cq_wake(hot_cq *q) {
#ifdef __linux__
    uint64_t one = 1;
    ssize_t w = write(q->wfd, &one, sizeof one);
#else
    char one = 1;
    ssize_t w = write(q->wfd, &one, 1);
#endif
    (void)w; /* EAGAIN: the fd is readable already */
}

/* Wakes the loop (mu held): once per drain. */
static inline void hot_cq_signal(hot_cq *q) {
    if (q->signalled) return;
    q->signalled = 1;
    hot_cq_wake(q);
}

/* Appends token and wakes the loop if it is not already woken. Safe from any
 * thread, GIL or not. The fd is written after mu is released: the loop,
 * woken by that write, drains at once, and found mu still held by the
 * writer nearly every time (the loop thread then slept on the mutex: a
 * second context switch per completion). A write that comes after a drain
 * already took the token only wakes the loop for an empty drain; a token
 * pushed while signalled is set is taken by the drain the pending write
 * causes. */
static inline void hot_cq_push(hot_cq *q, uint64_t token) {
    pthread_mutex_lock(&q->mu);
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        uint64_t *items = realloc(q->items, cap * sizeof *items);
        if (items == NULL) abort(); /* cannot lose a completion */
        q->items = items;
        q->cap = cap;
    }
    q->items[q->n++] = token;
    int wake = !q->signalled;
    q->signalled = 1;
    pthread_mutex_unlock(&q->mu);
    if (wake) hot_cq_wake(q);
}

/* Completes an operation: pushes its token and gives back its count. */
static inline void hot_cq_complete(hot_cq *q, uint64_t token) {
    hot_cq_push(q, token);
    hot_cq_unref(q);
}

/* The tokens completed since the last drain, as a tuple of ints, in
 * completion order (GIL held), clearing the wake-up. The tokens are taken
 * under mu and the tuple built after it: building may run a collection,
 * whose finalizers may complete operations (push) themselves. If building
 * fails (MemoryError), the tokens go back in front of any pushed since and
 * the loop is woken again, so none is lost. */
/* Takes the tokens completed since the last drain (an array the caller
 * frees, NULL if none) and clears the wake-up. */
static inline uint64_t *hot_cq_take(hot_cq *q, size_t *n_out) {
    pthread_mutex_lock(&q->mu);
    uint64_t *items = q->items;
    *n_out = q->n;
    q->items = NULL;
    q->n = q->cap = 0;
#ifdef __linux__
    uint64_t count; /* one read resets an eventfd (a second only finds EAGAIN) */
    ssize_t r = read(q->rfd, &count, sizeof count);
    (void)r;
#else
    char buf[64];
    while (read(q->rfd, buf, sizeof buf) > 0) {
    }
#endif
    q->signalled = 0;
    pthread_mutex_unlock(&q->mu);
    return items;
}

static inline PyObject *hot_cq_drain(hot_cq *q) {
    size_t n;
    uint64_t *items = hot_cq_take(q, &n);

    PyObject *t = PyTuple_New((Py_ssize_t)n);
    for (size_t i = 0; t != NULL && i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(items[i]);
        if (v == NULL) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, v);
    }
    if (t != NULL || n == 0) {
        free(items);
        return t;
    }
    pthread_mutex_lock(&q->mu);
    if (q->n > 0) { /* pushed meanwhile: keep completion order */
        uint64_t *all = realloc(items, (n + q->n) * sizeof *all);
        if (all == NULL) abort(); /* cannot lose a completion */
        memcpy(all + n, q->items, q->n * sizeof *all);
        free(q->items);
        items = all;
    }
    q->items = items;
    q->n = q->cap = n + q->n;
    hot_cq_signal(q);
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

#endif
