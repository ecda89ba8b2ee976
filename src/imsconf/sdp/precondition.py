"""QoS preconditions in SDP (RFC 3312, updated by RFC 4032), answered by a server: its own resources are met.

An offer from a VoLTE phone carries, per media section, status lines in the segmented model (``local`` is
the offerer's access segment, ``remote`` the answerer's) or the end-to-end one (``e2e``)::

    a=curr:qos local none
    a=curr:qos remote none
    a=des:qos mandatory local sendrecv
    a=des:qos mandatory remote sendrecv

The answer states the same segments from the answerer's side: the offerer's ``local`` is its ``remote``,
and directions turn round (the offerer's ``send`` is the answerer's ``recv``). The focus reserves nothing
in an access network, so its own segment is met at once (``a=curr:qos local sendrecv``, desired
``mandatory``); the offerer's segment is what the offerer reported, and while a mandatory one is unmet the
answer asks for a confirmation (``a=conf:qos remote ...``): the phone sends an UPDATE once its resources
are reserved. An end-to-end status is the offerer's, turned round. Pure text work on the SDP bodies the
offer/answer code produced; lines that are not about ``qos`` are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["PreconditionAnswer", "SectionStatus", "answer_preconditions", "offers_preconditions"]

_CURR = re.compile(r"a=curr:qos (local|remote|e2e) (none|send|recv|sendrecv)\s*$", re.IGNORECASE)
_DES = re.compile(
    r"a=des:qos (mandatory|optional|none|failure|unknown) (local|remote|e2e) (none|send|recv|sendrecv)\s*$",
    re.IGNORECASE,
)
_QOS_LINE = re.compile(r"a=(curr|des|conf):qos ", re.IGNORECASE)
_STRENGTH_ORDER = ("none", "optional", "mandatory")
_FLIP = {"send": "recv", "recv": "send", "sendrecv": "sendrecv", "none": "none"}
_MIRROR = {"local": "remote", "remote": "local", "e2e": "e2e"}


def _covers(current: str, desired: str) -> bool:
    return desired == "none" or current == "sendrecv" or current == desired


@dataclass(slots=True)
class SectionStatus:
    """One media section's status table, from the answerer's (the focus's) side."""

    current: dict[str, str] = field(default_factory=dict)  # status type -> direction
    desired: dict[str, tuple[str, str]] = field(default_factory=dict)  # status type -> (strength, direction)

    @property
    def met(self) -> bool:
        """Every mandatory desired status is covered by the current one."""
        return all(
            strength != "mandatory" or _covers(self.current.get(kind, "none"), direction)
            for kind, (strength, direction) in self.desired.items()
        )

    def lines(self) -> list[str]:
        out = [f"a=curr:qos {kind} {d}" for kind, d in sorted(self.current.items())]
        out += [f"a=des:qos {s} {kind} {d}" for kind, (s, d) in sorted(self.desired.items())]
        for kind, (strength, direction) in sorted(self.desired.items()):
            if (
                kind != "local"
                and strength == "mandatory"
                and not _covers(self.current.get(kind, "none"), direction)
            ):
                out.append(f"a=conf:qos {kind} {direction}")  # tell us when your resources are ready
        return out


@dataclass(frozen=True, slots=True)
class PreconditionAnswer:
    body: bytes
    met: bool  # every mandatory precondition of every section is met


def _sections(text: str) -> tuple[list[str], list[list[str]]]:
    lines = text.replace("\r\n", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    head: list[str] = []
    media: list[list[str]] = []
    for line in lines:
        if line.startswith("m="):
            media.append([line])
        elif media:
            media[-1].append(line)
        else:
            head.append(line)
    return head, media


def _status(section: list[str]) -> SectionStatus | None:
    """The offer's status lines in *section*, mirrored to the answerer's side; None without any."""
    seen = False
    status = SectionStatus()
    for line in section:
        if m := _CURR.match(line):
            seen = True
            kind, direction = m.group(1).lower(), m.group(2).lower()
            if kind != "remote":  # the offerer's view of our segment is no news to us: ours is met
                status.current[_MIRROR[kind]] = _FLIP[direction]
        elif m := _DES.match(line):
            seen = True
            strength, kind, direction = m.group(1).lower(), m.group(2).lower(), m.group(3).lower()
            if strength not in _STRENGTH_ORDER:  # failure / unknown: we state our own wish instead
                strength = "none"
            status.desired[_MIRROR[kind]] = (strength, _FLIP[direction])
    if not seen:
        return None
    if "e2e" not in status.current and "e2e" not in status.desired:
        status.current["local"] = "sendrecv"  # the focus's own segment: nothing to reserve
        wish = status.desired.get("local", ("none", "sendrecv"))[1]
        status.desired["local"] = ("mandatory", "sendrecv" if wish == "none" else wish)
        status.current.setdefault("remote", "none")
    else:
        status.current.setdefault("e2e", "none")
    return status


def offers_preconditions(offer: bytes) -> bool:
    """The offer carries QoS status lines in at least one media section."""
    _head, media = _sections(offer.decode("utf-8", "replace"))
    return any(_status(section) is not None for section in media)


def answer_preconditions(offer: bytes, answer: bytes) -> PreconditionAnswer:
    """*answer* with the focus's status lines in each media section whose offer section had some, and
    whether every mandatory precondition is now met (the 200 to the INVITE may go)."""
    _offer_head, offer_media = _sections(offer.decode("utf-8", "replace"))
    head, media = _sections(answer.decode("utf-8", "replace"))
    met = True
    for index, section in enumerate(media):
        section[:] = [line for line in section if not _QOS_LINE.match(line)]
        status = _status(offer_media[index]) if index < len(offer_media) else None
        if status is None or section[0].split(" ", 2)[1:2] == ["0"]:  # no preconditions, or rejected
            continue
        section.extend(status.lines())
        met = met and status.met
    lines = head + [line for section in media for line in section]
    return PreconditionAnswer(("\r\n".join(lines) + "\r\n").encode(), met)
