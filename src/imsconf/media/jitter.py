"""Per-input jitter buffer: reordering, duplicate drop, fixed playout delay, loss concealment.

Sans-I/O: the caller passes ``now`` (seconds, monotonic) to :meth:`JitterBuffer.push` and calls
:meth:`JitterBuffer.pop` once per 20 ms mixer tick.

Playout is by RTP sequence number, one packet per tick (the server negotiates ``ptime`` 20 for G.711;
a payload of another length is padded or cut by the engine). Playout starts ``delay`` seconds after the
first packet of a talkspurt arrived, so a packet can be up to ``delay`` late (default 60 ms, plus up to
one tick of phase) and still be played; later packets are dropped and counted as ``late``. The buffer
holds at most ``capacity`` seconds (default 200 ms): when a burst overfills it, the oldest frames are
dropped so that the delay returns to the target instead of growing for ever.

A missing frame is concealed by repeating the last good payload at a falling gain (1.0, 0.8, 0.6, 0.4,
0.2), which avoids the click of a silence gap. After ``max_conceal`` consecutive missing frames the
input is considered silent: :meth:`pop` returns ``None`` (so a participant that stops sending drops
out of the mix) and the next packet starts a new talkspurt with a fresh prefill.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Frame", "JitterBuffer", "JitterStats"]

FADE = (1.0, 0.8, 0.6, 0.4, 0.2)


class Frame(NamedTuple):
    payload: bytes
    gain: float  # 1.0 for a real frame, < 1.0 (and possibly 1.0 on the first repeat) when concealed
    concealed: bool


class JitterStats:
    __slots__ = ("concealed", "duplicate", "late", "overflow", "played", "pushed", "resync", "underruns")

    def __init__(self) -> None:
        self.pushed = 0
        self.played = 0
        self.late = 0
        self.duplicate = 0
        self.overflow = 0
        self.concealed = 0
        self.underruns = 0
        self.resync = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "concealed": self.concealed,
            "duplicate": self.duplicate,
            "late": self.late,
            "overflow": self.overflow,
            "played": self.played,
            "pushed": self.pushed,
            "resync": self.resync,
            "underruns": self.underruns,
        }


class JitterBuffer:
    """One input stream's buffer. ``frame`` is the tick length in seconds."""

    __slots__ = (
        "_capacity_frames",
        "_delay",
        "_fade",
        "_frames",
        "_highest",
        "_last",
        "_misses",
        "_next",
        "_start_at",
        "conceal_gain",
        "stats",
    )

    def __init__(
        self,
        delay: float = 0.060,
        capacity: float = 0.200,
        frame: float = 0.020,
        max_conceal: int = len(FADE),
    ) -> None:
        if delay < 0 or capacity < delay + frame:
            raise ValueError("jitter buffer capacity must exceed the playout delay by one frame")
        self._delay = delay
        self._capacity_frames = round(capacity / frame)
        self._fade = FADE[:max_conceal] if max_conceal <= len(FADE) else FADE + (0.2,) * (max_conceal - 5)
        self._frames: dict[int, bytes] = {}
        self._next: int | None = None  # extended sequence number to play next
        self._highest = 0  # highest extended sequence number buffered (valid when _next is set)
        self._start_at: float | None = None  # playout starts at this time (prefill)
        self._last: bytes | None = None
        self._misses = 0
        self.conceal_gain: float | None = None  # set by pop_payload: None for a real frame
        self.stats = JitterStats()

    def reset(self) -> None:
        """Forget everything buffered (e.g. the sender changed SSRC)."""
        self._frames.clear()
        self._next = None
        self._start_at = None
        self._last = None
        self._misses = 0

    @property
    def depth(self) -> int:
        return len(self._frames)

    def push(self, seq: int, payload: bytes, now: float) -> bool:
        """Buffer one packet; False when it was dropped (late or duplicate)."""
        nxt = self._next
        st = self.stats
        if nxt is None:  # first packet of a talkspurt
            self._next = nxt = seq
            self._highest = seq
            self._start_at = now + self._delay
            self._frames[seq] = payload
            st.pushed += 1
            return True
        ahead = ((seq - nxt + 0x8000) & 0xFFFF) - 0x8000  # seq_diff(seq, nxt & 0xFFFF)
        ext = nxt + ahead
        if ahead < 0:
            if ahead < -4 * self._capacity_frames:  # the sender jumped backwards: start over
                st.resync += 1
                self.reset()
                return self.push(seq, payload, now)
            if self._start_at is not None and self._highest - ext < self._capacity_frames:
                # Still prefilling: an earlier packet of the talkspurt arrived after a later one (and the
                # buffer still spans at most `capacity`; an older one counts as late).
                self._next = ext
                self._frames[ext] = payload
                st.pushed += 1
                return True
            st.late += 1
            return False
        if ahead > 4 * self._capacity_frames:  # a jump far ahead: start over
            st.resync += 1
            self.reset()
            return self.push(seq, payload, now)
        frames = self._frames
        if ext in frames:
            st.duplicate += 1
            return False
        frames[ext] = payload
        st.pushed += 1
        if ext > self._highest:
            self._highest = ext
            if ext - nxt >= self._capacity_frames:
                # Overfull: move the playout point so that the newest frame is `delay` ahead.
                keep_from = ext - self._capacity_frames + 1
                for old in [k for k in frames if k < keep_from]:
                    del frames[old]
                    st.overflow += 1
                self._next = keep_from
        return True

    def pop(self, now: float) -> Frame | None:
        """The frame to play at this tick, a concealment frame, or None (silent / not started)."""
        payload = self.pop_payload(now)
        if payload is None:
            return None
        gain = self.conceal_gain
        return Frame(payload, 1.0, False) if gain is None else Frame(payload, gain, True)

    def pop_payload(self, now: float) -> bytes | None:
        """:meth:`pop` without the :class:`Frame`: the payload, with :attr:`conceal_gain` set to None
        for a real frame and to the concealment gain for a repeated one (the mixer's hot path)."""
        nxt = self._next
        if nxt is None:
            return None
        start = self._start_at
        if start is not None:
            if now < start:
                return None
            self._start_at = None
        payload = self._frames.pop(nxt, None)
        self._next = nxt + 1
        if payload is not None:
            self._last = payload
            self._misses = 0
            self.conceal_gain = None
            self.stats.played += 1
            return payload
        misses = self._misses
        last = self._last
        if last is not None and misses < len(self._fade):
            self._misses = misses + 1
            self.stats.concealed += 1
            self.conceal_gain = self._fade[misses]
            return last
        if self._frames:  # a gap longer than concealment, but more audio is buffered: skip ahead
            self._next = min(self._frames)
            self._misses = 0
            return self.pop_payload(now)
        # Nothing left: the talker stopped. The next packet starts a new talkspurt.
        self.stats.underruns += 1
        self.reset()
        return None
