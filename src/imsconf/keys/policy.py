"""Downlink keying and rekeying policies of a conference, and the manager's timing knobs.

``DownlinkMode`` says how the mixer keys what it *sends*:

* ``per-participant``: every outgoing stream is under the receiving participant's own key.  A leaver's key
  only ever protected its own leg, so nothing ever needs rekeying; costs one SRTP protect per leg per tick.
* ``group``: the K active speakers get their own N-1 mix under their own key; the common listener mix is
  encrypted once under the conference *group key* (on its own SSRC) and the same packet goes to every
  listener that holds that key.  Membership changes then call for rekeying, governed by ``RekeyPolicy``.

``RekeyPolicy`` (parsed from the strings an operator writes):

* ``on-join``: a join starts a new key epoch before the joiner gets any group key (backward security: a
  joiner cannot decrypt common-stream packets captured before it joined).  Leavers keep being able to
  decrypt captured common-stream packets until some later rekey (no forward security).
* ``on-leave``: a leave starts a new epoch (forward security: once every remaining listener has switched,
  the leaver's old key decrypts nothing sent afterwards).  A joiner is handed the *current* key, so it can
  decrypt common-stream packets captured since that epoch began (no backward security).
* ``on-join,on-leave`` (also written ``both``; the default for ``group``): both properties.
* ``interval:T`` (``T`` in seconds, or ``250ms``): joins and leaves are *batched*: at most one rekey starts
  per ``T`` seconds; a change arriving sooner is rekeyed at the next allowed instant.  Security cost:
  between a leave and that rekey (up to ``T`` plus the time the listeners take to switch) the leaver still
  holds the current group key.  It is gone from the media plane at once (the mixer stops sending to it), but
  anyone who captures the common stream on the network - the leaver included - can decrypt it with the old
  key until every listener has switched.  Joiners are *not* given the current key: they stay on their own
  key until the next rekey, so backward security is kept at the price of up to ``T`` seconds of
  per-participant encryption for them.
* ``never``: one group key for the conference's whole life.  **Warning**: a leaver can decrypt every
  common-stream packet sent after it left, and a joiner every packet sent before it joined, for as long
  as the conference lasts.  Only for closed groups whose membership is trusted as a whole.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from enum import StrEnum

from .authority import SUITES

__all__ = ["DownlinkMode", "KeyManagerConfig", "PolicySyntaxError", "RekeyPolicy"]

MAX_INTERVAL = 86_400.0


class PolicySyntaxError(ValueError):
    """A policy string or setting is invalid (a configuration or booking fault; an action the conference
    policy forbids is :class:`imsconf.conference.errors.PolicyError` instead)."""


class DownlinkMode(StrEnum):
    PER_PARTICIPANT = "per-participant"
    GROUP = "group"

    @classmethod
    def parse(cls, text: str) -> DownlinkMode:
        try:
            return cls(text.strip().lower())
        except ValueError:
            raise PolicySyntaxError(
                f"unknown downlink mode {text!r} (expected 'per-participant' or 'group')"
            ) from None

    def __str__(self) -> str:
        return self.value


_INTERVAL_RE = re.compile(r"^interval:\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s)?$")


@dataclass(frozen=True, slots=True)
class RekeyPolicy:
    """When a new group-key epoch starts.  Build with :meth:`parse` or the class methods."""

    on_join: bool
    on_leave: bool
    interval: float | None = None  # seconds; when set, join and leave are batched: at most 1 rekey per T

    def __post_init__(self) -> None:
        if self.interval is not None:
            if not math.isfinite(self.interval) or self.interval <= 0:
                raise PolicySyntaxError("rekey interval must be a positive number of seconds")
            if self.interval > MAX_INTERVAL:
                raise PolicySyntaxError(f"rekey interval above {MAX_INTERVAL:.0f} s")
            if not (self.on_join and self.on_leave):
                raise PolicySyntaxError("an interval policy batches both joins and leaves")

    @classmethod
    def both(cls) -> RekeyPolicy:
        return cls(True, True)

    @classmethod
    def never(cls) -> RekeyPolicy:
        return cls(False, False)

    @classmethod
    def every(cls, seconds: float) -> RekeyPolicy:
        return cls(True, True, float(seconds))

    @classmethod
    def parse(cls, text: str) -> RekeyPolicy:
        """``on-join``, ``on-leave``, ``on-join,on-leave`` / ``both``, ``interval:T`` (``T`` s or ``Tms``),
        ``never``.  Raises :class:`PolicySyntaxError`."""
        t = text.strip().lower()
        if t in ("never", "none"):
            return cls.never()
        if t in ("both", "on-join,on-leave", "on-leave,on-join", "on-join+on-leave", "on-join-leave"):
            return cls.both()
        if t == "on-join":
            return cls(True, False)
        if t == "on-leave":
            return cls(False, True)
        m = _INTERVAL_RE.match(t)
        if m:
            value = float(m.group(1))
            if m.group(2) == "ms":
                value /= 1000.0
            return cls.every(value)
        raise PolicySyntaxError(
            f"unknown rekey policy {text!r} (expected on-join, on-leave, on-join,on-leave, "
            "interval:T or never)"
        )

    @property
    def rekeys(self) -> bool:
        return self.on_join or self.on_leave

    @property
    def batched(self) -> bool:
        return self.interval is not None

    def __str__(self) -> str:
        if self.interval is not None:
            return f"interval:{self.interval:g}"
        if self.on_join and self.on_leave:
            return "on-join,on-leave"
        if self.on_join:
            return "on-join"
        if self.on_leave:
            return "on-leave"
        return "never"


@dataclass(frozen=True, slots=True)
class KeyManagerConfig:
    """Timing and pacing of a :class:`~imsconf.keys.manager.GroupKeyManager` (seconds).

    * ``answer_timeout``: an ``OfferKey`` whose re-INVITE/UPDATE got no final answer by then counts as
      refused.  The focus should report a SIP timeout as ``KeyAnswerReceived(accepted=False)`` sooner.
    * ``confirm_timeout``: after the answer, how long the mixer has to report ``KeyUseConfirmed`` (an SRTCP
      receiver report for the epoch's SSRC with low loss).  Must exceed the RTCP report interval (RFC 3550:
      5 s minimum by default, so the default is 12 s).
    * ``demote_timeout``: how long a ``DemoteListener`` may take before the listener is dropped.
    * ``max_offers_per_tick`` / ``tick``: spread the re-INVITE burst of a rekey over ticks (None: all at
      once).  Spreading lengthens the window between a leave and the last switch.
    * ``confirm_rekeys``: require fresh evidence after every rekey, not only at promotion.
    """

    suite: str = "AES_CM_128_HMAC_SHA1_80"
    answer_timeout: float = 8.0
    confirm_timeout: float = 12.0
    demote_timeout: float = 8.0
    max_offers_per_tick: int | None = None
    tick: float = 0.02
    confirm_rekeys: bool = True

    def __post_init__(self) -> None:
        if self.suite not in SUITES:
            raise PolicySyntaxError(f"unsupported SRTP suite {self.suite!r}")
        for name in ("answer_timeout", "confirm_timeout", "demote_timeout", "tick"):
            v = getattr(self, name)
            if not math.isfinite(v) or v <= 0:
                raise PolicySyntaxError(f"{name} must be a positive number of seconds")
        if self.max_offers_per_tick is not None and self.max_offers_per_tick < 1:
            raise PolicySyntaxError("max_offers_per_tick must be at least 1")
