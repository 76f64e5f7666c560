/* grpc._hot: the hand-written CPython module on the hot path.
 *
 * Each function parses its arguments here, then makes exactly one call into
 * Go (hot_*.go), which does the work and builds the result. Go objects
 * travel as cgo handles inside capsules named after their kind. */
#include <stdatomic.h>
#include "hot.h"
#include "_cgo_export.h"
#include "hold.h"
#include <pthread.h>
#include <time.h>
#include <unistd.h>

/* Python's main thread: the only one that sees signals, and the one that
 * finalizes the interpreter. */
unsigned long hot_main_ident = 0;
#define main_thread_ident hot_main_ident

/* ---- the exit gate (hot.h) ------------------------------------------------ */
atomic_int hot_in_go;
atomic_int hot_gate_closed;

void hot_park(void) {
    for (;;) pause(); /* the interpreter is exiting without this thread */
}

/* Before a call into Go, GIL held: counts it (see hot.h). A thread other
 * than the main one that calls in once the gate closed gives the GIL up and
 * parks for good instead. */
static inline void key_thread(void);

/* Go frames on this thread's stack (calls through GO() under way), and how
 * many threads ended with some. CPython ends a thread that wants the GIL
 * once finalization started (pthread_exit); the gate's promise is that no
 * thread ever ends that way with Go frames on its stack (a thread ended in
 * plain Python code is harmless). tests/test_exit.py reads the count. */
static __thread int go_depth;
static atomic_int ended_in_go;

static inline void go_enter(void) {
    if (atomic_load_explicit(&hot_gate_closed, memory_order_relaxed) &&
        PyThread_get_thread_ident() != hot_main_ident) {
        PyEval_SaveThread();
        hot_park();
    }
    atomic_fetch_add(&hot_in_go, 1);
    key_thread();
    go_depth++;
}

static inline void go_leave(void) {
    go_depth--;
    hot_gate_leave();
}

/* A call into Go made with the GIL held: every one goes through these. */
#define GO(call) ({ go_enter(); __typeof__(call) go_r_ = (call); go_leave(); go_r_; })
#define GO_VOID(call) do { go_enter(); call; go_leave(); } while (0)

/* Takes the GIL back after a wait in C (no Go frames on the stack), through
 * the gate. */
static inline void gate_restore(PyThreadState *ts) {
    hot_gate_enter();
    PyEval_RestoreThread(ts);
    hot_gate_leave();
}
#define GATE_END_ALLOW_THREADS gate_restore(_save); }

/* ---- fork ---------------------------------------------------------------
 * The Go runtime does not survive fork(): a child must never call into Go.
 * The child handler is plain C, so it runs without touching Go. */
static volatile int forked = 0;
static void on_fork_child(void) { forked = 1; }

static PyObject *fork_error(void) {
    PyErr_SetString(PyExc_RuntimeError,
        "grpc cannot be used in this process: it was forked after grpc's Go "
        "engine had started in the parent, and a Go runtime does not survive "
        "fork(). Use multiprocessing's 'spawn' or 'forkserver' start method, "
        "or fork before the parent creates its first channel or server.");
    return NULL;
}
/* The object a Py_buffer views, if it is one the engine may lend to grpc-go
 * instead of copying (pyext/hot_lend.go): an exact, immutable bytes. */
#define LENDABLE(view) ((view).obj != NULL && PyBytes_CheckExact((view).obj) ? (view).obj : NULL)

/* Python runs this soon after the engine queued references to drop. */
static int drain_returns(void *unused) {
    (void)unused;
    if (!forked) GO_VOID(hotDrainReturns()); /* a forked child has no Go runtime */
    return 0;
}

int hot_schedule_returns(void) { return Py_AddPendingCall(drain_returns, NULL); }

#define FORK_GUARD() do { if (forked) return fork_error(); note_thread(); } while (0)

/* ---- which Python threads use the engine (see pyext/tuning.go) -----------
 * A thread is counted once per epoch, the first time it calls in; a thread
 * that ends before the epoch does is counted off again (a pthread key's
 * destructor), so an epoch counts the threads alive at its end that used
 * the engine during it, not every thread that came and went (a thread per
 * client-streaming call's requests made one caller look like 30). */
static atomic_uint epoch = 1;
static atomic_int epoch_threads;
static __thread unsigned thread_epoch;
/* Threads that, in the epoch, called in only for blocking unary calls
 * (which wait in C, not in Go): counted apart, see note_unary_thread. */
static atomic_int epoch_unary_threads;
static __thread unsigned unary_epoch;
static pthread_key_t thread_key;
static pthread_once_t thread_key_once = PTHREAD_ONCE_INIT;
static __thread int thread_keyed;

static void thread_ended(void *unused) {
    (void)unused;
    if (go_depth > 0) atomic_fetch_add(&ended_in_go, 1);
    unsigned e = atomic_load(&epoch);
    if (thread_epoch == e) atomic_fetch_sub(&epoch_threads, 1);
    if (unary_epoch == e) atomic_fetch_sub(&epoch_unary_threads, 1);
}
static void make_thread_key(void) { pthread_key_create(&thread_key, thread_ended); }

/* Once per thread: thread_ended runs when it ends (the destructor needs a
 * value). */
static inline void key_thread(void) {
    if (!thread_keyed) {
        thread_keyed = 1;
        pthread_once(&thread_key_once, make_thread_key);
        pthread_setspecific(thread_key, &thread_keyed);
    }
}

/* Counts the calling thread once per epoch: a relaxed load, and an add the
 * first time in each epoch. */
static inline void note_thread(void) {
    unsigned e = atomic_load_explicit(&epoch, memory_order_relaxed);
    if (thread_epoch != e) {
        thread_epoch = e;
        atomic_fetch_add_explicit(&epoch_threads, 1, memory_order_relaxed);
        key_thread();
    }
}

/* A thread whose only calls into the engine in this epoch are blocking
 * unary calls: counted in epoch_unary_threads instead (once; a thread
 * already counted by note_thread is not counted again). Such a thread
 * runs Go only for a call's start, with the GIL held (or released for the
 * start alone), and waits for the end in C, where Go may take its P at
 * once (docs/ARCHITECTURE.md, "A Python thread's P"): it needs no P of its
 * own (pyext/tuning.go). */
static inline void note_unary_thread(void) {
    unsigned e = atomic_load_explicit(&epoch, memory_order_relaxed);
    if (unary_epoch != e && thread_epoch != e) {
        unary_epoch = e;
        atomic_fetch_add_explicit(&epoch_unary_threads, 1, memory_order_relaxed);
        key_thread();
    }
}

int hot_epoch_end(int *unary_only) {
    atomic_fetch_add(&epoch, 1);
    int n = atomic_exchange(&epoch_threads, 0);
    int u = atomic_exchange(&epoch_unary_threads, 0);
    *unary_only = u > 0 ? u : 0;
    return n > 0 ? n : 0;
}

/* ---- handles ------------------------------------------------------------- */
static const char *kind_names[HOT_KINDS] = {
    "grpcgo.Channel", "grpcgo.UnaryCall", "grpcgo.Stream", "grpcgo.Server", "grpcgo.ServerCall",
    "grpcgo.Credentials", "grpcgo.Callback", "grpcgo.Operation",
};

/* Handles of finished server calls, and of grpc.aio unary calls whose end
 * was read (aio_unary.h, ucall_settle), wait here (under the GIL) and are
 * released together: releasing one has nothing left to end, so it need not
 * cost a call into Go of its own. */
#define SETTLED_BATCH 32
static uintptr_t settled[SETTLED_BATCH];
static int n_settled;

/* The context call_finish gives a server call's capsule once it finished
 * (and ucall_settle an aio unary call's once its end was read). */
static char settled_mark;

/* The context of a stream's capsule that never holds sends again (hold.h). */
static char hold_off_mark;

/* The hold (hold.h) of a stream's or server call's capsule, if it has one
 * (a server's capsule keeps its dispatcher there). */
static inline hot_hold *hold_of(PyObject *cap) {
    const char *name = PyCapsule_GetName(cap);
    if (name != kind_names[HOT_STREAM] && name != kind_names[HOT_SERVER_CALL]) return NULL;
    void *ctx = PyCapsule_GetContext(cap);
    return ctx == NULL || ctx == &settled_mark || ctx == &hold_off_mark ? NULL : ctx;
}

static void capsule_release(PyObject *cap) {
    const char *name = PyCapsule_GetName(cap);
    uintptr_t h = (uintptr_t)PyCapsule_GetPointer(cap, name);
    if (h == 0 || forked) return;
    hot_hold *held = hold_of(cap);
    if (held != NULL) { /* the stream is cancelled below: what it holds goes nowhere */
        hot_hold_drop(held);
        PyCapsule_SetContext(cap, NULL);
        hot_hold_unref(held);
    }
    if (PyCapsule_GetContext(cap) != &settled_mark) {
        GO_VOID(hotRelease(h));
        return;
    }
    settled[n_settled++] = h;
    if (n_settled == SETTLED_BATCH) {
        GO_VOID(hotReleaseAll(settled, n_settled));
        n_settled = 0;
    }
}

PyObject *hot_capsule(uintptr_t handle, int kind) {
    return PyCapsule_New((void *)handle, kind_names[kind], capsule_release);
}

/* O& converters: a capsule of the given kind to its handle. */
static int as_handle(PyObject *o, uintptr_t *out, int kind) {
    void *p = PyCapsule_GetPointer(o, kind_names[kind]);
    if (p == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "expected a %s handle, got %.100s", kind_names[kind],
                     Py_TYPE(o)->tp_name);
        return 0;
    }
    *out = (uintptr_t)p;
    return 1;
}
uintptr_t hot_handle(PyObject *capsule, int kind) {
    uintptr_t h = 0;
    return as_handle(capsule, &h, kind) ? h : 0;
}

static int channel_h(PyObject *o, void *out) { return as_handle(o, out, HOT_CHANNEL); }
static int unary_h(PyObject *o, void *out) { return as_handle(o, out, HOT_UNARY); }
static int stream_h(PyObject *o, void *out) { return as_handle(o, out, HOT_STREAM); }
static int server_h(PyObject *o, void *out) { return as_handle(o, out, HOT_SERVER); }
static int call_h(PyObject *o, void *out) { return as_handle(o, out, HOT_SERVER_CALL); }
static int callback_h(PyObject *o, void *out) { return as_handle(o, out, HOT_CALLBACK); }

/* An optional buffer: None leaves has=0. */
typedef struct { Py_buffer view; int has; } optbuf;
static int opt_buffer(PyObject *o, void *out) {
    optbuf *b = out;
    if (o == NULL) { /* cleanup call */
        if (b->has) PyBuffer_Release(&b->view);
        return 1;
    }
    b->has = 0;
    if (o == Py_None) return 1;
    if (PyObject_GetBuffer(o, &b->view, PyBUF_SIMPLE) < 0) return 0;
    b->has = 1;
    return Py_CLEANUP_SUPPORTED;
}

/* ---- module functions ---------------------------------------------------- */
static PyObject *m_setup(PyObject *self, PyObject *args) {
    unsigned long main_ident;
    PyObject *metadatum;
    if (!PyArg_ParseTuple(args, "kO!", &main_ident, &PyType_Type, &metadatum)) return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)metadatum, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "setup: the metadatum type must subclass tuple");
        return NULL;
    }
    FORK_GUARD();
    Py_INCREF(metadatum); /* kept for the life of the process */
    main_thread_ident = main_ident;
    GO_VOID(hotSetup(main_ident, metadatum));
    Py_RETURN_NONE;
}

/* ended_in_go(): how many threads ended with Go frames on their stack
 * (never, if the exit gate keeps its promise). Plain C. */
static PyObject *m_ended_in_go(PyObject *self, PyObject *unused) {
    return PyLong_FromLong(atomic_load(&ended_in_go));
}

/* holds_live(): stream holds (hold.h) allocated and not yet freed. Plain C. */
static PyObject *m_holds_live(PyObject *self, PyObject *unused) {
    return PyLong_FromLong(atomic_load(&hold_live));
}

static PyObject *m_recv_stats(PyObject *self, PyObject *unused) {
    FORK_GUARD();
    return GO(hotRecvStats());
}

static PyObject *m_finish_stats(PyObject *self, PyObject *unused) {
    FORK_GUARD();
    return GO(hotFinishStats());
}

static PyObject *m_unary_starts(PyObject *self, PyObject *unused) {
    FORK_GUARD();
    return GO(hotUnaryStarts());
}

static PyObject *m_check(PyObject *self, PyObject *unused) {
    FORK_GUARD();
    Py_RETURN_NONE;
}

/* exit_begin(): grpc's atexit hook starts (before it stops servers). From
 * now on an event loop in a thread other than the main one takes no more
 * completions from the engine: its thread parks for good in m_cq_drain, as
 * a daemon thread blocked in a call stays blocked. Otherwise the calls that
 * stopping the servers ends would wake such a loop, and its tasks would
 * fail and print tracebacks while the interpreter finalizes. */
static atomic_int exit_begun;

static PyObject *m_exit_begin(PyObject *self, PyObject *unused) {
    atomic_store(&exit_begun, 1);
    Py_RETURN_NONE;
}

/* exiting(): the interpreter is finalizing (grpc's atexit hook). Closes
 * the gate (hot.h): from now on no thread but the main one takes the GIL
 * back from the engine or calls into it; each parks for good instead. Then
 * waits, GIL released, until no thread is left inside Go with the GIL or
 * wanting it (bounded: Python code a thread runs from inside Go, a
 * finalizer say, could block). */
static PyObject *m_exiting(PyObject *self, PyObject *unused) {
    if (forked) Py_RETURN_NONE;
    GO_VOID(hotExiting());
    atomic_store(&hot_gate_closed, 1);
    Py_BEGIN_ALLOW_THREADS
    for (int i = 0; i < 400 && atomic_load(&hot_in_go) > 0; i++) usleep(5000);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *m_channel_new(PyObject *self, PyObject *args) {
    const char *target, *opts;
    Py_ssize_t tn, on;
    PyObject *creds = Py_None;
    if (!PyArg_ParseTuple(args, "s#y#|O", &target, &tn, &opts, &on, &creds)) return NULL;
    FORK_GUARD();
    return GO(hotChannelNew((char *)target, tn, (char *)opts, on, creds));
}

static PyObject *m_channel_close(PyObject *self, PyObject *args) {
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O&", channel_h, &h)) return NULL;
    FORK_GUARD();
    return GO(hotChannelClose(h));
}

static PyObject *m_channel_state(PyObject *self, PyObject *args) {
    uintptr_t h;
    int connect;
    if (!PyArg_ParseTuple(args, "O&p", channel_h, &h, &connect)) return NULL;
    FORK_GUARD();
    return GO(hotChannelState(h, connect));
}

static PyObject *m_channel_watch(PyObject *self, PyObject *args) {
    uintptr_t h;
    int from;
    double timeout;
    if (!PyArg_ParseTuple(args, "O&id", channel_h, &h, &from, &timeout)) return NULL;
    FORK_GUARD();
    return GO(hotChannelWatch(h, from, timeout));
}

/* ---- waiting outside Go ----------------------------------------------------
 * A blocking call started in Go posts a semaphore when it ends; the caller
 * waits for it here with the GIL released. On the main thread the wait
 * wakes every 50 ms to run Python's signal handlers; if one raises, the
 * call is cancelled (cancel) and the wait goes on until Go posts, so the
 * semaphore outlives every use. is_main: the caller is the main thread.
 * Returns 0, or -1 with the exception set. */
static int wait_posted(sem_t *sem, int is_main, uintptr_t call, void (*cancel)(uintptr_t)) {
    int failed = 0;
    PyThreadState *ts = PyEval_SaveThread();
    if (!is_main) {
        while (sem_wait(sem) != 0) {
        }
    } else {
        for (;;) {
            struct timespec until = hot_deadline(0.05);
            if (sem_timedwait(sem, &until) == 0) break;
            if (failed) continue; /* cancelled: wait for Go's post */
            PyEval_RestoreThread(ts);
            if (PyErr_CheckSignals() != 0) {
                failed = 1;
                cancel(call);
            }
            ts = PyEval_SaveThread();
        }
    }
    gate_restore(ts);
    return failed ? -1 : 0;
}

static void cancel_wait(uintptr_t w) { hotCancelWait((hot_wait *)w); }

/* unary(...) with the wait in C: see hotUnaryCall. With response_only, an
 * OK call returns just its response's bytes when Go could leave them in w;
 * otherwise (and always without it) the result tuple hotUnaryResult makes. */
static PyObject *unary_blocking(uintptr_t h, const char *method, Py_ssize_t mn, Py_buffer *req,
                                double timeout, PyObject *md, int wfr, int compression, PyObject *creds,
                                int response_only) {
    int is_main = PyThread_get_thread_ident() == main_thread_ident;
    hot_wait w;
    hot_wait_init(&w);
    PyObject *started = GO(hotUnaryCall(h, (char *)method, mn, req->buf, req->len, LENDABLE(*req), timeout, md,
                                        wfr, compression, creds, &w, response_only, is_main));
    PyObject *result = NULL;
    if (started != NULL) {
        Py_DECREF(started);
        if (wait_posted(&w.sem, is_main, (uintptr_t)&w, cancel_wait) == 0) {
            result = w.has_data ? hot_wait_bytes(&w) : GO(hotUnaryResult(w.call));
        }
        if (w.call != 0) GO_VOID(hotRelease(w.call));
    }
    hot_wait_destroy(&w);
    return result;
}

/* unary(channel, method, request, timeout, metadata, wait_for_ready, compression,
 *       call_credentials_or_None, response_only=False) */
static PyObject *unary_common(PyObject *args, int start) {
    uintptr_t h;
    const char *method;
    Py_ssize_t mn;
    Py_buffer req;
    double timeout;
    PyObject *md, *creds = Py_None;
    int wfr, compression, response_only = 0;
    if (!PyArg_ParseTuple(args, "O&s#y*dOii|Op", channel_h, &h, &method, &mn, &req, &timeout, &md, &wfr,
                          &compression, &creds, &response_only))
        return NULL;
    PyObject *r = NULL;
    if (start) note_thread();
    else note_unary_thread();
    if (forked) {
        fork_error();
    } else if (start) {
        r = GO(hotUnaryBegin(h, (char *)method, mn, req.buf, req.len, LENDABLE(req), timeout, md, wfr,
                             compression, creds));
    } else {
        r = unary_blocking(h, method, mn, &req, timeout, md, wfr, compression, creds, response_only);
    }
    PyBuffer_Release(&req);
    return r;
}
static PyObject *m_unary(PyObject *self, PyObject *args) { return unary_common(args, 0); }
static PyObject *m_unary_start(PyObject *self, PyObject *args) { return unary_common(args, 1); }

static PyObject *m_unary_wait(PyObject *self, PyObject *args) {
    uintptr_t h;
    double timeout;
    if (!PyArg_ParseTuple(args, "O&d", unary_h, &h, &timeout)) return NULL;
    FORK_GUARD();
    return GO(hotUnaryWait(h, timeout));
}

static PyObject *m_unary_cancel(PyObject *self, PyObject *args) {
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O&", unary_h, &h)) return NULL;
    FORK_GUARD();
    return GO(hotUnaryCancel(h));
}

/* stream_start(channel, method, timeout, metadata, wait_for_ready, compression,
 *              call_credentials_or_None, server_streams, client_streams, first_or_None,
 *              close_after) */
static PyObject *m_stream_start(PyObject *self, PyObject *args) {
    uintptr_t h;
    const char *method;
    Py_ssize_t mn;
    double timeout;
    PyObject *md, *creds;
    int wfr, compression, ss, cs, close_after;
    optbuf first = {0};
    if (!PyArg_ParseTuple(args, "O&s#dOiiOppO&p", channel_h, &h, &method, &mn, &timeout, &md, &wfr,
                          &compression, &creds, &ss, &cs, opt_buffer, &first, &close_after))
        return NULL;
    note_thread();
    PyObject *r = forked ? fork_error()
        : GO(hotStreamStart(h, (char *)method, mn, timeout, md, wfr, compression, creds, ss, cs,
                            first.has ? first.view.buf : NULL, first.has ? first.view.len : 0,
                            first.has ? LENDABLE(first.view) : NULL, first.has,
                            close_after));
    if (first.has) PyBuffer_Release(&first.view);
    return r;
}

/* ---- held sends (hold.h) ---------------------------------------------------
 * A small message a thread other than the main one sends right after its
 * previous send on the same stream (less than HOLD_GAP_NS between them: a
 * loop) waits in the stream's hold instead of crossing into Go; a slower
 * sender's messages cross one by one as before. Every other operation on
 * the stream flushes the hold first (hold_flush), so it comes after. */
static __thread uintptr_t last_send_h;
static __thread int64_t last_send_end;

/* hotHoldSend, holding a reference across its GIL release: another thread
 * may end the capsule's hold meanwhile (hold_end). */
static int hold_send(hot_hold *held) {
    hot_hold_ref(held);
    int r = GO(hotHoldSend(held));
    hot_hold_unref(held);
    return r;
}

/* Moves cap's held messages into the engine before another operation on
 * its stream. 0, or -1 with an exception set. */
static int hold_flush(PyObject *cap) {
    hot_hold *held = hold_of(cap);
    if (held == NULL || !hot_hold_pending(held)) return 0;
    return hold_send(held) < 0 ? -1 : 0;
}

/* The stream sends no more (half-closed, cancelled): its hold goes (what it
 * still holds is dropped if drop) and it never holds again. */
static void hold_end(PyObject *cap, int drop) {
    hot_hold *held = hold_of(cap);
    if (held == NULL) return;
    if (drop) hot_hold_drop(held);
    PyCapsule_SetContext(cap, &hold_off_mark);
    hot_hold_unref(held);
}

/* Holds msg if it may be held: 1 held, 0 send it as before, -1 the stream
 * takes no more messages, -2 an exception is set. */
static int hold_put(PyObject *cap, uintptr_t h, Py_buffer *msg) {
    if (!hold_enabled || msg->len > HOLD_MSG_MAX || PyThread_get_thread_ident() == hot_main_ident)
        return 0;
    int64_t now = hold_now();
    int fast = last_send_h == h && now - last_send_end < HOLD_GAP_NS;
    hot_hold *held = hold_of(cap);
    if (held == NULL) {
        if (!fast || PyCapsule_GetContext(cap) != NULL) return 0;
        uintptr_t target = GO(hotHoldTarget(h));
        if (target == 0) return 0;
        if ((held = hot_hold_new(target)) == NULL) {
            hotHoldFree(target);
            return 0;
        }
        PyCapsule_SetContext(cap, held);
    }
    for (int tries = 0; tries < 2; tries++) {
        int r = hot_hold_put(held, msg->buf, (uint32_t)msg->len, now, fast);
        if (r == 1) {
            last_send_h = h;
            last_send_end = now;
        }
        if (r != 0) return r == 2 ? 0 : r;
        /* Full, or its oldest message is due: flush, then hold this one. */
        int alive = hold_send(held);
        if (alive < 0) return -2;
        if (alive == 0) return -1;
        if (hold_of(cap) != held) return 0; /* ended while the GIL was free */
        now = hold_now();
    }
    return 0;
}

/* A send: held, or made as before (hotStreamSend, hotCallSend) after
 * whatever is held. */
static PyObject *send_or_hold(PyObject *cap, uintptr_t h, Py_buffer *msg,
                              PyObject *(*send)(uintptr_t, void *, Py_ssize_t, PyObject *)) {
    switch (hold_put(cap, h, msg)) {
    case 1: Py_RETURN_TRUE;
    case -1: Py_RETURN_FALSE;
    case -2: return NULL;
    }
    if (hold_flush(cap) < 0) return NULL;
    PyObject *r = GO(send(h, msg->buf, msg->len, LENDABLE(*msg)));
    last_send_h = h;
    last_send_end = hold_now();
    return r;
}

static PyObject *m_stream_send(PyObject *self, PyObject *args) {
    PyObject *cap;
    uintptr_t h;
    Py_buffer msg;
    if (!PyArg_ParseTuple(args, "Oy*", &cap, &msg)) return NULL;
    if (!stream_h(cap, &h)) {
        PyBuffer_Release(&msg);
        return NULL;
    }
    note_thread();
    PyObject *r = forked ? fork_error() : send_or_hold(cap, h, &msg, hotStreamSend);
    PyBuffer_Release(&msg);
    return r;
}

static PyObject *m_stream_close_send(PyObject *self, PyObject *args) {
    PyObject *cap;
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O", &cap) || !stream_h(cap, &h)) return NULL;
    FORK_GUARD();
    if (hold_flush(cap) < 0) return NULL;
    hold_end(cap, 0);
    return GO(hotStreamCloseSend(h));
}

static PyObject *m_stream_recv(PyObject *self, PyObject *args) {
    uintptr_t h;
    Py_ssize_t max;
    double timeout;
    if (!PyArg_ParseTuple(args, "O&nd", stream_h, &h, &max, &timeout)) return NULL;
    FORK_GUARD();
    return GO(hotStreamRecv(h, max, timeout));
}

static PyObject *m_stream_header(PyObject *self, PyObject *args) {
    uintptr_t h;
    double timeout;
    if (!PyArg_ParseTuple(args, "O&d", stream_h, &h, &timeout)) return NULL;
    FORK_GUARD();
    return GO(hotStreamHeader(h, timeout));
}

static PyObject *m_stream_status(PyObject *self, PyObject *args) {
    uintptr_t h;
    double timeout;
    if (!PyArg_ParseTuple(args, "O&d", stream_h, &h, &timeout)) return NULL;
    FORK_GUARD();
    return GO(hotStreamStatus(h, timeout));
}

static PyObject *m_stream_cancel(PyObject *self, PyObject *args) {
    PyObject *cap;
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O", &cap) || !stream_h(cap, &h)) return NULL;
    FORK_GUARD();
    hold_end(cap, 1);
    return GO(hotStreamCancel(h));
}

static PyObject *m_server_new(PyObject *self, PyObject *args) {
    const char *opts;
    Py_ssize_t on;
    long long max_concurrent;
    int xds = 0;
    if (!PyArg_ParseTuple(args, "y#L|p", &opts, &on, &max_concurrent, &xds)) return NULL;
    FORK_GUARD();
    return GO(hotServerNew((char *)opts, on, max_concurrent, xds));
}

static PyObject *m_server_add_port(PyObject *self, PyObject *args) {
    uintptr_t h;
    const char *addr;
    Py_ssize_t an;
    PyObject *creds = Py_None;
    if (!PyArg_ParseTuple(args, "O&s#|O", server_h, &h, &addr, &an, &creds)) return NULL;
    FORK_GUARD();
    return GO(hotServerAddPort(h, (char *)addr, an, creds));
}

static PyObject *m_server_start(PyObject *self, PyObject *args) {
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O&", server_h, &h)) return NULL;
    FORK_GUARD();
    return GO(hotServerStart(h));
}

/* The server's dispatcher (dispatch.h), looked up in Go once and kept as
 * the capsule's context. */
static hot_dispatch *server_dispatch(PyObject *server, uintptr_t h) {
    hot_dispatch *d = (hot_dispatch *)PyCapsule_GetContext(server);
    if (d == NULL) {
        d = (hot_dispatch *)GO(hotServerDispatch(h));
        PyCapsule_SetContext(server, d);
    }
    return d;
}

/* Takes the next queued call from Go (see server_take), counting it off. */
static PyObject *take_call(hot_dispatch *d, uintptr_t h) {
    PyObject *event = GO(hotServerTake(h));
    if (event != NULL && PyTuple_Check(event)) atomic_fetch_sub(&d->queued, 1);
    return event;
}

/* server_wait_call(server): for the dispatcher thread. Sleeps on the
 * server's poller semaphore (dispatch.h), GIL released, outside Go, until Go
 * posts it (a call was queued while no pool thread lingered) and a call is
 * still queued: a post whose call a lingering thread took meanwhile is
 * skipped, so no task is started for nothing. True, or False once the
 * server stops. */
static PyObject *m_server_wait_call(PyObject *self, PyObject *args) {
    PyObject *server;
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O", &server) || !server_h(server, &h)) return NULL;
    FORK_GUARD();
    hot_dispatch *d = server_dispatch(server, h);
    int stopped;
    Py_BEGIN_ALLOW_THREADS
    do {
        while (sem_wait(&d->poller) != 0) {
        }
        stopped = atomic_load(&d->stopped);
    } while (!stopped && !hot_dispatch_pending(d));
    GATE_END_ALLOW_THREADS
    return PyBool_FromLong(!stopped);
}

/* server_take(server): the next queued call without waiting, False if none
 * is queued, None once the server stopped. */
static PyObject *m_server_take(PyObject *self, PyObject *args) {
    PyObject *server;
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O", &server) || !server_h(server, &h)) return NULL;
    FORK_GUARD();
    return take_call(server_dispatch(server, h), h);
}

/* server_linger(server, seconds): the next incoming call for a pool thread
 * that has just finished one, waiting up to seconds: a call, False if none
 * came, None once the server stopped. A post whose call another thread
 * took first (threads take before they linger) does not end the wait. Go
 * is asked for a call only when one may be queued. */
static PyObject *m_server_linger(PyObject *self, PyObject *args) {
    PyObject *server;
    uintptr_t h;
    double seconds;
    if (!PyArg_ParseTuple(args, "Od", &server, &seconds) || !server_h(server, &h)) return NULL;
    FORK_GUARD();
    hot_dispatch *d = server_dispatch(server, h);
    struct timespec until = hot_deadline(seconds);
    int posted = 0; /* woken by a post, and not yet arrived (dispatch.h) */
    int looks = 0;  /* on its way again with nothing to take: bounded */
    for (;;) {
        if (hot_dispatch_pending(d)) {
            PyObject *event = take_call(d, h);
            if (event != Py_False) {
                if (posted) hot_dispatch_arrived(d, event == NULL || PyTuple_Check(event));
                return event;
            }
            Py_DECREF(event);
        }
        if (posted) { /* took nothing: arrived, or on its way again to look once more */
            posted = hot_dispatch_arrived(d, 0);
            if (posted && ++looks < 64) continue;
            if (posted) { /* queued says a call is there, the take found none: linger */
                hot_dispatch_arrived(d, 1);
                posted = 0;
            }
        }
        int r;
        Py_BEGIN_ALLOW_THREADS
        r = hot_dispatch_linger(d, &until);
        GATE_END_ALLOW_THREADS
        if (r == 0) Py_RETURN_FALSE;
        posted = r == 1; /* else stopped: the take says so */
    }
}

/* server_wakeups(server): (pool threads lingering now, lingering threads
 * woken by calls so far), from the dispatcher (dispatch.h), for tests. */
static PyObject *m_server_wakeups(PyObject *self, PyObject *args) {
    PyObject *server;
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O", &server) || !server_h(server, &h)) return NULL;
    FORK_GUARD();
    hot_dispatch *d = server_dispatch(server, h);
    return Py_BuildValue("(il)", atomic_load(&d->idle), atomic_load(&d->wakes));
}

static PyObject *m_server_mark_unary(PyObject *self, PyObject *args) {
    uintptr_t h;
    const char *method;
    Py_ssize_t mn;
    if (!PyArg_ParseTuple(args, "O&s#", server_h, &h, &method, &mn)) return NULL;
    FORK_GUARD();
    return GO(hotServerMarkUnary(h, (char *)method, mn));
}

static PyObject *m_server_stop(PyObject *self, PyObject *args) {
    uintptr_t h;
    double grace;
    if (!PyArg_ParseTuple(args, "O&d", server_h, &h, &grace)) return NULL;
    FORK_GUARD();
    return GO(hotServerStop(h, grace));
}

static PyObject *m_server_refuse(PyObject *self, PyObject *args) {
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O&", server_h, &h)) return NULL;
    FORK_GUARD();
    return GO(hotServerRefuse(h));
}

static PyObject *m_server_wait(PyObject *self, PyObject *args) {
    uintptr_t h;
    double timeout;
    if (!PyArg_ParseTuple(args, "O&d", server_h, &h, &timeout)) return NULL;
    FORK_GUARD();
    return GO(hotServerWait(h, timeout));
}

static PyObject *m_call_recv_one(PyObject *self, PyObject *args) {
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O&", call_h, &h)) return NULL;
    FORK_GUARD();
    return GO(hotCallRecvOne(h));
}

/* The handler waits for requests: what it sent goes out first. */
static PyObject *m_call_recv(PyObject *self, PyObject *args) {
    PyObject *cap;
    uintptr_t h;
    Py_ssize_t max;
    if (!PyArg_ParseTuple(args, "On", &cap, &max) || !call_h(cap, &h)) return NULL;
    FORK_GUARD();
    if (hold_flush(cap) < 0) return NULL;
    return GO(hotCallRecv(h, max));
}

static PyObject *m_call_send(PyObject *self, PyObject *args) {
    PyObject *cap;
    uintptr_t h;
    Py_buffer msg;
    if (!PyArg_ParseTuple(args, "Oy*", &cap, &msg)) return NULL;
    if (!call_h(cap, &h)) {
        PyBuffer_Release(&msg);
        return NULL;
    }
    note_thread();
    PyObject *r = forked ? fork_error() : send_or_hold(cap, h, &msg, hotCallSend);
    PyBuffer_Release(&msg);
    return r;
}

static PyObject *m_call_send_header(PyObject *self, PyObject *args) {
    PyObject *cap, *md;
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "OO", &cap, &md) || !call_h(cap, &h)) return NULL;
    FORK_GUARD();
    if (hold_flush(cap) < 0) return NULL;
    return GO(hotCallSendHeader(h, md));
}

/* call_finish(call, code, details, trailing_metadata, last_or_None) */
static PyObject *m_call_finish(PyObject *self, PyObject *args) {
    uintptr_t h;
    int code;
    const char *details;
    Py_ssize_t dn;
    PyObject *md;
    optbuf last = {0};
    PyObject *call;
    if (!PyArg_ParseTuple(args, "Ois#OO&", &call, &code, &details, &dn, &md, opt_buffer, &last))
        return NULL;
    if (!call_h(call, &h)) {
        if (last.has) PyBuffer_Release(&last.view);
        return NULL;
    }
    note_thread();
    if (!forked && hold_flush(call) < 0) {
        if (last.has) PyBuffer_Release(&last.view);
        return NULL;
    }
    PyObject *r = forked ? fork_error()
        : GO(hotCallFinish(h, code, (char *)details, dn, md, last.has ? last.view.buf : NULL,
                           last.has ? last.view.len : 0, last.has ? LENDABLE(last.view) : NULL, last.has));
    if (last.has) PyBuffer_Release(&last.view);
    if (r != NULL) {
        hot_hold *held = hold_of(call);
        PyCapsule_SetContext(call, &settled_mark);
        if (held != NULL) hot_hold_unref(held);
    }
    return r;
}

static PyObject *m_call_set_compression(PyObject *self, PyObject *args) {
    PyObject *cap;
    uintptr_t h;
    int algorithm;
    if (!PyArg_ParseTuple(args, "Oi", &cap, &algorithm) || !call_h(cap, &h)) return NULL;
    FORK_GUARD();
    if (hold_flush(cap) < 0) return NULL;
    return GO(hotCallSetCompression(h, algorithm));
}

/* The mark goes on the next message as it crosses (hotCallSend): this
 * call's sends are never held from now on. */
static PyObject *m_call_disable_next_compression(PyObject *self, PyObject *args) {
    PyObject *cap;
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O", &cap) || !call_h(cap, &h)) return NULL;
    FORK_GUARD();
    if (hold_flush(cap) < 0) return NULL;
    if (PyCapsule_GetContext(cap) == NULL) PyCapsule_SetContext(cap, &hold_off_mark);
    hold_end(cap, 0);
    return GO(hotCallDisableNextCompression(h));
}

static PyObject *m_call_cancel(PyObject *self, PyObject *args) {
    PyObject *cap;
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O", &cap) || !call_h(cap, &h)) return NULL;
    FORK_GUARD();
    hold_end(cap, 1);
    return GO(hotCallCancel(h));
}

static PyObject *m_call_metadata(PyObject *self, PyObject *args) {
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O&", call_h, &h)) return NULL;
    FORK_GUARD();
    return GO(hotCallMetadata(h));
}

static PyObject *m_call_active(PyObject *self, PyObject *args) {
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O&", call_h, &h)) return NULL;
    FORK_GUARD();
    return GO(hotCallActive(h));
}

static PyObject *m_call_notify_done(PyObject *self, PyObject *args) {
    uintptr_t h;
    long long token;
    if (!PyArg_ParseTuple(args, "O&L", call_h, &h, &token)) return NULL;
    FORK_GUARD();
    return GO(hotCallNotifyDone(h, token));
}

/* ---- asyncio: completion queues and operations (pyext/hot_aio.go) -------
 * Every aio_* function takes the loop's queue and a token first, answers at
 * once or returns an operation capsule that completes that token (cq.h). */
#define CQ_NAME "grpcgo.CompletionQueue"

static void cq_capsule_release(PyObject *cap) {
    hot_cq *q = PyCapsule_GetPointer(cap, CQ_NAME);
    if (q != NULL) hot_cq_unref(q);
}

static int cq_arg(PyObject *o, void *out) {
    hot_cq *q = PyCapsule_GetPointer(o, CQ_NAME);
    if (q == NULL) {
        PyErr_Clear();
        PyErr_Format(PyExc_TypeError, "expected a %s, got %.100s", CQ_NAME, Py_TYPE(o)->tp_name);
        return 0;
    }
    *(hot_cq **)out = q;
    return 1;
}

static int op_h(PyObject *o, void *out) { return as_handle(o, out, HOT_OP); }

static PyObject *m_cq_new(PyObject *self, PyObject *unused) {
    FORK_GUARD();
    hot_cq *q = hot_cq_new();
    if (q == NULL) return PyErr_SetFromErrno(PyExc_OSError);
    PyObject *cap = PyCapsule_New(q, CQ_NAME, cq_capsule_release);
    if (cap == NULL) hot_cq_unref(q);
    return cap;
}

static PyObject *m_cq_fd(PyObject *self, PyObject *args) {
    hot_cq *q;
    if (!PyArg_ParseTuple(args, "O&", cq_arg, &q)) return NULL;
    return PyLong_FromLong(hot_cq_fd(q));
}

/* Plain C, no Go: the loop's reader callback. A forked child shares the
 * queue's fd with its parent (and nothing completes in the child): reading
 * it there would take the parent's wake-up, and the parent's loop would
 * never drain again. So the child takes nothing and leaves the fd alone. */
static PyObject *m_cq_drain(PyObject *self, PyObject *args) {
    hot_cq *q;
    if (!PyArg_ParseTuple(args, "O&", cq_arg, &q)) return NULL;
    if (forked) return PyTuple_New(0);
    if (atomic_load(&exit_begun) && PyThread_get_thread_ident() != hot_main_ident) {
        PyEval_SaveThread();
        hot_park();
    }
    return hot_cq_drain(q);
}

static PyObject *m_aio_result(PyObject *self, PyObject *args) {
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O&", op_h, &h)) return NULL;
    FORK_GUARD();
    return GO(hotAioResult(h));
}

/* aio_unary(cq, token, channel, method, request, timeout, metadata, wait_for_ready,
 *           compression, call_credentials_or_None) -> call */
static PyObject *m_aio_unary(PyObject *self, PyObject *args) {
    hot_cq *q;
    unsigned long long token;
    uintptr_t h;
    const char *method;
    Py_ssize_t mn;
    Py_buffer req;
    double timeout;
    PyObject *md, *creds = Py_None;
    int wfr, compression;
    if (!PyArg_ParseTuple(args, "O&KO&s#y*dOii|O", cq_arg, &q, &token, channel_h, &h, &method, &mn, &req,
                          &timeout, &md, &wfr, &compression, &creds))
        return NULL;
    note_thread();
    PyObject *r = forked ? fork_error()
        : GO(hotAioUnary(q, token, h, (char *)method, mn, req.buf, req.len, LENDABLE(req), timeout, md,
                         wfr, compression, creds, NULL));
    PyBuffer_Release(&req);
    return r;
}

#include "aio_unary.h" /* grpc.aio's unary call in C: Wait, cq_resolve, AioUnaryCall */
#include "aio_iterators.h" /* grpc.aio's stream iterators: AioRequests, AioResponses */

/* (cq, token, handle, max[, next]) for receives; next: a token armed after
 * a take (pyext/hot_aio.go aioRecv), 0 for none */
static PyObject *aio_recv(PyObject *args, int (*conv)(PyObject *, void *),
                          PyObject *(*go)(hot_cq *, uint64_t, uintptr_t, Py_ssize_t, uint64_t)) {
    hot_cq *q;
    unsigned long long token, next = 0;
    uintptr_t h;
    Py_ssize_t max;
    if (!PyArg_ParseTuple(args, "O&KO&n|K", cq_arg, &q, &token, conv, &h, &max, &next)) return NULL;
    FORK_GUARD();
    return GO(go(q, token, h, max, next));
}
static PyObject *m_aio_recv_arm(PyObject *self, PyObject *noargs) {
    return PyBool_FromLong(GO(hotAioRecvArm()));
}
static PyObject *m_aio_stream_recv(PyObject *self, PyObject *args) {
    return aio_recv(args, stream_h, hotAioStreamRecv);
}
static PyObject *m_aio_call_recv(PyObject *self, PyObject *args) {
    return aio_recv(args, call_h, hotAioCallRecv);
}

/* (cq, token, handle, message) for sends */
static PyObject *aio_send(PyObject *args, int (*conv)(PyObject *, void *),
                          PyObject *(*go)(hot_cq *, uint64_t, uintptr_t, void *, Py_ssize_t, PyObject *)) {
    hot_cq *q;
    unsigned long long token;
    uintptr_t h;
    Py_buffer msg;
    if (!PyArg_ParseTuple(args, "O&KO&y*", cq_arg, &q, &token, conv, &h, &msg)) return NULL;
    note_thread();
    PyObject *r = forked ? fork_error() : GO(go(q, token, h, msg.buf, msg.len, LENDABLE(msg)));
    PyBuffer_Release(&msg);
    return r;
}
/* aio_call_send_many(cq, token, call, list of bytes), and
 * aio_stream_send_many(cq, token, stream, list of bytes) */
static PyObject *aio_send_many(PyObject *args, int (*conv)(PyObject *, void *),
                               PyObject *(*go)(hot_cq *, uint64_t, uintptr_t, void **, Py_ssize_t *,
                                               PyObject **, Py_ssize_t)) {
    hot_cq *q;
    unsigned long long token;
    uintptr_t h;
    PyObject *list;
    if (!PyArg_ParseTuple(args, "O&KO&O!", cq_arg, &q, &token, conv, &h, &PyList_Type, &list))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(list);
    void **ptrs = PyMem_Malloc((n ? n : 1) * sizeof *ptrs);
    Py_ssize_t *lens = PyMem_Malloc((n ? n : 1) * sizeof *lens);
    PyObject **objs = PyMem_Malloc((n ? n : 1) * sizeof *objs);
    PyObject *r = NULL;
    if (ptrs == NULL || lens == NULL || objs == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (!PyBytes_CheckExact(item)) {
            PyErr_Format(PyExc_TypeError, "expected bytes, got %.100s", Py_TYPE(item)->tp_name);
            goto done;
        }
        ptrs[i] = PyBytes_AS_STRING(item);
        lens[i] = PyBytes_GET_SIZE(item);
        objs[i] = item;
    }
    note_thread();
    r = forked ? fork_error() : GO(go(q, token, h, ptrs, lens, objs, n));
done:
    PyMem_Free(ptrs);
    PyMem_Free(lens);
    PyMem_Free(objs);
    return r;
}
static PyObject *m_aio_call_send_many(PyObject *self, PyObject *args) {
    return aio_send_many(args, call_h, hotAioCallSendMany);
}
static PyObject *m_aio_stream_send_many(PyObject *self, PyObject *args) {
    return aio_send_many(args, stream_h, hotAioStreamSendMany);
}
static PyObject *m_aio_stream_send(PyObject *self, PyObject *args) {
    return aio_send(args, stream_h, hotAioStreamSend);
}
static PyObject *m_aio_call_send(PyObject *self, PyObject *args) {
    return aio_send(args, call_h, hotAioCallSend);
}

/* (cq, token, handle) for waits on one object */
static PyObject *aio_on(PyObject *args, int (*conv)(PyObject *, void *),
                        PyObject *(*go)(hot_cq *, uint64_t, uintptr_t)) {
    hot_cq *q;
    unsigned long long token;
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O&KO&", cq_arg, &q, &token, conv, &h)) return NULL;
    FORK_GUARD();
    return GO(go(q, token, h));
}
static PyObject *m_aio_stream_header(PyObject *self, PyObject *args) {
    return aio_on(args, stream_h, hotAioStreamHeader);
}
static PyObject *m_aio_stream_status(PyObject *self, PyObject *args) {
    return aio_on(args, stream_h, hotAioStreamStatus);
}
static PyObject *m_aio_stream_opened(PyObject *self, PyObject *args) {
    return aio_on(args, stream_h, hotAioStreamOpened);
}
static PyObject *m_aio_stream_close_send(PyObject *self, PyObject *args) {
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O&", stream_h, &h)) return NULL;
    FORK_GUARD();
    return GO(hotAioStreamCloseSend(h));
}
static PyObject *m_aio_server_stopped(PyObject *self, PyObject *args) {
    return aio_on(args, server_h, hotAioServerStopped);
}

static PyObject *m_aio_server_attach(PyObject *self, PyObject *args) {
    return aio_on(args, server_h, hotAioServerAttach);
}

/* aio_server_take(server, max, cq, first_token): the calls taken are
 * watched with first_token, first_token + 1, ... */
static PyObject *m_aio_server_take(PyObject *self, PyObject *args) {
    uintptr_t h;
    Py_ssize_t max;
    hot_cq *q;
    unsigned long long first;
    if (!PyArg_ParseTuple(args, "O&nO&K", server_h, &h, &max, cq_arg, &q, &first)) return NULL;
    FORK_GUARD();
    return GO(hotAioServerTake(h, max, q, first));
}

static PyObject *m_aio_call_send_header(PyObject *self, PyObject *args) {
    uintptr_t h;
    PyObject *md;
    if (!PyArg_ParseTuple(args, "O&O", call_h, &h, &md)) return NULL;
    FORK_GUARD();
    return GO(hotAioCallSendHeader(h, md));
}

static PyObject *m_aio_call_set_compression(PyObject *self, PyObject *args) {
    uintptr_t h;
    int algorithm;
    if (!PyArg_ParseTuple(args, "O&i", call_h, &h, &algorithm)) return NULL;
    FORK_GUARD();
    return GO(hotAioCallSetCompression(h, algorithm));
}

/* The loop's reading of a ping-pong's connection (core/loopread.go).
 * aio_call_loop_read(call, on) / aio_stream_loop_read(stream, on): on, a
 * dup of the connection's socket for loop.add_reader (the caller closes
 * it), or -1 (not now); off, -1.
 * aio_call_pump(call, cq, waiting) / aio_stream_pump(stream, cq, waiting):
 * the loop's reader callback. The frames the socket has are read and
 * handled here; what they complete on cq is drained right after, as the
 * queue's own reader would (cq_resolve), with no eventfd round: the queue
 * counts as woken meanwhile. True while the loop reads the connection. */
static PyObject *loop_read(PyObject *args, int (*conv)(PyObject *, void *),
                           PyObject *(*go)(uintptr_t, int)) {
    uintptr_t h;
    int on;
    if (!PyArg_ParseTuple(args, "O&p", conv, &h, &on)) return NULL;
    FORK_GUARD();
    return GO(go(h, on));
}

static PyObject *loop_pump(PyObject *self, PyObject *args, int (*conv)(PyObject *, void *),
                           PyObject *(*go)(uintptr_t)) {
    uintptr_t h;
    PyObject *cqo, *waiting;
    hot_cq *q;
    if (!PyArg_ParseTuple(args, "O&O&O!", conv, &h, cq_arg, &q, &PyDict_Type, &waiting)) return NULL;
    FORK_GUARD();
    cqo = PyTuple_GET_ITEM(args, 1);
    pthread_mutex_lock(&q->mu);
    q->signalled = 1; /* the drain below takes what the pump completes */
    pthread_mutex_unlock(&q->mu);
    PyObject *reading = GO(go(h));
    /* Drained whatever happened: the queue counts as woken until then. */
    PyObject *et, *ev, *tb;
    PyErr_Fetch(&et, &ev, &tb);
    PyObject *a[2] = {cqo, waiting};
    PyObject *r = m_cq_resolve(self, a, 2);
    if (r == NULL) {
        Py_XDECREF(et);
        Py_XDECREF(ev);
        Py_XDECREF(tb);
        Py_XDECREF(reading);
        return NULL;
    }
    Py_DECREF(r);
    PyErr_Restore(et, ev, tb);
    return reading;
}

static PyObject *m_aio_loop_read_counts(PyObject *self, PyObject *unused) {
    return GO(hotAioLoopReadCounts());
}
static PyObject *m_aio_call_loop_read(PyObject *self, PyObject *args) {
    return loop_read(args, call_h, hotAioCallLoopRead);
}
static PyObject *m_aio_stream_loop_read(PyObject *self, PyObject *args) {
    return loop_read(args, stream_h, hotAioStreamLoopRead);
}
static PyObject *m_aio_call_pump(PyObject *self, PyObject *args) {
    return loop_pump(self, args, call_h, hotAioCallPump);
}
static PyObject *m_aio_stream_pump(PyObject *self, PyObject *args) {
    return loop_pump(self, args, stream_h, hotAioStreamPump);
}

static PyObject *m_aio_channel_watch(PyObject *self, PyObject *args) {
    hot_cq *q;
    unsigned long long token;
    uintptr_t h;
    int from;
    if (!PyArg_ParseTuple(args, "O&KO&i", cq_arg, &q, &token, channel_h, &h, &from)) return NULL;
    FORK_GUARD();
    return GO(hotAioChannelWatch(q, token, h, from));
}

static PyObject *m_aio_server_stop(PyObject *self, PyObject *args) {
    hot_cq *q;
    unsigned long long token;
    uintptr_t h;
    double grace;
    if (!PyArg_ParseTuple(args, "O&KO&d", cq_arg, &q, &token, server_h, &h, &grace)) return NULL;
    FORK_GUARD();
    return GO(hotAioServerStop(q, token, h, grace));
}

/* ---- credentials and callbacks (cold path) ------------------------------ */
#define ARGS0(name, call) \
    static PyObject *name(PyObject *self, PyObject *unused) { FORK_GUARD(); return call; }

static PyObject *m_creds_ssl_channel(PyObject *self, PyObject *args) {
    PyObject *roots, *key, *chain;
    if (!PyArg_ParseTuple(args, "OOO", &roots, &key, &chain)) return NULL;
    FORK_GUARD();
    return GO(hotCredsSSLChannel(roots, key, chain));
}
static PyObject *m_creds_local_channel(PyObject *self, PyObject *args) {
    int uds;
    if (!PyArg_ParseTuple(args, "p", &uds)) return NULL;
    FORK_GUARD();
    return GO(hotCredsLocalChannel(uds));
}
static PyObject *m_creds_local_server(PyObject *self, PyObject *args) {
    int uds;
    if (!PyArg_ParseTuple(args, "p", &uds)) return NULL;
    FORK_GUARD();
    return GO(hotCredsLocalServer(uds));
}
ARGS0(m_creds_alts_server, GO(hotCredsALTSServer()))
ARGS0(m_creds_insecure_server, GO(hotCredsInsecureServer()))
static PyObject *m_creds_xds_channel(PyObject *self, PyObject *args) {
    PyObject *fallback;
    if (!PyArg_ParseTuple(args, "O", &fallback)) return NULL;
    FORK_GUARD();
    return GO(hotCredsXDSChannel(fallback));
}
static PyObject *m_creds_xds_server(PyObject *self, PyObject *args) {
    PyObject *fallback;
    if (!PyArg_ParseTuple(args, "O", &fallback)) return NULL;
    FORK_GUARD();
    return GO(hotCredsXDSServer(fallback));
}
static PyObject *m_session_cache_new(PyObject *self, PyObject *args) {
    int capacity;
    if (!PyArg_ParseTuple(args, "i", &capacity)) return NULL;
    FORK_GUARD();
    return GO(hotSessionCacheNew(capacity));
}
static PyObject *m_session_cache_release(PyObject *self, PyObject *args) {
    long long id;
    if (!PyArg_ParseTuple(args, "L", &id)) return NULL;
    FORK_GUARD();
    return GO(hotSessionCacheRelease(id));
}
static PyObject *m_creds_alts_channel(PyObject *self, PyObject *args) {
    PyObject *accounts;
    if (!PyArg_ParseTuple(args, "O", &accounts)) return NULL;
    FORK_GUARD();
    return GO(hotCredsALTSChannel(accounts));
}
static PyObject *m_creds_composite_channel(PyObject *self, PyObject *args) {
    PyObject *channel, *calls;
    if (!PyArg_ParseTuple(args, "OO", &channel, &calls)) return NULL;
    FORK_GUARD();
    return GO(hotCredsCompositeChannel(channel, calls));
}
static PyObject *m_creds_access_token(PyObject *self, PyObject *args) {
    PyObject *token;
    if (!PyArg_ParseTuple(args, "O", &token)) return NULL;
    FORK_GUARD();
    return GO(hotCredsAccessToken(token));
}
static PyObject *m_creds_plugin(PyObject *self, PyObject *args) {
    long long id;
    if (!PyArg_ParseTuple(args, "L", &id)) return NULL;
    FORK_GUARD();
    return GO(hotCredsPlugin(id));
}
static PyObject *m_creds_composite_call(PyObject *self, PyObject *args) {
    PyObject *calls;
    if (!PyArg_ParseTuple(args, "O", &calls)) return NULL;
    FORK_GUARD();
    return GO(hotCredsCompositeCall(calls));
}
static PyObject *m_creds_cert_config(PyObject *self, PyObject *args) {
    PyObject *pairs, *roots;
    if (!PyArg_ParseTuple(args, "OO", &pairs, &roots)) return NULL;
    FORK_GUARD();
    return GO(hotCredsCertConfig(pairs, roots));
}
static PyObject *m_creds_ssl_server(PyObject *self, PyObject *args) {
    PyObject *config;
    int require;
    if (!PyArg_ParseTuple(args, "Op", &config, &require)) return NULL;
    FORK_GUARD();
    return GO(hotCredsSSLServer(config, require));
}
static PyObject *m_creds_dynamic_server(PyObject *self, PyObject *args) {
    PyObject *initial;
    long long fetcher;
    int require;
    if (!PyArg_ParseTuple(args, "OLp", &initial, &fetcher, &require)) return NULL;
    FORK_GUARD();
    return GO(hotCredsDynamicServer(initial, fetcher, require));
}
static PyObject *m_callback_next(PyObject *self, PyObject *args) {
    double timeout;
    if (!PyArg_ParseTuple(args, "d", &timeout)) return NULL;
    FORK_GUARD();
    return GO(hotCallbackNext(timeout));
}
static PyObject *m_events_wait(PyObject *self, PyObject *args) {
    double timeout;
    if (!PyArg_ParseTuple(args, "d", &timeout)) return NULL;
    FORK_GUARD();
    return GO(hotEventsWait(timeout));
}
static PyObject *m_events_next(PyObject *self, PyObject *args) {
    double timeout;
    if (!PyArg_ParseTuple(args, "d", &timeout)) return NULL;
    FORK_GUARD();
    return GO(hotEventsNext(timeout));
}
static PyObject *m_callback_reply(PyObject *self, PyObject *args) {
    uintptr_t h;
    PyObject *md, *error, *cert;
    if (!PyArg_ParseTuple(args, "O&OOO", callback_h, &h, &md, &error, &cert)) return NULL;
    FORK_GUARD();
    return GO(hotCallbackReply(h, md, error, cert));
}
static PyObject *m_log_setup(PyObject *self, PyObject *args) {
    int severity, verbose;
    PyObject *traced;
    if (!PyArg_ParseTuple(args, "iiO", &severity, &verbose, &traced)) return NULL;
    FORK_GUARD();
    return GO(hotLogSetup(severity, verbose, traced));
}
static PyObject *m_metrics_enable(PyObject *self, PyObject *args) {
    int on;
    if (!PyArg_ParseTuple(args, "p", &on)) return NULL;
    FORK_GUARD();
    return GO(hotMetricsEnable(on));
}
static PyObject *m_metrics_take(PyObject *self, PyObject *unused) {
    FORK_GUARD();
    return GO(hotMetricsTake());
}
static PyObject *m_call_auth_context(PyObject *self, PyObject *args) {
    uintptr_t h;
    if (!PyArg_ParseTuple(args, "O&", call_h, &h)) return NULL;
    FORK_GUARD();
    return GO(hotCallAuthContext(h));
}

static PyMethodDef methods[] = {
    {"setup", m_setup, METH_VARARGS, "setup(main_thread_ident, metadatum_type): once, after loading."},
    {"check", m_check, METH_NOARGS, "Raises RuntimeError in a process forked after loading."},
    {"holds_live", m_holds_live, METH_NOARGS, "holds_live() -> stream holds not yet freed"},
    {"recv_stats", m_recv_stats, METH_NOARGS,
     "recv_stats() -> (on, large messages handed to Python without a copy, their memories not yet\n"
     "taken or freed)"},
    {"finish_stats", m_finish_stats, METH_NOARGS,
     "finish_stats() -> (server calls finished by an event loop's thread itself, unary finishes written\n"
     "to the socket by their finisher, finishes left to grpc-go's writer)"},
    {"unary_starts", m_unary_starts, METH_NOARGS,
     "unary_starts() -> how many unary calls started on their caller's thread, not on a worker"},
    {"ended_in_go", m_ended_in_go, METH_NOARGS,
     "ended_in_go() -> how many threads ended with Go frames on their stack (0)"},
    {"exit_begin", m_exit_begin, METH_NOARGS,
     "exit_begin(): grpc's atexit hook starts; event loops of other threads take no more completions"},
    {"exiting", m_exiting, METH_NOARGS,
     "exiting(): the interpreter finalizes; from now on only the main thread takes the GIL\n"
     "back from the engine or calls into it."},
    {"channel_new", m_channel_new, METH_VARARGS, "channel_new(target, options_json) -> channel"},
    {"channel_close", m_channel_close, METH_VARARGS, "channel_close(channel)"},
    {"channel_state", m_channel_state, METH_VARARGS, "channel_state(channel, try_to_connect) -> state"},
    {"channel_watch", m_channel_watch, METH_VARARGS,
     "channel_watch(channel, from_state, timeout) -> new state, or None"},
    {"unary", m_unary, METH_VARARGS,
     "unary(channel, method, request, timeout, metadata, wait_for_ready, compression,\n"
     "      call_credentials=None, response_only=False)\n"
     "-> (code, details, response or None, initial_metadata, trailing_metadata); with\n"
     "response_only, just the response's bytes for an OK call without metadata"},
    {"unary_start", m_unary_start, METH_VARARGS, "unary_start(same as unary) -> call"},
    {"unary_wait", m_unary_wait, METH_VARARGS, "unary_wait(call, timeout) -> result as unary, or None"},
    {"unary_cancel", m_unary_cancel, METH_VARARGS, "unary_cancel(call)"},
    {"stream_start", m_stream_start, METH_VARARGS,
     "stream_start(channel, method, timeout, metadata, wait_for_ready, compression,\n"
     "             server_streams, client_streams, first_request_or_None, close_after_first)\n"
     "-> stream"},
    {"stream_send", m_stream_send, METH_VARARGS, "stream_send(stream, request) -> queued"},
    {"stream_close_send", m_stream_close_send, METH_VARARGS, "stream_close_send(stream)"},
    {"stream_recv", m_stream_recv, METH_VARARGS,
     "stream_recv(stream, max, timeout) -> list of responses ([] at the end), or None"},
    {"stream_header", m_stream_header, METH_VARARGS, "stream_header(stream, timeout) -> metadata or None"},
    {"stream_status", m_stream_status, METH_VARARGS,
     "stream_status(stream, timeout) -> (code, details, trailing_metadata) or None"},
    {"stream_cancel", m_stream_cancel, METH_VARARGS, "stream_cancel(stream)"},
    {"server_new", m_server_new, METH_VARARGS,
     "server_new(options_json, max_concurrent, xds=False) -> server"},
    {"server_add_port", m_server_add_port, METH_VARARGS, "server_add_port(server, address) -> port"},
    {"server_start", m_server_start, METH_VARARGS, "server_start(server)"},
    {"server_wait_call", m_server_wait_call, METH_VARARGS,
     "server_wait_call(server) -> True when a call waits for a pool thread, False once stopped"},
    {"server_take", m_server_take, METH_VARARGS,
     "server_take(server)\n"
     "-> (call, method, metadata, peer, time_left, request_or_None) | False | None"},
    {"server_linger", m_server_linger, METH_VARARGS,
     "server_linger(server, seconds) -> (call, ...) | False | None: the next call for a pool thread"},
    {"server_wakeups", m_server_wakeups, METH_VARARGS,
     "server_wakeups(server) -> (threads lingering, lingering threads woken by calls so far)"},
    {"server_mark_unary", m_server_mark_unary, METH_VARARGS,
     "server_mark_unary(server, method): its calls arrive with their one request read"},
    {"server_stop", m_server_stop, METH_VARARGS, "server_stop(server, grace)"},
    {"server_refuse", m_server_refuse, METH_VARARGS, "server_refuse(server)"},
    {"server_wait", m_server_wait, METH_VARARGS, "server_wait(server, timeout) -> stopped"},
    {"call_recv_one", m_call_recv_one, METH_VARARGS, "call_recv_one(call) -> request or None"},
    {"call_recv", m_call_recv, METH_VARARGS, "call_recv(call, max) -> list of requests ([] at the end)"},
    {"call_send", m_call_send, METH_VARARGS, "call_send(call, response) -> queued"},
    {"call_send_header", m_call_send_header, METH_VARARGS, "call_send_header(call, metadata) -> sent"},
    {"call_finish", m_call_finish, METH_VARARGS,
     "call_finish(call, code, details, trailing_metadata, last_response_or_None) -> finished"},
    {"call_set_compression", m_call_set_compression, METH_VARARGS,
     "call_set_compression(call, algorithm): compress responses from now on"},
    {"call_disable_next_compression", m_call_disable_next_compression, METH_VARARGS,
     "call_disable_next_compression(call): the next response goes out uncompressed"},
    {"call_cancel", m_call_cancel, METH_VARARGS, "call_cancel(call): ends it with CANCELLED now"},
    {"call_active", m_call_active, METH_VARARGS, "call_active(call) -> bool"},
    {"call_metadata", m_call_metadata, METH_VARARGS,
     "call_metadata(call) -> the server call's invocation metadata (a tuple of metadatum)"},
    {"call_notify_done", m_call_notify_done, METH_VARARGS,
     "call_notify_done(call, token): token reaches events_next once the call is over"},
    {"creds_ssl_channel", m_creds_ssl_channel, METH_VARARGS, "creds_ssl_channel(roots, key, chain)"},
    {"creds_local_channel", m_creds_local_channel, METH_VARARGS, "creds_local_channel(uds)"},
    {"creds_alts_channel", m_creds_alts_channel, METH_VARARGS, "creds_alts_channel(service_accounts)"},
    {"creds_composite_channel", m_creds_composite_channel, METH_VARARGS,
     "creds_composite_channel(channel_credentials, call_credentials_sequence)"},
    {"creds_access_token", m_creds_access_token, METH_VARARGS, "creds_access_token(token)"},
    {"creds_plugin", m_creds_plugin, METH_VARARGS, "creds_plugin(callback_id)"},
    {"creds_composite_call", m_creds_composite_call, METH_VARARGS, "creds_composite_call(sequence)"},
    {"creds_cert_config", m_creds_cert_config, METH_VARARGS, "creds_cert_config(pairs, roots)"},
    {"creds_ssl_server", m_creds_ssl_server, METH_VARARGS, "creds_ssl_server(cert_config, require)"},
    {"creds_dynamic_server", m_creds_dynamic_server, METH_VARARGS,
     "creds_dynamic_server(initial_cert_config, fetcher_id, require)"},
    {"creds_local_server", m_creds_local_server, METH_VARARGS, "creds_local_server(uds)"},
    {"creds_alts_server", m_creds_alts_server, METH_NOARGS, "creds_alts_server()"},
    {"creds_insecure_server", m_creds_insecure_server, METH_NOARGS, "creds_insecure_server()"},
    {"creds_xds_channel", m_creds_xds_channel, METH_VARARGS,
     "creds_xds_channel(fallback_channel_credentials_or_None)"},
    {"creds_xds_server", m_creds_xds_server, METH_VARARGS, "creds_xds_server(fallback_server_credentials)"},
    {"session_cache_new", m_session_cache_new, METH_VARARGS,
     "session_cache_new(capacity) -> number of a TLS session cache"},
    {"session_cache_release", m_session_cache_release, METH_VARARGS,
     "session_cache_release(number)"},
    {"callback_next", m_callback_next, METH_VARARGS,
     "callback_next(timeout) -> [(request, kind, id, service_url, method_name)] or None"},
    {"events_wait", m_events_wait, METH_VARARGS,
     "events_wait(timeout) -> whether events_next may find something"},
    {"events_next", m_events_next, METH_VARARGS,
     "events_next(timeout) -> (ended, logs, metrics) (None for an empty kind), or None"},
    {"callback_reply", m_callback_reply, METH_VARARGS,
     "callback_reply(request, metadata, error_text, cert_config)"},
    {"log_setup", m_log_setup, METH_VARARGS,
     "log_setup(severity, verbose, traced_components): which grpc-go log records reach Python"},
    {"metrics_enable", m_metrics_enable, METH_VARARGS,
     "metrics_enable(on): per-call metrics for channels and servers made from now on"},
    {"metrics_take", m_metrics_take, METH_NOARGS,
     "metrics_take() -> ([(kind, method, target, code, seconds, sent, received)], dropped)\n"
     "or None"},
    {"call_auth_context", m_call_auth_context, METH_VARARGS,
     "call_auth_context(call) -> (properties, identity_key or None)"},
    {"cq_new", m_cq_new, METH_NOARGS, "cq_new() -> a completion queue for one event loop"},
    {"cq_fd", m_cq_fd, METH_VARARGS, "cq_fd(cq) -> the fd that becomes readable when tokens completed"},
    {"cq_drain", m_cq_drain, METH_VARARGS, "cq_drain(cq) -> tuple of completed tokens"},
    {"cq_resolve", (PyCFunction)(void (*)(void))m_cq_resolve, METH_FASTCALL,
     "cq_resolve(cq, waiting[, owner]): resolves the future waiting on each completed token (a Wait at once)"},
    {"aio_unary_setup", m_aio_unary_setup, METH_O, "aio_unary_setup(config): see pyext/aio_unary.h"},
    {"aio_result", m_aio_result, METH_VARARGS, "aio_result(op) -> what the completed operation gives"},
    {"aio_unary", m_aio_unary, METH_VARARGS,
     "aio_unary(cq, token, channel, method, request, timeout, metadata, wait_for_ready,\n"
     "          compression, call_credentials=None) -> call; token completes when it ended"},
    {"aio_stream_recv", m_aio_stream_recv, METH_VARARGS,
     "aio_stream_recv(cq, token, stream, max[, next]) -> list ([] at the end) | None: token completes\n"
     "when there is something to receive; ask again. A take with next arms next the same way"},
    {"aio_recv_arm", m_aio_recv_arm, METH_NOARGS,
     "aio_recv_arm() -> whether receives arm their next token (GRPCGO_AIO_RECV_ARM)"},
    {"aio_stream_send", m_aio_stream_send, METH_VARARGS,
     "aio_stream_send(cq, token, stream, request) -> queued | op"},
    {"aio_stream_header", m_aio_stream_header, METH_VARARGS,
     "aio_stream_header(cq, token, stream) -> metadata | op"},
    {"aio_stream_status", m_aio_stream_status, METH_VARARGS,
     "aio_stream_status(cq, token, stream) -> (code, details, trailing_metadata) | op"},
    {"aio_stream_opened", m_aio_stream_opened, METH_VARARGS,
     "aio_stream_opened(cq, token, stream) -> opened (bool) | op"},
    {"aio_stream_close_send", m_aio_stream_close_send, METH_VARARGS,
     "aio_stream_close_send(stream): half-closes after the queued requests, never waiting"},
    {"aio_channel_watch", m_aio_channel_watch, METH_VARARGS,
     "aio_channel_watch(cq, token, channel, from_state) -> op: new state or None"},
    {"aio_server_stop", m_aio_server_stop, METH_VARARGS, "aio_server_stop(cq, token, server, grace) -> op"},
    {"aio_server_stopped", m_aio_server_stopped, METH_VARARGS,
     "aio_server_stopped(cq, token, server) -> True | op"},
    {"aio_call_recv", m_aio_call_recv, METH_VARARGS,
     "aio_call_recv(cq, token, call, max[, next]) -> list ([] at the end) | None: token completes\n"
     "when a call again is worth it (no operation: the call's reader completes it)"},
    {"aio_call_send", m_aio_call_send, METH_VARARGS, "aio_call_send(cq, token, call, response) -> queued | op"},
    {"aio_server_attach", m_aio_server_attach, METH_VARARGS,
     "aio_server_attach(cq, token, server): token completes after each queued call and at stop"},
    {"aio_server_take", m_aio_server_take, METH_VARARGS,
     "aio_server_take(server, max, cq, first_token) -> list of events ([] if none) | None once\n"
     "stopped; token first_token + i completes if the i-th call taken dies before it is finished"},
    {"aio_call_send_many", m_aio_call_send_many, METH_VARARGS,
     "aio_call_send_many(cq, token, call, list of bytes) -> all queued | op"},
    {"aio_stream_send_many", m_aio_stream_send_many, METH_VARARGS,
     "aio_stream_send_many(cq, token, stream, list of bytes) -> all queued | op"},
    {"aio_call_send_header", m_aio_call_send_header, METH_VARARGS,
     "aio_call_send_header(call, metadata) -> sent | None (invalid), never waits"},
    {"aio_loop_read_counts", m_aio_loop_read_counts, METH_NOARGS,
     "aio_loop_read_counts() -> (messages read directly, loop pumps) so far"},
    {"aio_call_loop_read", m_aio_call_loop_read, METH_VARARGS,
     "aio_call_loop_read(call, on) -> a dup of the connection's socket for the loop to read | -1"},
    {"aio_stream_loop_read", m_aio_stream_loop_read, METH_VARARGS,
     "aio_stream_loop_read(stream, on) -> a dup of the connection's socket for the loop to read | -1"},
    {"aio_call_pump", m_aio_call_pump, METH_VARARGS,
     "aio_call_pump(call, cq, waiting) -> the loop still reads the connection; drains cq"},
    {"aio_stream_pump", m_aio_stream_pump, METH_VARARGS,
     "aio_stream_pump(stream, cq, waiting) -> the loop still reads the connection; drains cq"},
    {"aio_call_set_compression", m_aio_call_set_compression, METH_VARARGS,
     "aio_call_set_compression(call, algorithm), never waits"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_hot", "grpcgo's hot path: calls and servers in Go.", -1, methods,
};

PyMODINIT_FUNC PyInit__hot(void) {
    static int registered = 0;
    if (!registered) {
        pthread_atfork(NULL, NULL, on_fork_child);
        hold_setup();
        registered = 1;
    }
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && aio_unary_add_types(m) < 0) Py_CLEAR(m);
    if (m != NULL && aio_iterators_add_types(m) < 0) Py_CLEAR(m);
    return m;
}

/* hot_recv_ok / hot_adopt_ok (hot.h): where a bytes object may be made of
 * memory from malloc. CPython frees a bytes object with PyObject_Free; with
 * pymalloc (the default) or PYTHONMALLOC=malloc, memory pymalloc did not
 * allocate goes to PyMem_RawFree, which is free(). Debug hooks (a debug
 * build, -X dev, PYTHONMALLOC=debug...) check a header malloc's memory does
 * not have, and a free-threaded build's mimalloc owns its objects' memory:
 * there, and with GRPCGO_RECV_INTO_BYTES=0, received messages are copied as
 * before. The allocators seen here are compared at each adoption, so one
 * installed later (PyMem_SetAllocator) turns adoption off. */
static PyMemAllocatorEx recv_obj_alloc, recv_raw_alloc;
static int recv_on;

int hot_recv_ok(void) {
#if defined(Py_GIL_DISABLED) || defined(Py_DEBUG) || defined(Py_TRACE_REFS)
    return 0;
#else
    const char *e = getenv("GRPCGO_RECV_INTO_BYTES");
    if (e != NULL && strcmp(e, "0") == 0) return 0;
    const char *m = getenv("PYTHONMALLOC");
    if (m != NULL && *m != '\0' && strcmp(m, "pymalloc") != 0 && strcmp(m, "malloc") != 0) return 0;
    PyObject *flags = PySys_GetObject("flags"); /* borrowed */
    if (flags != NULL) {
        PyObject *dev = PyObject_GetAttrString(flags, "dev_mode");
        int on = dev != NULL && PyObject_IsTrue(dev) == 1;
        Py_XDECREF(dev);
        PyErr_Clear();
        if (on) return 0;
    }
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &recv_obj_alloc);
    PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &recv_raw_alloc);
    recv_on = 1;
    return 1;
#endif
}

int hot_adopt_ok(void) {
    if (!recv_on) return 0;
    PyMemAllocatorEx obj, raw;
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &obj);
    PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &raw);
    return memcmp(&obj, &recv_obj_alloc, sizeof obj) == 0 && memcmp(&raw, &recv_raw_alloc, sizeof raw) == 0;
}
