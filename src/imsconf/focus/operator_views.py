"""Snapshots of live conferences for the operator (:mod:`.admin` views) and the usage records of legs and
conferences (:mod:`imsconf.usage.records`), built from the conference model, the legs and the keying.

Pure functions over values the operator part (:mod:`.operator`) hands in: no sending, no clock (times are
the focus's ``now`` turned into UTC with the wall-clock offset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from imsconf.conference.eventinfo import KeyScope
from imsconf.conference.model import Conference
from imsconf.conference.participant import Participant, ParticipantStatus
from imsconf.keys.policy import DownlinkMode
from imsconf.media.events import LegStats
from imsconf.media.rtp import ReportBlock

from .admin import ConferenceView, ParticipantView, RtcpView
from .legs import Leg

__all__ = ["LegFacts", "MixState", "conference_view", "leg_facts", "participant_view", "rtcp_view", "utc"]


def utc(t: float, offset: float) -> datetime:
    """The focus clock's *t* as UTC wall time (*offset*: POSIX time minus the focus clock)."""
    return datetime.fromtimestamp(t + offset, UTC)


@dataclass(slots=True)
class MixState:
    """What the operator part keeps of one leg: its mix flags, whether it speaks, its last RTCP report."""

    muted: bool = False
    deaf: bool = False
    speaking: bool = False
    rtcp: RtcpView = field(default_factory=RtcpView)
    dtmf: str = ""  # the last keys pressed, for the mute toggle


def rtcp_view(block: ReportBlock, clock_rate: int) -> RtcpView:
    """An RTCP receiver report block as loss (0..1) and jitter in ms (*clock_rate*: the codec's)."""
    return RtcpView(loss=block.fraction_lost / 256, jitter_ms=block.jitter * 1000 / clock_rate)


@dataclass(frozen=True, slots=True)
class LegFacts:
    """The media facts of a leg at one moment (for a view, or for the usage record when it ends)."""

    transport: str
    codec: str | None
    srtp: str | None
    key: str  # "sdes" | "group" | "none"
    packets_sent: int = 0
    packets_received: int = 0


def leg_facts(leg: Leg, scope: KeyScope, stats: LegStats | None = None) -> LegFacts:
    decision = leg.media.decision
    suite = decision.srtp.suite if decision is not None and decision.srtp is not None else None
    if scope is KeyScope.GROUP:
        key = "group"
    elif suite is not None:
        key = "sdes"
    else:
        key = "none"
    return LegFacts(
        transport=leg.peer.transport,
        codec=decision.codec.name if decision is not None else None,
        srtp=suite,
        key=key,
        packets_sent=(stats.sent + stats.group_sent) if stats is not None else 0,
        packets_received=stats.received if stats is not None else 0,
    )


def participant_view(
    p: Participant, facts: LegFacts | None, mix: MixState, *, floor: bool, offset: float, chat: bool = False
) -> ParticipantView:
    return ParticipantView(
        id=p.participant_id,
        uri=p.user,
        display=p.display,
        role=p.role.value,
        joined=utc(p.joined_at, offset),
        transport=facts.transport if facts is not None else "udp",
        codec=facts.codec if facts is not None else None,
        srtp=facts.srtp if facts is not None else None,
        key=facts.key if facts is not None else "none",
        muted=mix.muted,
        deaf=mix.deaf,
        on_hold=p.status is ParticipantStatus.ON_HOLD,
        speaking=mix.speaking,
        floor=floor,
        rtcp=mix.rtcp,
        chat=chat,
    )


def conference_view(
    conf: Conference,
    participants: tuple[ParticipantView, ...],
    *,
    locked: bool,
    downlink: DownlinkMode,
    key_epoch: int | None,
    offset: float,
    messages: int = 0,
) -> ConferenceView:
    return ConferenceView(
        id=conf.conf_id,
        uri=conf.uri,
        created=utc(conf.created_at, offset),
        owner=conf.owner,
        participants=participants,
        locked=locked,
        downlink="group" if downlink is DownlinkMode.GROUP else "per-leg",
        key_epoch=key_epoch,
        messages=messages,
    )
