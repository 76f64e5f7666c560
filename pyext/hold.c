/* Held sends (hold.h): the per-stream holds and the flusher thread. Plain
 * C and calls into Go that never touch Python: nothing here needs the GIL. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include "hold.h"
#include "_cgo_export.h"

int hold_enabled = 1;
atomic_int hold_live;

int64_t hold_bound_ns = 100000;
int hold_msgs = HOLD_MSGS, hold_bytes = HOLD_BYTES;

int64_t hold_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void hold_setup(void) {
    const char *on = getenv("GRPCGO_STREAM_HOLD");
    if (on != NULL && strcmp(on, "0") == 0) hold_enabled = 0;
    const char *us = getenv("GRPCGO_STREAM_HOLD_US");
    if (us != NULL && atol(us) > 0) hold_bound_ns = atol(us) * 1000;
    const char *deep = getenv("GRPCGO_STREAM_DEEP");
    if (deep != NULL && strcmp(deep, "0") == 0) {
        hold_msgs = 64;
        hold_bytes = 8192;
    }
}

/* ---- the flusher --------------------------------------------------------
 * One thread for the process, started with the first hold. Its list holds
 * every hold that had a message come while it was not listed; it sleeps
 * until the oldest of them is due (since + bound), hands those that are
 * to the engine, and drops from the list those that are empty. A hold
 * stays listed while its thread keeps sending, so the flusher wakes about
 * once per bound per busy stream, and only a due hold costs a call into
 * Go. Lock order: a hold's mu, then fl_mu. */
static pthread_mutex_t fl_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fl_cv;
static hot_hold *fl_list;
static int fl_waiting; /* the flusher sleeps with nothing listed */
static pthread_once_t fl_once = PTHREAD_ONCE_INIT;

static void *flusher(void *unused);

static void fl_start(void) {
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&fl_cv, &attr);
    pthread_condattr_destroy(&attr);
    pthread_t t;
    pthread_attr_t ta;
    pthread_attr_init(&ta);
    pthread_attr_setdetachstate(&ta, PTHREAD_CREATE_DETACHED);
    pthread_create(&t, &ta, flusher, NULL);
    pthread_attr_destroy(&ta);
}

/* h->mu held, h->n > 0: lists h (a reference for the list). */
static void hold_register(hot_hold *h) {
    if (h->registered) return;
    h->registered = 1;
    atomic_fetch_add(&h->refs, 1);
    pthread_mutex_lock(&fl_mu);
    h->next = fl_list;
    fl_list = h;
    if (fl_waiting) pthread_cond_signal(&fl_cv);
    pthread_mutex_unlock(&fl_mu);
}

static void *flusher(void *unused) {
    (void)unused;
    prctl(PR_SET_TIMERSLACK, 1000, 0, 0, 0); /* wake within ~1 us of the bound */
    pthread_mutex_lock(&fl_mu);
    for (;;) {
        if (fl_list == NULL) {
            fl_waiting = 1;
            pthread_cond_wait(&fl_cv, &fl_mu);
            fl_waiting = 0;
            continue;
        }
        hot_hold *list = fl_list, *keep = NULL, *last = NULL;
        fl_list = NULL;
        pthread_mutex_unlock(&fl_mu);
        int64_t now = hold_now(), earliest = INT64_MAX;
        while (list != NULL) {
            hot_hold *h = list;
            list = h->next;
            pthread_mutex_lock(&h->mu);
            if (h->n == 0 || h->dead || h->busy) {
                /* Nothing held, or a taker is at it (hot_hold_done lists
                 * the hold again if messages came meanwhile). */
                h->registered = 0;
                pthread_mutex_unlock(&h->mu);
                hot_hold_unref(h);
                continue;
            }
            int64_t due = h->since + hold_bound_ns;
            if (due <= now) {
                h->registered = 0;
                pthread_mutex_unlock(&h->mu);
                hotHoldFlush(h); /* takes them (unless someone just did) */
                hot_hold_unref(h);
                continue;
            }
            pthread_mutex_unlock(&h->mu);
            if (due < earliest) earliest = due;
            h->next = keep;
            if (keep == NULL) last = h;
            keep = h;
        }
        pthread_mutex_lock(&fl_mu);
        int fresh = fl_list != NULL; /* listed while this pass ran */
        if (keep != NULL) {
            last->next = fl_list;
            fl_list = keep;
        }
        if (!fresh && keep != NULL) {
            struct timespec until = {earliest / 1000000000, earliest % 1000000000};
            fl_waiting = 1;
            pthread_cond_timedwait(&fl_cv, &fl_mu, &until);
            fl_waiting = 0;
        }
    }
    return NULL;
}

/* ---- holds ---------------------------------------------------------------- */
hot_hold *hot_hold_new(uintptr_t target) {
    hot_hold *h = malloc(sizeof *h);
    if (h == NULL) return NULL;
    pthread_once(&fl_once, fl_start);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->idle, NULL);
    atomic_init(&h->refs, 1);
    h->target = target;
    h->n = h->used = h->busy = h->dead = h->registered = 0;
    h->since = 0;
    h->next = NULL;
    atomic_fetch_add(&hold_live, 1);
    return h;
}

void hot_hold_ref(hot_hold *h) { atomic_fetch_add(&h->refs, 1); }

void hot_hold_unref(hot_hold *h) {
    if (atomic_fetch_sub(&h->refs, 1) != 1) return;
    hotHoldFree(h->target);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->idle);
    free(h);
    atomic_fetch_sub(&hold_live, 1);
}

int hot_hold_put(hot_hold *h, const char *p, uint32_t n, int64_t now, int fast) {
    pthread_mutex_lock(&h->mu);
    int r = 1;
    if (h->dead) {
        r = -1;
    } else if (h->n == 0 && !h->busy && !fast) {
        r = 2;
    } else if (h->busy || h->n == hold_msgs || h->used + (int)n > hold_bytes ||
               (h->n > 0 && now - h->since >= hold_bound_ns)) {
        r = 0;
    } else {
        memcpy(h->data + h->used, p, n);
        h->len[h->n++] = n;
        h->used += n;
        if (h->n == 1) {
            h->since = now;
            hold_register(h);
        }
    }
    pthread_mutex_unlock(&h->mu);
    return r;
}

int hot_hold_pending(hot_hold *h) {
    pthread_mutex_lock(&h->mu);
    int r = h->n > 0 || h->busy;
    pthread_mutex_unlock(&h->mu);
    return r;
}

int hot_hold_used(hot_hold *h) {
    pthread_mutex_lock(&h->mu);
    int r = h->used;
    pthread_mutex_unlock(&h->mu);
    return r;
}

int hot_hold_take(hot_hold *h, char *dst, int cap, uint32_t *lens) {
    pthread_mutex_lock(&h->mu);
    int n = h->n;
    if (h->busy) {
        n = -1;
    } else if (n > 0 && h->used > cap) {
        n = -2;
    } else if (n > 0) {
        memcpy(dst, h->data, h->used);
        memcpy(lens, h->len, n * sizeof *lens);
        h->n = h->used = 0;
        h->busy = 1;
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

void hot_hold_done(hot_hold *h, int dead) {
    pthread_mutex_lock(&h->mu);
    h->busy = 0;
    if (dead) {
        h->dead = 1;
        h->n = h->used = 0;
    }
    if (h->n > 0) hold_register(h); /* held while these were on their way */
    pthread_cond_broadcast(&h->idle);
    pthread_mutex_unlock(&h->mu);
}

void hot_hold_wait_idle(hot_hold *h) {
    pthread_mutex_lock(&h->mu);
    while (h->busy) pthread_cond_wait(&h->idle, &h->mu);
    pthread_mutex_unlock(&h->mu);
}

void hot_hold_drop(hot_hold *h) {
    pthread_mutex_lock(&h->mu);
    h->dead = 1;
    h->n = h->used = 0;
    pthread_mutex_unlock(&h->mu);
}

int hot_hold_dead(hot_hold *h) {
    pthread_mutex_lock(&h->mu);
    int r = h->dead;
    pthread_mutex_unlock(&h->mu);
    return r;
}
