/* imsconf.media._codecs: thin, stateful encoder and decoder objects over Debian's codec libraries.
 *
 * AMR-WB: opencore-amrwb (decoder) + vo-amrwbenc (encoder); AMR-NB: opencore-amrnb; G.722: spandsp
 * (64 kbit/s, with spandsp's packet loss concealment); Opus: libopus (mono).  No codec is written here:
 * every object owns one library state and converts between Python bytes and the library's buffers.
 *
 * AMR frames cross this boundary in the RFC 4867 section 5 storage format (one ToC-like header byte
 * `0 FT(4) Q 0 0`, then the speech bits, octet-padded), which is what the libraries read and write; the
 * RTP payload formats are built in Python (imsconf/media/codecs/amr.py).
 *
 * Decoders never fail on their input: a lost, truncated, oversized or undecodable frame gives a concealed
 * frame from the library's own concealment and the flag True.  Codec calls run without the GIL; an
 * object used from two threads at once raises RuntimeError instead of corrupting its state.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>
#include <stdint.h>

#include <opencore-amrwb/dec_if.h>
#include <opencore-amrnb/interf_dec.h>
#include <opencore-amrnb/interf_enc.h>
#include <vo-amrwbenc/enc_if.h>
#include <opus/opus.h>
#include <spandsp/telephony.h>
#include <spandsp/g722.h>
#include <spandsp/plc.h>

/* Speech bytes (without the header byte) per frame type; -1: not a frame we decode. */
static const int AMRWB_BYTES[16] = {17, 23, 32, 36, 40, 46, 50, 58, 60, 5, -1, -1, -1, -1, 0, 0};
static const int AMRNB_BYTES[16] = {12, 13, 15, 17, 19, 20, 26, 31, 5, -1, -1, -1, -1, -1, -1, 0};
#define AMR_BAD_FRAME 1 /* the libraries' bfi value for a bad frame */

static int claim(int *busy, const void *st) {
    if (st == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "codec object not initialised");
        return -1;
    }
    if (*busy) {
        PyErr_SetString(PyExc_RuntimeError, "codec object used from two threads at once");
        return -1;
    }
    *busy = 1;
    return 0;
}

static int pcm_arg(Py_buffer *view, Py_ssize_t samples) {
    if (view->len != samples * 2) {
        PyErr_Format(PyExc_ValueError, "expected %zd int16 samples, got %zd bytes", samples, view->len);
        return -1;
    }
    return 0;
}

static PyObject *frame_result(PyObject *pcm, int concealed) {
    if (pcm == NULL) return NULL;
    PyObject *r = Py_BuildValue("(OO)", pcm, concealed ? Py_True : Py_False);
    Py_DECREF(pcm);
    return r;
}

/* ------------------------------------------------------------------------------------------ AMR */

typedef struct {
    PyObject_HEAD
    void *st;
    int wide;      /* 1: AMR-WB (320 samples), 0: AMR-NB (160 samples) */
    int busy;
    int last_ft;   /* last good speech frame type, for the header of a concealed frame */
} AmrDecoder;

static int amrdec_init(AmrDecoder *self, PyObject *args, PyObject *kw, int wide) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, ":AmrDecoder", kwlist)) return -1;
    self->wide = wide;
    self->last_ft = wide ? 2 : 7;
    if (self->st != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "codec object already initialised");
        return -1;
    }
    self->st = wide ? D_IF_init() : Decoder_Interface_init();
    if (self->st == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}
static int amrwbdec_init(AmrDecoder *self, PyObject *a, PyObject *k) { return amrdec_init(self, a, k, 1); }
static int amrnbdec_init(AmrDecoder *self, PyObject *a, PyObject *k) { return amrdec_init(self, a, k, 0); }

static void amrdec_dealloc(AmrDecoder *self) {
    if (self->st != NULL) {
        if (self->wide) D_IF_exit(self->st); else Decoder_Interface_exit(self->st);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* decode(frame: bytes | None) -> (pcm: bytes, concealed: bool) */
static PyObject *amrdec_decode(AmrDecoder *self, PyObject *arg) {
    unsigned char buf[64];
    short out[320];
    int n = self->wide ? 320 : 160;
    const int *sizes = self->wide ? AMRWB_BYTES : AMRNB_BYTES;
    int bfi = 0, concealed = 0;
    memset(buf, 0, sizeof buf);
    if (arg == Py_None) {
        concealed = 1;
    } else {
        Py_buffer v;
        if (PyObject_GetBuffer(arg, &v, PyBUF_SIMPLE) < 0) return NULL;
        const unsigned char *p = v.buf;
        int ft = v.len > 0 ? (p[0] >> 3) & 0x0F : -1;
        int q = v.len > 0 ? (p[0] >> 2) & 1 : 0;
        int need = ft >= 0 ? sizes[ft] : -1;
        if (need < 0 || v.len != need + 1 || (p[0] & 0x83) != 0) {
            concealed = 1;
        } else if (need == 0) {
            /* NO_DATA (and AMR-WB SPEECH_LOST): the decoder continues comfort noise or conceals */
            buf[0] = p[0];
            concealed = ft == 14;
        } else {
            memcpy(buf, p, (size_t)v.len);
            if (!q) {
                bfi = AMR_BAD_FRAME;
                concealed = 1;
            } else if (ft < (self->wide ? 9 : 8)) {
                self->last_ft = ft;
            }
        }
        PyBuffer_Release(&v);
    }
    if (concealed && bfi == 0 && (buf[0] >> 3) != 14) {
        /* a bad frame of the last speech mode, zero bits: the library's concealment runs */
        memset(buf, 0, sizeof buf);
        buf[0] = (unsigned char)(self->last_ft << 3);
        bfi = AMR_BAD_FRAME;
    }
    if (claim(&self->busy, self->st) < 0) return NULL;
    Py_BEGIN_ALLOW_THREADS
    if (self->wide) D_IF_decode(self->st, buf, out, bfi);
    else Decoder_Interface_Decode(self->st, buf, out, bfi);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    return frame_result(PyBytes_FromStringAndSize((const char *)out, n * 2), concealed);
}

typedef struct {
    PyObject_HEAD
    void *st;
    int wide;
    int dtx;
    int busy;
} AmrEncoder;

static int amrenc_init(AmrEncoder *self, PyObject *args, PyObject *kw, int wide) {
    static char *kwlist[] = {"dtx", NULL};
    int dtx = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|p:AmrEncoder", kwlist, &dtx)) return -1;
    self->wide = wide;
    self->dtx = dtx;
    if (self->st != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "codec object already initialised");
        return -1;
    }
    self->st = wide ? E_IF_init() : Encoder_Interface_init(dtx);
    if (self->st == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}
static int amrwbenc_init(AmrEncoder *self, PyObject *a, PyObject *k) { return amrenc_init(self, a, k, 1); }
static int amrnbenc_init(AmrEncoder *self, PyObject *a, PyObject *k) { return amrenc_init(self, a, k, 0); }

static void amrenc_dealloc(AmrEncoder *self) {
    if (self->st != NULL) {
        if (self->wide) E_IF_exit(self->st); else Encoder_Interface_exit(self->st);
    }
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* encode(pcm: bytes-like of 320 (WB) / 160 (NB) int16, mode: int) -> storage-format frame */
static PyObject *amrenc_encode(AmrEncoder *self, PyObject *args) {
    Py_buffer v;
    int mode;
    unsigned char out[64];
    int n = self->wide ? 320 : 160;
    short pcm[320];
    if (!PyArg_ParseTuple(args, "y*i:encode", &v, &mode)) return NULL;
    if (pcm_arg(&v, n) < 0 || mode < 0 || mode > (self->wide ? 8 : 7)) {
        if (!PyErr_Occurred()) PyErr_Format(PyExc_ValueError, "mode %d out of range", mode);
        PyBuffer_Release(&v);
        return NULL;
    }
    memcpy(pcm, v.buf, (size_t)n * 2);
    PyBuffer_Release(&v);
    if (claim(&self->busy, self->st) < 0) return NULL;
    int len;
    Py_BEGIN_ALLOW_THREADS
    if (self->wide) len = E_IF_encode(self->st, mode, pcm, out, self->dtx);
    else len = Encoder_Interface_Encode(self->st, (enum Mode)mode, pcm, out, 0);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (len <= 0 || len > (int)sizeof out) {
        PyErr_Format(PyExc_RuntimeError, "AMR encoder returned %d", len);
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)out, len);
}

/* ---------------------------------------------------------------------------------------- G.722 */

typedef struct {
    PyObject_HEAD
    g722_encode_state_t *st;
    int busy;
} G722Encoder;

static int g722enc_init(G722Encoder *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kw, ":G722Encoder", kwlist)) return -1;
    if (self->st != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "codec object already initialised");
        return -1;
    }
    self->st = g722_encode_init(NULL, 64000, 0);
    if (self->st == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void g722enc_dealloc(G722Encoder *self) {
    if (self->st != NULL) g722_encode_free(self->st);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* encode(pcm: bytes-like of any even number of 16 kHz int16 samples) -> one byte per two samples */
static PyObject *g722enc_encode(G722Encoder *self, PyObject *arg) {
    Py_buffer v;
    if (PyObject_GetBuffer(arg, &v, PyBUF_SIMPLE) < 0) return NULL;
    Py_ssize_t samples = v.len / 2;
    if (v.len % 4 != 0 || samples > 16000) {
        PyErr_SetString(PyExc_ValueError, "G.722 encodes an even number of int16 samples, at most 1 s");
        PyBuffer_Release(&v);
        return NULL;
    }
    PyObject *res = PyBytes_FromStringAndSize(NULL, samples / 2);
    if (res == NULL || claim(&self->busy, self->st) < 0) {
        Py_XDECREF(res);
        PyBuffer_Release(&v);
        return NULL;
    }
    uint8_t *dst = (uint8_t *)PyBytes_AS_STRING(res);
    int len;
    Py_BEGIN_ALLOW_THREADS
    len = g722_encode(self->st, dst, (const int16_t *)v.buf, (int)samples);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&v);
    if (len != samples / 2) {
        Py_DECREF(res);
        PyErr_Format(PyExc_RuntimeError, "g722_encode returned %d", len);
        return NULL;
    }
    return res;
}

typedef struct {
    PyObject_HEAD
    g722_decode_state_t *st;
    plc_state_t *plc;
    int frame_bytes;
    int busy;
} G722Decoder;

static int g722dec_init(G722Decoder *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"frame_bytes", NULL};
    int fb = 160;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|i:G722Decoder", kwlist, &fb)) return -1;
    if (fb <= 0 || fb > 8000) {
        PyErr_SetString(PyExc_ValueError, "frame_bytes out of range");
        return -1;
    }
    self->frame_bytes = fb;
    if (self->st != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "codec object already initialised");
        return -1;
    }
    self->st = g722_decode_init(NULL, 64000, 0);
    self->plc = plc_init(NULL);
    if (self->st == NULL || self->plc == NULL) {
        if (self->st != NULL) g722_decode_free(self->st);
        if (self->plc != NULL) plc_free(self->plc);
        self->st = NULL;
        self->plc = NULL;
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void g722dec_dealloc(G722Decoder *self) {
    if (self->st != NULL) g722_decode_free(self->st);
    if (self->plc != NULL) plc_free(self->plc);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* decode(payload: bytes | None) -> (pcm of 2*frame_bytes samples, concealed).  Every octet string is a
 * valid G.722 stream, so only a missing payload or one of the wrong length is concealed (spandsp PLC). */
static PyObject *g722dec_decode(G722Decoder *self, PyObject *arg) {
    int n = self->frame_bytes * 2;
    PyObject *res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n * 2);
    if (res == NULL) return NULL;
    int16_t *out = (int16_t *)PyBytes_AS_STRING(res);
    Py_buffer v;
    int have = 0;
    if (arg != Py_None) {
        if (PyObject_GetBuffer(arg, &v, PyBUF_SIMPLE) < 0) {
            Py_DECREF(res);
            return NULL;
        }
        have = v.len == self->frame_bytes;
        if (!have) PyBuffer_Release(&v);
    }
    if (claim(&self->busy, self->st) < 0) {
        if (have) PyBuffer_Release(&v);
        Py_DECREF(res);
        return NULL;
    }
    Py_BEGIN_ALLOW_THREADS
    if (have) {
        g722_decode(self->st, out, (const uint8_t *)v.buf, self->frame_bytes);
        plc_rx(self->plc, out, n);
    } else {
        plc_fillin(self->plc, out, n);
    }
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (have) PyBuffer_Release(&v);
    return frame_result(res, !have);
}

/* ----------------------------------------------------------------------------------------- Opus */

typedef struct {
    PyObject_HEAD
    OpusEncoder *st;
    int rate;
    int busy;
} OpusEnc;

static int bandwidth_of(int hz) {
    if (hz <= 8000) return OPUS_BANDWIDTH_NARROWBAND;
    if (hz <= 12000) return OPUS_BANDWIDTH_MEDIUMBAND;
    if (hz <= 16000) return OPUS_BANDWIDTH_WIDEBAND;
    if (hz <= 24000) return OPUS_BANDWIDTH_SUPERWIDEBAND;
    return OPUS_BANDWIDTH_FULLBAND;
}

static int opusenc_init(OpusEnc *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"sample_rate", "bitrate", "fec", "dtx", "max_playback_rate", "loss_percent",
                             "complexity", NULL};
    int rate = 16000, bitrate = 24000, fec = 1, dtx = 0, maxrate = 16000, loss = 10, complexity = 5, err = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|iippiii:OpusEncoder", kwlist, &rate, &bitrate, &fec, &dtx,
                                     &maxrate, &loss, &complexity))
        return -1;
    if (complexity < 0 || complexity > 10) {
        PyErr_SetString(PyExc_ValueError, "Opus complexity must be 0..10");
        return -1;
    }
    if (self->st != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "codec object already initialised");
        return -1;
    }
    self->st = opus_encoder_create(rate, 1, OPUS_APPLICATION_VOIP, &err);
    if (err != OPUS_OK || self->st == NULL) {
        self->st = NULL;
        PyErr_Format(PyExc_ValueError, "opus_encoder_create: %s", opus_strerror(err));
        return -1;
    }
    self->rate = rate;
    if (opus_encoder_ctl(self->st, OPUS_SET_BITRATE(bitrate)) != OPUS_OK ||
        opus_encoder_ctl(self->st, OPUS_SET_INBAND_FEC(fec)) != OPUS_OK ||
        opus_encoder_ctl(self->st, OPUS_SET_DTX(dtx)) != OPUS_OK ||
        opus_encoder_ctl(self->st, OPUS_SET_PACKET_LOSS_PERC(loss)) != OPUS_OK ||
        opus_encoder_ctl(self->st, OPUS_SET_COMPLEXITY(complexity)) != OPUS_OK ||
        opus_encoder_ctl(self->st, OPUS_SET_MAX_BANDWIDTH(bandwidth_of(maxrate))) != OPUS_OK ||
        opus_encoder_ctl(self->st, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE)) != OPUS_OK) {
        PyErr_SetString(PyExc_ValueError, "opus_encoder_ctl rejected a setting");
        return -1;
    }
    return 0;
}

static void opusenc_dealloc(OpusEnc *self) {
    if (self->st != NULL) opus_encoder_destroy(self->st);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* encode(pcm: bytes-like of int16 at sample_rate, 2.5 to 60 ms) -> one Opus packet (RFC 6716) */
static PyObject *opusenc_encode(OpusEnc *self, PyObject *arg) {
    Py_buffer v;
    unsigned char out[1500];
    if (PyObject_GetBuffer(arg, &v, PyBUF_SIMPLE) < 0) return NULL;
    if (v.len % 2 != 0) {
        PyBuffer_Release(&v);
        PyErr_SetString(PyExc_ValueError, "odd number of PCM bytes");
        return NULL;
    }
    if (claim(&self->busy, self->st) < 0) {
        PyBuffer_Release(&v);
        return NULL;
    }
    opus_int32 len;
    Py_BEGIN_ALLOW_THREADS
    len = opus_encode(self->st, (const opus_int16 *)v.buf, (int)(v.len / 2), out, (opus_int32)sizeof out);
    Py_END_ALLOW_THREADS
    self->busy = 0;
    PyBuffer_Release(&v);
    if (len < 0) {
        PyErr_Format(PyExc_ValueError, "opus_encode: %s", opus_strerror(len));
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)out, len);
}

typedef struct {
    PyObject_HEAD
    OpusDecoder *st;
    int rate;
    int busy;
} OpusDec;

static int opusdec_init(OpusDec *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"sample_rate", NULL};
    int rate = 16000, err = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "|i:OpusDecoder", kwlist, &rate)) return -1;
    if (self->st != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "codec object already initialised");
        return -1;
    }
    self->st = opus_decoder_create(rate, 1, &err);
    if (err != OPUS_OK || self->st == NULL) {
        self->st = NULL;
        PyErr_Format(PyExc_ValueError, "opus_decoder_create: %s", opus_strerror(err));
        return -1;
    }
    self->rate = rate;
    return 0;
}

static void opusdec_dealloc(OpusDec *self) {
    if (self->st != NULL) opus_decoder_destroy(self->st);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* decode(payload: bytes | None, frame_samples: int, fec: bool = False) -> (pcm, concealed).
 * None: the library's PLC for frame_samples.  fec=True: payload is the packet *after* a lost one and the
 * lost frame is rebuilt from its in-band FEC (or by PLC when it carries none).  An undecodable payload is
 * concealed by PLC.  The result always has exactly frame_samples samples. */
static PyObject *opusdec_decode(OpusDec *self, PyObject *args, PyObject *kw) {
    static char *kwlist[] = {"payload", "frame_samples", "fec", NULL};
    PyObject *payload;
    int n, fec = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kw, "Oi|p:decode", kwlist, &payload, &n, &fec)) return NULL;
    if (self->st == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "codec object not initialised");
        return NULL;
    }
    if (n <= 0 || n > self->rate * 120 / 1000 || n % (self->rate / 400) != 0) {
        PyErr_SetString(PyExc_ValueError, "frame_samples must be a multiple of 2.5 ms, at most 120 ms");
        return NULL;
    }
    PyObject *res = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n * 2);
    if (res == NULL) return NULL;
    opus_int16 *out = (opus_int16 *)PyBytes_AS_STRING(res);
    Py_buffer v;
    int have = 0;
    if (payload != Py_None) {
        if (PyObject_GetBuffer(payload, &v, PyBUF_SIMPLE) < 0) {
            Py_DECREF(res);
            return NULL;
        }
        have = 1;
    }
    if (claim(&self->busy, self->st) < 0) {
        if (have) PyBuffer_Release(&v);
        Py_DECREF(res);
        return NULL;
    }
    int got = -1, concealed = 0;
    Py_BEGIN_ALLOW_THREADS
    if (have && v.len > 0 && v.len <= 1500) {
        /* a packet longer than the frame we were asked for is undecodable here: PLC instead */
        int frames = opus_packet_get_nb_samples((const unsigned char *)v.buf, (opus_int32)v.len, self->rate);
        if (fec || frames == n)
            got = opus_decode(self->st, (const unsigned char *)v.buf, (opus_int32)v.len, out, n, fec);
        if (fec && got != n) got = -1;
    }
    if (got != n) {
        concealed = 1;
        got = opus_decode(self->st, NULL, 0, out, n, 0);
    } else if (fec) {
        concealed = 1; /* rebuilt from the next packet's redundancy: not the frame that was sent */
    }
    Py_END_ALLOW_THREADS
    self->busy = 0;
    if (have) PyBuffer_Release(&v);
    if (got != n) memset(out, 0, (size_t)n * 2);
    return frame_result(res, concealed);
}

/* ------------------------------------------------------------------------------------- types */

#define TYPE(cname, pyname, ctype, init, dealloc, methods, docstr)                                      \
    static PyTypeObject cname = {                                                                    \
        PyVarObject_HEAD_INIT(NULL, 0).tp_name = "imsconf.media._codecs." pyname,                    \
        .tp_basicsize = sizeof(ctype),                                                               \
        .tp_flags = Py_TPFLAGS_DEFAULT,                                                              \
        .tp_doc = docstr,                                                                            \
        .tp_new = PyType_GenericNew,                                                                 \
        .tp_init = (initproc)init,                                                                   \
        .tp_dealloc = (destructor)dealloc,                                                           \
        .tp_methods = methods,                                                                       \
    };

static PyMethodDef amrdec_methods[] = {
    {"decode", (PyCFunction)amrdec_decode, METH_O, "decode(frame | None) -> (pcm, concealed)"},
    {NULL, NULL, 0, NULL}};
static PyMethodDef amrenc_methods[] = {
    {"encode", (PyCFunction)amrenc_encode, METH_VARARGS, "encode(pcm, mode) -> storage-format frame"},
    {NULL, NULL, 0, NULL}};
static PyMethodDef g722enc_methods[] = {
    {"encode", (PyCFunction)g722enc_encode, METH_O, "encode(pcm) -> G.722 octets"}, {NULL, NULL, 0, NULL}};
static PyMethodDef g722dec_methods[] = {
    {"decode", (PyCFunction)g722dec_decode, METH_O, "decode(payload | None) -> (pcm, concealed)"},
    {NULL, NULL, 0, NULL}};
static PyMethodDef opusenc_methods[] = {
    {"encode", (PyCFunction)opusenc_encode, METH_O, "encode(pcm) -> Opus packet"}, {NULL, NULL, 0, NULL}};
static PyMethodDef opusdec_methods[] = {
    {"decode", (PyCFunction)(void (*)(void))opusdec_decode, METH_VARARGS | METH_KEYWORDS,
     "decode(payload | None, frame_samples, fec=False) -> (pcm, concealed)"},
    {NULL, NULL, 0, NULL}};

TYPE(AmrWbDecoderType, "AmrWbDecoder", AmrDecoder, amrwbdec_init, amrdec_dealloc, amrdec_methods,
     "AMR-WB decoder (opencore-amrwb)")
TYPE(AmrNbDecoderType, "AmrNbDecoder", AmrDecoder, amrnbdec_init, amrdec_dealloc, amrdec_methods,
     "AMR-NB decoder (opencore-amrnb)")
TYPE(AmrWbEncoderType, "AmrWbEncoder", AmrEncoder, amrwbenc_init, amrenc_dealloc, amrenc_methods,
     "AMR-WB encoder (vo-amrwbenc)")
TYPE(AmrNbEncoderType, "AmrNbEncoder", AmrEncoder, amrnbenc_init, amrenc_dealloc, amrenc_methods,
     "AMR-NB encoder (opencore-amrnb)")
TYPE(G722EncoderType, "G722Encoder", G722Encoder, g722enc_init, g722enc_dealloc, g722enc_methods,
     "G.722 64 kbit/s encoder (spandsp)")
TYPE(G722DecoderType, "G722Decoder", G722Decoder, g722dec_init, g722dec_dealloc, g722dec_methods,
     "G.722 64 kbit/s decoder with spandsp packet loss concealment")
TYPE(OpusEncoderType, "OpusEncoder", OpusEnc, opusenc_init, opusenc_dealloc, opusenc_methods,
     "Opus mono encoder (libopus, VoIP application)")
TYPE(OpusDecoderType, "OpusDecoder", OpusDec, opusdec_init, opusdec_dealloc, opusdec_methods,
     "Opus mono decoder (libopus) with PLC and in-band FEC")

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "imsconf.media._codecs",
                                       "Codec objects over opencore-amr, vo-amrwbenc, spandsp and libopus.",
                                       -1, NULL, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__codecs(void) {
    PyTypeObject *types[] = {&AmrWbDecoderType, &AmrNbDecoderType, &AmrWbEncoderType, &AmrNbEncoderType,
                             &G722EncoderType,  &G722DecoderType,  &OpusEncoderType,  &OpusDecoderType};
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++) {
        if (PyType_Ready(types[i]) < 0) goto fail;
        const char *dot = strrchr(types[i]->tp_name, '.');
        Py_INCREF(types[i]);
        if (PyModule_AddObject(m, dot + 1, (PyObject *)types[i]) < 0) {
            Py_DECREF(types[i]);
            goto fail;
        }
    }
    if (PyModule_AddStringConstant(m, "OPUS_VERSION", opus_get_version_string()) < 0) goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
