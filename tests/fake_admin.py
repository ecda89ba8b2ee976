"""An in-memory :class:`imsconf.focus.admin.ConferenceAdmin` for the route tests."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

from imsconf.focus.admin import (
    ConferenceView,
    InvalidTarget,
    OperatorEvent,
    ParticipantView,
    RtcpView,
    UnknownConference,
    UnknownParticipant,
)

T0 = datetime(2027, 3, 1, 12, 0, 0, tzinfo=UTC)


def participant(pid: str, uri: str, **changes: object) -> ParticipantView:
    view = ParticipantView(
        id=pid,
        uri=uri,
        display=None,
        role="participant",
        joined=T0,
        transport="tls",
        codec="PCMU",
        srtp="AES_CM_128_HMAC_SHA1_80",
        key="sdes",
        muted=False,
        deaf=False,
        on_hold=False,
        speaking=False,
        floor=False,
        rtcp=RtcpView(loss=0.01, jitter_ms=2.5),
    )
    return dataclasses.replace(view, **changes)  # type: ignore[arg-type]


def conference(cid: str, *participants: ParticipantView) -> ConferenceView:
    return ConferenceView(
        id=cid,
        uri=f"sip:{cid}@example.com",
        created=T0,
        owner=participants[0].uri if participants else None,
        participants=participants,
        locked=False,
        downlink="per-leg",
        key_epoch=None,
    )


class FakeAdmin:
    def __init__(self, *conferences: ConferenceView) -> None:
        self.confs = {c.id: c for c in conferences}
        self.sinks: list[Callable[[OperatorEvent], None]] = []
        self.calls: list[tuple[str, ...]] = []

    def _conf(self, cid: str) -> ConferenceView:
        if cid not in self.confs:
            raise UnknownConference(cid)
        return self.confs[cid]

    def _update(self, cid: str, pid: str, **changes: bool) -> ParticipantView:
        conf = self._conf(cid)
        for i, p in enumerate(conf.participants):
            if p.id == pid:
                new = dataclasses.replace(p, **changes)  # type: ignore[arg-type]
                people = (*conf.participants[:i], new, *conf.participants[i + 1 :])
                self.confs[cid] = dataclasses.replace(conf, participants=people)
                return new
        raise UnknownParticipant(pid)

    def conferences(self) -> tuple[ConferenceView, ...]:
        return tuple(self.confs.values())

    def conference(self, conference_id: str) -> ConferenceView:
        return self._conf(conference_id)

    def set_muted(self, conference_id: str, participant_id: str, muted: bool) -> ParticipantView:
        return self._update(conference_id, participant_id, muted=muted)

    def set_deaf(self, conference_id: str, participant_id: str, deaf: bool) -> ParticipantView:
        return self._update(conference_id, participant_id, deaf=deaf)

    def kick(self, conference_id: str, participant_id: str) -> None:
        conf = self._conf(conference_id)
        people = tuple(p for p in conf.participants if p.id != participant_id)
        if len(people) == len(conf.participants):
            raise UnknownParticipant(participant_id)
        self.confs[conference_id] = dataclasses.replace(conf, participants=people)
        self.calls.append(("kick", conference_id, participant_id))

    def set_locked(self, conference_id: str, locked: bool) -> ConferenceView:
        self.confs[conference_id] = dataclasses.replace(self._conf(conference_id), locked=locked)
        return self.confs[conference_id]

    def end(self, conference_id: str) -> None:
        self._conf(conference_id)
        del self.confs[conference_id]
        self.calls.append(("end", conference_id))

    def invite(self, conference_id: str, uri: str) -> None:
        self._conf(conference_id)
        if not uri.startswith(("sip:", "sips:")) or "@" not in uri:
            raise InvalidTarget(f"{uri[:40]!r} is not a SIP or SIPS URI")
        self.calls.append(("invite", conference_id, uri))

    def watch(self, sink: Callable[[OperatorEvent], None]) -> Callable[[], None]:
        self.sinks.append(sink)
        return lambda: self.sinks.remove(sink)

    def emit(self, event: OperatorEvent) -> None:
        for sink in list(self.sinks):
            sink(event)
