/* A stress driver for pyext/dispatch.h, built and run by
 * test_server_dispatch.py (with ThreadSanitizer when the compiler has it).
 * It plays Go (posters), the dispatcher thread and the pool's lingering
 * threads, on a count of queued calls instead of Go's queue:
 *
 *   race                posts race lingers that time out within
 *                       microseconds (a post claims a worker as it
 *                       withdraws), then the stop races workers that
 *                       begin to linger: every call is taken, every
 *                       worker returns, no post is left over.
 *   stop                workers linger for 30 s, again and again; a stop
 *                       at a random instant (200 times) must send every
 *                       one of them back at once, those that were about
 *                       to linger too.
 *
 * Exits 0 when all holds, else prints what did not; a hang is cut by an
 * alarm (SIGALRM, after 120 s). */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dispatch.h"

static hot_dispatch *d;
static atomic_int calls;     /* queued, as Go's queue would hold them */
static atomic_long taken;
static atomic_long linger_posted, linger_timeouts;

static int take(void) {
    int n = atomic_load(&calls);
    while (n > 0) {
        if (atomic_compare_exchange_weak(&calls, &n, n - 1)) {
            atomic_fetch_sub(&d->queued, 1);
            atomic_fetch_add(&taken, 1);
            return 1;
        }
    }
    return 0;
}

static void post(void) {
    atomic_fetch_add(&calls, 1);
    hot_dispatch_post(d);
}

static unsigned rnd(unsigned *s) {
    *s = *s * 1103515245u + 12345u;
    return (*s >> 8) & 0xffff;
}

/* server_linger's loop (hotmodule.c), minus Python: returns when the linger
 * times out (0) or the server stopped (2). */
static int serve(double seconds) {
    struct timespec until = hot_deadline(seconds);
    int posted = 0, looks = 0;
    for (;;) {
        if (hot_dispatch_pending(d)) {
            if (atomic_load(&d->stopped)) {
                if (posted) hot_dispatch_arrived(d, 1);
                return 2;
            }
            if (take()) {
                if (posted) hot_dispatch_arrived(d, 1);
                posted = 0;
                looks = 0;
                until = hot_deadline(seconds); /* ran a call: lingers anew */
                continue;
            }
        }
        if (posted) {
            posted = hot_dispatch_arrived(d, 0);
            if (posted && ++looks < 64) continue;
            if (posted) {
                hot_dispatch_arrived(d, 1);
                posted = 0;
            }
        }
        int r = hot_dispatch_linger(d, &until);
        if (r == 0) {
            atomic_fetch_add(&linger_timeouts, 1);
            return 0;
        }
        if (r == 2) return 2;
        atomic_fetch_add(&linger_posted, 1);
        posted = 1;
    }
}

static void *worker(void *arg) {
    unsigned s = (unsigned)(uintptr_t)arg;
    /* Lingers of 1-64 us: most time out, many as a post claims them. */
    while (serve((1 + rnd(&s) % 64) * 1e-6) != 2) {
    }
    return NULL;
}

static void *dispatcher(void *arg) {
    (void)arg;
    for (;;) {
        while (sem_wait(&d->poller) != 0) {
        }
        if (atomic_load(&d->stopped)) return NULL;
        take(); /* a pool task: takes one call, if one is still queued */
    }
}

static void *poster(void *arg) {
    unsigned s = (unsigned)(uintptr_t)arg;
    for (int i = 0; i < 20000; i++) {
        post();
        if (rnd(&s) % 4 == 0) usleep(rnd(&s) % 20);
    }
    return NULL;
}

/* Posts of a lingering worker that no worker took (a withdrawal that
 * ignored the post that claimed it leaves one behind). */
static int stray_posts(void) {
    int v = 0;
    sem_getvalue(&d->workers, &v);
    return v;
}

static int fail(const char *what) {
    fprintf(stderr, "dispatch_race: %s (idle %d, queued %d, transit %d, calls %d, taken %ld)\n",
            what, atomic_load(&d->idle), atomic_load(&d->queued), atomic_load(&d->transit),
            atomic_load(&calls), atomic_load(&taken));
    return 1;
}

enum { WORKERS = 6, POSTERS = 3 };

static int race(void) {
    pthread_t w[WORKERS], p[POSTERS], disp;
    pthread_create(&disp, NULL, dispatcher, NULL);
    for (int i = 0; i < WORKERS; i++)
        pthread_create(&w[i], NULL, worker, (void *)(uintptr_t)(i * 7919 + 1));
    for (int i = 0; i < POSTERS; i++)
        pthread_create(&p[i], NULL, poster, (void *)(uintptr_t)(i * 104729 + 3));
    for (int i = 0; i < POSTERS; i++) pthread_join(p[i], NULL);
    /* Every call posted is taken (a stranded one hangs here: the alarm). */
    while (atomic_load(&taken) < (long)POSTERS * 20000) usleep(1000);
    /* The stop races workers that are lingering or about to. */
    hot_dispatch_stop(d);
    for (int i = 0; i < WORKERS; i++) pthread_join(w[i], NULL);
    pthread_join(disp, NULL);
    if (atomic_load(&d->idle) != 0) return fail("workers still counted idle after the stop");
    if (stray_posts() != 0) return fail("a post nobody took");
    if (atomic_load(&d->transit) != 0) return fail("a worker still on its way");
    if (atomic_load(&taken) != (long)POSTERS * 20000) return fail("calls taken twice");
    if (atomic_load(&linger_timeouts) == 0 || atomic_load(&linger_posted) == 0)
        return fail("the lingers never timed out, or were never posted");
    printf("ok: %ld calls, %ld lingers posted, %ld timed out, %ld wakes\n",
           atomic_load(&taken), atomic_load(&linger_posted), atomic_load(&linger_timeouts),
           atomic_load(&d->wakes));
    return 0;
}

static void *long_worker(void *arg) {
    (void)arg;
    while (serve(30.0) != 2) {
    }
    return NULL;
}

/* Posts until the stop, so the workers keep coming back to linger. */
static void *busy_poster(void *arg) {
    (void)arg;
    while (!atomic_load(&d->stopped)) {
        post();
        sched_yield();
    }
    return NULL;
}

static int stop_race(void) {
    unsigned s = 17;
    for (int round = 0; round < 200; round++) {
        if (round > 0) d = hot_dispatch_new();
        pthread_t w[4], p;
        for (int i = 0; i < 4; i++) pthread_create(&w[i], NULL, long_worker, NULL);
        pthread_create(&p, NULL, busy_poster, NULL);
        usleep(rnd(&s) % 2000);
        hot_dispatch_stop(d);
        pthread_join(p, NULL);
        for (int i = 0; i < 4; i++) {
            /* Far less than the linger's 30 s: a worker the stop missed. */
            struct timespec until = hot_deadline(10);
            if (pthread_timedjoin_np(w[i], NULL, &until) != 0)
                return fail("a worker still lingers after the stop");
        }
        if (atomic_load(&d->idle) != 0) return fail("counted idle after the stop");
        if (stray_posts() != 0) return fail("a post nobody took");
        if (atomic_load(&d->transit) != 0) return fail("a worker still on its way");
    if (atomic_load(&d->transit) != 0) return fail("a worker still on its way");
        if (round < 199) hot_dispatch_free(d);
    }
    printf("ok: 200 stops\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    d = hot_dispatch_new();
    alarm(120);
    signal(SIGALRM, SIG_DFL);
    int r = strcmp(argv[1], "stop") == 0 ? stop_race() : race();
    if (r == 0) hot_dispatch_free(d);
    return r;
}
