"""Audio codec negotiation for HD voice: rtpmap/fmtp of AMR-WB, AMR, Opus, G.722, PCMU and PCMA.

``choose_audio_codec(m, preference)`` picks the answer's codec from an offered audio section by *our*
preference order (RFC 3264 lets the answerer choose among the offered formats), parses its fmtp, and
skips a format whose fmtp we cannot honour (AMR with CRC, robust sorting or interleaving, a mode-set
outside the codec's modes, a non-numeric parameter) for the next one; when nothing is left it raises
``OfferAnswerError`` (488) whose reason names each format and why.  The telephone-event chosen is the
one at the chosen codec's RTP clock (8000, 16000 or 48000, RFC 4733 §2.5.1.3).

``CodecChoice.answer_attributes()`` gives the answer's ``a=rtpmap``/``a=fmtp`` lines and
``offer_attributes`` an offer's.  Payload format parameters: RFC 4867 §8.1 (AMR, AMR-WB), RFC 7587 §6.1
(Opus), RFC 3551 (G.722, PCMU, PCMA).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from .errors import OfferAnswerError
from .payload import TELEPHONE_EVENT, Codec
from .session import Attribute, MediaDescription

__all__ = [
    "PREFERENCE",
    "SUPPORTED",
    "AmrFormat",
    "CodecChoice",
    "OpusFormat",
    "Unhonourable",
    "amr_format",
    "choose_audio_codec",
    "offer_attributes",
    "opus_format",
    "parse_fmtp",
    "rtpmaps",
]

# name -> (RTP clock, channels in rtpmap, static payload type)
SUPPORTED: Final[dict[str, tuple[int, int, int | None]]] = {
    "AMR-WB": (16000, 1, None),
    "opus": (48000, 2, None),  # RFC 7587: always "opus/48000/2", whatever is sent
    "G722": (8000, 1, 9),
    "PCMU": (8000, 1, 0),
    "PCMA": (8000, 1, 8),
    "AMR": (8000, 1, None),
}
PREFERENCE: Final = ("AMR-WB", "opus", "G722", "PCMU", "PCMA", "AMR")
_CANONICAL = {n.upper(): n for n in SUPPORTED}
_STATIC = {pt: n for n, (_, _, pt) in SUPPORTED.items() if pt is not None}
_RTPMAP_RE = re.compile(r"^([0-9]{1,3}) ([^/\s]+)/([0-9]{1,6})(?:/([0-9]{1,2}))?$")


class Unhonourable(Exception):
    """A format's parameters we cannot honour; ``reason`` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class AmrFormat:
    """RFC 4867 §8.1 parameters of an AMR or AMR-WB payload type."""

    octet_align: bool = False
    mode_set: tuple[int, ...] = ()  # empty: every mode
    mode_change_period: int = 1
    mode_change_neighbor: bool = False
    mode_change_capability: int = 1

    def fmtp(self) -> str:
        parts = []
        if self.octet_align:
            parts.append("octet-align=1")
        if self.mode_set:
            parts.append("mode-set=" + ",".join(str(m) for m in self.mode_set))
        if self.mode_change_period != 1:
            parts.append(f"mode-change-period={self.mode_change_period}")
        if self.mode_change_neighbor:
            parts.append("mode-change-neighbor=1")
        parts.append("mode-change-capability=2")  # we can keep to changes every other frame
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class OpusFormat:
    """RFC 7587 §6.1 parameters (the peer's wishes as a receiver; ours in the answer)."""

    useinbandfec: bool = False
    usedtx: bool = False
    maxplaybackrate: int = 48000
    stereo: bool = False

    def fmtp(self) -> str:
        return f"maxplaybackrate=16000; stereo=0; sprop-stereo=0; useinbandfec=1; usedtx={int(self.usedtx)}"


@dataclass(frozen=True, slots=True)
class CodecChoice:
    """The answer's codec, its parsed fmtp, and the telephone-event at its clock."""

    codec: Codec
    amr: AmrFormat | None = None
    opus: OpusFormat | None = None
    telephone_event: int | None = None
    telephone_event_fmtp: str | None = None
    # the offered format's a=fmtp parameters as (name, value), sorted: what the media leg's codec takes
    params: tuple[tuple[str, str], ...] = ()

    def fmtp(self) -> str | None:
        """The ``a=fmtp`` parameters of our answer for the codec (None: no line)."""
        return self.amr.fmtp() if self.amr else self.opus.fmtp() if self.opus else None

    def answer_attributes(self) -> tuple[Attribute, ...]:
        c = self.codec
        attrs = [Attribute("rtpmap", c.rtpmap())]
        fmtp = self.fmtp()
        if fmtp:
            attrs.append(Attribute("fmtp", f"{c.payload_type} {fmtp}"))
        if self.telephone_event is not None:
            te = self.telephone_event
            attrs.append(Attribute("rtpmap", f"{te} {TELEPHONE_EVENT}/{c.clock_rate}"))
            attrs.append(Attribute("fmtp", f"{te} {self.telephone_event_fmtp or '0-15'}"))
        return tuple(attrs)

    def formats(self) -> tuple[str, ...]:
        te = () if self.telephone_event is None else (str(self.telephone_event),)
        return (str(self.codec.payload_type), *te)


def rtpmaps(m: MediaDescription) -> dict[int, tuple[str, int, int]]:
    """``a=rtpmap`` of ``m``: payload type -> (encoding name, clock rate, channels); the first wins."""
    out: dict[int, tuple[str, int, int]] = {}
    for value in m.get_attributes("rtpmap"):
        r = _RTPMAP_RE.match(value.strip())
        if r is not None and int(r.group(1)) <= 127:
            out.setdefault(int(r.group(1)), (r.group(2), int(r.group(3)), int(r.group(4) or 1)))
    return out


def _fmtp_text(m: MediaDescription, pt: int) -> str:
    for value in m.get_attributes("fmtp"):
        head, _, rest = value.partition(" ")
        if head == str(pt):
            return rest.strip()
    return ""


def parse_fmtp(text: str) -> dict[str, str]:
    """``a=fmtp`` parameters ``k=v; k2=v2`` as a dict, names lowercased (a bare name maps to "")."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        name, _, value = part.strip().partition("=")
        if name:
            out.setdefault(name.strip().lower(), value.strip())
    return out


def _int(params: dict[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not lo <= int(raw) <= hi:
        raise Unhonourable(f"{name}={raw!r} is not a number in {lo}-{hi}")
    return int(raw)


def amr_format(params: dict[str, str], *, wide: bool) -> AmrFormat:
    """The AMR/AMR-WB parameters we can honour, or ``Unhonourable``."""
    for name in ("crc", "robust-sorting"):
        if _int(params, name, 0, 0, 1):
            raise Unhonourable(f"{name}=1 is not supported")
    if "interleaving" in params:
        raise Unhonourable("interleaving is not supported")
    if _int(params, "channels", 1, 1, 6) != 1:
        raise Unhonourable("only one channel is supported")
    top = 8 if wide else 7
    modes: tuple[int, ...] = ()
    if params.get("mode-set"):
        items = [s.strip() for s in params["mode-set"].split(",")]
        if not all(s.isdigit() and int(s) <= top for s in items):
            raise Unhonourable(f"mode-set={params['mode-set']} is not a list of modes 0-{top}")
        modes = tuple(sorted({int(s) for s in items}))
    return AmrFormat(
        octet_align=bool(_int(params, "octet-align", 0, 0, 1)),
        mode_set=modes,
        mode_change_period=_int(params, "mode-change-period", 1, 1, 100),
        mode_change_neighbor=bool(_int(params, "mode-change-neighbor", 0, 0, 1)),
        mode_change_capability=_int(params, "mode-change-capability", 1, 1, 2),
    )


def opus_format(params: dict[str, str]) -> OpusFormat:
    """The Opus parameters of the offer (all of them can be honoured by a mono 16 kHz stream)."""
    return OpusFormat(
        useinbandfec=bool(_int(params, "useinbandfec", 0, 0, 1)),
        usedtx=bool(_int(params, "usedtx", 0, 0, 1)),
        maxplaybackrate=_int(params, "maxplaybackrate", 48000, 8000, 48000),
        stereo=bool(_int(params, "stereo", 0, 0, 1)),
    )


def _candidates(m: MediaDescription) -> list[tuple[int, str, int, int]]:
    maps = rtpmaps(m)
    out = []
    for fmt in m.formats:
        if not fmt.isdigit() or int(fmt) > 127:
            continue
        pt = int(fmt)
        if pt in maps:
            name, rate, ch = maps[pt]
        elif pt in _STATIC:
            name = _STATIC[pt]
            rate, ch, _ = SUPPORTED[name]
        else:
            continue
        out.append((pt, name, rate, ch))
    return out


def choose_audio_codec(m: MediaDescription, preference: Sequence[str] = PREFERENCE) -> CodecChoice:
    """The answer's codec for the offered audio section ``m`` (see the module docstring)."""
    offered = _candidates(m)
    rejected: list[str] = []
    for wanted in preference:
        name = _CANONICAL.get(wanted.upper())
        if name is None:
            continue
        clock, channels, _ = SUPPORTED[name]
        for pt, offered_name, rate, ch in offered:
            if offered_name.upper() != name.upper() or rate != clock or ch != channels:
                continue
            params = parse_fmtp(_fmtp_text(m, pt))
            try:
                amr = amr_format(params, wide=name == "AMR-WB") if name.startswith("AMR") else None
                opus = opus_format(params) if name == "opus" else None
            except Unhonourable as exc:
                rejected.append(f"{name} (payload type {pt}): {exc.reason}")
                continue
            te, te_fmtp = _telephone_event(m, offered, clock)
            kept = tuple(sorted(params.items()))
            return CodecChoice(Codec(name, pt, clock, channels), amr, opus, te, te_fmtp, kept)
    detail = "; ".join(rejected) if rejected else f"offered formats: {' '.join(m.formats) or 'none'}"
    raise OfferAnswerError(f"no acceptable codec ({detail}; supported: {', '.join(preference)})")


def _telephone_event(
    m: MediaDescription, offered: list[tuple[int, str, int, int]], clock: int
) -> tuple[int | None, str | None]:
    for pt, name, rate, _ in offered:
        if name.lower() == TELEPHONE_EVENT and rate == clock:
            return pt, _fmtp_text(m, pt) or None
    return None, None


def offer_attributes(
    preference: Sequence[str] = PREFERENCE, *, first_dynamic: int = 96, telephone_event: bool = True
) -> tuple[tuple[str, ...], tuple[Attribute, ...]]:
    """The formats and ``a=rtpmap``/``a=fmtp`` lines of an offer of ``preference`` (and telephone-event
    at each clock used)."""
    formats: list[str] = []
    attrs: list[Attribute] = []
    pt = first_dynamic
    clocks: list[int] = []
    for wanted in preference:
        name = _CANONICAL[wanted.upper()]
        clock, channels, static = SUPPORTED[name]
        if static is None:
            static, pt = pt, pt + 1
        codec = Codec(name, static, clock, channels)
        formats.append(str(static))
        attrs.append(Attribute("rtpmap", codec.rtpmap()))
        if name.startswith("AMR"):
            attrs.append(Attribute("fmtp", f"{static} {AmrFormat().fmtp()}"))
        elif name == "opus":
            attrs.append(Attribute("fmtp", f"{static} {OpusFormat().fmtp()}"))
        if clock not in clocks:
            clocks.append(clock)
    if telephone_event:
        for clock in clocks:
            formats.append(str(pt))
            attrs.append(Attribute("rtpmap", f"{pt} {TELEPHONE_EVENT}/{clock}"))
            attrs.append(Attribute("fmtp", f"{pt} 0-15"))
            pt += 1
    return tuple(formats), tuple(attrs)
