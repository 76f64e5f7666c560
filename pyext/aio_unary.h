/* grpc.aio's unary-unary call on its hot path, in C (issue 12).
 *
 * Included once, by hotmodule.c (after the aio section, whose helpers it
 * uses). Three pieces, each the C form of Python that ran per call:
 *
 * - Wait: the future a unary call's task awaits (grpc/aio/_completion.py
 *   documents the protocol): the drain resolves it by running its
 *   callbacks (the awaiting task's wake-up) at once, in the turn the
 *   completion arrived in; anything else that ends it schedules them.
 * - cq_resolve(cq, waiting): the drain. Takes every completed token,
 *   resolves the future waiting on each; a Wait runs its callbacks here.
 * - AioUnaryCall: the base of grpc/aio/_call.py's UnaryUnaryCall (made on
 *   first use, since importing grpc.aio must not load the engine). Its
 *   construction starts the call (the Python __init__, _setup and
 *   Channel._queue in one), `await call` is a C iterator that yields the
 *   Wait and then reads the outcome (unary_wait, the deserializer, the
 *   status and the channel's registry), and done()/_settle() are C. The
 *   cold methods stay Python and read the same fields, which are members
 *   under the Python names (_status, _outcome, _future, ...).
 *
 * Everything here runs on the loop's thread with the GIL held. Rare paths
 * (a serializer, call credentials, a timeout's checks, a done callback, a
 * non-OK status's exception) call the Python helpers _call.py registered
 * with aio_unary_setup, so their behaviour has one definition. */
#ifndef GRPCGO_AIO_UNARY_H
#define GRPCGO_AIO_UNARY_H

#include <structmember.h>

/* ---- what grpc/aio/_call.py hands over (aio_unary_setup) ---------------- */
static PyObject *au_status_cls;        /* _call._Status, a tuple subclass */
static PyObject *au_ok, *au_internal;  /* grpc.StatusCode.OK, .INTERNAL */
static PyObject *au_codes;             /* _common.CODES: wire value -> StatusCode */
static PyObject *au_deserialize_failed;
static PyObject *au_log_deserialize;   /* fn(exception): logs a failed deserializer */
static PyObject *au_serialize;         /* serialize_request(request, serializer) */
static PyObject *au_creds_arg;         /* call_credentials_arg(channel, credentials, compression) */
static PyObject *au_timeout_arg, *au_wfr_arg, *au_compression_arg;
static PyObject *au_usage_error, *au_closed_msg;
static PyObject *au_cancelled_error, *au_invalid_state;
static PyObject *au_get_running_loop, *au_monotonic;
static PyObject *au_kw_context;        /* ("context",) */
static PyObject *au_empty_str;

static PyObject *s_closing, *s_hot, *s_last_queue, *s_queue, *s_calls, *s_forget_call, *s_handle,
    *s_tokens, *s_waiting, *s_cq, *s_call_soon, *s_call_exception_handler, *s_end,
    *s_serialize_failed, *s_cancel, *s_error, *s_done, *s_set_result, *s_message, *s_exception,
    *s_future;

static int au_ready = 0;

/* ---- Wait ----------------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    PyObject *loop;
    PyObject *callbacks; /* NULL, one (fn, context or None), or a list of them */
    PyObject *message;   /* the cancel's message, or NULL */
    int state;           /* 0 pending, 1 done, 2 cancelled */
    int blocking;        /* _asyncio_future_blocking */
} WaitObject;

static PyTypeObject WaitType;
static PyTypeObject WaitIterType;

static PyObject *wait_create(PyObject *loop) {
    WaitObject *w = PyObject_GC_New(WaitObject, &WaitType);
    if (w == NULL) return NULL;
    Py_INCREF(loop);
    w->loop = loop;
    w->callbacks = NULL;
    w->message = NULL;
    w->state = 0;
    w->blocking = 0;
    PyObject_GC_Track(w);
    return (PyObject *)w;
}

static PyObject *wait_tp_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *loop;
    static char *kwlist[] = {"loop", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O:Wait", kwlist, &loop)) return NULL;
    if (type != &WaitType) {
        PyErr_SetString(PyExc_TypeError, "Wait cannot be subclassed");
        return NULL;
    }
    return wait_create(loop);
}

static int wait_traverse(WaitObject *w, visitproc visit, void *arg) {
    Py_VISIT(w->loop);
    Py_VISIT(w->callbacks);
    Py_VISIT(w->message);
    return 0;
}

static int wait_clear(WaitObject *w) {
    Py_CLEAR(w->loop);
    Py_CLEAR(w->callbacks);
    Py_CLEAR(w->message);
    return 0;
}

static void wait_dealloc(WaitObject *w) {
    PyObject_GC_UnTrack(w);
    wait_clear(w);
    PyObject_GC_Del(w);
}

/* loop.call_soon(fn, arg, context=context) */
static int call_soon(PyObject *loop, PyObject *fn, PyObject *arg, PyObject *context) {
    PyObject *args[4] = {loop, fn, arg, context};
    PyObject *r = PyObject_VectorcallMethod(s_call_soon, args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                            au_kw_context);
    if (r == NULL) return -1;
    Py_DECREF(r);
    return 0;
}

/* A Wait's callbacks: one (fn, context) tuple alone (a task's wake-up,
 * nearly always the only one), or a list of them once there are more. */
static inline Py_ssize_t cbs_len(PyObject *cbs) {
    return cbs == NULL ? 0 : PyList_CheckExact(cbs) ? PyList_GET_SIZE(cbs) : 1;
}

static inline PyObject *cbs_item(PyObject *cbs, Py_ssize_t i) {
    return PyList_CheckExact(cbs) ? PyList_GET_ITEM(cbs, i) : cbs;
}

/* Schedules the callbacks from index `from` on (cbs owned by the caller). */
static int schedule_callbacks(WaitObject *w, PyObject *cbs, Py_ssize_t from) {
    for (Py_ssize_t i = from; i < cbs_len(cbs); i++) {
        PyObject *item = cbs_item(cbs, i);
        if (call_soon(w->loop, PyTuple_GET_ITEM(item, 0), (PyObject *)w, PyTuple_GET_ITEM(item, 1)) < 0)
            return -1;
    }
    return 0;
}

/* Ends a Wait from a task or a plain call: the callbacks are scheduled, as
 * asyncio.Future's are. */
static int wait_schedule(WaitObject *w) {
    PyObject *cbs = w->callbacks;
    w->callbacks = NULL;
    if (cbs == NULL) return 0;
    int r = schedule_callbacks(w, cbs, 0);
    Py_DECREF(cbs);
    return r;
}

/* The drain's completion: the callbacks run now, each in its context. A
 * callback's exception goes to the loop's exception handler, except
 * SystemExit and KeyboardInterrupt, which propagate after the callbacks
 * left are scheduled. */
static int wait_resolve(WaitObject *w) {
    if (w->state) return 0;
    w->state = 1;
    PyObject *cbs = w->callbacks;
    w->callbacks = NULL;
    if (cbs == NULL) return 0;
    int ret = 0;
    Py_INCREF(w); /* a callback may drop the last other reference */
    for (Py_ssize_t i = 0; i < cbs_len(cbs); i++) {
        PyObject *item = cbs_item(cbs, i);
        PyObject *fn = PyTuple_GET_ITEM(item, 0), *ctx = PyTuple_GET_ITEM(item, 1);
        PyObject *r;
        if (ctx == Py_None) {
            r = PyObject_CallOneArg(fn, (PyObject *)w);
        } else if (PyContext_Enter(ctx) < 0) {
            r = NULL;
        } else {
            r = PyObject_CallOneArg(fn, (PyObject *)w);
            if (PyContext_Exit(ctx) < 0) Py_CLEAR(r);
        }
        if (r != NULL) {
            Py_DECREF(r);
            continue;
        }
        if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt)) {
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            if (schedule_callbacks(w, cbs, i + 1) < 0) PyErr_Clear();
            PyErr_Restore(t, v, tb);
            ret = -1;
            break;
        }
        PyObject *t, *v, *tb;
        PyErr_Fetch(&t, &v, &tb);
        PyErr_NormalizeException(&t, &v, &tb);
        if (tb != NULL && v != NULL) PyException_SetTraceback(v, tb);
        PyObject *msg = PyUnicode_FromFormat("Exception in callback %R", fn);
        PyObject *context = msg == NULL ? NULL : PyDict_New();
        int ok = context != NULL && PyDict_SetItem(context, s_message, msg) == 0 &&
                 PyDict_SetItem(context, s_exception, v != NULL ? v : Py_None) == 0 &&
                 PyDict_SetItem(context, s_future, (PyObject *)w) == 0;
        Py_XDECREF(t);
        Py_XDECREF(v);
        Py_XDECREF(tb);
        Py_XDECREF(msg);
        PyObject *hr = ok ? PyObject_CallMethodOneArg(w->loop, s_call_exception_handler, context) : NULL;
        Py_XDECREF(context);
        if (hr == NULL) { /* the handler failed: the rest still run, later */
            PyObject *t2, *v2, *tb2;
            PyErr_Fetch(&t2, &v2, &tb2);
            if (schedule_callbacks(w, cbs, i + 1) < 0) PyErr_Clear();
            PyErr_Restore(t2, v2, tb2);
            ret = -1;
            break;
        }
        Py_DECREF(hr);
    }
    Py_DECREF(cbs);
    Py_DECREF(w);
    return ret;
}

static PyObject *wait_done(WaitObject *w, PyObject *unused) { return PyBool_FromLong(w->state != 0); }
static PyObject *wait_cancelled(WaitObject *w, PyObject *unused) { return PyBool_FromLong(w->state == 2); }

/* asyncio's CancelledError and InvalidStateError, imported on first need
 * (a Wait may be used before aio_unary_setup ran). */
static int au_asyncio_errors(void) {
    if (au_cancelled_error != NULL && au_invalid_state != NULL) return 0;
    PyObject *mod = PyImport_ImportModule("asyncio");
    if (mod == NULL) return -1;
    PyObject *c = PyObject_GetAttrString(mod, "CancelledError");
    PyObject *i = c == NULL ? NULL : PyObject_GetAttrString(mod, "InvalidStateError");
    Py_DECREF(mod);
    if (i == NULL) {
        Py_XDECREF(c);
        return -1;
    }
    Py_XSETREF(au_cancelled_error, c);
    Py_XSETREF(au_invalid_state, i);
    return 0;
}

/* Sets the exception result() raises (state 2 or 0); NULL always. */
static PyObject *wait_raise(WaitObject *w) {
    if (au_asyncio_errors() < 0) return NULL;
    if (w->state == 2) {
        if (w->message == NULL || w->message == Py_None)
            PyErr_SetNone(au_cancelled_error);
        else
            PyErr_SetObject(au_cancelled_error, w->message);
    } else {
        PyErr_SetString(au_invalid_state, "Result is not set.");
    }
    return NULL;
}

static PyObject *wait_result(WaitObject *w, PyObject *unused) {
    if (w->state == 1) Py_RETURN_NONE;
    return wait_raise(w);
}

static PyObject *wait_get_loop(WaitObject *w, PyObject *unused) {
    Py_INCREF(w->loop);
    return w->loop;
}

/* add_done_callback(fn, *, context=None): a task calls it once per await,
 * so its arguments are read without building a tuple and a dict. */
static PyObject *wait_add_done_callback(WaitObject *w, PyObject *const *args, Py_ssize_t nargs,
                                        PyObject *kwnames) {
    PyObject *fn = nargs >= 1 ? args[0] : NULL, *context = Py_None;
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int is_ctx = PyUnicode_Check(name) ? PyUnicode_CompareWithASCIIString(name, "context") == 0 : 0;
        int is_fn = PyUnicode_Check(name) ? PyUnicode_CompareWithASCIIString(name, "fn") == 0 : 0;
        if (is_ctx) {
            context = args[nargs + i];
        } else if (is_fn && fn == NULL) {
            fn = args[nargs + i];
        } else {
            PyErr_Format(PyExc_TypeError, "add_done_callback() got an unexpected keyword argument '%S'", name);
            return NULL;
        }
    }
    if (fn == NULL || nargs > 1) {
        PyErr_Format(PyExc_TypeError, "add_done_callback() takes exactly one positional argument (%zd given)",
                     nargs);
        return NULL;
    }
    if (w->state) {
        if (call_soon(w->loop, fn, (PyObject *)w, context) < 0) return NULL;
        Py_RETURN_NONE;
    }
    PyObject *item = PyTuple_Pack(2, fn, context);
    if (item == NULL) return NULL;
    if (w->callbacks == NULL) {
        w->callbacks = item;
        Py_RETURN_NONE;
    }
    if (!PyList_CheckExact(w->callbacks)) {
        PyObject *list = PyList_New(1);
        if (list == NULL) {
            Py_DECREF(item);
            return NULL;
        }
        PyList_SET_ITEM(list, 0, w->callbacks); /* takes our reference */
        w->callbacks = list;
    }
    int r = PyList_Append(w->callbacks, item);
    Py_DECREF(item);
    if (r < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *wait_remove_done_callback(WaitObject *w, PyObject *fn) {
    PyObject *cbs = w->callbacks;
    if (cbs_len(cbs) == 0) return PyLong_FromLong(0);
    PyObject *kept = PyList_New(0);
    if (kept == NULL) return NULL;
    Py_INCREF(cbs);
    Py_ssize_t n = cbs_len(cbs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = cbs_item(cbs, i);
        int ne = PyObject_RichCompareBool(PyTuple_GET_ITEM(item, 0), fn, Py_NE);
        if (ne < 0 || (ne && PyList_Append(kept, item) < 0)) {
            Py_DECREF(cbs);
            Py_DECREF(kept);
            return NULL;
        }
    }
    Py_ssize_t removed = n - PyList_GET_SIZE(kept);
    Py_DECREF(cbs);
    Py_XSETREF(w->callbacks, kept);
    return PyLong_FromSsize_t(removed);
}

static PyObject *wait_cancel(WaitObject *w, PyObject *args, PyObject *kwds) {
    PyObject *msg = Py_None;
    static char *kwlist[] = {"msg", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|O:cancel", kwlist, &msg)) return NULL;
    if (w->state) Py_RETURN_FALSE;
    w->state = 2;
    Py_INCREF(msg);
    Py_XSETREF(w->message, msg);
    if (wait_schedule(w) < 0) return NULL;
    Py_RETURN_TRUE;
}

static PyObject *wait_done_soon(WaitObject *w, PyObject *unused) {
    if (!w->state) {
        w->state = 1;
        if (wait_schedule(w) < 0) return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *wait_set_result(WaitObject *w, PyObject *unused) {
    if (wait_resolve(w) < 0) return NULL;
    Py_RETURN_NONE;
}

static PyObject *wait_await(WaitObject *w);

static PyMethodDef wait_methods[] = {
    {"done", (PyCFunction)wait_done, METH_NOARGS, NULL},
    {"cancelled", (PyCFunction)wait_cancelled, METH_NOARGS, NULL},
    {"result", (PyCFunction)wait_result, METH_NOARGS, NULL},
    {"exception", (PyCFunction)wait_result, METH_NOARGS, "None once done (raises as result() otherwise)"},
    {"get_loop", (PyCFunction)wait_get_loop, METH_NOARGS, NULL},
    {"add_done_callback", (PyCFunction)(void (*)(void))wait_add_done_callback, METH_FASTCALL | METH_KEYWORDS, NULL},
    {"remove_done_callback", (PyCFunction)wait_remove_done_callback, METH_O, NULL},
    {"cancel", (PyCFunction)(void (*)(void))wait_cancel, METH_VARARGS | METH_KEYWORDS, NULL},
    {"done_soon", (PyCFunction)wait_done_soon, METH_NOARGS,
     "Completes it with the callbacks scheduled (safe inside a task)."},
    {"set_result", (PyCFunction)wait_set_result, METH_O, "The drain's completion: the callbacks run now."},
    {NULL, NULL, 0, NULL},
};

static PyObject *wait_get_blocking(WaitObject *w, void *unused) { return PyBool_FromLong(w->blocking); }
static int wait_set_blocking(WaitObject *w, PyObject *v, void *unused) {
    if (v == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _asyncio_future_blocking");
        return -1;
    }
    int b = PyObject_IsTrue(v);
    if (b < 0) return -1;
    w->blocking = b;
    return 0;
}
static PyObject *wait_get_state(WaitObject *w, void *unused) { return PyLong_FromLong(w->state); }
static PyObject *wait_get_loop_attr(WaitObject *w, void *unused) { return wait_get_loop(w, NULL); }
static PyObject *wait_get_log_traceback(WaitObject *w, void *unused) { Py_RETURN_FALSE; }
static int wait_set_log_traceback(WaitObject *w, PyObject *v, void *unused) { return 0; }

static PyGetSetDef wait_getset[] = {
    {"_asyncio_future_blocking", (getter)wait_get_blocking, (setter)wait_set_blocking, NULL, NULL},
    {"_state", (getter)wait_get_state, NULL, "0 pending, 1 done, 2 cancelled", NULL},
    {"_loop", (getter)wait_get_loop_attr, NULL, NULL, NULL},
    {"_log_traceback", (getter)wait_get_log_traceback, (setter)wait_set_log_traceback, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyAsyncMethods wait_async = {(unaryfunc)wait_await, NULL, NULL};

static PyTypeObject WaitType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "grpc._hot.Wait",
    .tp_doc = "A future of one token's completion that wakes its waiters at once (grpc/aio/_completion.py).",
    .tp_basicsize = sizeof(WaitObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = wait_tp_new,
    .tp_dealloc = (destructor)wait_dealloc,
    .tp_traverse = (traverseproc)wait_traverse,
    .tp_clear = (inquiry)wait_clear,
    .tp_methods = wait_methods,
    .tp_getset = wait_getset,
    .tp_as_async = &wait_async,
    .tp_iter = (getiterfunc)wait_await,
};

/* `await wait`: yields the Wait once (unless done), then its result. */
typedef struct {
    PyObject_HEAD
    WaitObject *wait;
    int yielded;
} WaitIterObject;

static PyObject *wait_await(WaitObject *w) {
    WaitIterObject *it = PyObject_GC_New(WaitIterObject, &WaitIterType);
    if (it == NULL) return NULL;
    Py_INCREF(w);
    it->wait = w;
    it->yielded = 0;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

static PyObject *wait_iter_next(WaitIterObject *it) {
    WaitObject *w = it->wait;
    if (!it->yielded && w->state == 0) {
        it->yielded = 1;
        w->blocking = 1;
        Py_INCREF(w);
        return (PyObject *)w;
    }
    if (w->state == 1) return NULL; /* StopIteration(None) */
    return wait_raise(w);
}

static PyObject *wait_iter_send(WaitIterObject *it, PyObject *unused) {
    PyObject *r = wait_iter_next(it);
    if (r == NULL && !PyErr_Occurred()) PyErr_SetNone(PyExc_StopIteration);
    return r;
}

static int wait_iter_traverse(WaitIterObject *it, visitproc visit, void *arg) {
    Py_VISIT(it->wait);
    return 0;
}

static int wait_iter_clear(WaitIterObject *it) {
    Py_CLEAR(it->wait);
    return 0;
}

static void wait_iter_dealloc(WaitIterObject *it) {
    PyObject_GC_UnTrack(it);
    Py_CLEAR(it->wait);
    PyObject_GC_Del(it);
}

static PyMethodDef wait_iter_methods[] = {
    {"send", (PyCFunction)wait_iter_send, METH_O, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject WaitIterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "grpc._hot.WaitIter",
    .tp_basicsize = sizeof(WaitIterObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)wait_iter_dealloc,
    .tp_traverse = (traverseproc)wait_iter_traverse,
    .tp_clear = (inquiry)wait_iter_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)wait_iter_next,
    .tp_methods = wait_iter_methods,
};

/* ---- the drain ------------------------------------------------------------
 * cq_resolve(cq, waiting[, owner]): takes the completed tokens and resolves each
 * one's future in waiting (popped): a Wait runs its callbacks now, another
 * future gets set_result(None) if not done. If that raises (a task woken
 * here let KeyboardInterrupt out), the tokens after it go back on the
 * queue, which wakes the loop again: none is lost. */
static PyObject *m_cq_resolve(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    /* (cq, waiting[, owner]); owner: what the loop's reader keeps alive.
     * The loop calls it once per wake-up: no argument tuple to parse. */
    hot_cq *q;
    if (nargs < 2 || nargs > 3) {
        PyErr_Format(PyExc_TypeError, "cq_resolve() takes 2 or 3 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!cq_arg(args[0], &q)) return NULL;
    PyObject *waiting = args[1];
    if (!PyDict_Check(waiting)) {
        PyErr_Format(PyExc_TypeError, "cq_resolve() argument 2 must be dict, not %.100s",
                     Py_TYPE(waiting)->tp_name);
        return NULL;
    }
    if (forked) Py_RETURN_NONE; /* see m_cq_drain */
    if (atomic_load(&exit_begun) && PyThread_get_thread_ident() != hot_main_ident) {
        PyEval_SaveThread();
        hot_park();
    }
    size_t n;
    uint64_t *items = hot_cq_take(q, &n);
    Py_INCREF(waiting);
    size_t i = 0;
    for (; i < n; i++) {
        PyObject *key = PyLong_FromUnsignedLongLong(items[i]);
        if (key == NULL) break;
        PyObject *fut = PyDict_GetItemWithError(waiting, key);
        if (fut == NULL) {
            Py_DECREF(key);
            if (PyErr_Occurred()) break;
            continue;
        }
        Py_INCREF(fut);
        int r = PyDict_DelItem(waiting, key);
        Py_DECREF(key);
        if (r == 0) {
            if (Py_TYPE(fut) == &WaitType) {
                r = wait_resolve((WaitObject *)fut);
            } else {
                PyObject *d = PyObject_CallMethodNoArgs(fut, s_done);
                int done = d == NULL ? -1 : PyObject_IsTrue(d);
                Py_XDECREF(d);
                if (done < 0) {
                    r = -1;
                } else if (!done) {
                    PyObject *sr = PyObject_CallMethodOneArg(fut, s_set_result, Py_None);
                    r = sr == NULL ? -1 : 0;
                    Py_XDECREF(sr);
                }
            }
        }
        Py_DECREF(fut);
        if (r < 0) {
            i++; /* this one is taken */
            break;
        }
    }
    Py_DECREF(waiting);
    int failed = i < n || PyErr_Occurred();
    for (; i < n; i++) hot_cq_push(q, items[i]);
    free(items);
    if (failed) return NULL;
    Py_RETURN_NONE;
}

/* ---- AioUnaryCall ----------------------------------------------------------- */
typedef struct {
    PyObject_HEAD
    PyObject *channel, *hot, *loop, *q, *deadline, *credentials, *ref, *status, *callbacks,
        *deserializer, *token, *future, *call, *outcome, *initial_raw;
    hot_aio_rec *rec; /* where the call's end leaves a plain OK response (hot.h) */
} UCallObject;

static PyTypeObject UCallType;
static PyTypeObject UAwaitType;

#define UC_FIELDS(X) X(channel) X(hot) X(loop) X(q) X(deadline) X(credentials) X(ref) X(status) \
    X(callbacks) X(deserializer) X(token) X(future) X(call) X(outcome) X(initial_raw)

static int ucall_traverse(UCallObject *c, visitproc visit, void *arg) {
#define V(f) Py_VISIT(c->f);
    UC_FIELDS(V)
#undef V
    return 0;
}

static int ucall_clear(UCallObject *c) {
#define C(f) Py_CLEAR(c->f);
    UC_FIELDS(C)
#undef C
    return 0;
}

static void ucall_dealloc(UCallObject *c) {
    PyObject_GC_UnTrack(c);
    ucall_clear(c);
    hot_aio_rec_unref(c->rec);
    c->rec = NULL;
    Py_TYPE(c)->tp_free((PyObject *)c);
}

static inline int is_none(PyObject *o) { return o == NULL || o == Py_None; }

static PyObject *au_not_ready(void) {
    PyErr_SetString(PyExc_RuntimeError, "grpc._hot: aio_unary_setup was not called");
    return NULL;
}

/* A new reference to a weak reference's object, or NULL if it is gone. */
static PyObject *weak_get(PyObject *ref) {
#if PY_VERSION_HEX >= 0x030D0000
    PyObject *o = NULL;
    if (PyWeakref_GetRef(ref, &o) < 0) PyErr_Clear();
    return o;
#else
    PyObject *o = PyWeakref_GetObject(ref);
    if (o == NULL) {
        PyErr_Clear();
        return NULL;
    }
    if (o == Py_None) return NULL;
    Py_INCREF(o);
    return o;
#endif
}

/* (loop, queue) for a call on channel: Channel._queue's cache read here,
 * Channel._queue() itself when it misses. New references, or -1. */
static int channel_queue(PyObject *channel, PyObject **loop_out, PyObject **q_out) {
    PyObject *loop = PyObject_CallNoArgs(au_get_running_loop);
    if (loop == NULL) return -1;
    PyObject *cached = PyObject_GetAttr(channel, s_last_queue);
    if (cached == NULL) {
        Py_DECREF(loop);
        return -1;
    }
    if (PyTuple_Check(cached) && PyTuple_GET_SIZE(cached) == 2 &&
        PyWeakref_Check(PyTuple_GET_ITEM(cached, 0)) && PyWeakref_Check(PyTuple_GET_ITEM(cached, 1))) {
        PyObject *cached_loop = weak_get(PyTuple_GET_ITEM(cached, 0));
        PyObject *q = cached_loop == loop ? weak_get(PyTuple_GET_ITEM(cached, 1)) : NULL;
        Py_XDECREF(cached_loop);
        if (q != NULL) {
            Py_DECREF(cached);
            *loop_out = loop;
            *q_out = q;
            return 0;
        }
    }
    Py_DECREF(cached);
    Py_DECREF(loop);
    PyObject *pair = PyObject_CallMethodNoArgs(channel, s_queue);
    if (pair == NULL) return -1;
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        Py_DECREF(pair);
        PyErr_SetString(PyExc_TypeError, "Channel._queue() must return (loop, queue)");
        return -1;
    }
    *loop_out = PyTuple_GET_ITEM(pair, 0);
    *q_out = PyTuple_GET_ITEM(pair, 1);
    Py_INCREF(*loop_out);
    Py_INCREF(*q_out);
    Py_DECREF(pair);
    return 0;
}

/* A new reference to fn(arg) converted to a C double / int. */
static int call_to_double(PyObject *fn, PyObject *arg, double *out) {
    PyObject *r = PyObject_CallOneArg(fn, arg);
    if (r == NULL) return -1;
    *out = PyFloat_AsDouble(r);
    Py_DECREF(r);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 0;
}

static int call_to_int(PyObject *fn, PyObject *arg, int *out) {
    PyObject *r = PyObject_CallOneArg(fn, arg);
    if (r == NULL) return -1;
    long v = PyLong_AsLong(r);
    Py_DECREF(r);
    if (v == -1 && PyErr_Occurred()) return -1;
    *out = (int)v;
    return 0;
}

/* UnaryUnaryCall(channel, method, request, timeout, metadata, credentials,
 *                wait_for_ready, compression, serializer, deserializer):
 * checks, registers and starts the call (what the Python __init__ did). */
static int ucall_start(UCallObject *self, PyObject *channel, PyObject *method, PyObject *request,
                       PyObject *timeout, PyObject *metadata, PyObject *credentials, PyObject *wfr,
                       PyObject *compression, PyObject *serializer, PyObject *deserializer);

static int ucall_init(UCallObject *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"channel", "method", "request", "timeout", "metadata", "credentials",
                             "wait_for_ready", "compression", "serializer", "deserializer", NULL};
    PyObject *channel, *method, *request, *timeout, *metadata, *credentials, *wfr, *compression,
        *serializer, *deserializer;
    if (kwds == NULL && PyTuple_GET_SIZE(args) == 10) {
        PyObject **a[10] = {&channel, &method, &request, &timeout, &metadata, &credentials, &wfr,
                            &compression, &serializer, &deserializer};
        for (int i = 0; i < 10; i++) *a[i] = PyTuple_GET_ITEM(args, i);
    } else if (!PyArg_ParseTupleAndKeywords(args, kwds, "OOOOOOOOOO:UnaryUnaryCall", kwlist, &channel,
                                            &method, &request, &timeout, &metadata, &credentials, &wfr,
                                            &compression, &serializer, &deserializer)) {
        return -1;
    }
    return ucall_start(self, channel, method, request, timeout, metadata, credentials, wfr, compression,
                       serializer, deserializer);
}

static int ucall_start(UCallObject *self, PyObject *channel, PyObject *method, PyObject *request,
                       PyObject *timeout, PyObject *metadata, PyObject *credentials, PyObject *wfr,
                       PyObject *compression, PyObject *serializer, PyObject *deserializer) {
    if (!au_ready) {
        au_not_ready();
        return -1;
    }
    if (self->channel != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a call is started once");
        return -1;
    }
    PyObject *closing = PyObject_GetAttr(channel, s_closing);
    if (closing == NULL) return -1;
    int is_closing = PyObject_IsTrue(closing);
    Py_DECREF(closing);
    if (is_closing < 0) return -1;
    if (is_closing) {
        PyErr_SetObject(au_usage_error, au_closed_msg);
        return -1;
    }
    PyObject *creds = NULL; /* owned */
    PyObject *loop = NULL, *q = NULL, *waiter = NULL, *payload = NULL, *started = NULL;
    int ret = -1;
    if (credentials != Py_None || compression != Py_None) {
        creds = PyObject_CallFunctionObjArgs(au_creds_arg, channel, credentials, compression, NULL);
        if (creds == NULL) return -1;
    }
    /* Call._setup */
    Py_INCREF(channel);
    self->channel = channel;
    self->hot = PyObject_GetAttr(channel, s_hot);
    if (self->hot == NULL) goto done;
    if (channel_queue(channel, &loop, &q) < 0) goto done;
    Py_INCREF(loop);
    Py_XSETREF(self->loop, loop);
    Py_INCREF(q);
    Py_XSETREF(self->q, q);
    if (timeout != Py_None) {
        PyObject *now = PyObject_CallNoArgs(au_monotonic);
        if (now == NULL) goto done;
        PyObject *deadline = PyNumber_Add(now, timeout);
        Py_DECREF(now);
        if (deadline == NULL) goto done;
        Py_XSETREF(self->deadline, deadline);
    }
    if (credentials != Py_None) {
        Py_INCREF(credentials);
        Py_XSETREF(self->credentials, credentials);
    }
    {
        PyObject *forget = PyObject_GetAttr(channel, s_forget_call);
        if (forget == NULL) goto done;
        PyObject *ref = PyWeakref_NewRef((PyObject *)self, forget);
        Py_DECREF(forget);
        if (ref == NULL) goto done;
        Py_XSETREF(self->ref, ref);
        PyObject *calls = PyObject_GetAttr(channel, s_calls);
        if (calls == NULL) goto done;
        int r = PyObject_SetItem(calls, ref, Py_None);
        Py_DECREF(calls);
        if (r < 0) goto done;
    }
    /* UnaryUnaryCall.__init__ */
    Py_INCREF(deserializer);
    Py_XSETREF(self->deserializer, deserializer);
    {
        PyObject *tokens = PyObject_GetAttr(q, s_tokens);
        if (tokens == NULL) goto done;
        PyObject *token = PyIter_Next(tokens);
        Py_DECREF(tokens);
        if (token == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_RuntimeError, "the queue's tokens ran out");
            goto done;
        }
        Py_XSETREF(self->token, token);
    }
    waiter = wait_create(loop);
    if (waiter == NULL) goto done;
    Py_INCREF(waiter);
    Py_XSETREF(self->future, waiter);
    if (serializer == Py_None && PyBytes_CheckExact(request)) {
        Py_INCREF(request);
        payload = request;
    } else {
        payload = PyObject_CallFunctionObjArgs(au_serialize, request, serializer, NULL);
        if (payload == NULL) goto done;
    }
    if (payload == Py_None) {
        PyObject *r = PyObject_CallMethodNoArgs((PyObject *)self, s_serialize_failed);
        if (r == NULL) goto done;
        Py_DECREF(r);
        ret = 0;
        goto done;
    }
    {
        double t = -1.0;
        int w = 0, comp = -1;
        if (timeout != Py_None && call_to_double(au_timeout_arg, timeout, &t) < 0) goto done;
        if (wfr != Py_None && call_to_int(au_wfr_arg, wfr, &w) < 0) goto done;
        if (compression != Py_None && call_to_int(au_compression_arg, compression, &comp) < 0) goto done;
        Py_ssize_t mn;
        const char *m = PyUnicode_Check(method) ? PyUnicode_AsUTF8AndSize(method, &mn) : NULL;
        if (m == NULL) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "method must be str");
            goto done;
        }
        PyObject *cqcap = PyObject_GetAttr(q, s_cq);
        if (cqcap == NULL) goto done;
        hot_cq *cq;
        int ok = cq_arg(cqcap, &cq);
        if (!ok) {
            Py_DECREF(cqcap);
            goto done;
        }
        PyObject *handle = PyObject_GetAttr(channel, s_handle);
        uintptr_t h;
        if (handle == NULL || !channel_h(handle, &h)) {
            Py_XDECREF(handle);
            Py_DECREF(cqcap);
            goto done;
        }
        unsigned long long token = PyLong_AsUnsignedLongLong(self->token);
        Py_buffer view;
        hot_aio_rec *rec = NULL;
        if (token == (unsigned long long)-1 && PyErr_Occurred()) {
            ok = 0;
        } else if ((rec = hot_aio_rec_new()) == NULL) {
            PyErr_NoMemory();
            ok = 0;
        } else if (PyObject_GetBuffer(payload, &view, PyBUF_SIMPLE) < 0) {
            hot_aio_rec_unref(rec);
            hot_aio_rec_unref(rec);
            ok = 0;
        } else {
            hot_aio_rec_unref(self->rec);
            self->rec = rec; /* our count; the engine gives back its own */
            note_thread();
            if (forked) {
                hot_aio_rec_unref(rec);
                started = fork_error();
            } else {
                started = GO(hotAioUnary(cq, token, h, (char *)m, mn, view.buf, view.len, LENDABLE(view), t,
                                         metadata, w, comp, creds == NULL ? Py_None : creds, rec));
            }
            PyBuffer_Release(&view);
        }
        Py_DECREF(handle);
        Py_DECREF(cqcap); /* the operation holds its own count on the queue */
        if (!ok || started == NULL) goto done;
    }
    Py_XSETREF(self->call, started);
    started = NULL;
    /* Only now: a call the engine refused leaves nothing waiting, and the
     * token completes on this loop, after us. */
    {
        PyObject *waiting = PyObject_GetAttr(q, s_waiting);
        if (waiting == NULL) goto done;
        int r = PyObject_SetItem(waiting, self->token, waiter);
        Py_DECREF(waiting);
        if (r < 0) goto done;
    }
    ret = 0;
done:
    Py_XDECREF(creds);
    Py_XDECREF(loop);
    Py_XDECREF(q);
    Py_XDECREF(waiter);
    Py_XDECREF(payload);
    Py_XDECREF(started);
    return ret;
}

/* Call._end for a call with no done callbacks (those go through the Python
 * _end, which runs them): records the status, leaves the channel's
 * registry. */
static int ucall_end(UCallObject *self, PyObject *status) {
    if (!is_none(self->callbacks)) {
        PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, s_end, status);
        if (r == NULL) return -1;
        Py_DECREF(r);
        return 0;
    }
    if (!is_none(self->status)) return 0;
    Py_INCREF(status);
    Py_XSETREF(self->status, status);
    if (!is_none(self->ref)) {
        PyObject *calls = PyObject_GetAttr(self->channel, s_calls);
        if (calls == NULL) return -1;
        if (PyDict_Check(calls)) {
            if (PyDict_DelItem(calls, self->ref) < 0) {
                if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
                    Py_DECREF(calls);
                    return -1;
                }
                PyErr_Clear();
            }
        }
        Py_DECREF(calls);
    }
    Py_CLEAR(self->ref);
    Py_CLEAR(self->callbacks);
    return 0;
}

static PyObject *make_status(PyObject *code, PyObject *details, PyObject *trailing) {
    PyTypeObject *cls = (PyTypeObject *)au_status_cls;
    PyObject *s = cls->tp_alloc(cls, 4);
    if (s == NULL) return NULL;
    PyObject *items[4] = {code, details, trailing, Py_False};
    for (int i = 0; i < 4; i++) {
        Py_INCREF(items[i]);
        PyTuple_SET_ITEM(s, i, items[i]);
    }
    return s;
}

/* The engine call ended: releasing its handle has nothing left to end,
 * so it waits with the finished server calls' (hotmodule.c, settled)
 * instead of a call into Go of its own when the call object goes. */
static void ucall_mark_settled(UCallObject *self) {
    if (self->call != NULL && PyCapsule_CheckExact(self->call) &&
        PyCapsule_GetContext(self->call) == NULL)
        PyCapsule_SetContext(self->call, &settled_mark);
}

/* The OK outcome with response (a reference this takes), no details and
 * no metadata: the deserializer's failure becomes INTERNAL, as below. */
static int ucall_settle_ok(UCallObject *self, PyObject *response) {
    PyObject *code = au_ok, *details = au_empty_str;
    if (!is_none(self->deserializer)) {
        PyObject *r = PyObject_CallOneArg(self->deserializer, response);
        if (r != NULL) {
            Py_SETREF(response, r);
        } else {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                Py_DECREF(response);
                return -1;
            }
            PyObject *t, *v, *tb;
            PyErr_Fetch(&t, &v, &tb);
            PyErr_NormalizeException(&t, &v, &tb);
            if (tb != NULL && v != NULL) PyException_SetTraceback(v, tb);
            PyObject *lr = PyObject_CallOneArg(au_log_deserialize, v != NULL ? v : Py_None);
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tb);
            if (lr == NULL) {
                Py_DECREF(response);
                return -1;
            }
            Py_DECREF(lr);
            code = au_internal;
            details = au_deserialize_failed;
            Py_INCREF(Py_None);
            Py_SETREF(response, Py_None);
        }
    }
    PyObject *empty = PyTuple_New(0);
    if (empty == NULL) {
        Py_DECREF(response);
        return -1;
    }
    Py_XSETREF(self->initial_raw, empty); /* takes the reference */
    PyObject *outcome = PyTuple_Pack(1, response);
    Py_DECREF(response);
    if (outcome == NULL) return -1;
    Py_XSETREF(self->outcome, outcome);
    PyObject *status = make_status(code, details, self->initial_raw);
    if (status == NULL) return -1;
    int ret = ucall_end(self, status);
    Py_DECREF(status);
    return ret;
}

/* _settle: reads the outcome of the ended engine call (its token
 * completed). 0 (also when not ended: cancelled meanwhile), or -1. */
static int ucall_settle(UCallObject *self) {
    if (!is_none(self->outcome)) return 0;
    uintptr_t h;
    PyObject *result;
    hot_aio_rec *rec = self->rec;
    if (rec != NULL && rec->w.has_data) {
        /* An OK call with no details and no metadata Python would see: its
         * response is all there is (hotAioUnary's takeResponse), read
         * without the 5-tuple unary_wait would make. */
        PyObject *response = PyBytes_FromStringAndSize(rec->w.data, rec->w.len);
        if (response == NULL) return -1;
        ucall_mark_settled(self);
        return ucall_settle_ok(self, response);
    } else {
        if (self->call == NULL || !unary_h(self->call, &h)) return -1;
        if (forked) {
            fork_error();
            return -1;
        }
        result = GO(hotUnaryWait(h, 0.0));
        if (result == NULL) return -1;
    }
    if (result == Py_None) {
        Py_DECREF(result);
        return 0;
    }
    ucall_mark_settled(self);
    if (!PyTuple_Check(result) || PyTuple_GET_SIZE(result) != 5) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_RuntimeError, "unary_wait: unexpected result");
        return -1;
    }
    int ret = -1;
    PyObject *code = NULL; /* owned: the StatusCode */
    PyObject *details = PyTuple_GET_ITEM(result, 1), *response = PyTuple_GET_ITEM(result, 2);
    PyObject *initial = PyTuple_GET_ITEM(result, 3), *trailing = PyTuple_GET_ITEM(result, 4);
    Py_INCREF(details);
    Py_INCREF(response);
    long c = PyLong_AsLong(PyTuple_GET_ITEM(result, 0));
    if (c == -1 && PyErr_Occurred()) goto out;
    if (c == 0) {
        Py_INCREF(au_ok);
        code = au_ok;
        if (!is_none(self->deserializer)) {
            PyObject *r = PyObject_CallOneArg(self->deserializer, response);
            if (r != NULL) {
                Py_SETREF(response, r);
            } else {
                if (!PyErr_ExceptionMatches(PyExc_Exception)) goto out;
                PyObject *t, *v, *tb;
                PyErr_Fetch(&t, &v, &tb);
                PyErr_NormalizeException(&t, &v, &tb);
                if (tb != NULL && v != NULL) PyException_SetTraceback(v, tb);
                PyObject *lr = PyObject_CallOneArg(au_log_deserialize, v != NULL ? v : Py_None);
                Py_XDECREF(t);
                Py_XDECREF(v);
                Py_XDECREF(tb);
                if (lr == NULL) goto out;
                Py_DECREF(lr);
                Py_INCREF(au_internal);
                Py_SETREF(code, au_internal);
                Py_INCREF(au_deserialize_failed);
                Py_SETREF(details, au_deserialize_failed);
                Py_INCREF(Py_None);
                Py_SETREF(response, Py_None);
            }
        }
    } else {
        code = PyObject_GetItem(au_codes, PyTuple_GET_ITEM(result, 0));
        if (code == NULL) goto out;
    }
    Py_INCREF(initial);
    Py_XSETREF(self->initial_raw, initial);
    {
        PyObject *outcome = PyTuple_Pack(1, response);
        if (outcome == NULL) goto out;
        Py_XSETREF(self->outcome, outcome);
    }
    {
        PyObject *status = make_status(code, details, trailing);
        if (status == NULL) goto out;
        ret = ucall_end(self, status);
        Py_DECREF(status);
    }
out:
    Py_XDECREF(code);
    Py_DECREF(details);
    Py_DECREF(response);
    Py_DECREF(result);
    return ret;
}

static PyObject *ucall_settle_m(UCallObject *self, PyObject *unused) {
    if (ucall_settle(self) < 0) return NULL;
    Py_RETURN_NONE;
}

static int ucall_done_c(UCallObject *self) {
    if (!is_none(self->status)) return 1;
    PyObject *f = self->future;
    if (f != NULL && Py_TYPE(f) == &WaitType && ((WaitObject *)f)->state == 1) {
        if (ucall_settle(self) < 0) return -1;
        return !is_none(self->status);
    }
    return 0;
}

static PyObject *ucall_done(UCallObject *self, PyObject *unused) {
    int d = ucall_done_c(self);
    if (d < 0) return NULL;
    return PyBool_FromLong(d);
}

/* The value `await call` ends with: the response (as StopIteration), or
 * the call's error raised. NULL always. */
/* The value `await call` ends with (a borrowed reference, *value), or
 * -1 with the call's error raised. */
static int ucall_result(UCallObject *self, PyObject **value) {
    PyObject *status = self->status;
    if (is_none(status)) {
        PyErr_SetString(PyExc_AttributeError, "'NoneType' object has no attribute 'code'");
        return -1;
    }
    if (PyTuple_Check(status) && PyTuple_GET_SIZE(status) >= 1 && PyTuple_GET_ITEM(status, 0) == au_ok) {
        *value = (PyTuple_Check(self->outcome) && PyTuple_GET_SIZE(self->outcome) >= 1)
                     ? PyTuple_GET_ITEM(self->outcome, 0) : Py_None;
        return 0;
    }
    PyObject *err = PyObject_CallMethodOneArg((PyObject *)self, s_error, status);
    if (err == NULL) return -1;
    PyErr_SetObject((PyObject *)Py_TYPE(err), err);
    Py_DECREF(err);
    return -1;
}

/* Raises StopIteration(value) as a generator's return of value (borrowed)
 * does; None raises nothing (the iterator protocol's plain end). A tuple
 * or an exception is wrapped, not taken as the exception's args or the
 * exception itself. NULL always. Also pyext/aio_iterators.h's. */
static PyObject *stop_with(PyObject *value) {
    if (value == Py_None) return NULL;
    if (!PyTuple_Check(value) && !PyExceptionInstance_Check(value)) {
        PyErr_SetObject(PyExc_StopIteration, value);
        return NULL;
    }
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (e != NULL) {
        PyErr_SetObject(PyExc_StopIteration, e);
        Py_DECREF(e);
    }
    return NULL;
}

/* Raises what throw(typ[, val]) was given, as a generator does: 0, or -1
 * with a TypeError when typ is no exception. Also pyext/aio_iterators.h's. */
static int raise_thrown(PyObject *typ, PyObject *val) {
    if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, val);
    } else {
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
        return -1;
    }
    return 0;
}

static PyObject *ucall_finish(UCallObject *self) {
    PyObject *value;
    if (ucall_result(self, &value) < 0) return NULL;
    return stop_with(value);
}

typedef struct {
    PyObject_HEAD
    UCallObject *call;
    int phase; /* 0 not started, 1 waiting on the Wait, 2 finished */
} UAwaitObject;

static PyObject *ucall_await(UCallObject *self) {
    UAwaitObject *it = PyObject_GC_New(UAwaitObject, &UAwaitType);
    if (it == NULL) return NULL;
    Py_INCREF(self);
    it->call = self;
    it->phase = 0;
    PyObject_GC_Track(it);
    return (PyObject *)it;
}

/* One step of `await call`: 1 with the Wait to yield in *out (a new
 * reference), 0 when the call's outcome is ready (read it with
 * ucall_result), 2 when finished before, -1 with an error set. */
static int uawait_step(UAwaitObject *it, PyObject **out) {
    UCallObject *c = it->call;
    if (it->phase == 2) return 2;
    if (it->phase == 0) {
        it->phase = 2;
        if (is_none(c->status)) {
            PyObject *f = c->future;
            if (f == NULL || Py_TYPE(f) != &WaitType) {
                PyErr_SetString(PyExc_RuntimeError, "a unary call without its Wait");
                return -1;
            }
            if (((WaitObject *)f)->state == 0) {
                it->phase = 1;
                ((WaitObject *)f)->blocking = 1;
                Py_INCREF(f);
                *out = f;
                return 1;
            }
            if (ucall_settle(c) < 0) return -1;
        }
        return 0;
    }
    /* resumed after the yield */
    it->phase = 2;
    WaitObject *w = (WaitObject *)c->future;
    if (w->state != 1) {
        wait_raise(w);
        return -1;
    }
    if (ucall_settle(c) < 0) return -1;
    return 0;
}

static PyObject *uawait_next(UAwaitObject *it) {
    PyObject *f = NULL;
    switch (uawait_step(it, &f)) {
    case 1:
        return f;
    case 0:
        return ucall_finish(it->call);
    default: /* finished before (StopIteration), or an error */
        return NULL;
    }
}

#if PY_VERSION_HEX >= 0x030A0000
/* The coroutine's `await` reads the result here without a StopIteration
 * (PyIter_Send). */
static PySendResult uawait_am_send(UAwaitObject *it, PyObject *arg, PyObject **result) {
    PyObject *v = NULL;
    switch (uawait_step(it, &v)) {
    case 1:
        *result = v;
        return PYGEN_NEXT;
    case 0:
        if (ucall_result(it->call, &v) < 0) break;
        Py_INCREF(v);
        *result = v;
        return PYGEN_RETURN;
    case 2:
        Py_INCREF(Py_None);
        *result = Py_None;
        return PYGEN_RETURN;
    default:
        break;
    }
    *result = NULL;
    return PYGEN_ERROR;
}
#endif

static PyObject *uawait_send(UAwaitObject *it, PyObject *unused) {
    PyObject *r = uawait_next(it);
    if (r == NULL && !PyErr_Occurred()) PyErr_SetNone(PyExc_StopIteration);
    return r;
}

/* A task cancelled while it awaits the call cancels the RPC (grpcio's
 * rule), then the CancelledError goes on. */
static PyObject *uawait_throw(UAwaitObject *it, PyObject *args) {
    PyObject *typ, *val = NULL, *tb = NULL;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &typ, &val, &tb)) return NULL;
    int waiting = it->phase == 1;
    it->phase = 2;
    if (raise_thrown(typ, val) < 0) return NULL;
    PyObject *t, *v, *tbo;
    PyErr_Fetch(&t, &v, &tbo);
    PyErr_NormalizeException(&t, &v, &tbo);
    if (tb != NULL && tb != Py_None && PyTraceBack_Check(tb)) {
        Py_INCREF(tb);
        Py_XSETREF(tbo, tb);
    }
    if (waiting && v != NULL && PyObject_IsInstance(v, au_cancelled_error) == 1) {
        int d = ucall_done_c(it->call);
        PyObject *r = d < 0 ? NULL : d ? (Py_INCREF(Py_None), Py_None)
                                       : PyObject_CallMethodNoArgs((PyObject *)it->call, s_cancel);
        if (r == NULL) {
            Py_XDECREF(t);
            Py_XDECREF(v);
            Py_XDECREF(tbo);
            return NULL;
        }
        Py_DECREF(r);
    }
    PyErr_Restore(t, v, tbo);
    return NULL;
}

static int uawait_traverse(UAwaitObject *it, visitproc visit, void *arg) {
    Py_VISIT(it->call);
    return 0;
}

static int uawait_clear(UAwaitObject *it) {
    Py_CLEAR(it->call);
    return 0;
}

static void uawait_dealloc(UAwaitObject *it) {
    PyObject_GC_UnTrack(it);
    Py_CLEAR(it->call);
    PyObject_GC_Del(it);
}

#if PY_VERSION_HEX >= 0x030A0000
static PyAsyncMethods uawait_async = {NULL, NULL, NULL, (sendfunc)uawait_am_send};
#endif

static PyMethodDef uawait_methods[] = {
    {"send", (PyCFunction)uawait_send, METH_O, NULL},
    {"throw", (PyCFunction)uawait_throw, METH_VARARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject UAwaitType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "grpc._hot.AioUnaryAwait",
    .tp_basicsize = sizeof(UAwaitObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)uawait_dealloc,
    .tp_traverse = (traverseproc)uawait_traverse,
    .tp_clear = (inquiry)uawait_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)uawait_next,
    .tp_methods = uawait_methods,
#if PY_VERSION_HEX >= 0x030A0000
    .tp_as_async = &uawait_async,
#endif
};

static PyMethodDef ucall_methods[] = {
    {"done", (PyCFunction)ucall_done, METH_NOARGS, "Whether the call ended (its outcome read if so)."},
    {"_settle", (PyCFunction)ucall_settle_m, METH_NOARGS,
     "Reads the outcome of the ended engine call (its token completed)."},
    {NULL, NULL, 0, NULL},
};

#define UC_MEMBER(f) {"_" #f, T_OBJECT, offsetof(UCallObject, f), 0, NULL},
static PyMemberDef ucall_members[] = {
    UC_FIELDS(UC_MEMBER)
    {NULL, 0, 0, 0, NULL},
};
#undef UC_MEMBER

static PyAsyncMethods ucall_async = {(unaryfunc)ucall_await, NULL, NULL};

static PyTypeObject UCallType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "grpc._hot.AioUnaryCall",
    .tp_doc = "The C half of grpc.aio's UnaryUnaryCall (pyext/aio_unary.h).",
    .tp_basicsize = sizeof(UCallObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)ucall_init,
    .tp_dealloc = (destructor)ucall_dealloc,
    .tp_traverse = (traverseproc)ucall_traverse,
    .tp_clear = (inquiry)ucall_clear,
    .tp_methods = ucall_methods,
    .tp_members = ucall_members,
    .tp_as_async = &ucall_async,
};

/* ---- UnaryUnaryMultiCallable.__call__ ----------------------------------------
 * AioUnaryCaller(cls, wrapped): what grpc/aio/_channel.py installs as the
 * multicallable's __call__ once the engine is loaded. It does what the
 * Python __call__ (wrapped, which it stands for: signature and docs come
 * from it through __wrapped__) does, with no Python frame: the
 * interceptors' path goes to the multicallable's _intercepted, a plain
 * call makes cls (grpc.aio._call.UnaryUnaryCall) and starts it without
 * type_call's argument tuple when cls is AioUnaryCall's own construction.
 * A method descriptor, as a Python function is: slot_tp_call calls it with
 * the multicallable first, without a bound method. */
typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *cls;
    PyObject *wrapped;
} UCallerObject;

static PyObject *s_interceptors, *s_intercepted, *s_channel_f, *s_method_f, *s_serializer_f,
    *s_deserializer_f, *s_intercepted_name;
static PyObject *s_call_kw[6]; /* request, timeout, metadata, credentials, wait_for_ready, compression */

static PyObject *ucaller_vectorcall(UCallerObject *caller, PyObject *const *args, size_t nargsf,
                                    PyObject *kwnames) {
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    PyObject *v[6] = {NULL, Py_None, Py_None, Py_None, Py_None, Py_None};
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "__call__() missing 1 required positional argument: 'self'");
        return NULL;
    }
    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError, "__call__() takes 2 positional arguments but %zd were given", nargs);
        return NULL;
    }
    PyObject *self = args[0];
    if (nargs == 2) v[0] = args[1];
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GET_ITEM(kwnames, i);
        int k = -1;
        for (int j = 0; j < 6 && k < 0; j++)
            if (name == s_call_kw[j]) k = j;
        for (int j = 0; j < 6 && k < 0; j++) {
            int eq = PyObject_RichCompareBool(name, s_call_kw[j], Py_EQ);
            if (eq < 0) return NULL;
            if (eq) k = j;
        }
        if (k < 0) {
            PyErr_Format(PyExc_TypeError, "__call__() got an unexpected keyword argument '%S'", name);
            return NULL;
        }
        if (k == 0 && v[0] != NULL) {
            PyErr_SetString(PyExc_TypeError, "__call__() got multiple values for argument 'request'");
            return NULL;
        }
        v[k] = args[nargs + i];
    }
    if (v[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "__call__() missing 1 required positional argument: 'request'");
        return NULL;
    }
    PyObject *interceptors = PyObject_GetAttr(self, s_interceptors);
    if (interceptors == NULL) return NULL;
    int intercepted = PyObject_IsTrue(interceptors);
    Py_DECREF(interceptors);
    if (intercepted < 0) return NULL;
    if (intercepted) {
        PyObject *margs[8] = {self, s_intercepted_name, v[0], v[1], v[2], v[3], v[4], v[5]};
        return PyObject_VectorcallMethod(s_intercepted, margs, 8 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
    }
    PyObject *f[4] = {NULL, NULL, NULL, NULL};
    PyObject *names[4] = {s_channel_f, s_method_f, s_serializer_f, s_deserializer_f};
    PyObject *result = NULL;
    for (int i = 0; i < 4; i++)
        if ((f[i] = PyObject_GetAttr(self, names[i])) == NULL) goto done;
    PyTypeObject *cls = (PyTypeObject *)caller->cls;
    if (cls->tp_new == PyType_GenericNew && cls->tp_init == (initproc)ucall_init) {
        result = cls->tp_alloc(cls, 0);
        if (result != NULL && ucall_start((UCallObject *)result, f[0], f[1], v[0], v[1], v[2], v[3], v[4],
                                          v[5], f[2], f[3]) < 0)
            Py_CLEAR(result);
    } else {
        PyObject *cargs[10] = {f[0], f[1], v[0], v[1], v[2], v[3], v[4], v[5], f[2], f[3]};
        result = PyObject_Vectorcall(caller->cls, cargs, 10, NULL);
    }
done:
    for (int i = 0; i < 4; i++) Py_XDECREF(f[i]);
    return result;
}

static PyObject *ucaller_new(PyTypeObject *type, PyObject *args, PyObject *kwds) {
    PyObject *cls, *wrapped;
    static char *kwlist[] = {"cls", "wrapped", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O:AioUnaryCaller", kwlist, &PyType_Type, &cls, &wrapped))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)cls, &UCallType)) {
        PyErr_SetString(PyExc_TypeError, "AioUnaryCaller: cls must be a subclass of AioUnaryCall");
        return NULL;
    }
    UCallerObject *c = (UCallerObject *)type->tp_alloc(type, 0);
    if (c == NULL) return NULL;
    c->vectorcall = (vectorcallfunc)ucaller_vectorcall;
    Py_INCREF(cls);
    c->cls = cls;
    Py_INCREF(wrapped);
    c->wrapped = wrapped;
    return (PyObject *)c;
}

static PyObject *ucaller_descr_get(PyObject *self, PyObject *obj, PyObject *type) {
    if (obj == NULL || obj == Py_None) {
        Py_INCREF(self);
        return self;
    }
    return PyMethod_New(self, obj);
}

static int ucaller_traverse(UCallerObject *c, visitproc visit, void *arg) {
    Py_VISIT(c->cls);
    Py_VISIT(c->wrapped);
    return 0;
}

static int ucaller_clear(UCallerObject *c) {
    Py_CLEAR(c->cls);
    Py_CLEAR(c->wrapped);
    return 0;
}

static void ucaller_dealloc(UCallerObject *c) {
    PyObject_GC_UnTrack(c);
    ucaller_clear(c);
    Py_TYPE(c)->tp_free((PyObject *)c);
}

/* __name__, __qualname__, __doc__, __module__: the wrapped function's. */
static PyObject *ucaller_wrapped_attr(UCallerObject *c, void *name) {
    return PyObject_GetAttrString(c->wrapped, (const char *)name);
}

static PyGetSetDef ucaller_getset[] = {
    {"__name__", (getter)ucaller_wrapped_attr, NULL, NULL, "__name__"},
    {"__qualname__", (getter)ucaller_wrapped_attr, NULL, NULL, "__qualname__"},
    {"__doc__", (getter)ucaller_wrapped_attr, NULL, NULL, "__doc__"},
    {"__module__", (getter)ucaller_wrapped_attr, NULL, NULL, "__module__"},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef ucaller_members[] = {
    {"__wrapped__", T_OBJECT, offsetof(UCallerObject, wrapped), READONLY, NULL},
    {"cls", T_OBJECT, offsetof(UCallerObject, cls), READONLY, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject UCallerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "grpc._hot.AioUnaryCaller",
    .tp_basicsize = sizeof(UCallerObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_METHOD_DESCRIPTOR |
                Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_vectorcall_offset = offsetof(UCallerObject, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_new = ucaller_new,
    .tp_dealloc = (destructor)ucaller_dealloc,
    .tp_traverse = (traverseproc)ucaller_traverse,
    .tp_clear = (inquiry)ucaller_clear,
    .tp_descr_get = ucaller_descr_get,
    .tp_getset = ucaller_getset,
    .tp_members = ucaller_members,
};

/* aio_unary_setup(config): the Python objects the C path needs, from
 * grpc/aio/_call.py (once; later calls replace them). */
static PyObject *m_aio_unary_setup(PyObject *self, PyObject *config) {
    if (!PyDict_Check(config)) {
        PyErr_SetString(PyExc_TypeError, "aio_unary_setup takes a dict");
        return NULL;
    }
    struct { const char *key; PyObject **slot; } keys[] = {
        {"status", &au_status_cls}, {"ok", &au_ok}, {"internal", &au_internal}, {"codes", &au_codes},
        {"deserialize_failed", &au_deserialize_failed}, {"log_deserialize", &au_log_deserialize},
        {"serialize", &au_serialize}, {"credentials_arg", &au_creds_arg},
        {"timeout_arg", &au_timeout_arg}, {"wait_for_ready_arg", &au_wfr_arg},
        {"compression_arg", &au_compression_arg}, {"usage_error", &au_usage_error},
        {"closed_message", &au_closed_msg}, {"cancelled_error", &au_cancelled_error},
        {"invalid_state", &au_invalid_state}, {"get_running_loop", &au_get_running_loop},
        {"monotonic", &au_monotonic},
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        PyObject *v = PyDict_GetItemString(config, keys[i].key);
        if (v == NULL) {
            PyErr_Format(PyExc_KeyError, "aio_unary_setup: %s missing", keys[i].key);
            return NULL;
        }
    }
    if (!PyType_Check(PyDict_GetItemString(config, "status")) ||
        !PyType_IsSubtype((PyTypeObject *)PyDict_GetItemString(config, "status"), &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "aio_unary_setup: status must be a tuple subclass");
        return NULL;
    }
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        PyObject *v = PyDict_GetItemString(config, keys[i].key);
        Py_INCREF(v);
        Py_XSETREF(*keys[i].slot, v);
    }
    au_ready = 1;
    Py_RETURN_NONE;
}

/* Adds the types to the module (from PyInit__hot). */
static int aio_unary_add_types(PyObject *m) {
    struct { const char *s; PyObject **slot; } names[] = {
        {"_closing", &s_closing}, {"_hot", &s_hot}, {"_last_queue", &s_last_queue}, {"_queue", &s_queue},
        {"_calls", &s_calls}, {"_forget_call", &s_forget_call}, {"_handle", &s_handle},
        {"tokens", &s_tokens}, {"waiting", &s_waiting}, {"cq", &s_cq}, {"call_soon", &s_call_soon},
        {"call_exception_handler", &s_call_exception_handler}, {"_end", &s_end},
        {"_serialize_failed", &s_serialize_failed}, {"cancel", &s_cancel}, {"_error", &s_error},
        {"done", &s_done}, {"set_result", &s_set_result}, {"message", &s_message},
        {"exception", &s_exception}, {"future", &s_future},
        {"_interceptors", &s_interceptors}, {"_intercepted", &s_intercepted}, {"_channel", &s_channel_f},
        {"_method", &s_method_f}, {"_serializer", &s_serializer_f}, {"_deserializer", &s_deserializer_f},
        {"InterceptedUnaryUnaryCall", &s_intercepted_name}, {"request", &s_call_kw[0]},
        {"timeout", &s_call_kw[1]}, {"metadata", &s_call_kw[2]}, {"credentials", &s_call_kw[3]},
        {"wait_for_ready", &s_call_kw[4]}, {"compression", &s_call_kw[5]},
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (*names[i].slot != NULL) continue;
        *names[i].slot = PyUnicode_InternFromString(names[i].s);
        if (*names[i].slot == NULL) return -1;
    }
    if (au_empty_str == NULL) {
        au_empty_str = PyUnicode_FromStringAndSize("", 0);
        if (au_empty_str == NULL) return -1;
    }
    if (au_kw_context == NULL) {
        au_kw_context = Py_BuildValue("(s)", "context");
        if (au_kw_context == NULL) return -1;
    }
    PyTypeObject *types[] = {&WaitType, &WaitIterType, &UCallType, &UAwaitType, &UCallerType};
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (PyType_Ready(types[i]) < 0) return -1;
    Py_INCREF(&WaitType);
    if (PyModule_AddObject(m, "Wait", (PyObject *)&WaitType) < 0) {
        Py_DECREF(&WaitType);
        return -1;
    }
    Py_INCREF(&UCallType);
    if (PyModule_AddObject(m, "AioUnaryCall", (PyObject *)&UCallType) < 0) {
        Py_DECREF(&UCallType);
        return -1;
    }
    Py_INCREF(&UCallerType);
    if (PyModule_AddObject(m, "AioUnaryCaller", (PyObject *)&UCallerType) < 0) {
        Py_DECREF(&UCallerType);
        return -1;
    }
    return 0;
}

#endif
