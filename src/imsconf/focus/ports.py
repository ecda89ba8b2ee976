"""The seams between the focus core (:mod:`.core`) and its feature parts.

Each feature part (keying, planned dial-in, presentation, floors, dial-out, conference control) gets the
leg table (:mod:`.legs`) and a :class:`FocusPort` in its constructor and implements :class:`Feature`; none
imports the core.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from imsconf.conference.events import ConferenceEvent
from imsconf.conference.model import Conference
from imsconf.conference.participant import MediaInfo
from imsconf.sip.endpoint import SipEndpoint

from .legs import Leg

__all__ = ["ByeWatcher", "Feature", "FocusPort"]

ByeWatcher = Callable[[int, str, float], None]
"""``(status, reason, now)``: the final answer to a BYE of the focus."""


class FocusPort(Protocol):
    """What a feature part may ask of the focus core."""

    def end(self, ep: SipEndpoint, leg: Leg, reason: str, now: float, *, send_bye: bool) -> None:
        """End a leg: BYE (or CANCEL while it rings) when *send_bye*, leave the roster, release it."""
        ...

    def send_bye(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        """Only the SIP side of ending: BYE in the leg's dialog, or CANCEL while a dial-out rings."""
        ...

    def apply(self, ep: SipEndpoint, conf: Conference, events: list[ConferenceEvent], now: float) -> None:
        """Hand conference events to every part (event package, floors, video) and act on them."""
        ...

    def media_info(self, leg: Leg) -> MediaInfo: ...

    def leg_established(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        """The leg's INVITE transaction is complete (ACK received, or our dial-out answered and ACKed)."""
        ...


class Feature(Protocol):
    """One feature part of the focus, driven by the core."""

    def forget(self, leg: Leg, now: float) -> None:
        """The leg is being released (BYE either way, failure, conference end)."""
        ...

    def next_deadline(self) -> float | None: ...

    def handle_timer(self, ep: SipEndpoint, now: float) -> None: ...
