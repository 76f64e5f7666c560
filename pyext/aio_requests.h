/* grpc.aio's server-side request iterator, its common step in C (issue 12).
 *
 * Included once, by hotmodule.c. An async handler's `async for request in
 * request_iterator` took most of the server loop's Python per request of a
 * client stream in `_RequestReceiver.__anext__`, an `async def`: a
 * coroutine made, run and thrown away per request although the request was
 * already here (the batch taken last). AioRequests is that iterator:
 *
 * - It holds the batch the context took last (`batch`, `next`), which
 *   context.read() reads too (grpc/aio/_server.py, _ServicerContext._recv),
 *   so reads and iteration can be mixed.
 * - `__anext__` returns an AioReady (reused when nobody else holds it).
 *   Awaited, it takes the next request of the batch when there is one and
 *   the call has not ended (`ended`, set by the call's finish and abort),
 *   done at once without a StopIteration on Python 3.10+ (am_send).
 * - Anything else (the batch used up, the call ended) runs `slow()`, the
 *   context's coroutine for the rest (waits, takes, termination, the end),
 *   inside that await.
 *
 * Everything here runs on the loop's thread with the GIL held. */
#ifndef GRPCGO_AIO_REQUESTS_H
#define GRPCGO_AIO_REQUESTS_H

#include <structmember.h>

/* ---- AioReady: one `__anext__`'s awaitable ------------------------------- */
typedef struct ReqsObject ReqsObject;

typedef struct {
    PyObject_HEAD
    ReqsObject *reqs;
    PyObject *inner; /* slow()'s awaitable while it runs (state 1) */
    int state;       /* 0 not awaited yet, 1 running slow(), 2 finished */
} ReadyObject;

static PyTypeObject ReadyType;

struct ReqsObject {
    PyObject_HEAD
    PyObject *batch;        /* the requests taken last (a list), or None */
    Py_ssize_t next;        /* the index of the next one to hand out */
    PyObject *deserializer; /* None or a callable */
    PyObject *slow;         /* () -> coroutine: the rest of a step */
    ReadyObject *spare;     /* the AioReady handed out last, or NULL */
    char ended;             /* the call ended or was aborted: slow() raises */
};

static PyObject *ready_await(ReadyObject *self) {
    Py_INCREF(self);
    return (PyObject *)self;
}

/* One step of `await ready`, sending arg: 1 with a value the awaiting
 * task yields (*out, a new reference), 0 finished with the request in
 * *out (a new reference), -1 with an error set. The request is taken when
 * the awaitable is first awaited, not when __anext__ made it: awaitables
 * awaited out of order get their requests in the order awaited, as
 * grpcio's coroutines do. */
static int ready_step(ReadyObject *self, PyObject *arg, PyObject **out) {
    if (self->state == 0) {
        ReqsObject *q = self->reqs;
        self->state = 2;
        if (q == NULL || q->slow == NULL) { /* only while the collector clears a cycle */
            PyErr_SetString(PyExc_RuntimeError, "the request iterator is gone");
            return -1;
        }
        PyObject *batch = q->batch;
        if (!q->ended && batch != NULL && PyList_CheckExact(batch) && q->next < PyList_GET_SIZE(batch)) {
            PyObject *data = PyList_GET_ITEM(batch, q->next);
            q->next++;
            Py_INCREF(data); /* the batch may go (a read in the deserializer) */
            if (q->deserializer == Py_None) {
                *out = data;
                return 0;
            }
            *out = PyObject_CallOneArg(q->deserializer, data);
            Py_DECREF(data);
            return *out == NULL ? -1 : 0;
        }
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
 * or NULL with StopIteration(request) or an error. */
static PyObject *ready_iter_result(int r, PyObject *v) {
    if (r == 1) return v;
    if (r < 0) return NULL;
    if (v == Py_None) {
        Py_DECREF(v);
        return NULL; /* StopIteration(None) */
    }
    if (!PyTuple_Check(v) && !PyExceptionInstance_Check(v)) {
        PyErr_SetObject(PyExc_StopIteration, v);
    } else {
        /* A tuple or an exception would be taken as the exception's args
         * or the exception itself: wrap it. */
        PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, v);
        if (e != NULL) {
            PyErr_SetObject(PyExc_StopIteration, e);
            Py_DECREF(e);
        }
    }
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
/* `await` reads the request here without a StopIteration. */
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
    if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val);
    } else {
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    }
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
    Py_VISIT(self->reqs);
    Py_VISIT(self->inner);
    return 0;
}

static int ready_clear(ReadyObject *self) {
    Py_CLEAR(self->reqs);
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
    .tp_doc = "The awaitable of grpc.aio's request iterator's __anext__ (pyext/aio_requests.h).",
};

/* ---- AioRequests ---------------------------------------------------------- */
static PyTypeObject ReqsType;

/* AioRequests(slow, deserializer) */
static PyObject *reqs_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *slow, *deserializer;
    if (!PyArg_ParseTuple(args, "OO:AioRequests", &slow, &deserializer)) return NULL;
    ReqsObject *self = (ReqsObject *)type->tp_alloc(type, 0);
    if (self == NULL) return NULL;
    Py_INCREF(Py_None);
    self->batch = Py_None;
    self->next = 0;
    Py_INCREF(deserializer);
    self->deserializer = deserializer;
    Py_INCREF(slow);
    self->slow = slow;
    self->spare = NULL;
    self->ended = 0;
    return (PyObject *)self;
}

static PyObject *reqs_aiter(ReqsObject *self) {
    Py_INCREF(self);
    return (PyObject *)self;
}

/* __anext__: an AioReady for the next request, the spare when only this
 * holds it (its await is over), else a new one. */
static PyObject *reqs_anext(ReqsObject *self) {
    ReadyObject *r = self->spare;
    if (r != NULL && Py_REFCNT(r) == 1 && r->state != 1) {
        r->state = 0;
    } else {
        r = PyObject_GC_New(ReadyObject, &ReadyType);
        if (r == NULL) return NULL;
        Py_INCREF(self);
        r->reqs = self;
        r->inner = NULL;
        r->state = 0;
        PyObject_GC_Track(r);
        Py_XSETREF(self->spare, r);
    }
    Py_INCREF(r);
    return (PyObject *)r;
}

static int reqs_traverse(ReqsObject *self, visitproc visit, void *arg) {
    Py_VISIT(self->batch);
    Py_VISIT(self->deserializer);
    Py_VISIT(self->slow);
    Py_VISIT(self->spare);
    return 0;
}

static int reqs_clear(ReqsObject *self) {
    Py_CLEAR(self->batch);
    Py_CLEAR(self->deserializer);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->spare);
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

static PyAsyncMethods reqs_async = {NULL, (unaryfunc)reqs_aiter, (unaryfunc)reqs_anext};

static PyTypeObject ReqsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "grpc._hot.AioRequests",
    .tp_basicsize = sizeof(ReqsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = reqs_tp_new,
    .tp_dealloc = (destructor)reqs_dealloc,
    .tp_traverse = (traverseproc)reqs_traverse,
    .tp_clear = (inquiry)reqs_clear,
    .tp_as_async = &reqs_async,
    .tp_members = reqs_members,
    .tp_doc = "grpc.aio's server-side request iterator (pyext/aio_requests.h).",
};

static int aio_requests_add_types(PyObject *m) {
    if (PyType_Ready(&ReadyType) < 0 || PyType_Ready(&ReqsType) < 0) return -1;
    Py_INCREF(&ReqsType);
    if (PyModule_AddObject(m, "AioRequests", (PyObject *)&ReqsType) < 0) {
        Py_DECREF(&ReqsType);
        return -1;
    }
    return 0;
}

#endif
