/*
 * socketkit.runtime._mirror: the echo relay of one TCP connection, in C.
 *
 * Why native: on the transport mirror (runtime/mirror.py) each request still
 * costs a bytes object, a data_received frame and a transport.write call:
 * 1.13 us of user CPU per request at rr 64 B x16, where this relay spends
 * 0.45 and the C epoll server 0.15 (BENCHMARKS.md). Here the event loop calls this object itself when the
 * socket is readable (loop.add_reader(fd, mirror)): one recv into a shared
 * buffer, one send of the same bytes, no Python object per request.
 *
 * Mirror(fd, on_event, high, low, chunk)
 *   mirror()      read once (at most chunk bytes) and write it back; what
 *                 cannot be written now is kept, in order, and later reads are queued behind it.
 *   flush()       write what is kept (the loop calls it when writable).
 *   feed(data)    as if data had just been read (bytes read before the
 *                 connection was handed over: a PROXY header's reader).
 *   bytes_in, bytes_out, pending: counters for the idle watch and stats.
 *   error:        the errno that ended it (0 if none).
 *
 * Only the slow path reaches Python, through on_event(flags): WANT_WRITE
 * (output is kept: watch for writability), PAUSE (kept output is above
 * `high`: stop reading, so a client that never reads cannot grow our
 * memory), DRAINED (nothing kept), RESUME (kept output fell to `low`),
 * END_OF_INPUT (the client sent FIN) and FAILED. The socket is non-blocking and every call
 * returns at once, so the GIL is held; the loop is single-threaded, so one
 * read buffer serves every connection (bytes never stay in it).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first: its pyconfig.h defines _GNU_SOURCE */

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#define READ_SIZE (256 * 1024)

enum {
    WANT_WRITE = 1,
    PAUSE = 2,
    DRAINED = 4,
    RESUME = 8,
    END_OF_INPUT = 16,
    FAILED = 32,
};

static char shared[READ_SIZE];

typedef struct {
    PyObject_HEAD
    int fd;
    PyObject *on_event;
    Py_ssize_t high, low;
    size_t chunk;            /* bytes per recv: at most READ_SIZE */
    char *kept;              /* output not yet written: kept[start:end] */
    Py_ssize_t start, end, capacity;
    unsigned long long bytes_in, bytes_out;
    int error;
} Mirror;

static int
mirror_traverse(Mirror *self, visitproc visit, void *arg)
{
    Py_VISIT(self->on_event);
    return 0;
}

static int
mirror_clear(Mirror *self)
{
    Py_CLEAR(self->on_event);
    return 0;
}

static void
mirror_dealloc(Mirror *self)
{
    PyObject_GC_UnTrack(self);
    mirror_clear(self);
    PyMem_RawFree(self->kept);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
mirror_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    Mirror *self = (Mirror *)PyType_GenericNew(type, args, kwds);
    if (self != NULL) {
        self->fd = -1;
    }
    return (PyObject *)self;
}

/* 0 if ready; -1 with an exception for an object __init__ never set up. */
static int
ready(Mirror *self)
{
    if (self->fd < 0 || self->on_event == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this Mirror was not initialised");
        return -1;
    }
    return 0;
}

static int
mirror_init(Mirror *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "on_event", "high", "low", "chunk", NULL};
    int fd;
    PyObject *on_event;
    Py_ssize_t high = 256 * 1024, low = 64 * 1024, chunk = READ_SIZE;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "iO|nnn", kwlist, &fd, &on_event, &high,
                                     &low, &chunk)) {
        return -1;
    }
    if (!PyCallable_Check(on_event) || low < 0 || high < low || chunk < 1 ||
        chunk > READ_SIZE) {
        PyErr_Format(PyExc_ValueError,
                     "on_event must be callable, 0 <= low <= high and 1 <= chunk <= %d",
                     READ_SIZE);
        return -1;
    }
    self->chunk = (size_t)chunk;
    self->fd = fd;
    Py_XSETREF(self->on_event, Py_NewRef(on_event));
    self->high = high;
    self->low = low;
    return 0;
}

static Py_ssize_t
kept_size(Mirror *self)
{
    return self->end - self->start;
}

/* Call on_event(flags); NULL with the exception set if it raised. */
static PyObject *
emit(Mirror *self, int flags)
{
    if (!flags) {
        Py_RETURN_NONE;
    }
    PyObject *arg = PyLong_FromLong(flags);
    if (arg == NULL) {
        return NULL;
    }
    PyObject *result = PyObject_CallOneArg(self->on_event, arg);
    Py_DECREF(arg);
    return result;
}

static int
keep(Mirror *self, const char *data, Py_ssize_t n)
{
    if (self->start > 0 && self->end + n > self->capacity) {
        memmove(self->kept, self->kept + self->start, (size_t)kept_size(self));
        self->end -= self->start;
        self->start = 0;
    }
    if (self->end + n > self->capacity) {
        Py_ssize_t want = self->capacity ? self->capacity : 64 * 1024;
        while (want < self->end + n) {
            want *= 2;
        }
        char *grown = PyMem_RawRealloc(self->kept, (size_t)want);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->kept = grown;
        self->capacity = want;
    }
    memcpy(self->kept + self->end, data, (size_t)n);
    self->end += n;
    return 0;
}

/* Write n bytes back (behind what is kept); the flags the caller must emit. */
static int
write_back(Mirror *self, const char *data, Py_ssize_t n, int *flags)
{
    int had = kept_size(self) > 0;
    Py_ssize_t written = 0;
    if (!had) {
        for (;;) {
            ssize_t w = send(self->fd, data, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w >= 0) {
                written = w;
                break;
            }
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                self->error = errno;
                *flags |= FAILED;
                return 0;
            }
            break;
        }
        self->bytes_out += (unsigned long long)written;
    }
    if (written < n) {
        if (keep(self, data + written, n - written) < 0) {
            return -1;
        }
        if (!had) {
            *flags |= WANT_WRITE;
        }
        if (kept_size(self) > self->high) {
            *flags |= PAUSE;
        }
    }
    return 0;
}

static PyObject *
mirror_call(Mirror *self, PyObject *args, PyObject *kwds)
{
    if ((args && PyTuple_GET_SIZE(args)) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "a Mirror is called with no arguments");
        return NULL;
    }
    if (ready(self) < 0) {
        return NULL;
    }
    int flags = 0;
    ssize_t n;
    do {
        n = recv(self->fd, shared, self->chunk, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        self->bytes_in += (unsigned long long)n;
        if (write_back(self, shared, n, &flags) < 0) {
            return NULL;
        }
    } else if (n == 0) {
        flags |= END_OF_INPUT;
    } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
        self->error = errno;
        flags |= FAILED;
    }
    return emit(self, flags);
}

static PyObject *
mirror_feed(Mirror *self, PyObject *data)
{
    if (ready(self) < 0) {
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    int flags = 0;
    self->bytes_in += (unsigned long long)view.len;
    int rc = write_back(self, view.buf, view.len, &flags);
    PyBuffer_Release(&view);
    if (rc < 0) {
        return NULL;
    }
    return emit(self, flags);
}

static PyObject *
mirror_flush(Mirror *self, PyObject *Py_UNUSED(ignored))
{
    if (ready(self) < 0) {
        return NULL;
    }
    int flags = 0;
    Py_ssize_t before = kept_size(self);
    while (kept_size(self) > 0) {
        ssize_t w = send(self->fd, self->kept + self->start, (size_t)kept_size(self),
                         MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                self->error = errno;
                flags |= FAILED;
            }
            break;
        }
        self->start += w;
        self->bytes_out += (unsigned long long)w;
        if (w == 0) {
            break;
        }
    }
    if (kept_size(self) == 0) {
        /* Drained: give the memory back (a client that stalled once must not
           keep up to high + chunk bytes for the rest of its connection). */
        PyMem_RawFree(self->kept);
        self->kept = NULL;
        self->start = self->end = self->capacity = 0;
        flags |= DRAINED;
    } else if (before > self->low && kept_size(self) <= self->low) {
        flags |= RESUME;
    }
    return emit(self, flags);
}

static PyObject *
get_bytes_in(Mirror *self, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLongLong(self->bytes_in);
}

static PyObject *
get_bytes_out(Mirror *self, void *Py_UNUSED(c))
{
    return PyLong_FromUnsignedLongLong(self->bytes_out);
}

static PyObject *
get_pending(Mirror *self, void *Py_UNUSED(c))
{
    return PyLong_FromSsize_t(kept_size(self));
}

static PyObject *
get_error(Mirror *self, void *Py_UNUSED(c))
{
    return PyLong_FromLong(self->error);
}

static PyGetSetDef mirror_getset[] = {
    {"bytes_in", (getter)get_bytes_in, NULL, "Bytes read from the client.", NULL},
    {"bytes_out", (getter)get_bytes_out, NULL, "Bytes handed to the kernel.", NULL},
    {"pending", (getter)get_pending, NULL, "Bytes kept, not yet written.", NULL},
    {"error", (getter)get_error, NULL, "The errno that ended it (0: none).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef mirror_methods[] = {
    {"flush", (PyCFunction)mirror_flush, METH_NOARGS, "Write what is kept."},
    {"feed", (PyCFunction)mirror_feed, METH_O, "Echo bytes read elsewhere."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject MirrorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socketkit.runtime._mirror.Mirror",
    .tp_basicsize = sizeof(Mirror),
    .tp_dealloc = (destructor)mirror_dealloc,
    .tp_call = (ternaryfunc)mirror_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The echo relay of one non-blocking TCP socket: Mirror(fd, on_event, high, low, chunk).",
    .tp_traverse = (traverseproc)mirror_traverse,
    .tp_clear = (inquiry)mirror_clear,
    .tp_methods = mirror_methods,
    .tp_getset = mirror_getset,
    .tp_init = (initproc)mirror_init,
    .tp_new = mirror_new,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "socketkit.runtime._mirror",
    .m_doc = "The echo relay in C (runtime/native_mirror.py drives it).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__mirror(void)
{
    if (PyType_Ready(&MirrorType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Mirror", (PyObject *)&MirrorType) < 0 ||
        PyModule_AddIntConstant(m, "WANT_WRITE", WANT_WRITE) < 0 ||
        PyModule_AddIntConstant(m, "PAUSE", PAUSE) < 0 ||
        PyModule_AddIntConstant(m, "DRAINED", DRAINED) < 0 ||
        PyModule_AddIntConstant(m, "RESUME", RESUME) < 0 ||
        PyModule_AddIntConstant(m, "END_OF_INPUT", END_OF_INPUT) < 0 ||
        PyModule_AddIntConstant(m, "FAILED", FAILED) < 0 ||
        PyModule_AddIntConstant(m, "READ_SIZE", READ_SIZE) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
