"""What the key manager asks for (*actions*) and what it is told (*events*).

Actions are carried out by the focus (SIP) and the mixer (MRFP, through the MRFC control interface); events
come back from them.  All are frozen slotted dataclasses.  Key material travels only in ``Rekey`` and
``OfferKey`` (a :class:`~imsconf.keys.authority.MasterKey`, whose repr is redacted): copy it into the SRTP
context / the SDP when the action is carried out - ``RetireEpoch`` wipes it in place.

Listener ids are the focus's leg ids (strings).
"""

from __future__ import annotations

from dataclasses import dataclass

from .authority import MasterKey

__all__ = [
    "Action",
    "DemoteDone",
    "DemoteFailed",
    "DemoteListener",
    "DropListener",
    "Event",
    "KeyAnswerReceived",
    "KeyUseConfirmed",
    "KeyUseFailed",
    "OfferKey",
    "Rekey",
    "RetireEpoch",
    "SettleListener",
    "StopListener",
    "SwitchListener",
]


# ---------------------------------------------------------------------------------------------- actions


@dataclass(frozen=True, slots=True)
class Rekey:
    """Mixer: a new epoch exists.  Create the common listener stream's SRTP send context under ``key`` with
    SSRC ``ssrc`` (a fresh sequence number / timestamp origin).  Send it to nobody yet: listeners are added
    one by one by ``SwitchListener``.  ``reason``: ``initial``, ``join``, ``leave``, ``drop``, ``batch``,
    ``request``."""

    epoch: int
    ssrc: int
    key: MasterKey
    reason: str


@dataclass(frozen=True, slots=True)
class OfferKey:
    """Focus: send ``listener`` a re-INVITE (or UPDATE where the dialog allows it) whose SDP carries a new
    ``a=crypto`` for the downlink with ``key`` (our send key towards it; its own send key is unchanged), and
    optionally ``a=ssrc:<ssrc>`` (RFC 5576).  Report ``KeyAnswerReceived(listener, epoch, accepted)`` on the
    final response (2xx: accepted; 488/491/timeout/anything else: not).  Until then the mixer keeps sending
    the listener whatever it sends it now."""

    listener: str
    epoch: int
    key: MasterKey
    ssrc: int


@dataclass(frozen=True, slots=True)
class SwitchListener:
    """Mixer: from now on send ``listener`` the common stream of ``epoch`` (ssrc ``ssrc``) whenever it is not
    an active speaker; while it is one, send it its N-1 mix under the *epoch key* on ``speaker_ssrc`` (it
    holds no other downlink key).  Stop sending it any older epoch.

    ``keep_own``: this is a promotion still on probation - keep sending the listener its own
    per-participant stream (own key, own SSRC) as well, until ``SettleListener`` (proof: stop it) or
    ``DemoteListener`` (no proof: stop the common stream instead).  A phone that accepted the new
    ``a=crypto`` but kept its old key (baresip 1.0.0) then never goes deaf.  Watch this listener's SRTCP
    receiver reports: a report block for ``ssrc`` or ``speaker_ssrc`` with low loss →
    ``KeyUseConfirmed``; clear evidence that it does not decrypt → ``KeyUseFailed`` (or let the manager's
    ``confirm_timeout`` expire)."""

    listener: str
    epoch: int
    ssrc: int
    speaker_ssrc: int
    keep_own: bool


@dataclass(frozen=True, slots=True)
class SettleListener:
    """Mixer: ``listener`` has proven it decrypts ``epoch``: stop the own-stream copy (if ``keep_own``)."""

    listener: str
    epoch: int


@dataclass(frozen=True, slots=True)
class DemoteListener:
    """Mixer: stop sending ``listener`` any group-key stream *now*; send it its own per-participant stream
    under its existing own key.  Focus: re-INVITE re-offering that own key (the one of its last own-key
    SDP; after a failed promotion the phone may still use it), cancelling or awaiting an outstanding
    ``OfferKey`` transaction first.  Report ``DemoteDone`` on 2xx, ``DemoteFailed`` otherwise."""

    listener: str
    reason: str


@dataclass(frozen=True, slots=True)
class DropListener:
    """Focus: end the listener's session (BYE); mixer: stop sending it anything.  Forward security wins over
    availability: it could not follow a key change and could not be moved back to its own key."""

    listener: str
    reason: str


@dataclass(frozen=True, slots=True)
class StopListener:
    """Mixer: the listener left: stop sending it anything at once (normally done by ``release_leg``)."""

    listener: str


@dataclass(frozen=True, slots=True)
class RetireEpoch:
    """Mixer: nobody receives ``epoch`` any more: drop its SRTP context.  The manager has wiped the key."""

    epoch: int


Action = (
    Rekey
    | OfferKey
    | SwitchListener
    | SettleListener
    | DemoteListener
    | DropListener
    | StopListener
    | RetireEpoch
)


# ----------------------------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class KeyAnswerReceived:
    """Focus: the final response to the ``OfferKey`` re-INVITE/UPDATE for ``epoch``."""

    listener: str
    epoch: int
    accepted: bool


@dataclass(frozen=True, slots=True)
class KeyUseConfirmed:
    """Mixer: the listener's receiver reports show the epoch's stream (common or speaker SSRC) received with
    low loss: it decrypts under the epoch key."""

    listener: str
    epoch: int


@dataclass(frozen=True, slots=True)
class KeyUseFailed:
    """Mixer: evidence that the listener does not decrypt the epoch's stream (e.g. 100 % loss on its SSRC
    in receiver reports, or reports only for the own stream while both are sent)."""

    listener: str
    epoch: int


@dataclass(frozen=True, slots=True)
class DemoteDone:
    """Focus: the re-INVITE moving the listener back to its own key got a 2xx."""

    listener: str


@dataclass(frozen=True, slots=True)
class DemoteFailed:
    """Focus: that re-INVITE failed (error response, timeout, dialog gone)."""

    listener: str


Event = KeyAnswerReceived | KeyUseConfirmed | KeyUseFailed | DemoteDone | DemoteFailed
