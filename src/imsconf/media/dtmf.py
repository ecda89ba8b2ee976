"""RFC 4733 telephone-events (DTMF) received in RTP.

The payload (RFC 4733 §2.3)::

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    |     event     |E|R| volume    |          duration             |

All packets of one event share the RTP timestamp of its start (§2.5.1.1); the final packet, with the
E bit set, is usually sent three times (§2.5.1.4). :class:`DtmfReceiver` turns a stream of such
packets into one ``end=False`` event when a key goes down and exactly one ``end=True`` event when it is
released, collapsing the repeated end packets. When every end packet is lost, the end is reported when
the next event starts or after ``timeout`` seconds without packets (:meth:`DtmfReceiver.poll`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .rtp import ts_diff

__all__ = ["EVENT_CODES", "DtmfError", "DtmfEvent", "DtmfReceiver", "TelephoneEvent", "parse_telephone_event"]

# RFC 4733 §3.2: events 0-9, * (10), # (11), A-D (12-15), flash (16).
EVENT_CODES: tuple[str, ...] = (*"0123456789*#ABCD", "flash")
_PAYLOAD = struct.Struct("!BBH")


class DtmfError(ValueError):
    """Malformed telephone-event payload."""


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One telephone-event payload as on the wire."""

    event: int
    end: bool
    volume: int  # 0..63, in -dBm0
    duration: int  # timestamp units

    def __bytes__(self) -> bytes:
        return _PAYLOAD.pack(self.event, (0x80 if self.end else 0) | (self.volume & 0x3F), self.duration)


def parse_telephone_event(payload: bytes) -> TelephoneEvent:
    # Several events may be stacked in one payload (§2.5.1.5, redundancy is via RFC 2198): we read the
    # first 4 octets, which is the current event in the plain (non-redundant) format.
    if len(payload) < 4:
        raise DtmfError(f"telephone-event payload too short ({len(payload)} bytes)")
    event, flags, duration = _PAYLOAD.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


@dataclass(frozen=True, slots=True)
class DtmfEvent:
    """A key press surfaced to the focus: ``end=False`` when it starts, ``end=True`` once when it ends."""

    digit: str
    duration_ms: int
    volume: int
    end: bool = True

    def __post_init__(self) -> None:
        if self.digit not in EVENT_CODES:
            raise ValueError(f"unknown DTMF digit {self.digit!r}")
        if self.duration_ms < 0 or not 0 <= self.volume <= 63:
            raise ValueError("bad DTMF duration or volume")


class DtmfReceiver:
    """De-duplicates the telephone-event packets of one inbound stream."""

    __slots__ = (
        "_clock_ms",
        "_duration",
        "_ended",
        "_event",
        "_last_seen",
        "_timeout",
        "_ts",
        "_volume",
        "duplicates",
        "ignored",
    )

    def __init__(self, clock_rate: int = 8000, timeout: float = 0.5) -> None:
        self._clock_ms = clock_rate / 1000
        self._timeout = timeout
        self._ts: int | None = None
        self._event = 0
        self._volume = 0
        self._duration = 0
        self._ended = True
        self._last_seen = 0.0
        self.duplicates = 0
        self.ignored = 0  # old, unknown, or out-of-place packets

    @property
    def active(self) -> bool:
        """True while a key is down (an end has not been reported yet)."""
        return not self._ended

    def _make(self, end: bool) -> DtmfEvent:
        return DtmfEvent(EVENT_CODES[self._event], round(self._duration / self._clock_ms), self._volume, end)

    def feed(self, payload: bytes, timestamp: int, now: float) -> list[DtmfEvent]:
        """Process one packet; raises :class:`DtmfError` on a malformed payload."""
        te = parse_telephone_event(payload)
        if te.event >= len(EVENT_CODES):
            self.ignored += 1
            return []
        out: list[DtmfEvent] = []
        if self._ts is None or timestamp != self._ts:
            if self._ts is not None and ts_diff(timestamp, self._ts) < 0:
                self.ignored += 1  # a straggler from an earlier event
                return []
            if not self._ended:
                out.append(self._make(True))  # the previous event's end packets were all lost
            self._ts = timestamp
            self._event = te.event
            self._volume = te.volume
            self._duration = te.duration
            self._ended = False
            if not te.end:
                out.append(self._make(False))
        elif self._ended:
            self.duplicates += 1  # the second and third end packets (§2.5.1.4)
            return out
        else:
            if te.event != self._event:
                self.ignored += 1
                return out
            self._duration = max(self._duration, te.duration)
            self._volume = te.volume
        self._last_seen = now
        if te.end:
            self._duration = max(self._duration, te.duration)
            self._ended = True
            out.append(self._make(True))
        return out

    def poll(self, now: float) -> list[DtmfEvent]:
        """End an event whose end packets never came."""
        if not self._ended and now - self._last_seen >= self._timeout:
            self._ended = True
            return [self._make(True)]
        return []
