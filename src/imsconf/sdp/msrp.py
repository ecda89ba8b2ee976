"""The SDP of an MSRP session (RFC 4975 §8, RFC 7701 §6): ``m=message <port> TCP/TLS/MSRP *``.

:meth:`MessageMedia.from_media` reads an offered message stream (``a=path``, ``a=accept-types``,
``a=accept-wrapped-types``, ``a=fingerprint``, ``a=setup``); :func:`answer_message_media` writes the
answerer's section: its own ``a=path``, the types it accepts and, for TLS, ``a=fingerprint`` when the
certificate is self-signed (RFC 4975 §14.4: otherwise the peer checks it against its trust anchors).
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SdpParseError
from .session import Attribute, MediaDescription

__all__ = ["PROTO_MSRP", "PROTO_MSRPS", "MessageMedia", "answer_message_media", "offered_message_index"]

PROTO_MSRP = "TCP/MSRP"
PROTO_MSRPS = "TCP/TLS/MSRP"
MAX_PATH_URIS = 8


@dataclass(frozen=True, slots=True)
class MessageMedia:
    """An offered (or answered) MSRP stream."""

    port: int
    proto: str  # PROTO_MSRP or PROTO_MSRPS
    path: tuple[str, ...]  # a=path: the URIs, first hop first
    accept_types: tuple[str, ...]
    accept_wrapped_types: tuple[str, ...] = ()
    fingerprints: tuple[tuple[str, str], ...] = ()  # (hash function, upper-case hex)
    setup: str | None = None  # RFC 6135; None: the offerer connects (RFC 4975 §5.4)

    @property
    def uses_tls(self) -> bool:
        return self.proto == PROTO_MSRPS

    @classmethod
    def from_media(cls, m: MediaDescription) -> MessageMedia:
        """The MSRP stream of *m*; SdpParseError when it is not one or lacks what RFC 4975 requires."""
        proto = m.proto.upper()
        if m.media != "message" or proto not in (PROTO_MSRP, PROTO_MSRPS):
            raise SdpParseError(f"not an MSRP stream: m={m.media} {m.proto}")
        path_value = m.get_attribute("path")
        if path_value is None:
            raise SdpParseError("m=message without a=path")
        path = tuple(path_value.split())
        if not path or len(path) > MAX_PATH_URIS:
            raise SdpParseError("a=path must hold 1 to 8 URIs")
        scheme = "msrps://" if proto == PROTO_MSRPS else "msrp://"
        if not all(u.lower().startswith(("msrp://", "msrps://")) for u in path):
            raise SdpParseError("a=path holds a URI that is not msrp or msrps")
        if not path[-1].lower().startswith(scheme):
            raise SdpParseError(f"a=path of {proto} must end with an {scheme} URI")
        accept = m.get_attribute("accept-types")
        if accept is None:
            raise SdpParseError("m=message without a=accept-types")
        wrapped = m.get_attribute("accept-wrapped-types")
        prints: list[tuple[str, str]] = []
        for value in m.get_attributes("fingerprint"):
            hash_function, _, digest = value.strip().partition(" ")
            if not digest:
                raise SdpParseError(f"bad a=fingerprint {value[:40]!r}")
            prints.append((hash_function.lower(), digest.strip().upper()))
        setup = m.get_attribute("setup")
        return cls(
            m.port,
            proto,
            path,
            tuple(accept.split()),
            tuple(wrapped.split()) if wrapped else (),
            tuple(prints),
            setup.strip().lower() if setup else None,
        )


def offered_message_index(media: tuple[MediaDescription, ...], *, allow_plain: bool) -> int | None:
    """The index of the first MSRP stream of an offer we could accept (TLS, or plain when allowed)."""
    protos = (PROTO_MSRPS, PROTO_MSRP) if allow_plain else (PROTO_MSRPS,)
    return next(
        (
            i
            for i, m in enumerate(media)
            if m.media == "message" and m.port != 0 and m.proto.upper() in protos
        ),
        None,
    )


def answer_message_media(
    port: int,
    proto: str,
    path: str,
    accept_types: tuple[str, ...],
    accept_wrapped_types: tuple[str, ...] = (),
    fingerprint: tuple[str, str] | None = None,
) -> MediaDescription:
    """Our section for an accepted MSRP stream (the port is the one in *path*, RFC 4975 §8.1)."""
    attributes = [Attribute("accept-types", " ".join(accept_types))]
    if accept_wrapped_types:
        attributes.append(Attribute("accept-wrapped-types", " ".join(accept_wrapped_types)))
    attributes.append(Attribute("path", path))
    if fingerprint is not None and proto == PROTO_MSRPS:
        attributes.append(Attribute("fingerprint", f"{fingerprint[0]} {fingerprint[1]}"))
    return MediaDescription("message", port, proto, ("*",), attributes=tuple(attributes))
