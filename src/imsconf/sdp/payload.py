"""An RTP payload format as ``a=rtpmap`` names it (RFC 8866 §6.6), shared by the offer/answer code and the
codec negotiation (:mod:`.codecs`)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TELEPHONE_EVENT", "Codec"]

TELEPHONE_EVENT = "telephone-event"  # RFC 4733


@dataclass(frozen=True, slots=True)
class Codec:
    """An RTP payload format: encoding name, payload type, RTP clock rate, channels."""

    name: str
    payload_type: int
    clock_rate: int = 8000
    channels: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.payload_type <= 127:
            raise ValueError(f"payload type out of range: {self.payload_type}")

    def rtpmap(self) -> str:
        value = f"{self.payload_type} {self.name}/{self.clock_rate}"
        return value if self.channels == 1 else f"{value}/{self.channels}"
