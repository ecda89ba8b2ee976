"""The feature parts one focus runs, as the runtime built them (``imsconf.app.focus_wiring``).

The core (:mod:`.core`) calls a few parts by name for what only that part does (SUBSCRIBE and REFER,
dial-out, the dial-in of a booked conference, the SDP hooks of floors, video and chat, the focus's own key
re-INVITEs) and drives every part through the :class:`.ports.Feature` hooks, in the order of
:attr:`FocusParts.features`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .chat import ChatPart, FocusChat
from .conference_control import ConferenceControl, ControlPort
from .dialout import Dialer
from .floor_feature import FloorPart, FocusFloor
from .keying import FocusKeying
from .legs import Inbox, Leg, LegTable
from .messaging import Messaging
from .operator import ConferenceOperator
from .planned import PlannedConferences
from .ports import Feature
from .presentation import FocusPresentation
from .recovery import MixerRecovery
from .windows import BookingWindows

__all__ = ["FocusParts", "PartsFactory"]


@dataclass(frozen=True, slots=True)
class FocusParts:
    control: ConferenceControl  # SUBSCRIBE/REFER and the event packages
    dialer: Dialer
    floor: FocusFloor
    presentation: FocusPresentation
    keying: FocusKeying
    operator: ConferenceOperator  # live control by an operator, its views and events, usage records
    messaging: Messaging  # MESSAGE to the conference URI: relayed to the participants (pager mode)
    planned: PlannedConferences | None = None  # booked conferences, when the focus serves them
    recovery: MixerRecovery | None = None  # legs moved to a new mixer after the separate one was lost
    windows: BookingWindows | None = None  # booked windows: dial-out at the start, prompt, close at the end
    chat: FocusChat | None = None  # session-mode IM: the conference's MSRP switch
    features: tuple[Feature, ...] = field(init=False)

    def __post_init__(self) -> None:
        # roster events reach the event package first, then the floors, then video; the lobby forgets a
        # leg before its keys go
        ordered: list[Feature] = [self.control, self.dialer]
        if self.planned is not None:
            ordered.append(self.planned)
        if self.windows is not None:
            ordered.append(self.windows)
        ordered += [FloorPart(self.floor), self.presentation, self.keying, self.operator]
        if self.chat is not None:
            ordered.append(ChatPart(self.chat))
        if self.recovery is not None:
            ordered.append(self.recovery)
        ordered.append(self.messaging)
        object.__setattr__(self, "features", tuple(ordered))

    def message_count(self, conf_id: str) -> int:
        """Instant messages relayed in the conference: pager mode (:class:`Messaging`) plus MSRP."""
        chat = self.chat.message_count(conf_id) if self.chat is not None else 0
        return self.messaging.message_count(conf_id) + chat

    def in_chat(self, leg: Leg) -> bool:
        """The leg has an MSRP message stream or receives the conference's pager messages."""
        return self.messaging.receives(leg) or (self.chat is not None and self.chat.negotiated(leg.leg_id))


PartsFactory = Callable[[ControlPort, LegTable, Inbox], FocusParts]
"""Builds the parts of one focus from its port, its leg table and its inbox (called once, by the core's
constructor)."""
