/* Small C helpers the Go side of the hot module calls.
 *
 * cgo cannot call Python's macros or variadic functions, so each one it
 * needs is wrapped here as a static inline function. Everything here runs
 * with the GIL held unless its name says otherwise. */
#ifndef GRPCGO_HOT_H
#define GRPCGO_HOT_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <semaphore.h>
#include "dispatch.h"
#include "cq.h"
#include <stdint.h>
#include <stddef.h>

/* Exception kinds hot_raise understands. */
enum { HOT_RUNTIME = 0, HOT_VALUE = 1, HOT_TYPE = 2 };

static inline PyObject *hot_raise(int kind, const char *msg) {
    PyObject *t = kind == HOT_VALUE ? PyExc_ValueError
                : kind == HOT_TYPE  ? PyExc_TypeError
                                    : PyExc_RuntimeError;
    PyErr_SetString(t, msg);
    return NULL;
}

static inline PyObject *hot_none(void) { Py_RETURN_NONE; }
static inline int hot_is_none(PyObject *o) { return o == NULL || o == Py_None; }
static inline PyObject *hot_bool(int v) { return PyBool_FromLong(v); }
static inline PyObject *hot_int(long long v) { return PyLong_FromLongLong(v); }
static inline PyObject *hot_float(double v) { return PyFloat_FromDouble(v); }
static inline PyObject *hot_bytes(const char *p, Py_ssize_t n) { return PyBytes_FromStringAndSize(p, n); }
static inline char *hot_bytes_data(PyObject *b) { return PyBytes_AS_STRING(b); }
static inline PyObject *hot_str(const char *p, Py_ssize_t n) {
    return PyUnicode_DecodeUTF8(p, n, "replace");
}
/* Building results. A conversion may fail (MemoryError): the setters then
 * take a NULL item, or have a NULL container (v is released), and
 * hot_complete turns a container with a NULL item into NULL with the
 * exception set, so no half-built object ever reaches Python. */
static inline PyObject *hot_tuple(Py_ssize_t n) { return PyTuple_New(n); }
/* Steals v. */
static inline void hot_tuple_set(PyObject *t, Py_ssize_t i, PyObject *v) {
    if (t == NULL) Py_XDECREF(v);
    else PyTuple_SET_ITEM(t, i, v);
}
static inline PyObject *hot_list(Py_ssize_t n) { return PyList_New(n); }
/* A list of n bytes objects cut in order from base (lens[i] bytes each):
 * a batch of small received messages in one call from Go. NULL with the
 * exception set if one could not be made. */
static inline PyObject *hot_bytes_list(const char *base, const uint32_t *lens, Py_ssize_t n) {
    PyObject *l = PyList_New(n);
    for (Py_ssize_t i = 0; l != NULL && i < n; i++) {
        PyObject *b = PyBytes_FromStringAndSize(base, lens[i]);
        if (b == NULL) {
            Py_DECREF(l); /* its unset items are NULL, which list dealloc skips */
            return NULL;
        }
        PyList_SET_ITEM(l, i, b);
        base += lens[i];
    }
    return l;
}
/* Steals v. */
static inline void hot_list_set(PyObject *l, Py_ssize_t i, PyObject *v) {
    if (l == NULL) Py_XDECREF(v);
    else PyList_SET_ITEM(l, i, v);
}
/* o (a tuple or list, steals it), or NULL if it or an item is NULL. */
static inline PyObject *hot_complete(PyObject *o) {
    if (o == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
    PyObject **items = PySequence_Fast_ITEMS(o);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (items[i] == NULL) {
            Py_DECREF(o); /* tuple and list deallocators skip NULL items */
            if (!PyErr_Occurred()) PyErr_NoMemory();
            return NULL;
        }
    }
    return o;
}
static inline void hot_decref(PyObject *o) { Py_XDECREF(o); }
static inline void hot_incref(PyObject *o) { Py_INCREF(o); }

/* A sequence no Python code can change while Go walks it: a tuple as it
 * is, a list copied into a tuple (reading an entry may run code that
 * changes the list: an entry's __iter__), anything else read into a new
 * list only we hold. A new reference, or NULL with TypeError(msg) set. */
static inline PyObject *hot_stable_seq(PyObject *o, const char *msg, Py_ssize_t *n) {
    PyObject *seq;
    if (PyTuple_Check(o)) {
        Py_INCREF(o);
        seq = o;
    } else if (PyList_Check(o)) {
        seq = PyList_AsTuple(o);
    } else {
        seq = PySequence_Fast(o, msg);
    }
    if (seq != NULL) *n = PySequence_Fast_GET_SIZE(seq);
    return seq;
}

/* Metadata: a sequence of (key, value) pairs, key str (or bytes), value str
 * or bytes. hot_md_open returns a new reference to a stable sequence (see
 * hot_stable_seq) or NULL with TypeError set. */
static inline PyObject *hot_md_open(PyObject *md, Py_ssize_t *n) {
    return hot_stable_seq(md, "metadata must be a sequence of (key, value) pairs", n);
}

/* Reads pair i as raw UTF-8 / bytes pointers valid while seq and *pair
 * live (*pair is a new reference the caller releases). Returns 0; 1 for a
 * None key (grpcio fails such a call with INTERNAL); or -1 with the
 * exception grpcio raises for the same mistake. */
static inline int hot_md_item(PyObject *seq, Py_ssize_t i, PyObject **pair, const char **k,
                              Py_ssize_t *kn, const char **v, Py_ssize_t *vn) {
    PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
    *pair = NULL;
    if (!PySequence_Check(item)) {
        PyErr_Format(PyExc_TypeError, "cannot unpack non-iterable %.100s object", Py_TYPE(item)->tp_name);
        return -1;
    }
    Py_ssize_t np;
    PyObject *p = hot_stable_seq(item, "metadata entries must be (key, value) pairs", &np);
    if (p == NULL) return -1;
    *pair = p;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(p);
    if (n != 2) {
        if (n > 2) PyErr_SetString(PyExc_ValueError, "too many values to unpack (expected 2)");
        else PyErr_Format(PyExc_ValueError, "not enough values to unpack (expected 2, got %zd)", n);
        return -1;
    }
    PyObject *key = PySequence_Fast_GET_ITEM(p, 0), *val = PySequence_Fast_GET_ITEM(p, 1);
    if (key == Py_None) return 1; /* grpcio: "Invalid metadata" */
    if (PyBytes_Check(key)) {
        *k = PyBytes_AS_STRING(key);
        *kn = PyBytes_GET_SIZE(key);
    } else if (PyUnicode_Check(key)) {
        *k = PyUnicode_AsUTF8AndSize(key, kn);
        if (*k == NULL) return -1;
    } else {
        PyErr_Format(PyExc_TypeError, "Expected str, not %R", (PyObject *)Py_TYPE(key));
        return -1;
    }
    int binary = *kn > 4 && memcmp(*k + *kn - 4, "-bin", 4) == 0;
    if (val == Py_None) { /* grpcio sends None as an empty value */
        *v = "";
        *vn = 0;
    } else if (PyBytes_Check(val)) {
        *v = PyBytes_AS_STRING(val);
        *vn = PyBytes_GET_SIZE(val);
    } else if (PyUnicode_Check(val) && !binary) {
        *v = PyUnicode_AsUTF8AndSize(val, vn);
        if (*v == NULL) return -1;
    } else if (binary) {
        PyErr_Format(PyExc_TypeError, "Binary metadata key=\"%s\" expected bytes, got %R", *k,
                     (PyObject *)Py_TYPE(val));
        return -1;
    } else {
        PyErr_Format(PyExc_TypeError, "Expected str, not %R", (PyObject *)Py_TYPE(val));
        return -1;
    }
    return 0;
}

/* A (key, value) pair of the given tuple subclass (grpcio's _Metadatum
 * namedtuple), made without running Python code. Steals k and v. */
static inline PyObject *hot_metadatum(PyObject *type, PyObject *k, PyObject *v) {
    if (k == NULL || v == NULL) { /* a conversion failed: its exception is set */
        Py_XDECREF(k);
        Py_XDECREF(v);
        return NULL;
    }
    PyObject *pair = PyTuple_Pack(2, k, v);
    Py_XDECREF(k);
    Py_XDECREF(v);
    if (pair == NULL || type == NULL) return pair;
    PyObject *args = PyTuple_Pack(1, pair);
    Py_DECREF(pair);
    if (args == NULL) return NULL;
    PyObject *r = PyTuple_Type.tp_new((PyTypeObject *)type, args, NULL);
    Py_DECREF(args);
    return r;
}

/* Cold-path readers for Go. hot_bytes_arg: 1 with the bytes' data, 0 for
 * None, -1 with TypeError set. */
static inline int hot_bytes_arg(PyObject *o, const char *what, char **p, Py_ssize_t *n) {
    if (o == NULL || o == Py_None) return 0;
    if (!PyBytes_Check(o)) {
        PyErr_Format(PyExc_TypeError, "%s must be bytes or None, not %.100s", what, Py_TYPE(o)->tp_name);
        return -1;
    }
    *p = PyBytes_AS_STRING(o);
    *n = PyBytes_GET_SIZE(o);
    return 1;
}
static inline PyObject *hot_seq(PyObject *o, Py_ssize_t *n) {
    return hot_stable_seq(o, "expected a sequence", n);
}
static inline PyObject *hot_seq_item(PyObject *seq, Py_ssize_t i) { return PySequence_Fast_GET_ITEM(seq, i); }
static inline const char *hot_str_arg(PyObject *o, Py_ssize_t *n) {
    if (!PyUnicode_Check(o)) {
        PyErr_Format(PyExc_TypeError, "expected str, not %.100s", Py_TYPE(o)->tp_name);
        return NULL;
    }
    return PyUnicode_AsUTF8AndSize(o, n);
}
static inline PyObject *hot_dict(void) { return PyDict_New(); }
/* Steals v. */
static inline int hot_dict_set(PyObject *d, PyObject *k, PyObject *v) {
    int r = PyDict_SetItem(d, k, v);
    Py_DECREF(k);
    Py_DECREF(v);
    return r;
}

/* Wakes a thread waiting in C (see hotmodule.c's wait_posted). Safe from
 * any goroutine: it touches no Python object. */
static inline void hot_post(void *sem) { sem_post((sem_t *)sem); }

/* What Go leaves for a thread waiting in C (hotmodule.c's wait_posted) for
 * a unary call's end (pyext/hot_wait.go): Go fills it in, posts sem, and
 * never touches it again. */
typedef struct {
    sem_t sem;
    int has_data;         /* data holds the response (else: ask Go) */
    char *data;           /* small, or malloc'ed if larger */
    Py_ssize_t len;
    uintptr_t call;       /* unary calls without data: the ended call's handle */
    char small[512];
} hot_wait;

static inline void hot_wait_init(hot_wait *w) {
    sem_init(&w->sem, 0, 0);
    w->has_data = 0;
    w->data = NULL;
    w->len = 0;
    w->call = 0;
}

static inline PyObject *hot_wait_bytes(hot_wait *w) {
    return PyBytes_FromStringAndSize(w->data, w->len);
}

static inline void hot_wait_destroy(hot_wait *w) {
    if (w->data != NULL && w->data != w->small) free(w->data);
    sem_destroy(&w->sem);
}

/* A unary grpc.aio call's result record (pyext/aio_unary.h): the call's
 * end leaves an OK call's small response here (as for a thread waiting in
 * C: has_data, data, len; the semaphore is not used), before it completes
 * the call's token, so the loop reads the outcome without a call into Go.
 * Counted: the call object's count and the engine's (given back when the
 * call ended, or at once if it never started); the last frees it. */
typedef struct {
    hot_wait w;
    int refs;
} hot_aio_rec;

static inline hot_aio_rec *hot_aio_rec_new(void) {
    hot_aio_rec *r = (hot_aio_rec *)calloc(1, sizeof *r);
    if (r != NULL) r->refs = 2;
    return r;
}

static inline hot_wait *hot_aio_rec_wait(void *r) { return &((hot_aio_rec *)r)->w; }

static inline void hot_aio_rec_unref(void *r) {
    hot_aio_rec *rec = (hot_aio_rec *)r;
    if (rec == NULL || __atomic_sub_fetch(&rec->refs, 1, __ATOMIC_ACQ_REL) != 0) return;
    if (rec->w.data != NULL && rec->w.data != rec->w.small) free(rec->w.data);
    free(rec);
}

/* The GIL, and the exit gate (docs/ARCHITECTURE.md, "Exit").
 *
 * hot_in_go counts the calls into Go that hold the GIL or want it back;
 * every call into Go made with the GIL goes through hotmodule.c's GO(),
 * which counts it. Once exiting() closed the gate (hot_gate_closed), a
 * thread other than the main one never takes the GIL back: it parks for
 * good (hot_park) instead, so CPython's finalization never finds a thread
 * with Go frames on its stack waiting for the GIL (it would end it with
 * pthread_exit, unwinding through Go). exiting() waits, GIL released,
 * until no counted call is left; a thread counts itself before it looks
 * at the gate (both sequentially consistent), so one of the two always
 * sees the other. */
#include <stdatomic.h>
extern atomic_int hot_in_go, hot_gate_closed;
extern unsigned long hot_main_ident;
void hot_park(void); /* gives nothing back: the thread sleeps until the process ends */

/* Safe without the GIL: is the interpreter shutting down? A thread that sees
 * this must not take the GIL back. */
static inline int hot_finalizing(void) {
#if PY_VERSION_HEX >= 0x030D0000
    return Py_IsFinalizing();
#else
    return _Py_IsFinalizing();
#endif
}

/* Counts the calling thread in (for a call into Go, or a wait's return)
 * unless the gate is closed to it, in which case it parks. */
static inline void hot_gate_enter(void) {
    atomic_fetch_add(&hot_in_go, 1);
    if ((atomic_load(&hot_gate_closed) || hot_finalizing()) &&
        PyThread_get_thread_ident() != hot_main_ident) {
        atomic_fetch_sub(&hot_in_go, 1);
        hot_park();
    }
}
static inline void hot_gate_leave(void) { atomic_fetch_sub(&hot_in_go, 1); }

/* hot_release may be called only with the GIL held, inside a call counted
 * by GO(); hot_acquire only with the thread state hot_release returned. */
static inline PyThreadState *hot_release(void) {
    hot_gate_leave();
    return PyEval_SaveThread();
}
static inline void hot_acquire(PyThreadState *ts) {
    hot_gate_enter();
    PyEval_RestoreThread(ts);
}

static inline int hot_check_signals(void) { return PyErr_CheckSignals(); }

/* Handle kinds: the capsule a Go object travels in is named after its kind,
 * so a handle of one kind is never taken for another. */
enum {
    HOT_CHANNEL = 0, HOT_UNARY = 1, HOT_STREAM = 2, HOT_SERVER = 3, HOT_SERVER_CALL = 4,
    HOT_CREDENTIALS = 5, HOT_CALLBACK = 6, HOT_OP = 7, HOT_KINDS = 8
};

/* The handle in a capsule of the given kind, or 0 with TypeError set. */
uintptr_t hot_handle(PyObject *capsule, int kind);

/* Defined in hotmodule.c: wraps a Go handle in a capsule that releases it. */
PyObject *hot_capsule(uintptr_t handle, int kind);

/* Defined in hotmodule.c: ends the current epoch and returns how many Python
 * threads called into the module during it; *unary_only gets how many more
 * called in only for blocking unary calls. */
int hot_epoch_end(int *unary_only);

/* Defined in hotmodule.c: asks Python to run hotDrainReturns soon (safe
 * without the GIL); non-zero if its queue of pending calls is full. */
int hot_schedule_returns(void);

/* Timer slack (pyext/slack.go): Go's monitor thread's, and Go's other
 * threads'. */
#define HOT_SYSMON_SLACK_NS 1000000
#define HOT_GO_THREAD_SLACK_NS 1

/* Received messages handed to Python without a copy (pyext/hot_recv.go).
 * A large message is read into memory from hot_recv_alloc (plain malloc,
 * without the GIL, on grpc-go's reader goroutine) laid out as a bytes
 * object: the message at offsetof(PyBytesObject, ob_sval), its 5-byte gRPC
 * prefix just before it. hot_adopt_bytes makes that memory a bytes object
 * (GIL held); CPython frees it as it frees any bytes object's: PyObject_Free,
 * which hands memory pymalloc did not allocate to PyMem_RawFree, i.e. free().
 * So this is done only where that holds: hot_recv_ok, once at setup, and
 * hot_adopt_ok, at each adoption (the allocators are still those seen at
 * setup). */
int hot_recv_ok(void);
int hot_adopt_ok(void);
static inline Py_ssize_t hot_bytes_lead(void) { return (Py_ssize_t)offsetof(PyBytesObject, ob_sval); }
static inline void *hot_recv_alloc(size_t n) { return malloc(n); }
static inline void hot_recv_free(void *p) { free(p); }
static inline PyObject *hot_adopt_bytes(void *base, Py_ssize_t n) {
    PyBytesObject *op = (PyBytesObject *)base;
    PyObject_InitVar((PyVarObject *)op, &PyBytes_Type, n);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    op->ob_shash = -1;
#pragma GCC diagnostic pop
    op->ob_sval[n] = '\0';
    return (PyObject *)op;
}

#endif
