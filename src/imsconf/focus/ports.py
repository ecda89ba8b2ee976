"""The seams between the focus core (:mod:`.core`) and its feature parts.

Each feature part (keying, planned dial-in, presentation, floors, dial-out, conference control) gets the
leg table (:mod:`.legs`) and a :class:`FocusPort` in its constructor and implements :class:`Feature`; none
imports the core. :class:`FeatureBase` is the complete null implementation: a part overrides the hooks it
needs. The runtime (``imsconf.app.focus_wiring``) builds the parts; the core holds them in
:class:`imsconf.focus.parts.FocusParts` and drives every one through the same hooks, in that order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from imsconf.conference.events import ConferenceEvent
from imsconf.conference.model import Conference
from imsconf.conference.participant import MediaInfo
from imsconf.media.events import MediaEvent
from imsconf.sip.endpoint import SipEndpoint

from .legs import Leg

__all__ = ["ByeWatcher", "Feature", "FeatureBase", "FocusPort"]

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

    def floor_changed(self, conf_id: str) -> None:
        """The holders of a floor of the conference changed (from the floors part, to the others)."""
        ...

    def message_count(self, conf_id: str) -> int:
        """Instant messages relayed in the conference so far, pager mode and MSRP (``FocusParts``)."""
        ...

    def in_chat(self, leg: Leg) -> bool:
        """The leg takes part in the conference's chat: an MSRP stream, or pager messages (``FocusParts``)."""
        ...


class Feature(Protocol):
    """One feature part of the focus, driven by the core through these hooks only."""

    def on_event(self, ep: SipEndpoint, conf: Conference, ev: ConferenceEvent, now: float) -> None:
        """A roster event of *conf*, in the order the conference model produced it."""
        ...

    def on_ack(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        """The leg's INVITE transaction is complete (:meth:`FocusPort.leg_established`)."""
        ...

    def on_media_event(self, ev: MediaEvent) -> None:
        """An event of the mixer (DTMF, key use); no endpoint: work that needs one goes to the inbox."""
        ...

    def forget(self, leg: Leg, now: float) -> None:
        """The leg is being released (BYE either way, failure, conference end)."""
        ...

    def next_deadline(self) -> float | None: ...

    def handle_timer(self, ep: SipEndpoint, now: float) -> None: ...


class FeatureBase:
    """A feature part that does nothing on every hook; parts subclass it and override what they use."""

    def on_event(self, ep: SipEndpoint, conf: Conference, ev: ConferenceEvent, now: float) -> None:
        return None

    def on_ack(self, ep: SipEndpoint, leg: Leg, now: float) -> None:
        return None

    def on_media_event(self, ev: MediaEvent) -> None:
        return None

    def forget(self, leg: Leg, now: float) -> None:
        return None

    def next_deadline(self) -> float | None:
        return None

    def handle_timer(self, ep: SipEndpoint, now: float) -> None:
        return None
