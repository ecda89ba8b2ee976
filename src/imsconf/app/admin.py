"""The operator's control of live conferences in the running server: :class:`FocusAdmin` implements
:class:`imsconf.focus.admin.ConferenceAdmin` over the focus's operator part
(:class:`imsconf.focus.operator.ConferenceOperator`), the SIP endpoint, the loop clock and the runtime's
flush.

Every method is called on the event loop that runs the focus (the web layer's handlers run there). A
command is applied at once with the endpoint and ``now``, then the runtime is woken so that the SIP work it
made (BYE, NOTIFY, dial-out INVITE) goes out and the focus's timer is re-armed.
"""

from __future__ import annotations

from collections.abc import Callable

from imsconf.focus.admin import ConferenceView, OperatorEvent, ParticipantView
from imsconf.focus.core import Focus
from imsconf.sip.endpoint import SipEndpoint

__all__ = ["FocusAdmin"]


class FocusAdmin:
    """:class:`~imsconf.focus.admin.ConferenceAdmin` over a running focus."""

    def __init__(
        self, focus: Focus, endpoint: SipEndpoint, now: Callable[[], float], wake: Callable[[], None]
    ) -> None:
        self.focus = focus
        self.endpoint = endpoint
        self.now = now
        self.wake = wake

    def conferences(self) -> tuple[ConferenceView, ...]:
        return self.focus.operator.conferences()

    def conference(self, conference_id: str) -> ConferenceView:
        return self.focus.operator.conference(conference_id)

    def set_muted(self, conference_id: str, participant_id: str, muted: bool) -> ParticipantView:
        try:
            return self.focus.operator.set_muted(
                self.endpoint, conference_id, participant_id, muted, self.now()
            )
        finally:
            self.wake()

    def set_deaf(self, conference_id: str, participant_id: str, deaf: bool) -> ParticipantView:
        try:
            return self.focus.operator.set_deaf(
                self.endpoint, conference_id, participant_id, deaf, self.now()
            )
        finally:
            self.wake()

    def kick(self, conference_id: str, participant_id: str) -> None:
        try:
            self.focus.operator.kick(self.endpoint, conference_id, participant_id, self.now())
        finally:
            self.wake()

    def set_locked(self, conference_id: str, locked: bool) -> ConferenceView:
        return self.focus.operator.set_locked(conference_id, locked)

    def end(self, conference_id: str) -> None:
        try:
            self.focus.operator.end(self.endpoint, conference_id, self.now())
        finally:
            self.wake()

    def invite(self, conference_id: str, uri: str) -> None:
        try:
            self.focus.operator.invite(self.endpoint, conference_id, uri, self.now())
        finally:
            self.wake()

    def watch(self, sink: Callable[[OperatorEvent], None]) -> Callable[[], None]:
        return self.focus.operator.watch(sink)
