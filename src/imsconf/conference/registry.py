"""The directory of live conferences: unguessable ids, look-up by id or URI, removal on close."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Iterator

from .errors import PolicyError
from .events import ConferenceClosed, ConferenceEvent
from .model import Conference, ConferencePolicy

__all__ = ["ID_BYTES", "ConferenceRegistry", "uri_key"]

ID_BYTES = 16  # 128 random bits (>= 80 required): a conference URI cannot be guessed
_URI_RE = re.compile(r"^<?([A-Za-z][A-Za-z0-9+\-.]*):(?:([^@;?>]*)@)?(\[[^\]]+\]|[^;?>:]+)(?::([0-9]+))?")


def uri_key(uri: str) -> tuple[str, str, str]:
    """The part of a SIP URI that names a conference: (user, lower-cased host, port or "").

    The scheme is left out (``sip:`` and ``sips:`` name the same resource; whether plain signalling is
    acceptable is the focus's decision), and so are URI parameters such as ``;isfocus`` and headers.
    """
    m = _URI_RE.match(uri.strip())
    if m is None:
        raise ValueError(f"not a URI: {uri!r}")
    _, user, host, port = m.groups()
    return (user or "", host.lower(), port or "")


class ConferenceRegistry:
    """Live conferences by id and by URI.

    ``domain`` and ``scheme`` build the URI of ad hoc conferences (``sips:conf-<id>@<domain>``); a booked
    conference brings its own URI.  ``token`` makes ids (``secrets.token_urlsafe`` by default; tests may
    pass a deterministic one).
    """

    def __init__(
        self,
        domain: str,
        *,
        scheme: str = "sips",
        max_conferences: int | None = None,
        token: Callable[[], str] | None = None,
    ) -> None:
        self.domain = domain
        self.scheme = scheme
        self.max_conferences = max_conferences
        self._token = token or (lambda: secrets.token_urlsafe(ID_BYTES))
        self._by_id: dict[str, Conference] = {}
        self._by_uri: dict[tuple[str, str, str], Conference] = {}

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Iterator[Conference]:
        return iter(tuple(self._by_id.values()))

    def create(
        self,
        now: float,
        *,
        owner: str | None = None,
        policy: ConferencePolicy | None = None,
        uri: str | None = None,
    ) -> Conference:
        """A new ACTIVE conference.  Raises ``PolicyError(503)`` at capacity, ``(409)`` for a URI in use."""
        if self.max_conferences is not None and len(self._by_id) >= self.max_conferences:
            raise PolicyError("too many conferences", 503)
        if uri is not None and uri_key(uri) in self._by_uri:
            raise PolicyError(f"conference URI {uri} is in use", 409)
        for _ in range(8):
            conf_id = self._token()
            if conf_id and conf_id not in self._by_id:
                break
        else:  # pragma: no cover - needs a broken token source
            raise RuntimeError("could not draw a fresh conference id")
        conf_uri = uri if uri is not None else f"{self.scheme}:conf-{conf_id}@{self.domain}"
        if uri_key(conf_uri) in self._by_uri:  # pragma: no cover - same id twice
            raise RuntimeError("conference URI collision")
        conf = Conference(conf_id, conf_uri, owner, policy or ConferencePolicy(), now)
        self._by_id[conf_id] = conf
        self._by_uri[uri_key(conf_uri)] = conf
        return conf

    def get(self, conf_id: str) -> Conference | None:
        return self._by_id.get(conf_id)

    def by_uri(self, uri: str) -> Conference | None:
        """The conference named by ``uri`` (a Request-URI or To URI), or None."""
        try:
            return self._by_uri.get(uri_key(uri))
        except ValueError:
            return None

    def remove(self, conf_id: str) -> Conference | None:
        conf = self._by_id.pop(conf_id, None)
        if conf is not None:
            self._by_uri.pop(uri_key(conf.uri), None)
        return conf

    def apply(self, events: Iterable[ConferenceEvent]) -> None:
        """Forget conferences whose ``ConferenceClosed`` is among ``events``."""
        for ev in events:
            if isinstance(ev, ConferenceClosed):
                self.remove(ev.conf_id)
