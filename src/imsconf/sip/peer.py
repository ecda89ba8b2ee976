"""Where a message came from or goes to (shared by the sans-I/O core and the transport adapters)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Peer:
    """A transport address.  ``conn`` names a stream connection (None for UDP or "open one")."""

    transport: str  # "udp" | "tcp" | "tls"
    host: str
    port: int
    conn: int | None = None
    local: tuple[str, int] | None = field(default=None, compare=False)

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    @property
    def secure(self) -> bool:
        return self.transport == "tls"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}:{host}:{self.port}"
