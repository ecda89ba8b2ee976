/*
 * imsconf.media._fastpath: the mixer's per-packet path in C, so one core serves well past 1-2 k legs.
 *
 * No state of its own. Every piece of state lives in tables owned by the Python side
 * (imsconf.media.fastpath.SlotTable), one row per leg ("slot"), so Python stays the only place that
 * decides anything: keys, SSRCs, directions, who is fast. This module moves bytes and keeps the
 * per-packet books:
 *
 *   drain(epfd, fd2slot, tables..., unprotect_addr, now, capacity, delay)
 *       One epoll_wait(0) round over the media sockets. For each ready socket that fd2slot maps to a
 *       slot: recv one datagram, srtp_unprotect it with the slot's receive context, check the RTP
 *       header against what the slot expects, update the RFC 3550 reception statistics and put the
 *       payload in the slot's jitter buffer. Anything unusual is returned to Python untouched (raw) or
 *       decrypted (plain) for the full path. Ready sockets that are not mapped are returned as fds.
 *
 *   pop_all(slots, tables..., now, out, gains, index)
 *       Play out one frame per mixed slot for the tick, straight into the mixer's input matrix.
 *
 *   send_rtp(slots, payloads, ts_now, table, protect_addr)
 *       For each slot: build the RTP header from the slot's row (SSRC, sequence, timestamp base,
 *       payload type, marker), copy the payload, srtp_protect it with the slot's transmit context and
 *       send() it on the slot's connected socket. Updates sequence, marker and packet count in place.
 *
 * libsrtp is not linked here: the caller passes the addresses of srtp_protect/srtp_unprotect from
 * pylibsrtp's own binding and the srtp_t of each context (the Python side keeps the owning Session
 * objects alive for as long as the table names them). Nothing here touches key material.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/types.h>

/* Columns of the slot table; keep in step with fastpath.py. */
enum {
    COL_FD = 0,     /* connected RTP socket used for sending, -1: none */
    COL_TXH,        /* srtp_t for protect, 0: plain RTP */
    COL_SSRC,
    COL_SEQ,
    COL_TS0,
    COL_PT,
    COL_MARKER,
    COL_SENT,       /* packets protected for sending under the current transmit key */
    COL_RXH,        /* srtp_t for unprotect, 0: plain RTP */
    COL_RXPT,       /* the payload type the fast path accepts */
    COL_RXSSRC,     /* the remote SSRC the fast path accepts, -1: none yet */
    COL_RXFAST,     /* 1: the fast receive path may take this slot's packets */
    COL_MIXES,      /* 1: received audio goes into the jitter buffer (the leg is mixed) */
    COL_SILENCE,    /* the codec's silence byte: pads a short payload */
    COL_RECEIVED,   /* RTP packets taken by the fast receive path */
    /* jitter buffer (the same algorithm as jitter.py, which is its reference) */
    J_HASNEXT, J_NEXT, J_HIGHEST, J_HASSTART, J_HASLAST, J_MISSES, J_COUNT,
    J_PUSHED, J_PLAYED, J_LATE, J_DUP, J_OVERFLOW, J_CONCEALED, J_UNDERRUNS, J_RESYNC,
    /* RFC 3550 reception statistics (rtp.ReceptionStats is the reference) */
    R_HASBASE, R_BASE, R_MAX, R_RECEIVED, R_EXPPRIOR, R_RECVPRIOR, R_HASTRANSIT, R_TRANSIT,
    J_KEYS,         /* RING columns: the extended sequence number held in each ring entry */
    NCOLS = J_KEYS + 32
};
#define RING 32
#define EMPTY INT64_MIN
/* float64 table: */
enum { F_START = 0, F_RJITTER, NFCOLS };
/* uint8 table: RING payload entries then the last played payload, FRAME bytes each */
#define LAST RING
static const double FADE[] = {1.0, 0.8, 0.6, 0.4, 0.2};
#define NFADE 5

#define BUF_SIZE 2048
#define MAX_SRTP_IN 1500 /* longest datagram the Python path unprotects; the same limit here */
#define FRAME 160
#define API 2 /* the functions fastpath.py calls: 2 adds send_frames */
#define MAX_EVENTS 1024

typedef int (*srtp_fn)(void *ctx, void *hdr, int *len);

/* Fetch a C-contiguous buffer of 8-byte items (numpy int64). */
static int
get_i64(PyObject *obj, Py_buffer *view, int writable, const char *what)
{
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, view, flags) < 0)
        return -1;
    if (view->itemsize != 8 || view->format == NULL || (strcmp(view->format, "q") != 0 &&
        strcmp(view->format, "l") != 0 && strcmp(view->format, "<q") != 0 && strcmp(view->format, "<l") != 0)) {
        PyErr_Format(PyExc_TypeError, "%s must be a contiguous int64 array", what);
        PyBuffer_Release(view);
        return -1;
    }
    return 0;
}

static int
append_new(PyObject *list, PyObject *item)
{
    if (item == NULL)
        return -1;
    int rc = PyList_Append(list, item);
    Py_DECREF(item);
    return rc;
}

/* ------------------------------------------------------------------------------------ the tables */

typedef struct {
    Py_buffer tab, ftab, pay;
    int64_t *t;      /* [nslots][NCOLS] */
    double *f;       /* [nslots][NFCOLS] */
    unsigned char *p; /* [nslots][RING + 1][FRAME] */
    Py_ssize_t nslots;
    int held;
} Tables;

static void
tables_release(Tables *tb)
{
    if (tb->held >= 1)
        PyBuffer_Release(&tb->tab);
    if (tb->held >= 2)
        PyBuffer_Release(&tb->ftab);
    if (tb->held >= 3)
        PyBuffer_Release(&tb->pay);
    tb->held = 0;
}

/* tab (int64, writable), ftab (float64, writable), pay (uint8, writable), consistent in size. */
static int
tables_get(PyObject *tab, PyObject *ftab, PyObject *pay, Tables *tb)
{
    tb->held = 0;
    if (get_i64(tab, &tb->tab, 1, "table") < 0)
        return -1;
    tb->held = 1;
    if (PyObject_GetBuffer(ftab, &tb->ftab, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        goto fail;
    tb->held = 2;
    if (PyObject_GetBuffer(pay, &tb->pay, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        goto fail;
    tb->held = 3;
    tb->nslots = tb->tab.len / (8 * NCOLS);
    if (tb->tab.len % (8 * NCOLS) != 0 || tb->ftab.itemsize != 8 || tb->ftab.format == NULL ||
        strchr(tb->ftab.format, 'd') == NULL || tb->ftab.len != tb->nslots * NFCOLS * 8 ||
        tb->pay.len != tb->nslots * (RING + 1) * FRAME) {
        PyErr_SetString(PyExc_ValueError, "inconsistent slot tables");
        goto fail;
    }
    tb->t = (int64_t *)tb->tab.buf;
    tb->f = (double *)tb->ftab.buf;
    tb->p = (unsigned char *)tb->pay.buf;
    return 0;
fail:
    tables_release(tb);
    return -1;
}

/* --------------------------------------------------------------------------- jitter buffer (C) */
/*
 * The algorithm of jitter.JitterBuffer (the reference, and the Python path), on a ring of RING entries
 * keyed by extended sequence number. Every held frame lies in [next, next + capacity) (an overfull push
 * trims before it stores; a late packet during prefill is taken only while the span stays within the
 * capacity), so with capacity <= RING / 2 frames two held frames never share an entry.
 */

static void
jb_reset(int64_t *r)
{
    r[J_HASNEXT] = 0;
    r[J_HASSTART] = 0;
    r[J_HASLAST] = 0;
    r[J_MISSES] = 0;
    r[J_COUNT] = 0;
    for (int i = 0; i < RING; i++)
        r[J_KEYS + i] = EMPTY;
}

static void
jb_store(int64_t *r, unsigned char *pay, int64_t ext, const unsigned char *data, Py_ssize_t len)
{
    int idx = (int)(ext & (RING - 1));
    if (r[J_KEYS + idx] == EMPTY)
        r[J_COUNT] += 1;
    r[J_KEYS + idx] = ext;
    unsigned char *dst = pay + (size_t)idx * FRAME;
    Py_ssize_t n = len < FRAME ? len : FRAME;
    memcpy(dst, data, (size_t)n);
    if (n < FRAME)
        memset(dst + n, (int)(r[COL_SILENCE] & 0xFF), (size_t)(FRAME - n));
}

/* Returns 1 when the frame was buffered, 0 when it was dropped (late or duplicate). */
static int
jb_push(int64_t *r, double *f, unsigned char *pay, int64_t seq, const unsigned char *data, Py_ssize_t len,
        double now, int64_t cap, double delay)
{
    for (;;) {
        if (!r[J_HASNEXT]) { /* first packet of a talkspurt */
            r[J_HASNEXT] = 1;
            r[J_NEXT] = seq;
            r[J_HIGHEST] = seq;
            r[J_HASSTART] = 1;
            f[F_START] = now + delay;
            jb_store(r, pay, seq, data, len);
            r[J_PUSHED] += 1;
            return 1;
        }
        int64_t nxt = r[J_NEXT];
        int64_t ahead = ((seq - nxt + 0x8000) & 0xFFFF) - 0x8000;
        int64_t ext = nxt + ahead;
        if (ahead < 0) {
            if (ahead < -4 * cap) { /* the sender jumped backwards: start over */
                r[J_RESYNC] += 1;
                jb_reset(r);
                continue;
            }
            if (r[J_HASSTART] && r[J_HIGHEST] - ext < cap) { /* still prefilling: an earlier packet */
                r[J_NEXT] = ext;
                jb_store(r, pay, ext, data, len);
                r[J_PUSHED] += 1;
                return 1;
            }
            r[J_LATE] += 1;
            return 0;
        }
        if (ahead > 4 * cap) { /* a jump far ahead: start over */
            r[J_RESYNC] += 1;
            jb_reset(r);
            continue;
        }
        if (r[J_KEYS + (ext & (RING - 1))] == ext) {
            r[J_DUP] += 1;
            return 0;
        }
        if (ext > r[J_HIGHEST]) {
            r[J_HIGHEST] = ext;
            if (ext - nxt >= cap) { /* overfull: keep `capacity` frames up to the newest */
                /* Trim before storing: the new frame may fall on the ring entry of one trimmed here. */
                int64_t keep_from = ext - cap + 1;
                for (int i = 0; i < RING; i++) {
                    int64_t k = r[J_KEYS + i];
                    if (k != EMPTY && k < keep_from) {
                        r[J_KEYS + i] = EMPTY;
                        r[J_COUNT] -= 1;
                        r[J_OVERFLOW] += 1;
                    }
                }
                r[J_NEXT] = keep_from;
            }
        }
        jb_store(r, pay, ext, data, len);
        r[J_PUSHED] += 1;
        return 1;
    }
}

/* The frame to play now into out (FRAME bytes). Returns 0: nothing; 1: a real frame; 2: concealment,
 * with *gain set. */
static int
jb_pop(int64_t *r, double *f, unsigned char *pay, double now, unsigned char *out, double *gain)
{
    for (;;) {
        if (!r[J_HASNEXT])
            return 0;
        if (r[J_HASSTART]) {
            if (now < f[F_START])
                return 0;
            r[J_HASSTART] = 0;
        }
        int64_t nxt = r[J_NEXT];
        int idx = (int)(nxt & (RING - 1));
        r[J_NEXT] = nxt + 1;
        unsigned char *last = pay + (size_t)LAST * FRAME;
        if (r[J_KEYS + idx] == nxt) {
            unsigned char *src = pay + (size_t)idx * FRAME;
            memcpy(last, src, FRAME);
            r[J_KEYS + idx] = EMPTY;
            r[J_COUNT] -= 1;
            r[J_HASLAST] = 1;
            r[J_MISSES] = 0;
            r[J_PLAYED] += 1;
            memcpy(out, last, FRAME);
            *gain = 1.0;
            return 1;
        }
        int64_t misses = r[J_MISSES];
        if (r[J_HASLAST] && misses < NFADE) {
            r[J_MISSES] = misses + 1;
            r[J_CONCEALED] += 1;
            *gain = FADE[misses];
            memcpy(out, last, FRAME);
            return 2;
        }
        if (r[J_COUNT] > 0) { /* a gap longer than concealment, more audio buffered: skip ahead */
            int64_t lowest = INT64_MAX;
            for (int i = 0; i < RING; i++) {
                int64_t k = r[J_KEYS + i];
                if (k != EMPTY && k < lowest)
                    lowest = k;
            }
            r[J_NEXT] = lowest;
            r[J_MISSES] = 0;
            continue;
        }
        r[J_UNDERRUNS] += 1; /* the talker stopped: the next packet starts a new talkspurt */
        jb_reset(r);
        return 0;
    }
}

/* RFC 3550 A.1/A.8, as rtp.ReceptionStats.update. */
static void
rs_update(int64_t *r, double *f, int64_t seq, int64_t ts, int64_t arrival)
{
    if (!r[R_HASBASE]) {
        r[R_HASBASE] = 1;
        r[R_BASE] = r[R_MAX] = seq;
    } else {
        int64_t d = ((seq - r[R_MAX] + 0x8000) & 0xFFFF) - 0x8000;
        if (d > 0)
            r[R_MAX] += d;
    }
    r[R_RECEIVED] += 1;
    int64_t transit = arrival - ts;
    if (r[R_HASTRANSIT]) {
        int64_t d = ((transit - r[R_TRANSIT] + 0x80000000LL) & 0xFFFFFFFFLL) - 0x80000000LL;
        f[F_RJITTER] += ((double)(d >= 0 ? d : -d) - f[F_RJITTER]) * 0.0625;
    }
    r[R_TRANSIT] = transit;
    r[R_HASTRANSIT] = 1;
}

#define ROW(tb, s) ((tb).t + (s) * NCOLS)
#define FROW(tb, s) ((tb).f + (s) * NFCOLS)
#define PROW(tb, s) ((tb).p + (size_t)(s) * (RING + 1) * FRAME)

PyDoc_STRVAR(drain_doc,
"drain(epfd, fd2slot, tab, ftab, pay, unprotect_addr, now, capacity, delay) -> (fast, other, fds)\n\n"
"One epoll round. fast: the number of packets that took the fast path (counted, reception\n"
"statistics updated, buffered when the slot is mixed); other: [(kind, slot, value, data)] with\n"
"kind 1 = decrypted RTP for the full path (data = plain packet), 2 = datagram for the full path as\n"
"received (not unprotected), 3 = libsrtp refused it (value = status), 4 = recv failed (value =\n"
"errno); fds: ready sockets not mapped to a slot.");

static PyObject *
fp_drain(PyObject *self, PyObject *args)
{
    int epfd;
    PyObject *fd2slot_obj, *tab_obj, *ftab_obj, *pay_obj;
    unsigned long long unprotect_addr;
    double now, delay;
    long long cap;
    if (!PyArg_ParseTuple(args, "iOOOOKdLd", &epfd, &fd2slot_obj, &tab_obj, &ftab_obj, &pay_obj,
                          &unprotect_addr, &now, &cap, &delay))
        return NULL;
    Py_buffer fmap;
    Tables tb;
    if (get_i64(fd2slot_obj, &fmap, 0, "fd2slot") < 0)
        return NULL;
    if (tables_get(tab_obj, ftab_obj, pay_obj, &tb) < 0) {
        PyBuffer_Release(&fmap);
        return NULL;
    }
    PyObject *other = NULL, *fds = NULL, *result = NULL;
    const int64_t *f2s = (const int64_t *)fmap.buf;
    Py_ssize_t nfd = fmap.len / 8;
    srtp_fn unprotect = (srtp_fn)(uintptr_t)unprotect_addr;
    struct epoll_event evs[MAX_EVENTS];
    unsigned char buf[BUF_SIZE];
    long fast = 0;
    int64_t arrival = (int64_t)(now * 8000.0);
    int n;

    if (unprotect_addr == 0 || cap < 1 || 2 * cap > RING) {
        PyErr_SetString(PyExc_ValueError, "bad unprotect address or jitter capacity");
        goto done;
    }
    n = epoll_wait(epfd, evs, MAX_EVENTS, 0); /* never blocks: no need to release the GIL */
    if (n < 0) {
        if (errno != EINTR) {
            PyErr_SetFromErrno(PyExc_OSError);
            goto done;
        }
        n = 0;
    }
    other = PyList_New(0);
    fds = PyList_New(0);
    if (other == NULL || fds == NULL)
        goto done;
    for (int i = 0; i < n; i++) {
        int fd = evs[i].data.fd;
        int64_t slot = (fd >= 0 && fd < nfd) ? f2s[fd] : -1;
        if (slot < 0 || slot >= tb.nslots) {
            if (append_new(fds, PyLong_FromLong(fd)) < 0)
                goto done;
            continue;
        }
        int64_t *row = ROW(tb, slot);
        ssize_t got = recv(fd, buf, BUF_SIZE, MSG_DONTWAIT);
        if (got < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            if (append_new(other, Py_BuildValue("(iLiO)", 4, (long long)slot, errno, Py_None)) < 0)
                goto done;
            continue;
        }
        int len = (int)got;
        if (!row[COL_RXFAST] || len < 12 || len > MAX_SRTP_IN || (buf[1] >= 192 && buf[1] <= 223)) {
            /* Not ours to decide: RTCP (rtcp-mux), odd sizes, a slot on the full path. */
            if (append_new(other, Py_BuildValue("(iLiy#)", 2, (long long)slot, 0, (const char *)buf,
                                                (Py_ssize_t)len)) < 0)
                goto done;
            continue;
        }
        if (row[COL_RXH] != 0) {
            int rc = unprotect((void *)(uintptr_t)row[COL_RXH], buf, &len);
            if (rc != 0) {
                if (append_new(other, Py_BuildValue("(iLiO)", 3, (long long)slot, rc, Py_None)) < 0)
                    goto done;
                continue;
            }
        }
        uint32_t ssrc = ((uint32_t)buf[8] << 24) | ((uint32_t)buf[9] << 16) | ((uint32_t)buf[10] << 8) | buf[11];
        if (len < 12 || buf[0] != 0x80 || (buf[1] & 0x7F) != row[COL_RXPT] || (int64_t)ssrc != row[COL_RXSSRC]) {
            /* Decrypted, but not the plain case (CSRCs, extensions, DTMF, a new SSRC, ...). */
            if (append_new(other, Py_BuildValue("(iLiy#)", 1, (long long)slot, 0, (const char *)buf,
                                                (Py_ssize_t)len)) < 0)
                goto done;
            continue;
        }
        int64_t seq = ((int64_t)buf[2] << 8) | buf[3];
        int64_t ts = ((int64_t)buf[4] << 24) | ((int64_t)buf[5] << 16) | ((int64_t)buf[6] << 8) | buf[7];
        row[COL_RECEIVED] += 1;
        rs_update(row, FROW(tb, slot), seq, ts, arrival);
        if (row[COL_MIXES])
            jb_push(row, FROW(tb, slot), PROW(tb, slot), seq, buf + 12, len - 12, now, cap, delay);
        fast++;
    }
    result = Py_BuildValue("(lOO)", fast, other, fds);
done:
    Py_XDECREF(other);
    Py_XDECREF(fds);
    PyBuffer_Release(&fmap);
    tables_release(&tb);
    return result;
}

PyDoc_STRVAR(pop_all_doc,
"pop_all(slots, tab, ftab, pay, now, out, gains, index) -> m\n\n"
"Play out one frame for each slot (int64 array): the m slots that have one get their frame in\n"
"out[:m] (uint8, 160 bytes per row), its gain in gains[:m] (float64: 1.0, or the concealment fade)\n"
"and their position in slots in index[:m] (int64).");

static PyObject *
fp_pop_all(PyObject *self, PyObject *args)
{
    PyObject *slots_obj, *tab_obj, *ftab_obj, *pay_obj, *out_obj, *gains_obj, *index_obj;
    double now;
    if (!PyArg_ParseTuple(args, "OOOOdOOO", &slots_obj, &tab_obj, &ftab_obj, &pay_obj, &now, &out_obj,
                          &gains_obj, &index_obj))
        return NULL;
    Py_buffer sv, out, gains, index;
    Tables tb;
    int held = 0;
    PyObject *result = NULL;
    if (get_i64(slots_obj, &sv, 0, "slots") < 0)
        return NULL;
    held = 1;
    if (tables_get(tab_obj, ftab_obj, pay_obj, &tb) < 0)
        goto done;
    held = 2;
    if (PyObject_GetBuffer(out_obj, &out, PyBUF_C_CONTIGUOUS | PyBUF_WRITABLE) < 0)
        goto done;
    held = 3;
    if (PyObject_GetBuffer(gains_obj, &gains, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE) < 0)
        goto done;
    held = 4;
    if (get_i64(index_obj, &index, 1, "index") < 0)
        goto done;
    held = 5;
    Py_ssize_t m = sv.len / 8;
    const int64_t *slots = (const int64_t *)sv.buf;
    if (out.len < m * FRAME || gains.itemsize != 8 || gains.format == NULL || strchr(gains.format, 'd') == NULL ||
        gains.len < m * 8 || index.len < m * 8) {
        PyErr_SetString(PyExc_ValueError, "output buffers too small");
        goto done;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        if (slots[i] < 0 || slots[i] >= tb.nslots) {
            PyErr_SetString(PyExc_IndexError, "slot out of range");
            goto done;
        }
    }
    unsigned char *o = (unsigned char *)out.buf;
    double *g = (double *)gains.buf;
    int64_t *ix = (int64_t *)index.buf;
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < m; i++) {
        int64_t s = slots[i];
        double gain;
        if (jb_pop(ROW(tb, s), FROW(tb, s), PROW(tb, s), now, o + k * FRAME, &gain)) {
            g[k] = gain;
            ix[k] = i;
            k++;
        }
    }
    result = PyLong_FromSsize_t(k);
done:
    if (held >= 5)
        PyBuffer_Release(&index);
    if (held >= 4)
        PyBuffer_Release(&gains);
    if (held >= 3)
        PyBuffer_Release(&out);
    if (held >= 2)
        tables_release(&tb);
    PyBuffer_Release(&sv);
    return result;
}

/* Single operations for the Python side (the full path, resets, tests). */
static int
one_slot(PyObject *tab_obj, PyObject *ftab_obj, PyObject *pay_obj, long long slot, Tables *tb)
{
    if (tables_get(tab_obj, ftab_obj, pay_obj, tb) < 0)
        return -1;
    if (slot < 0 || slot >= tb->nslots) {
        tables_release(tb);
        PyErr_SetString(PyExc_IndexError, "slot out of range");
        return -1;
    }
    return 0;
}

static PyObject *
fp_jb_push(PyObject *self, PyObject *args)
{
    PyObject *tab_obj, *ftab_obj, *pay_obj;
    long long slot, seq, cap;
    Py_buffer data;
    double now, delay;
    if (!PyArg_ParseTuple(args, "OOOLLy*dLd", &tab_obj, &ftab_obj, &pay_obj, &slot, &seq, &data, &now, &cap,
                          &delay))
        return NULL;
    Tables tb;
    if (cap < 1 || 2 * cap > RING || seq < 0 || seq > 0xFFFF) {
        PyBuffer_Release(&data);
        PyErr_SetString(PyExc_ValueError, "bad sequence number or jitter capacity");
        return NULL;
    }
    if (one_slot(tab_obj, ftab_obj, pay_obj, slot, &tb) < 0) {
        PyBuffer_Release(&data);
        return NULL;
    }
    int ok = jb_push(ROW(tb, slot), FROW(tb, slot), PROW(tb, slot), seq, (const unsigned char *)data.buf,
                     data.len, now, cap, delay);
    tables_release(&tb);
    PyBuffer_Release(&data);
    return PyBool_FromLong(ok);
}

static PyObject *
fp_jb_pop(PyObject *self, PyObject *args)
{
    PyObject *tab_obj, *ftab_obj, *pay_obj;
    long long slot;
    double now, gain = 1.0;
    if (!PyArg_ParseTuple(args, "OOOLd", &tab_obj, &ftab_obj, &pay_obj, &slot, &now))
        return NULL;
    Tables tb;
    if (one_slot(tab_obj, ftab_obj, pay_obj, slot, &tb) < 0)
        return NULL;
    unsigned char out[FRAME];
    int rc = jb_pop(ROW(tb, slot), FROW(tb, slot), PROW(tb, slot), now, out, &gain);
    tables_release(&tb);
    if (rc == 0)
        Py_RETURN_NONE;
    if (rc == 1)
        return Py_BuildValue("(y#O)", (const char *)out, (Py_ssize_t)FRAME, Py_None);
    return Py_BuildValue("(y#d)", (const char *)out, (Py_ssize_t)FRAME, gain);
}

static PyObject *
fp_jb_reset(PyObject *self, PyObject *args)
{
    PyObject *tab_obj;
    long long slot;
    if (!PyArg_ParseTuple(args, "OL", &tab_obj, &slot))
        return NULL;
    Py_buffer tab;
    if (get_i64(tab_obj, &tab, 1, "table") < 0)
        return NULL;
    if (tab.len % (8 * NCOLS) != 0 || slot < 0 || slot >= tab.len / (8 * NCOLS)) {
        PyBuffer_Release(&tab);
        PyErr_SetString(PyExc_IndexError, "slot out of range");
        return NULL;
    }
    jb_reset((int64_t *)tab.buf + slot * NCOLS);
    PyBuffer_Release(&tab);
    Py_RETURN_NONE;
}

static PyObject *
fp_rs_update(PyObject *self, PyObject *args)
{
    PyObject *tab_obj, *ftab_obj, *pay_obj;
    long long slot, seq, ts, arrival;
    if (!PyArg_ParseTuple(args, "OOOLLLL", &tab_obj, &ftab_obj, &pay_obj, &slot, &seq, &ts, &arrival))
        return NULL;
    Tables tb;
    if (one_slot(tab_obj, ftab_obj, pay_obj, slot, &tb) < 0)
        return NULL;
    rs_update(ROW(tb, slot), FROW(tb, slot), seq, ts, arrival);
    tables_release(&tb);
    Py_RETURN_NONE;
}

PyDoc_STRVAR(send_doc,
"send_rtp(slots, payloads, ts_now, table, protect_addr) -> (dropped, errors, protect_failed, protects)\n\n"
"slots: int64 array of slot numbers; payloads: list of the same length of 160-byte bytes objects.\n"
"A full socket buffer drops the packet (dropped); other send errors count as errors.");

/* What a send loop counts: datagrams the socket had no room for, send errors (no socket included),
 * packets SRTP could not protect, and packets protected. */
typedef struct {
    long dropped, errors, failed, protects;
} send_counts;

/* One RTP packet of a slot: the header from its row (the sequence advanced, the marker cleared), the
 * payload (plen <= BUF_SIZE - 28), SRTP when the row has a sender, sent on the row's connected socket. */
static void
send_one(int64_t *row, uint32_t ts, const char *payload, Py_ssize_t plen, srtp_fn protect, unsigned char *buf,
         send_counts *c)
{
    unsigned int seq = (unsigned int)row[COL_SEQ] & 0xFFFF;
    uint32_t ssrc = (uint32_t)row[COL_SSRC];
    buf[0] = 0x80;
    buf[1] = (unsigned char)((row[COL_PT] & 0x7F) | (row[COL_MARKER] ? 0x80 : 0));
    buf[2] = (unsigned char)(seq >> 8);
    buf[3] = (unsigned char)seq;
    buf[4] = (unsigned char)(ts >> 24);
    buf[5] = (unsigned char)(ts >> 16);
    buf[6] = (unsigned char)(ts >> 8);
    buf[7] = (unsigned char)ts;
    buf[8] = (unsigned char)(ssrc >> 24);
    buf[9] = (unsigned char)(ssrc >> 16);
    buf[10] = (unsigned char)(ssrc >> 8);
    buf[11] = (unsigned char)ssrc;
    memcpy(buf + 12, payload, (size_t)plen);
    row[COL_MARKER] = 0;
    row[COL_SEQ] = (seq + 1) & 0xFFFF;
    int len = 12 + (int)plen;
    if (row[COL_TXH] != 0) {
        c->protects++;
        if (protect((void *)(uintptr_t)row[COL_TXH], buf, &len) != 0) {
            c->failed++;
            return;
        }
    }
    row[COL_SENT] += 1;
    if (row[COL_FD] < 0) {
        c->errors++;
        return;
    }
    if (send((int)row[COL_FD], buf, (size_t)len, MSG_DONTWAIT) < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            c->dropped++;
        else
            c->errors++;
    }
}

static PyObject *
fp_send_rtp(PyObject *self, PyObject *args)
{
    PyObject *slots_obj, *payloads, *table_obj;
    unsigned long long ts_now, protect_addr;
    if (!PyArg_ParseTuple(args, "OO!KOK", &slots_obj, &PyList_Type, &payloads, &ts_now, &table_obj,
                          &protect_addr))
        return NULL;
    Py_buffer sv, tab;
    if (get_i64(slots_obj, &sv, 0, "slots") < 0)
        return NULL;
    if (get_i64(table_obj, &tab, 1, "table") < 0) {
        PyBuffer_Release(&sv);
        return NULL;
    }
    PyObject *result = NULL;
    const int64_t *slots = (const int64_t *)sv.buf;
    Py_ssize_t m = sv.len / 8;
    int64_t *t = (int64_t *)tab.buf;
    Py_ssize_t nslots = tab.len / (8 * NCOLS);
    srtp_fn protect = (srtp_fn)(uintptr_t)protect_addr;
    unsigned char buf[BUF_SIZE];
    send_counts c = {0, 0, 0, 0};

    if (tab.len % (8 * NCOLS) != 0 || protect_addr == 0) {
        PyErr_SetString(PyExc_ValueError, "bad slot table or protect address");
        goto done;
    }
    if (PyList_GET_SIZE(payloads) != m) {
        PyErr_SetString(PyExc_ValueError, "one payload per slot");
        goto done;
    }
    /* Check everything before sending anything, so an error never leaves half a tick sent. */
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *p = PyList_GET_ITEM(payloads, i);
        if (slots[i] < 0 || slots[i] >= nslots) {
            PyErr_SetString(PyExc_IndexError, "slot out of range");
            goto done;
        }
        if (!PyBytes_Check(p) || PyBytes_GET_SIZE(p) != FRAME) {
            PyErr_SetString(PyExc_ValueError, "payloads must be 160-byte bytes objects");
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        int64_t *row = t + slots[i] * NCOLS;
        send_one(row, (uint32_t)((uint64_t)row[COL_TS0] + ts_now),
                 PyBytes_AS_STRING(PyList_GET_ITEM(payloads, i)), FRAME, protect, buf, &c);
    }
    result = Py_BuildValue("(llll)", c.dropped, c.errors, c.failed, c.protects);
done:
    PyBuffer_Release(&sv);
    PyBuffer_Release(&tab);
    return result;
}

PyDoc_STRVAR(send_frames_doc,
"send_frames(slots, payloads, ts, table, protect_addr) -> (dropped, errors, protect_failed, protects)\n\n"
"send_rtp for payloads of any length (a leg's own codec stream): slots and ts int64 arrays of the same\n"
"length (ts: each slot's timestamp offset from its TS0), payloads a list of bytes; an empty payload sends\n"
"nothing (discontinuous transmission), one too long for the buffer counts as protect_failed.");

static PyObject *
fp_send_frames(PyObject *self, PyObject *args)
{
    PyObject *slots_obj, *payloads, *ts_obj, *table_obj;
    unsigned long long protect_addr;
    if (!PyArg_ParseTuple(args, "OO!OOK", &slots_obj, &PyList_Type, &payloads, &ts_obj, &table_obj,
                          &protect_addr))
        return NULL;
    Py_buffer sv, tv, tab;
    if (get_i64(slots_obj, &sv, 0, "slots") < 0)
        return NULL;
    if (get_i64(ts_obj, &tv, 0, "ts") < 0) {
        PyBuffer_Release(&sv);
        return NULL;
    }
    if (get_i64(table_obj, &tab, 1, "table") < 0) {
        PyBuffer_Release(&sv);
        PyBuffer_Release(&tv);
        return NULL;
    }
    PyObject *result = NULL;
    const int64_t *slots = (const int64_t *)sv.buf;
    const int64_t *tss = (const int64_t *)tv.buf;
    Py_ssize_t m = sv.len / 8;
    int64_t *t = (int64_t *)tab.buf;
    Py_ssize_t nslots = tab.len / (8 * NCOLS);
    srtp_fn protect = (srtp_fn)(uintptr_t)protect_addr;
    unsigned char buf[BUF_SIZE];
    send_counts c = {0, 0, 0, 0};

    if (tab.len % (8 * NCOLS) != 0 || protect_addr == 0) {
        PyErr_SetString(PyExc_ValueError, "bad slot table or protect address");
        goto done;
    }
    if (PyList_GET_SIZE(payloads) != m || tv.len / 8 != m) {
        PyErr_SetString(PyExc_ValueError, "one payload and one timestamp per slot");
        goto done;
    }
    /* Check everything before sending anything, so an error never leaves half a tick sent. */
    for (Py_ssize_t i = 0; i < m; i++) {
        if (slots[i] < 0 || slots[i] >= nslots) {
            PyErr_SetString(PyExc_IndexError, "slot out of range");
            goto done;
        }
        if (!PyBytes_Check(PyList_GET_ITEM(payloads, i))) {
            PyErr_SetString(PyExc_TypeError, "payloads must be bytes objects");
            goto done;
        }
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        PyObject *p = PyList_GET_ITEM(payloads, i);
        Py_ssize_t plen = PyBytes_GET_SIZE(p);
        if (plen == 0)
            continue;
        if (12 + plen > BUF_SIZE - 16) { /* room for the SRTP authentication tag */
            c.failed++;
            continue;
        }
        int64_t *row = t + slots[i] * NCOLS;
        send_one(row, (uint32_t)((uint64_t)row[COL_TS0] + (uint64_t)tss[i]), PyBytes_AS_STRING(p), plen,
                 protect, buf, &c);
    }
    result = Py_BuildValue("(llll)", c.dropped, c.errors, c.failed, c.protects);
done:
    PyBuffer_Release(&sv);
    PyBuffer_Release(&tv);
    PyBuffer_Release(&tab);
    return result;
}

static PyMethodDef fp_methods[] = {
    {"drain", fp_drain, METH_VARARGS, drain_doc},
    {"pop_all", fp_pop_all, METH_VARARGS, pop_all_doc},
    {"send_rtp", fp_send_rtp, METH_VARARGS, send_doc},
    {"send_frames", fp_send_frames, METH_VARARGS, send_frames_doc},
    {"jb_push", fp_jb_push, METH_VARARGS, "jb_push(tab, ftab, pay, slot, seq, payload, now, capacity, delay) -> bool"},
    {"jb_pop", fp_jb_pop, METH_VARARGS, "jb_pop(tab, ftab, pay, slot, now) -> None | (payload, gain or None)"},
    {"jb_reset", fp_jb_reset, METH_VARARGS, "jb_reset(tab, slot)"},
    {"rs_update", fp_rs_update, METH_VARARGS, "rs_update(tab, ftab, pay, slot, seq, ts, arrival)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef fp_module = {
    PyModuleDef_HEAD_INIT, "_fastpath", "The mixer's per-packet path (see fastpath.py).", -1, fp_methods,
};

PyMODINIT_FUNC
PyInit__fastpath(void)
{
    PyObject *m = PyModule_Create(&fp_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "NCOLS", NCOLS) < 0 || PyModule_AddIntConstant(m, "FRAME", FRAME) < 0 ||
        PyModule_AddIntConstant(m, "RING", RING) < 0 || PyModule_AddIntConstant(m, "NFCOLS", NFCOLS) < 0 ||
        PyModule_AddIntConstant(m, "API", API) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
