/* grpc.aio's stream iterators, their common step in C (issue 12).
 *
 * Included once, by hotmodule.c. `async for` over a stream's messages
 * called an `async def __anext__` per message: a coroutine made, run and
 * thrown away per message even when the message was already here (the
 * server's request iterator: the batch taken last; the client's response
 * iterator: the call's buffer), most of the loop's Python per message of
 * a stream. The two iterators are C types over one base:
 *
 * - AioRequests (the server's request iterator) holds the batch the
 *   context took last (`batch`, `next`), which context.read() reads too
 *   (grpc/aio/_server.py, _ServicerContext._recv), so reads and iteration
 *   can be mixed; `ended` is set by the call's finish and abort.
 * - AioResponses (the client's response iterator) takes from the call's
 *   response buffer (a deque read() shares) unless the call was
 *   cancelled here (its _status's `local`).
 * - `__anext__` returns an AioReady (reused when nobody else holds it).
 *   Awaited, it takes the next message when one is at hand, done at once
 *   without a StopIteration on Python 3.10+ (am_send). The message is
 *   taken when the awaitable is first awaited, not when __anext__ made it:
 *   awaitables awaited out of order get their messages in that order, as
 *   grpcio's coroutines do.
 * - Anything else (nothing at hand, the call ended) runs `slow()`, the
 *   Python coroutine for the rest (waits, takes, termination, the end),
 *   inside that await.
 *
 * Everything here runs on the loop's thread with the GIL held. */
#ifndef GRPCGO_AIO_ITERATORS_H
#define GRPCGO_AIO_ITERATORS_H

#include <structmember.h>

/* ---- AioReady: one `__anext__`'s awaitable ------------------------------- */
typedef struct IterBase IterBase;
typedef struct ReadyObject ReadyObject;

/* An iterator's take: 1 with the next message in *out (a new reference),
 * 0 when none is at hand (the slow path then), -1 with an error set. */
typedef int (*take_fn)(IterBase *it, PyObject **out);

#define ITER_BASE_FIELDS \
    PyObject_HEAD \
    take_fn take; \
    PyObject *slow;      /* () -> coroutine: the rest of a step */ \
    ReadyObject *spare;  /* the AioReady handed out last, or NULL */

struct IterBase {
    ITER_BASE_FIELDS
};

struct ReadyObject {
    PyObject_HEAD
    IterBase *owner;
    PyObject *inner; /* slow()'s awaitable while it runs (state 1) */
    int state;       /* 0 not awaited yet, 1 running slow(), 2 finished */
};

static PyTypeObject ReadyType;

static PyObject *ready_await(ReadyObject *self) {
    Py_INCREF(self);
    return (PyObject *)self;
}

/* One step of `await ready`, sending arg: 1 with a value the awaiting
 * task yields (*out, a new reference), 0 finished with the message in
 * *out (a new reference), -1 with an error set. The message is taken when
 * the awaitable is first awaited, not when __anext__ made it: awaitables
 * awaited out of order get their messages in the order awaited, as
 * grpcio's coroutines do. */
static int ready_step(ReadyObject *self, PyObject *arg, PyObject **out) {
    if (self->state == 0) {
        IterBase *q = self->owner;
        self->state = 2;
        if (q == NULL || q->slow == NULL) { /* only while the collector clears a cycle */
            PyErr_SetString(PyExc_RuntimeError, "the stream's iterator is gone");
            return -1;
        }
        int took = q->take(q, out);
        if (took != 0) return took > 0 ? 0 : -1;
        PyObject *coro = PyObject_CallNoArgs(q->slow);
        if (coro == NULL) return -1;
#if PY_VERSION_HEX >= 0x030A0000
        self->inner = coro;
#else
        self->inner = PyObject_CallMethod(coro, "__await__", NULL);
        Py_DECREF(coro);
        if (self->inner == NULL) return -1;
#endif
        self->state = 1;
        arg = Py_None; /* a coroutine's first send */
    }
    if (self->state == 2) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return 0;
    }
#if PY_VERSION_HEX >= 0x030A0000
    PySendResult r = PyIter_Send(self->inner, arg, out);
    if (r == PYGEN_NEXT) return 1;
    self->state = 2;
    Py_CLEAR(self->inner);
    return r == PYGEN_RETURN ? 0 : -1;
#else
    PyObject *v = arg == Py_None ? Py_TYPE(self->inner)->tp_iternext(self->inner)
                                 : PyObject_CallMethod(self->inner, "send", "O", arg);
    if (v != NULL) {
        *out = v;
        return 1;
    }
    self->state = 2;
    Py_CLEAR(self->inner);
    if (!PyErr_Occurred()) {
        Py_INCREF(Py_None);
        *out = Py_None;
        return 0;
    }
    if (!PyErr_ExceptionMatches(PyExc_StopIteration)) return -1;
    PyObject *t, *e, *tb;
    PyErr_Fetch(&t, &e, &tb);
    PyErr_NormalizeException(&t, &e, &tb);
    *out = e == NULL ? (Py_INCREF(Py_None), Py_None) : PyObject_GetAttrString(e, "value");
    Py_XDECREF(t);
    Py_XDECREF(e);
    Py_XDECREF(tb);
    return *out == NULL ? -1 : 0;
#endif
}

/* The step's result as the iterator protocol gives it: a yielded value,
 * or NULL with StopIteration(message) or an error. */
static PyObject *ready_iter_result(int r, PyObject *v) {
    if (r == 1) return v;
    if (r < 0) return NULL;
    stop_with(v);
    Py_DECREF(v);
    return NULL;
}

static PyObject *ready_next(ReadyObject *self) {
    PyObject *v = NULL;
    int r = ready_step(self, Py_None, &v);
    return ready_iter_result(r, v);
}

static PyObject *ready_send(ReadyObject *self, PyObject *arg) {
    PyObject *v = NULL;
    int r = ready_step(self, arg, &v);
    return ready_iter_result(r, v);
}

#if PY_VERSION_HEX >= 0x030A0000
/* `await` reads the message here without a StopIteration. */
static PySendResult ready_am_send(ReadyObject *self, PyObject *arg, PyObject **result) {
    int r = ready_step(self, arg, result);
    if (r == 1) return PYGEN_NEXT;
    if (r == 0) return PYGEN_RETURN;
    *result = NULL;
    return PYGEN_ERROR;
}
static PyAsyncMethods ready_async = {(unaryfunc)ready_await, NULL, NULL, (sendfunc)ready_am_send};
#else
static PyAsyncMethods ready_async = {(unaryfunc)ready_await, NULL, NULL};
#endif

/* A task cancelled while slow() waits throws into it (and on through it);
 * thrown into before or after, the exception is raised as a generator
 * would. */
static PyObject *ready_throw(ReadyObject *self, PyObject *args) {
    if (self->state == 1) {
        PyObject *throw = PyObject_GetAttrString(self->inner, "throw");
        if (throw == NULL) return NULL;
        PyObject *v = PyObject_Call(throw, args, NULL);
        Py_DECREF(throw);
        if (v == NULL) {
            self->state = 2;
            Py_CLEAR(self->inner);
        }
        return v;
    }
    self->state = 2;
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb)) return NULL;
    raise_thrown(typ, val);
    return NULL;
}

static PyObject *ready_close(ReadyObject *self, PyObject *unused) {
    self->state = 2;
    PyObject *inner = self->inner;
    if (inner == NULL) Py_RETURN_NONE;
    self->inner = NULL;
    PyObject *r = PyObject_CallMethod(inner, "close", NULL);
    Py_DECREF(inner);
    return r;
}

static int ready_traverse(ReadyObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->owner);
    Py_VISIT(self->inner);
    return 0;
}

static int ready_clear(ReadyObject *self) {
    Py_CLEAR(self->owner);
    Py_CLEAR(self->inner);
    return 0;
}

static void ready_dealloc(ReadyObject *self) {
    PyObject_GC_UnTrack(self);
    ready_clear(self);
    PyObject_GC_Del(self);
}

static PyMethodDef ready_methods[] = {
    {"send", (PyCFunction)ready_send, METH_O, NULL},
    {"throw", (PyCFunction)ready_throw, METH_VARARGS, NULL},
    {"close", (PyCFunction)ready_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReadyType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "grpc._hot.AioReady",
    .tp_basicsize = sizeof(ReadyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)ready_dealloc,
    .tp_traverse = (traverseproc)ready_traverse,
    .tp_clear = (inquiry)ready_clear,
    .tp_as_async = &ready_async,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)ready_next,
    .tp_methods = ready_methods,
    .tp_doc = "The awaitable of a grpc.aio stream iterator's __anext__ (pyext/aio_iterators.h).",
};

/* ---- the iterators' common part ------------------------------------------- */

/* __anext__: an AioReady for the next message, the spare when only this
 * holds it (its await is over), else a new one. */
static PyObject *iter_anext(IterBase *self) {
    ReadyObject *r = self->spare;
    if (r != NULL && Py_REFCNT(r) == 1 && r->state != 1) {
        r->state = 0;
    } else {
        r = PyObject_GC_New(ReadyObject, &ReadyType);
        if (r == NULL) return NULL;
        Py_INCREF(self);
        r->owner = self;
        r->inner = NULL;
        r->state = 0;
        PyObject_GC_Track(r);
        Py_XSETREF(self->spare, r);
    }
    Py_INCREF(r);
    return (PyObject *)r;
}

static PyObject *iter_aiter(IterBase *self) {
    Py_INCREF(self);
    return (PyObject *)self;
}

static void iter_init(IterBase *self, take_fn take, PyObject *slow) {
    self->take = take;
    Py_INCREF(slow);
    self->slow = slow;
    self->spare = NULL;
}

static PyAsyncMethods iter_async = {NULL, (unaryfunc)iter_aiter, (unaryfunc)iter_anext};

/* ---- AioRequests: the server's request iterator ----------------------------- */
typedef struct {
    ITER_BASE_FIELDS
    PyObject *batch;        /* the requests taken last (a list), or None */
    Py_ssize_t next;        /* the index of the next one to hand out */
    PyObject *deserializer; /* None or a callable */
    char ended;             /* the call ended or was aborted: slow() raises */
} ReqsObject;

static int reqs_take(IterBase *it, PyObject **out) {
    ReqsObject *q = (ReqsObject *)it;
    PyObject *batch = q->batch;
    if (q->ended || batch == NULL || !PyList_CheckExact(batch) || q->next >= PyList_GET_SIZE(batch))
        return 0;
    PyObject *data = PyList_GET_ITEM(batch, q->next);
    q->next++;
    Py_INCREF(data); /* the batch may go (a read in the deserializer) */
    if (q->deserializer == Py_None) {
        *out = data;
        return 1;
    }
    *out = PyObject_CallOneArg(q->deserializer, data);
    Py_DECREF(data);
    return *out == NULL ? -1 : 1;
}

/* AioRequests(slow, deserializer) */
static PyObject *reqs_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *slow, *deserializer;
    if (!PyArg_ParseTuple(args, "OO:AioRequests", &slow, &deserializer)) return NULL;
    ReqsObject *self = (ReqsObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    iter_init((IterBase *)self, reqs_take, slow);
    Py_INCREF(Py_None);
    self->batch = Py_None;
    self->next = 0;
    Py_INCREF(deserializer);
    self->deserializer = deserializer;
    self->ended = 0;
    return (PyObject *)self;
}

static int reqs_traverse(ReqsObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->slow);
    Py_VISIT(self->spare);
    Py_VISIT(self->batch);
    Py_VISIT(self->deserializer);
    return 0;
}

static int reqs_clear(ReqsObject *self) {
    Py_CLEAR(self->slow);
    Py_CLEAR(self->spare);
    Py_CLEAR(self->batch);
    Py_CLEAR(self->deserializer);
    return 0;
}

static void reqs_dealloc(ReqsObject *self) {
    PyObject_GC_UnTrack(self);
    reqs_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMemberDef reqs_members[] = {
    {"batch", T_OBJECT, offsetof(ReqsObject, batch), 0, NULL},
    {"next", T_PYSSIZET, offsetof(ReqsObject, next), 0, NULL},
    {"ended", T_BOOL, offsetof(ReqsObject, ended), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ReqsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "grpc._hot.AioRequests",
    .tp_basicsize = sizeof(ReqsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = reqs_tp_new,
    .tp_dealloc = (destructor)reqs_dealloc,
    .tp_traverse = (traverseproc)reqs_traverse,
    .tp_clear = (inquiry)reqs_clear,
    .tp_as_async = &iter_async,
    .tp_members = reqs_members,
    .tp_doc = "grpc.aio's server-side request iterator (pyext/aio_iterators.h).",
};

/* ---- AioResponses: the client's response iterator --------------------------- */
typedef struct {
    ITER_BASE_FIELDS
    PyObject *call;         /* the stream call (grpc/aio/_call.py) */
    PyObject *buffer;       /* its response buffer, a deque */
    PyObject *deserializer; /* None, or the call's: call._deserialize then */
} RespsObject;

static PyObject *s_status_attr, *s_answered_attr, *s_popleft, *s_deserialize_attr;

/* A response from the buffer unless the call was cancelled here (its
 * _status, a tuple (code, details, trailing, local), says local), as
 * _next_response's first branch does. */
static int resps_take(IterBase *it, PyObject **out) {
    RespsObject *r = (RespsObject *)it;
    Py_ssize_t n = PyObject_Size(r->buffer);
    if (n <= 0) return n < 0 ? -1 : 0;
    PyObject *status = PyObject_GetAttr(r->call, s_status_attr);
    if (status == NULL) return -1;
    int local = 0;
    if (status != Py_None) {
        local = !PyTuple_Check(status) || PyTuple_GET_SIZE(status) < 4
                    ? 1 /* not what the C expects: let Python decide */
                    : PyObject_IsTrue(PyTuple_GET_ITEM(status, 3));
    }
    Py_DECREF(status);
    if (local != 0) return local < 0 ? -1 : 0;
    PyObject *data = PyObject_CallMethodNoArgs(r->buffer, s_popleft);
    if (data == NULL) return -1;
    if (PyObject_SetAttr(r->call, s_answered_attr, Py_True) < 0) {
        Py_DECREF(data);
        return -1;
    }
    if (r->deserializer == Py_None) {
        *out = data;
        return 1;
    }
    *out = PyObject_CallMethodOneArg(r->call, s_deserialize_attr, data);
    Py_DECREF(data);
    return *out == NULL ? -1 : 1;
}

/* AioResponses(call, slow, deserializer, buffer) */
static PyObject *resps_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *call, *slow, *deserializer, *buffer;
    if (!PyArg_ParseTuple(args, "OOOO:AioResponses", &call, &slow, &deserializer, &buffer)) return NULL;
    RespsObject *self = (RespsObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    iter_init((IterBase *)self, resps_take, slow);
    Py_INCREF(call);
    self->call = call;
    Py_INCREF(buffer);
    self->buffer = buffer;
    Py_INCREF(deserializer);
    self->deserializer = deserializer;
    return (PyObject *)self;
}

static int resps_traverse(RespsObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->slow);
    Py_VISIT(self->spare);
    Py_VISIT(self->call);
    Py_VISIT(self->buffer);
    Py_VISIT(self->deserializer);
    return 0;
}

static int resps_clear(RespsObject *self) {
    Py_CLEAR(self->slow);
    Py_CLEAR(self->spare);
    Py_CLEAR(self->call);
    Py_CLEAR(self->buffer);
    Py_CLEAR(self->deserializer);
    return 0;
}

static void resps_dealloc(RespsObject *self) {
    PyObject_GC_UnTrack(self);
    resps_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject RespsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "grpc._hot.AioResponses",
    .tp_basicsize = sizeof(RespsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = resps_tp_new,
    .tp_dealloc = (destructor)resps_dealloc,
    .tp_traverse = (traverseproc)resps_traverse,
    .tp_clear = (inquiry)resps_clear,
    .tp_as_async = &iter_async,
    .tp_doc = "grpc.aio's client-side response iterator (pyext/aio_iterators.h).",
};

static int aio_iterators_add_types(PyObject *m) {
    struct { PyObject **slot; const char *name; } names[] = {
        {&s_status_attr, "_status"}, {&s_answered_attr, "_answered"},
        {&s_popleft, "popleft"}, {&s_deserialize_attr, "_deserialize"},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (*names[i].slot == NULL) *names[i].slot = PyUnicode_InternFromString(names[i].name);
        if (*names[i].slot == NULL) return -1;
    }
    PyTypeObject *types[] = {&ReadyType, &ReqsType, &RespsType};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyType_Ready(types[i]) < 0) return -1;
    Py_INCREF(&ReqsType);
    if (PyModule_AddObject(m, "AioRequests", (PyObject *)&ReqsType) < 0) {
        Py_DECREF(&ReqsType);
        return -1;
    }
    Py_INCREF(&RespsType);
    if (PyModule_AddObject(m, "AioResponses", (PyObject *)&RespsType) < 0) {
        Py_DECREF(&RespsType);
        return -1;
    }
    return 0;
}

#endif
