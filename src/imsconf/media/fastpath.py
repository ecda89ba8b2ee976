"""The mixer's per-packet path: the slot table shared with the C extension ``_fastpath``.

Each leg of the engine owns one *slot*: a row of one ``int64`` table that holds everything the
per-packet code needs (socket, libsrtp contexts, SSRCs, sequence number, timestamp base, payload types,
the fast-path switch). The engine (Python) writes the rows; the C extension reads them, and updates only
a sending leg's sequence number, marker and packet count. Python stays the only place that decides:
which legs take the fast path, which keys they use, when anything changes.

The C side (``_fastpath.c``) does, per packet, what the Python fast path did, so that one core
serves well past 1-2 k legs: ``recv`` → ``srtp_unprotect`` → header check on the way in, and header →
``srtp_protect`` → ``send`` on the way out, on the connected per-leg sockets. It calls libsrtp through
the function addresses of pylibsrtp's own binding, on the ``srtp_t`` of each pylibsrtp ``Session``. The
table keeps a reference to every Session whose context it names, so a context can never be freed
while C may still use it.

Without the extension (no compiler where the package was installed, or ``IMSCONF_FASTPATH=0``) the
table is still the store of the per-leg transmit state, and the engine runs its Python path.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import numpy.typing as npt

from .jitter import JitterStats
from .rtp import ReportBlock, report_block
from .srtp import srtp_ffi, srtp_lib

try:
    from . import _fastpath as _c  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - exercised where no compiler was available
    _c = None

__all__ = [
    "FD",
    "MARKER",
    "MIXES",
    "NCOLS",
    "PT",
    "RECEIVED",
    "RXFAST",
    "RXH",
    "RXPT",
    "RXSSRC",
    "SENT",
    "SEQ",
    "SILENCE",
    "SSRC",
    "TS0",
    "TXH",
    "DrainResult",
    "SlotJitter",
    "SlotReceptionStats",
    "SlotTable",
    "extension_loaded",
    "fastpath_enabled",
]

# Columns: keep in step with the enums in _fastpath.c.
FD, TXH, SSRC, SEQ, TS0, PT, MARKER, SENT, RXH, RXPT, RXSSRC, RXFAST, MIXES, SILENCE, RECEIVED = range(15)
(J_HASNEXT, J_NEXT, J_HIGHEST, J_HASSTART, J_HASLAST, J_MISSES, J_COUNT) = range(15, 22)
(J_PUSHED, J_PLAYED, J_LATE, J_DUP, J_OVERFLOW, J_CONCEALED, J_UNDERRUNS, J_RESYNC) = range(22, 30)
(R_HASBASE, R_BASE, R_MAX, R_RECEIVED, R_EXPPRIOR, R_RECVPRIOR, R_HASTRANSIT, R_TRANSIT) = range(30, 38)
RING = 32  # jitter-buffer entries per slot: the capacity may be at most RING // 2 frames
J_KEYS = 38
NCOLS = J_KEYS + RING
F_START, F_RJITTER = 0, 1  # float64 table
NFCOLS = 2
FRAME = 160
API = 2  # the extension's functions this module calls (2: send_frames); an older build is not used
_EMPTY = np.iinfo(np.int64).min
_JITTER_STATS = {
    "pushed": J_PUSHED,
    "played": J_PLAYED,
    "late": J_LATE,
    "duplicate": J_DUP,
    "overflow": J_OVERFLOW,
    "concealed": J_CONCEALED,
    "underruns": J_UNDERRUNS,
    "resync": J_RESYNC,
}

# drain(): how many packets took the fast path, the others (kind, slot, value, data), unmapped fds.
DrainResult = tuple[int, list[tuple[int, int, int, Any]], list[int]]

_SIGNATURE = "srtp_err_status_t(*)(struct srtp_ctx_t_ *, void *, int *)"


def _address(name: str) -> int:
    fn = srtp_ffi.addressof(srtp_lib, name)
    if srtp_ffi.typeof(fn).cname != _SIGNATURE:  # a libsrtp with another API (3.x): no C path
        return 0
    return int(srtp_ffi.cast("uintptr_t", fn))


_PROTECT = _address("srtp_protect")
_UNPROTECT = _address("srtp_unprotect")


def extension_loaded() -> bool:
    """The C extension was built and imports, and the bundled libsrtp has the expected API."""
    return (
        _c is not None
        and (_c.NCOLS, _c.RING, _c.NFCOLS) == (NCOLS, RING, NFCOLS)
        and getattr(_c, "API", 1) == API  # a build from before a function this module calls
        and bool(_PROTECT and _UNPROTECT)
    )


def fastpath_enabled() -> bool:
    """:func:`extension_loaded`, unless ``IMSCONF_FASTPATH=0`` turns the C path off (for comparisons)."""
    return extension_loaded() and os.environ.get("IMSCONF_FASTPATH", "1") != "0"


def handle_address(handle: Any) -> int:
    """The integer address of a libsrtp ``srtp_t`` (0 for None: plain RTP)."""
    return 0 if handle is None else int(srtp_ffi.cast("uintptr_t", handle))


class SlotTable:
    """One row per leg; see the module docstring. ``tag[slot]`` is the engine's object for the slot.

    Three tables: ``tab`` (int64: sockets, contexts, RTP state, the jitter buffer's bookkeeping and the
    reception statistics), ``ftab`` (float64: the playout start time and the interarrival jitter) and
    ``pay`` (uint8: the jitter buffer's frames and the last played frame)."""

    def __init__(self, capacity: int = 64) -> None:
        self.tab: npt.NDArray[np.int64] = self._blank(capacity)
        self.ftab: npt.NDArray[np.float64] = np.zeros((capacity, NFCOLS), dtype=np.float64)
        self.pay: npt.NDArray[np.uint8] = np.zeros((capacity, RING + 1, FRAME), dtype=np.uint8)
        self.tag: list[Any] = [None] * capacity
        # Strong references to the pylibsrtp Sessions named by TXH/RXH (index: slot).
        self._tx_owner: list[object | None] = [None] * capacity
        self._rx_owner: list[object | None] = [None] * capacity
        self._free = list(range(capacity - 1, -1, -1))
        self.fd2slot: npt.NDArray[np.int64] = np.full(64, -1, dtype=np.int64)

    @staticmethod
    def _blank(rows: int) -> npt.NDArray[np.int64]:
        tab = np.zeros((rows, NCOLS), dtype=np.int64)
        tab[:, FD] = -1
        tab[:, RXSSRC] = -1
        tab[:, J_KEYS:] = _EMPTY
        return tab

    def __len__(self) -> int:
        return len(self.tag) - len(self._free)

    def alloc(self, tag: Any) -> int:
        if not self._free:
            old = len(self.tag)
            self.tab = np.concatenate([self.tab, self._blank(old)])
            self.ftab = np.concatenate([self.ftab, np.zeros((old, NFCOLS), dtype=np.float64)])
            self.pay = np.concatenate([self.pay, np.zeros((old, RING + 1, FRAME), dtype=np.uint8)])
            self.tag.extend([None] * old)
            self._tx_owner.extend([None] * old)
            self._rx_owner.extend([None] * old)
            self._free = list(range(2 * old - 1, old - 1, -1))
        slot = self._free.pop()
        self.tag[slot] = tag
        return slot

    def release(self, slot: int) -> SlotTable:
        """Forget a slot (its leg is gone): every fd mapped to it is unmapped, its contexts let go.

        Returns a one-row table of its own holding a copy of the row's RTP state (slot 0), with nothing
        for the C path: an object that still refers to the slot can move there, so that it never reads
        a row that a new leg has taken."""
        alone = SlotTable(1)
        if self.tag[slot] is None:
            return alone
        alone.alloc(self.tag[slot])
        alone.tab[0, SSRC : SENT + 1] = self.tab[slot, SSRC : SENT + 1]
        self.fd2slot[self.fd2slot == slot] = -1
        self.tab[slot] = self._blank(1)[0]
        self.ftab[slot] = 0.0
        self.tag[slot] = None
        self._tx_owner[slot] = self._rx_owner[slot] = None
        self._free.append(slot)
        return alone

    def compact(self, least: int = 64) -> bool:
        """Give back the rows a load grew the table to (it doubles when full and would otherwise keep its
        peak size): keep up to the highest slot in use, rounded up to a power of two (at least *least*).
        Live slots keep their numbers. Returns whether the table shrank. Call between packets and ticks
        (the C path gets the arrays on every call)."""
        used = [i for i, tag in enumerate(self.tag) if tag is not None]
        need = used[-1] + 1 if used else 0
        size = least
        while size < need:
            size *= 2
        if size >= len(self.tag):
            return False
        self.tab = self.tab[:size].copy()
        self.ftab = self.ftab[:size].copy()
        self.pay = self.pay[:size].copy()
        self.tag = self.tag[:size]
        self._tx_owner = self._tx_owner[:size]
        self._rx_owner = self._rx_owner[:size]
        self._free = [i for i in range(size - 1, -1, -1) if self.tag[i] is None]
        mapped = np.flatnonzero(self.fd2slot >= 0)
        fds = max(64, int(mapped[-1]) + 1 if len(mapped) else 0)
        if fds < len(self.fd2slot):
            self.fd2slot = self.fd2slot[:fds].copy()
        return True

    # ------------------------------------------------------------------------------ rows

    def set_tx(self, slot: int, handle: Any, owner: object | None) -> None:
        """The transmit context (``handle``, owned by ``owner``), or None for plain RTP."""
        self._tx_owner[slot] = owner
        self.tab[slot, TXH] = handle_address(handle)

    def set_rx(
        self, slot: int, fast: bool, handle: Any, owner: object | None, pt: int, ssrc: int | None
    ) -> None:
        """What the fast receive path accepts for the slot; ``fast=False`` sends everything to Python."""
        row = self.tab[slot]
        row[RXFAST] = 0  # never a moment with the flag on and a half-written row
        self._rx_owner[slot] = owner if fast else None
        row[RXH] = handle_address(handle) if fast else 0
        row[RXPT] = pt
        row[RXSSRC] = -1 if ssrc is None else ssrc
        row[RXFAST] = 1 if fast else 0

    def set_fd(self, slot: int, fd: int) -> None:
        """The connected socket that sends the slot's RTP (-1: none)."""
        self.tab[slot, FD] = fd

    def map_fd(self, fd: int, slot: int) -> None:
        """Let :meth:`drain` read ``fd`` (a socket connected to the slot's remote RTP address)."""
        if fd >= len(self.fd2slot):
            grown = np.full(max(fd + 1, 2 * len(self.fd2slot)), -1, dtype=np.int64)
            grown[: len(self.fd2slot)] = self.fd2slot
            self.fd2slot = grown
        self.fd2slot[fd] = slot

    def unmap_fd(self, fd: int) -> None:
        if 0 <= fd < len(self.fd2slot):
            self.fd2slot[fd] = -1

    # ------------------------------------------------------------------------------ the C path

    def drain(self, epfd: int, now: float, capacity: int, delay: float) -> DrainResult:
        """One epoll round through the C path (see ``_fastpath.drain``)."""
        assert _c is not None
        result: DrainResult = _c.drain(
            epfd, self.fd2slot, self.tab, self.ftab, self.pay, _UNPROTECT, now, capacity, delay
        )
        return result

    def pop_all(
        self,
        slots: npt.NDArray[np.int64],
        now: float,
        out: npt.NDArray[np.uint8],
        gains: npt.NDArray[np.float64],
        index: npt.NDArray[np.int64],
    ) -> int:
        """Play out one frame per slot (see ``_fastpath.pop_all``); returns how many had one."""
        assert _c is not None
        m: int = _c.pop_all(slots, self.tab, self.ftab, self.pay, now, out, gains, index)
        return m

    def send(
        self, slots: npt.NDArray[np.int64], payloads: list[bytes], ts_now: int
    ) -> tuple[int, int, int, int]:
        """Send one RTP packet per slot (see ``_fastpath.send_rtp``):
        (dropped, errors, protect_failed, protects)."""
        assert _c is not None
        result: tuple[int, int, int, int] = _c.send_rtp(slots, payloads, ts_now, self.tab, _PROTECT)
        return result

    def send_frames(
        self, slots: npt.NDArray[np.int64], payloads: list[bytes], ts: npt.NDArray[np.int64]
    ) -> tuple[int, int, int, int]:
        """Send one RTP packet of any length per slot, ``ts`` its timestamp's offset from the slot's
        TS0; an empty payload sends nothing (see ``_fastpath.send_frames``):
        (dropped, errors, protect_failed, protects)."""
        assert _c is not None
        result: tuple[int, int, int, int] = _c.send_frames(slots, payloads, ts, self.tab, _PROTECT)
        return result


class SlotJitter:
    """:class:`~imsconf.media.jitter.JitterBuffer`'s interface over a slot's jitter buffer in C.

    The C code runs the same algorithm (``jitter.py`` is the reference; a differential test holds them
    together). Payloads come back padded or cut to 160 bytes with the slot's silence byte."""

    __slots__ = ("_cap", "_delay", "_slot", "_t", "conceal_gain")

    def __init__(
        self, table: SlotTable, slot: int, delay: float = 0.060, capacity: float = 0.200, frame: float = 0.020
    ) -> None:
        if delay < 0 or capacity < delay + frame:
            raise ValueError("jitter buffer capacity must exceed the playout delay by one frame")
        cap = round(capacity / frame)
        if 2 * cap > RING:
            raise ValueError(f"the C jitter buffer holds at most {RING // 2} frames")
        self._t = table
        self._slot = slot
        self._cap = cap
        self._delay = delay
        self.conceal_gain: float | None = None

    @property
    def capacity_frames(self) -> int:
        return self._cap

    @property
    def delay(self) -> float:
        return self._delay

    def reset(self) -> None:
        assert _c is not None
        _c.jb_reset(self._t.tab, self._slot)

    @property
    def depth(self) -> int:
        return int(self._t.tab[self._slot, J_COUNT])

    def push(self, seq: int, payload: bytes, now: float) -> bool:
        assert _c is not None
        t = self._t
        ok: bool = _c.jb_push(t.tab, t.ftab, t.pay, self._slot, seq, payload, now, self._cap, self._delay)
        return ok

    def pop_payload(self, now: float) -> bytes | None:
        assert _c is not None
        t = self._t
        got: tuple[bytes, float | None] | None = _c.jb_pop(t.tab, t.ftab, t.pay, self._slot, now)
        if got is None:
            return None
        payload, self.conceal_gain = got
        return payload

    @property
    def stats(self) -> JitterStats:
        st = JitterStats()
        row = self._t.tab[self._slot]
        for name, col in _JITTER_STATS.items():
            setattr(st, name, int(row[col]))
        return st


class SlotReceptionStats:
    """:class:`~imsconf.media.rtp.ReceptionStats` over a slot's statistics, kept by C on the fast path."""

    __slots__ = ("_slot", "_t")

    def __init__(self, table: SlotTable, slot: int) -> None:
        self._t = table
        self._slot = slot

    def reset(self) -> None:
        """A new stream (new SSRC): start over."""
        self._t.tab[self._slot, R_HASBASE : R_TRANSIT + 1] = 0
        self._t.ftab[self._slot, F_RJITTER] = 0.0

    def update(self, seq: int, timestamp: int, arrival: int) -> None:
        assert _c is not None
        t = self._t
        _c.rs_update(t.tab, t.ftab, t.pay, self._slot, seq, timestamp, arrival)

    @property
    def received(self) -> int:
        return int(self._t.tab[self._slot, R_RECEIVED])

    @property
    def jitter(self) -> int:
        return int(self._t.ftab[self._slot, F_RJITTER])

    @property
    def expected(self) -> int:
        row = self._t.tab[self._slot]
        return int(row[R_MAX] - row[R_BASE] + 1) if row[R_HASBASE] else 0

    def report_block(self, ssrc: int, lsr: int = 0, dlsr: int = 0) -> ReportBlock | None:
        row = self._t.tab[self._slot]
        if not row[R_HASBASE]:
            return None
        block, row[R_EXPPRIOR], row[R_RECVPRIOR] = report_block(
            ssrc,
            self.expected,
            self.received,
            int(row[R_EXPPRIOR]),
            int(row[R_RECVPRIOR]),
            int(row[R_MAX]),
            self.jitter,
            lsr,
            dlsr,
        )
        return block
