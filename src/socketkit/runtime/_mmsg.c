/*
 * socketkit.runtime._mmsg: batched UDP receive and send (recvmmsg/sendmmsg).
 *
 * Why native: through ctypes, filling one mmsghdr and decoding one address
 * cost more Python per datagram than the system calls it saves (measured in
 * BENCHMARKS.md: slower than recvfrom_into/sendto at 16 in flight). Here the
 * only Python work per datagram is the bytes object and, for a source not
 * seen lately, its address tuple; the guards and the service stay in Python
 * (runtime/udp.py), so they apply per datagram as on the plain path; the
 * one exception is serve() below, which caches the guard's free pass.
 *
 * Batch(fd, family, slots=64, slot_size=65536)
 *   recv(limit=slots) -> list of (bytes, address): every datagram ready, up to limit, in
 *       one recvmmsg(MSG_DONTWAIT); [] when none is ready; OSError when the
 *       first read fails (e.g. an ICMP error queued by an earlier reply).
 *   send(replies) -> (sent, sent_bytes, failures): replies is a list of
 *       (bytes-like, address); sent with sendmmsg, as few calls as the kernel
 *       allows. A reply the kernel refuses is skipped (UDP promises nothing,
 *       and queueing would let a flood grow our memory) and reported in
 *       failures, a list of (index, errno), or None when all went.
 *
 * serve(on_batch, budget, guard=None): then the Batch itself is the loop's
 *       reader (a change of guard.generation unmarks every source); for a
 *       service whose reply is the datagram (echo), a batch whose sources
 *       the guard lets through freely (marked with mark_free(addr)) goes
 *       straight back from the kernel's buffers with no Python object at all,
 *       counted in C (take_counts()); any other batch is handed to
 *       on_batch(list of (bytes, address)). Up to budget datagrams per call.
 *       The cache keeps the last 64 sources (round robin): with more active
 *       sources, some go back through Python; slower, never wrong.
 *
 * Addresses are the tuples socket.recvfrom gives ((host, port) for IPv4,
 * (host, port, flowinfo, scope_id) for IPv6, host from inet_ntop as CPython's).
 * They are cached raw and decoded, so a busy port's few sources cost a
 * memcmp, and a reply sent to the very tuple recv() returned is addressed
 * without parsing it again. Every call uses MSG_DONTWAIT and returns at
 * once, so the GIL is held.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h> /* first: its pyconfig.h defines _GNU_SOURCE (recvmmsg) */

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#define CACHE 64

typedef struct {
    struct sockaddr_storage raw;
    socklen_t len;
    PyObject *tuple; /* owned; NULL when the entry is empty */
    int free;        /* the guard lets this source through freely (mark_free) */
} cached_addr;

typedef struct {
    PyObject_HEAD
    int fd;
    int family;
    unsigned int slots;
    size_t slot_size;
    char *buffers;               /* slots * slot_size, for recv */
    struct mmsghdr *headers;     /* slots */
    struct iovec *iovecs;        /* slots */
    struct sockaddr_storage *names; /* slots */
    Py_buffer *views;            /* slots, for send */
    Py_ssize_t *index;           /* slots: which reply each send header holds */
    cached_addr cache[CACHE];
    unsigned int next_victim;
    PyObject *on_batch;          /* serve(): a batch C cannot echo goes here */
    PyObject *guard;             /* serve(): its .generation changing unmarks everyone */
    long long generation;        /* the guard's generation the marks were made under */
    unsigned int budget;         /* serve(): datagrams per wake-up at most */
    unsigned long long counts[5]; /* echoed in C: received, bytes, sent, bytes, dropped */
} Batch;

static int
batch_traverse(Batch *self, visitproc visit, void *arg)
{
    Py_VISIT(self->on_batch);
    Py_VISIT(self->guard);
    for (int i = 0; i < CACHE; i++) {
        Py_VISIT(self->cache[i].tuple);
    }
    return 0;
}

static int
batch_clear(Batch *self)
{
    Py_CLEAR(self->on_batch);
    Py_CLEAR(self->guard);
    for (int i = 0; i < CACHE; i++) {
        Py_CLEAR(self->cache[i].tuple);
    }
    return 0;
}

static void
batch_dealloc(Batch *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->on_batch);
    Py_CLEAR(self->guard);
    for (int i = 0; i < CACHE; i++) {
        Py_CLEAR(self->cache[i].tuple);
    }
    PyMem_RawFree(self->buffers);
    PyMem_RawFree(self->headers);
    PyMem_RawFree(self->iovecs);
    PyMem_RawFree(self->names);
    PyMem_RawFree(self->views);
    PyMem_RawFree(self->index);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* 0 if ready; -1 with an exception for an object __init__ never set up. */
static int
ready(Batch *self)
{
    if (self->buffers == NULL || self->slots == 0) {
        PyErr_SetString(PyExc_RuntimeError, "this Batch was not initialised");
        return -1;
    }
    return 0;
}

static int
batch_init(Batch *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "family", "slots", "slot_size", NULL};
    int fd, family;
    unsigned int slots = 64;
    Py_ssize_t slot_size = 65536;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ii|In", kwlist, &fd, &family, &slots,
                                     &slot_size)) {
        return -1;
    }
    if (family != AF_INET && family != AF_INET6) {
        PyErr_SetString(PyExc_ValueError, "family must be AF_INET or AF_INET6");
        return -1;
    }
    if (slots < 1 || slots > 1024 || slot_size < 1 || slot_size > 65536) {
        PyErr_SetString(PyExc_ValueError, "slots must be 1-1024 and slot_size 1-65536");
        return -1;
    }
    if (self->buffers != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Batch is already initialised");
        return -1;
    }
    self->fd = fd;
    self->family = family;
    self->slots = slots;
    self->slot_size = (size_t)slot_size;
    /* Untouched pages of a large allocation are never committed: a quiet port
       costs address space, not memory. */
    self->buffers = PyMem_RawMalloc(slots * self->slot_size);
    self->headers = PyMem_RawCalloc(slots, sizeof(struct mmsghdr));
    self->iovecs = PyMem_RawCalloc(slots, sizeof(struct iovec));
    self->names = PyMem_RawCalloc(slots, sizeof(struct sockaddr_storage));
    self->views = PyMem_RawCalloc(slots, sizeof(Py_buffer));
    self->index = PyMem_RawCalloc(slots, sizeof(Py_ssize_t));
    if (!self->buffers || !self->headers || !self->iovecs || !self->names || !self->views ||
        !self->index) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The tuple socket.recvfrom would give for this sockaddr (new reference):
   inet_ntop, as CPython's makesockaddr (no "%scope" suffix on the host). */
static PyObject *
decode(const struct sockaddr *sa)
{
    char host[INET6_ADDRSTRLEN];
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("(si)", host, (int)ntohs(in->sin_port));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host)) == NULL) {
            return PyErr_SetFromErrno(PyExc_OSError);
        }
        return Py_BuildValue("(siII)", host, (int)ntohs(in6->sin6_port),
                             (unsigned int)ntohl(in6->sin6_flowinfo),
                             (unsigned int)in6->sin6_scope_id);
    }
    PyErr_Format(PyExc_OSError, "unexpected address family %d", sa->sa_family);
    return NULL;
}

/* The cached tuple for a raw source address (new reference), decoding a miss. */
static PyObject *
source(Batch *self, const struct sockaddr_storage *raw, socklen_t len)
{
    for (int i = 0; i < CACHE; i++) {
        cached_addr *c = &self->cache[i];
        if (c->tuple != NULL && c->len == len && memcmp(&c->raw, raw, len) == 0) {
            Py_INCREF(c->tuple);
            return c->tuple;
        }
    }
    PyObject *tuple = decode((const struct sockaddr *)raw);
    if (tuple == NULL) {
        return NULL;
    }
    cached_addr *victim = &self->cache[self->next_victim];
    self->next_victim = (self->next_victim + 1) % CACHE;
    Py_XSETREF(victim->tuple, Py_NewRef(tuple));
    memcpy(&victim->raw, raw, len);
    victim->len = len;
    victim->free = 0;
    return tuple;
}

/* Is this raw source cached and marked free? */
static int
is_free(Batch *self, const struct sockaddr_storage *raw, socklen_t len)
{
    for (int i = 0; i < CACHE; i++) {
        cached_addr *c = &self->cache[i];
        if (c->tuple != NULL && c->len == len && memcmp(&c->raw, raw, len) == 0) {
            return c->free;
        }
    }
    return 0;
}

/* One recvmmsg of at most `limit`: the count, 0 when nothing is ready, -1
   with an exception set. */
static int
receive(Batch *self, unsigned int limit)
{
    if (limit < 1 || limit > self->slots) {
        limit = self->slots;
    }
    for (unsigned int i = 0; i < limit; i++) {
        self->iovecs[i].iov_base = self->buffers + i * self->slot_size;
        self->iovecs[i].iov_len = self->slot_size;
        struct msghdr *m = &self->headers[i].msg_hdr;
        m->msg_name = &self->names[i];
        m->msg_namelen = sizeof(struct sockaddr_storage);
        m->msg_iov = &self->iovecs[i];
        m->msg_iovlen = 1;
        m->msg_control = NULL;
        m->msg_controllen = 0;
        m->msg_flags = 0;
    }
    int n;
    do {
        n = recvmmsg(self->fd, self->headers, limit, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            return 0;
        }
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return n;
}

/* The n datagrams just received, as a list of (bytes, address). */
static PyObject *
received(Batch *self, int n)
{
    PyObject *out = PyList_New(n);
    if (out == NULL) {
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        size_t size = self->headers[i].msg_len;
        if (size > self->slot_size) {
            size = self->slot_size; /* truncated, as recvfrom_into would */
        }
        PyObject *data = PyBytes_FromStringAndSize(self->buffers + i * self->slot_size,
                                                   (Py_ssize_t)size);
        PyObject *addr = data ? source(self, &self->names[i],
                                       self->headers[i].msg_hdr.msg_namelen)
                              : NULL;
        if (addr == NULL) {
            Py_XDECREF(data);
            Py_DECREF(out);
            return NULL;
        }
        PyObject *pair = PyTuple_Pack(2, data, addr);
        Py_DECREF(data);
        Py_DECREF(addr);
        if (pair == NULL) {
            Py_DECREF(out);
            return NULL;
        }
        PyList_SET_ITEM(out, i, pair);
    }
    return out;
}

static PyObject *
batch_recv(Batch *self, PyObject *args)
{
    unsigned int limit = self->slots;
    if (ready(self) < 0 || !PyArg_ParseTuple(args, "|I", &limit)) {
        return NULL;
    }
    int n = receive(self, limit);
    return n < 0 ? NULL : received(self, n);
}

/* Send headers[0:count] as they are; (sent, bytes sent, refused). */
static void
send_all(Batch *self, unsigned int count, Py_ssize_t *sent, Py_ssize_t *bytes,
         Py_ssize_t *refused)
{
    unsigned int done = 0;
    while (done < count) {
        int n = sendmmsg(self->fd, self->headers + done, count - done, MSG_DONTWAIT);
        if (n < 0) {
            if (errno != EINTR) {
                *refused += 1;
                done += 1;
            }
            continue;
        }
        for (int i = 0; i < n; i++) {
            *bytes += (Py_ssize_t)self->iovecs[done + i].iov_len;
        }
        *sent += n;
        done += (unsigned int)n;
    }
}

/* If every source of the n datagrams just received is marked free, send them
   back and add to counts (1); else 0 (nothing sent). */
static int
echo_received(Batch *self, int n, unsigned long long counts[5])
{
    Py_ssize_t size = 0;
    for (int i = 0; i < n; i++) {
        if (!is_free(self, &self->names[i], self->headers[i].msg_hdr.msg_namelen)) {
            return 0;
        }
        self->iovecs[i].iov_len = self->headers[i].msg_len;
        size += (Py_ssize_t)self->headers[i].msg_len;
    }
    Py_ssize_t sent = 0, sent_bytes = 0, refused = 0;
    send_all(self, (unsigned int)n, &sent, &sent_bytes, &refused);
    counts[0] += (unsigned long long)n;
    counts[1] += (unsigned long long)size;
    counts[2] += (unsigned long long)sent;
    counts[3] += (unsigned long long)sent_bytes;
    counts[4] += (unsigned long long)(n - sent);
    return 1;
}

/* The loop's reader callback (after serve()): a whole wake-up, in C while
   every source is marked free; any other batch goes to on_batch(list). */
static PyObject *
batch_call(Batch *self, PyObject *args, PyObject *kwds)
{
    if ((args && PyTuple_GET_SIZE(args)) || (kwds && PyDict_GET_SIZE(kwds))) {
        PyErr_SetString(PyExc_TypeError, "a Batch is called with no arguments");
        return NULL;
    }
    if (ready(self) < 0) {
        return NULL;
    }
    if (self->on_batch == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "call serve(on_batch, budget, guard=None) first");
        return NULL;
    }
    if (self->guard != NULL) {
        /* A verdict may have changed (protect_port, new limits): ask again. */
        PyObject *value = PyObject_GetAttrString(self->guard, "generation");
        if (value == NULL) {
            return NULL;
        }
        long long generation = PyLong_AsLongLong(value);
        Py_DECREF(value);
        if (generation == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (generation != self->generation) {
            for (int i = 0; i < CACHE; i++) {
                self->cache[i].free = 0;
            }
            self->generation = generation;
        }
    }
    unsigned int budget = self->budget;
    while (budget > 0) {
        int n = receive(self, budget < self->slots ? budget : self->slots);
        if (n < 0) {
            if (!PyErr_ExceptionMatches(PyExc_OSError)) {
                return NULL;
            }
            /* e.g. an ICMP error queued by an earlier reply: never stop serving */
            PyErr_Clear();
            budget -= 1;
            continue;
        }
        if (n == 0) {
            break;
        }
        budget -= (unsigned int)n < budget ? (unsigned int)n : budget;
        if (!echo_received(self, n, self->counts)) {
            PyObject *batch = received(self, n);
            if (batch == NULL) {
                return NULL;
            }
            PyObject *callback = Py_NewRef(self->on_batch); /* it may call serve() */
            PyObject *result = PyObject_CallOneArg(callback, batch);
            Py_DECREF(callback);
            Py_DECREF(batch);
            if (result == NULL) {
                return NULL;
            }
            Py_DECREF(result);
        }
        if (n == 1) {
            break; /* a quiet port: no extra empty read */
        }
        if (self->on_batch == NULL || self->buffers == NULL) {
            break; /* closed by on_batch */
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
batch_serve(Batch *self, PyObject *args)
{
    PyObject *on_batch, *guard = Py_None;
    unsigned int budget;
    if (ready(self) < 0 || !PyArg_ParseTuple(args, "OI|O", &on_batch, &budget, &guard)) {
        return NULL;
    }
    if (!PyCallable_Check(on_batch) || budget < 1) {
        PyErr_SetString(PyExc_ValueError, "serve(on_batch, budget, guard): a callable and budget >= 1");
        return NULL;
    }
    Py_XSETREF(self->on_batch, Py_NewRef(on_batch));
    Py_CLEAR(self->guard);
    if (guard != Py_None) {
        self->guard = Py_NewRef(guard);
        self->generation = -1; /* unknown: the first call unmarks everyone */
    }
    self->budget = budget;
    Py_RETURN_NONE;
}

static PyObject *
batch_close(Batch *self, PyObject *Py_UNUSED(ignored))
{
    batch_clear(self);
    PyMem_RawFree(self->buffers);
    self->buffers = NULL; /* ready() refuses from now on */
    self->fd = -1;
    Py_RETURN_NONE;
}

static PyObject *
batch_take_counts(Batch *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *out = Py_BuildValue("(KKKKK)", self->counts[0], self->counts[1], self->counts[2],
                                  self->counts[3], self->counts[4]);
    if (out != NULL) {
        memset(self->counts, 0, sizeof(self->counts));
    }
    return out;
}

static PyObject *
batch_mark_free(Batch *self, PyObject *addr)
{
    for (int i = 0; i < CACHE; i++) {
        if (self->cache[i].tuple == addr) {
            self->cache[i].free = 1;
            Py_RETURN_TRUE;
        }
    }
    Py_RETURN_FALSE;
}

static PyObject *
batch_forget(Batch *self, PyObject *Py_UNUSED(ignored))
{
    for (int i = 0; i < CACHE; i++) {
        self->cache[i].free = 0;
    }
    Py_RETURN_NONE;
}

/* Fill *raw with the sockaddr of a Python address; 0 on success, -1 with an
   exception set. A tuple recv() returned is found by identity in the cache. */
static int
encode(Batch *self, PyObject *addr, struct sockaddr_storage *raw, socklen_t *len)
{
    for (int i = 0; i < CACHE; i++) {
        if (self->cache[i].tuple == addr) {
            memcpy(raw, &self->cache[i].raw, self->cache[i].len);
            *len = self->cache[i].len;
            return 0;
        }
    }
    const char *host;
    int port;
    unsigned int flowinfo = 0, scope_id = 0;
    if (!PyTuple_Check(addr) ||
        !PyArg_ParseTuple(addr, "si|II", &host, &port, &flowinfo, &scope_id)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_TypeError, "an address is a (host, port, ...) tuple");
        }
        return -1;
    }
    if (port < 0 || port > 65535 || flowinfo > 0xfffff) {
        PyErr_SetString(PyExc_OverflowError, "port must be 0-65535 and flowinfo 0-1048575");
        return -1;
    }
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = self->family;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST;
    int rc = getaddrinfo(host, NULL, &hints, &found);
    if (rc != 0 || found == NULL) {
        PyErr_Format(PyExc_OSError, "not a numeric %s address: %s",
                     self->family == AF_INET ? "IPv4" : "IPv6", host);
        return -1;
    }
    memcpy(raw, found->ai_addr, found->ai_addrlen);
    *len = found->ai_addrlen;
    freeaddrinfo(found);
    if (self->family == AF_INET) {
        ((struct sockaddr_in *)raw)->sin_port = htons((uint16_t)port);
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)raw;
        in6->sin6_port = htons((uint16_t)port);
        in6->sin6_flowinfo = htonl(flowinfo);
        if (scope_id) {
            in6->sin6_scope_id = scope_id;
        }
    }
    return 0;
}

static int
note_failure(PyObject **failures, Py_ssize_t index, int err)
{
    if (*failures == NULL && (*failures = PyList_New(0)) == NULL) {
        return -1;
    }
    PyObject *item = Py_BuildValue("(ni)", index, err);
    if (item == NULL) {
        return -1;
    }
    int rc = PyList_Append(*failures, item);
    Py_DECREF(item);
    return rc;
}

static void
release(Batch *self, unsigned int count)
{
    for (unsigned int i = 0; i < count; i++) {
        PyBuffer_Release(&self->views[i]);
    }
}

static PyObject *
batch_send(Batch *self, PyObject *replies)
{
    if (ready(self) < 0) {
        return NULL;
    }
    if (!PyList_Check(replies)) {
        PyErr_SetString(PyExc_TypeError, "replies must be a list of (data, address)");
        return NULL;
    }
    /* A snapshot: a reply's buffer export may run Python code that changes
       the list while we hold its items. */
    PyObject *items = PyList_AsTuple(replies);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t total = PyTuple_GET_SIZE(items);
    Py_ssize_t sent = 0, sent_bytes = 0, next = 0;
    PyObject *failures = NULL;
    while (next < total) {
        /* Fill up to `slots` headers from replies[next:]; an item that is not
           (bytes-like, numeric address) fails alone, as sendto would. */
        unsigned int count = 0;
        for (; count < self->slots && next < total; next++) {
            PyObject *item = PyTuple_GET_ITEM(items, next);
            socklen_t len;
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
                encode(self, PyTuple_GET_ITEM(item, 1), &self->names[count], &len) < 0 ||
                PyObject_GetBuffer(PyTuple_GET_ITEM(item, 0), &self->views[count],
                                   PyBUF_SIMPLE) < 0) {
                /* A reply that is not (bytes-like, numeric address) fails
                   alone, as sendto would; anything else (MemoryError...) is
                   raised. */
                if (!PyErr_ExceptionMatches(PyExc_TypeError) &&
                    !PyErr_ExceptionMatches(PyExc_ValueError) &&
                    !PyErr_ExceptionMatches(PyExc_OSError) &&
                    !PyErr_ExceptionMatches(PyExc_BufferError)) {
                    release(self, count);
                    goto error;
                }
                PyErr_Clear();
                if (note_failure(&failures, next, EINVAL) < 0) {
                    release(self, count);
                    goto error;
                }
                continue;
            }
            self->index[count] = next;
            self->iovecs[count].iov_base = self->views[count].buf;
            self->iovecs[count].iov_len = (size_t)self->views[count].len;
            struct msghdr *m = &self->headers[count].msg_hdr;
            m->msg_name = &self->names[count];
            m->msg_namelen = len;
            m->msg_iov = &self->iovecs[count];
            m->msg_iovlen = 1;
            m->msg_control = NULL;
            m->msg_controllen = 0;
            m->msg_flags = 0;
            count++;
        }
        /* Send what was filled; a message the kernel refuses is skipped. */
        unsigned int done = 0;
        int ok = 1;
        while (done < count) {
            int n = sendmmsg(self->fd, self->headers + done, count - done, MSG_DONTWAIT);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                if (note_failure(&failures, self->index[done], errno) < 0) {
                    ok = 0;
                    break;
                }
                done += 1;
                continue;
            }
            for (int i = 0; i < n; i++) {
                sent_bytes += (Py_ssize_t)self->iovecs[done + i].iov_len;
            }
            sent += n;
            done += (unsigned int)n;
        }
        release(self, count);
        if (!ok) {
            goto error;
        }
    }
    Py_DECREF(items);
    if (failures == NULL) {
        return Py_BuildValue("(nnO)", sent, sent_bytes, Py_None);
    }
    return Py_BuildValue("(nnN)", sent, sent_bytes, failures);
error:
    Py_DECREF(items);
    Py_XDECREF(failures);
    return NULL;
}

static PyMethodDef batch_methods[] = {
    {"serve", (PyCFunction)batch_serve, METH_VARARGS,
     "serve(on_batch, budget, guard=None): be the loop's reader; batches C cannot echo go "
     "to on_batch; a change of guard.generation unmarks every source."},
    {"close", (PyCFunction)batch_close, METH_NOARGS,
     "Let go of the buffers, the callback and the descriptor (counts stay readable)."},
    {"take_counts", (PyCFunction)batch_take_counts, METH_NOARGS,
     "(received, bytes, sent, bytes sent, dropped) echoed in C since the last call."},
    {"mark_free", (PyCFunction)batch_mark_free, METH_O,
     "Let the reader echo datagrams from this address (a tuple recv gave out) in C."},
    {"forget", (PyCFunction)batch_forget, METH_NOARGS, "Unmark every address."},
    {"recv", (PyCFunction)batch_recv, METH_VARARGS,
     "recv(limit=slots): every datagram ready, at most limit, as a list of (bytes, address)."},
    {"send", (PyCFunction)batch_send, METH_O,
     "Send a list of (data, address); returns (sent, sent_bytes, failures or None)."},
    {NULL, NULL, 0, NULL},
};

static PyObject *
batch_get_slots(Batch *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLong(self->slots);
}

static PyGetSetDef batch_getset[] = {
    {"slots", (getter)batch_get_slots, NULL, "Datagrams per system call.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject BatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "socketkit.runtime._mmsg.Batch",
    .tp_basicsize = sizeof(Batch),
    .tp_dealloc = (destructor)batch_dealloc,
    .tp_call = (ternaryfunc)batch_call,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)batch_traverse,
    .tp_clear = (inquiry)batch_clear,
    .tp_doc = "Batched receive and send on one non-blocking UDP socket (fd, family).",
    .tp_methods = batch_methods,
    .tp_getset = batch_getset,
    .tp_init = (initproc)batch_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "socketkit.runtime._mmsg",
    .m_doc = "recvmmsg/sendmmsg for the UDP adapter (Linux).",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__mmsg(void)
{
    if (PyType_Ready(&BatchType) < 0) {
        return NULL;
    }
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(m, "Batch", (PyObject *)&BatchType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
