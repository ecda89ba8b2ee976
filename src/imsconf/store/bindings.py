"""The registrar's bindings as stored: :class:`StoredBinding` (wall-clock times) and the
:class:`BindingsBackend` seam, implemented by the SQLite file
(:class:`imsconf.app.registrations.BindingStore`) and PostgreSQL
(:class:`imsconf.store.bindings_pg.PgBindingStore`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

from imsconf.registrar.bindings import Binding
from imsconf.sip.errors import SipParseError
from imsconf.sip.peer import Peer
from imsconf.sip.uri import SipUri

__all__ = ["BindingsBackend", "StoredBinding"]


@dataclass(frozen=True, slots=True)
class StoredBinding:
    """One row: a binding with wall-clock times."""

    aor: str
    contact: str
    expires_wall: float
    q: int
    q_given: bool
    call_id: str
    cseq: int
    path: tuple[str, ...]
    transport: str
    host: str
    port: int
    registered_wall: float

    @classmethod
    def of(cls, b: Binding, offset: float) -> StoredBinding:
        """*offset*: wall clock minus the registrar's clock."""
        return cls(
            b.aor, str(b.uri), b.expires_at + offset, b.q, b.q_given, b.call_id, b.cseq, b.path,
            b.flow.transport, b.flow.host, b.flow.port, b.registered_at + offset,
        )  # fmt: skip

    def binding(self, offset: float) -> Binding | None:
        """Back to the registrar's clock; None for a row that no longer parses."""
        try:
            uri = SipUri.parse(self.contact)
        except SipParseError:
            return None
        return Binding(
            aor=self.aor,
            uri=uri,
            expires_at=self.expires_wall - offset,
            q=self.q,
            call_id=self.call_id,
            cseq=self.cseq,
            path=self.path,
            flow=Peer(self.transport, self.host, self.port),
            registered_at=self.registered_wall - offset,
            q_given=self.q_given,
        )


class BindingsBackend(Protocol):
    """Where the registrar's bindings survive a restart; called from one worker thread."""

    where: str  # the file or the database, for logs (never a password)

    def load(self, wall_now: float) -> list[StoredBinding]:
        """Every binding still live at *wall_now*; expired rows are deleted."""
        ...

    def replace(self, changes: Iterable[tuple[str, list[StoredBinding]]]) -> None:
        """For each (aor, rows): the AoR's bindings become exactly *rows* (one transaction)."""
        ...

    def close(self) -> None: ...
