"""The focus's settings (what the runtime hands it from its own settings), and their defaults."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from imsconf.conference.model import ConferencePolicy
from imsconf.sdp.codecs import PREFERENCE
from imsconf.sdp.offer_answer import AnswerPolicy
from imsconf.sip.subscription import ExpiresPolicy

from .media_session import OFFER_CODECS

__all__ = ["DEFAULT_SE", "MIN_SE", "NODE_ID_RE", "FocusConfig"]

# a node id: what a proxy in front (docs/decisions/0018-kamailio-front.md) reads from the user part of an ad
# hoc conference URI, conf-<node>-<random>, to route to the node that hosts it; no "-" (the delimiter)
NODE_ID_RE = re.compile(r"^[a-z0-9]{1,16}$")

MIN_SE = 90  # RFC 4028 §4 minimum Session-Expires
DEFAULT_SE = 1800


@dataclass(slots=True)
class FocusConfig:
    domain: str = "localhost"
    host: str = ""  # the host of ad hoc conference URIs (and so of the focus's Contact); empty: the domain
    factory_user: str = "conference-factory"
    # this node's id in a cluster: ad hoc conference ids (so URIs) are minted as <node>-<random>; empty: no
    # hint, the URIs of a single server (conf-<random>)
    node_id: str = ""
    allow_plain_rtp: bool = False
    allow_sdes_over_insecure: bool = False
    media_host: str = "127.0.0.1"
    session_expires: int = DEFAULT_SE
    policy: ConferencePolicy = field(default_factory=ConferencePolicy)
    dial_timeout: float = 60.0  # a dial-out without a final answer by then is cancelled
    # the first Route of every request the focus originates out of dialog (IMS: the S-CSCF); None: none
    outbound_proxy: str | None = None
    max_uri_list: int = 32
    # NOTIFYs of the conference package carry the roster: by default a subscription must arrive over TLS,
    # unless SDES over insecure signalling is allowed anyway (the relaxation for test peers without TLS).
    allow_insecure_subscriptions: bool | None = None
    # DTMF keys with which an in-conference participant toggles its own mute; empty: none
    dtmf_mute_toggle: str = "*6"
    subscription_expires: ExpiresPolicy = field(
        default_factory=lambda: ExpiresPolicy.for_package("conference")
    )
    # conference instant messages (pager mode, .messaging): a MESSAGE must arrive over TLS unless this is
    # set; the body cap (413 above it) and each participant's rate (token bucket: per second, burst)
    allow_insecure_messages: bool = False
    max_message_bytes: int = 8192
    message_rate: float = 5.0
    message_burst: int = 10
    # audio codecs, our preference first (imsconf.sdp.codecs): the answer takes the first one offered whose
    # a=fmtp we can honour, our offers (dial-out) list them in this order
    audio_codecs: tuple[str, ...] = OFFER_CODECS
    # the codecs this installation can run: a conference's own preference (a booking's) is cut down to them
    runnable_codecs: tuple[str, ...] = PREFERENCE

    def codecs_for(self, policy: ConferencePolicy) -> tuple[str, ...]:
        """The audio codec preference of a conference's legs, answers and offers alike: its own (a
        booking's) less the codecs this installation cannot run, else the ``audio_codecs`` setting."""
        own = tuple(c for c in policy.audio_codecs if c in self.runnable_codecs)
        return own or self.audio_codecs

    @property
    def conference_host(self) -> str:
        return self.host or self.domain

    def conference_ids(self, random_bytes: int) -> Callable[[], str]:
        """The maker of ad hoc conference ids: *random_bytes* of randomness, behind the node id if set."""
        if not self.node_id:
            return lambda: secrets.token_urlsafe(random_bytes)
        node = self.node_id
        return lambda: f"{node}-{secrets.token_urlsafe(random_bytes)}"

    @property
    def insecure_subscriptions_allowed(self) -> bool:
        if self.allow_insecure_subscriptions is not None:
            return self.allow_insecure_subscriptions
        return self.allow_sdes_over_insecure

    def answer_policy(self, secure_signalling: bool) -> AnswerPolicy:
        return AnswerPolicy(
            allow_plain_rtp=self.allow_plain_rtp,
            require_srtp=not self.allow_plain_rtp,
            secure_signalling=secure_signalling,
            allow_sdes_over_insecure=self.allow_sdes_over_insecure,
            codecs=self.audio_codecs,
        )
