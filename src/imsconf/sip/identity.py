"""Asserted identity within a trust domain (RFC 3325): whose ``P-Asserted-Identity`` the endpoint believes.

In an IMS network the S-CSCF authenticates the user and asserts the identity it authenticated in
``P-Asserted-Identity``; the application server believes it only from the nodes of its trust domain. Here
the trust domain is a list of IP addresses and networks (:class:`TrustedPeers`): the transport adapters give
the endpoint the source address of every message but not the certificate of a TLS peer, so a peer is
trusted by its address alone. From anyone else the header is removed before the application sees the
request (RFC 3325 §5: a proxy removes it at the boundary of the trust domain; an endpoint ignores it).
Pure: no sockets, no clock.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import SipParseError
from .message import Request
from .peer import Peer
from .uri import NameAddr

__all__ = ["TrustedPeers", "take_asserted_identity"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

PAI = "P-Asserted-Identity"


@dataclass(frozen=True, slots=True)
class TrustedPeers:
    """The addresses and networks whose ``P-Asserted-Identity`` is believed and who need no digest."""

    networks: tuple[IpNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: Iterable[str]) -> TrustedPeers:
        """``["10.0.0.5", "192.0.2.0/24", "2001:db8::/32"]``; ValueError naming a bad entry."""
        nets: list[IpNetwork] = []
        for entry in entries:
            try:
                nets.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"trusted_peers: {entry!r} is not an IP address or network (as in '10.0.0.0/8'); "
                    "peers are trusted by address only"
                ) from None
        return cls(tuple(nets))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, peer: Peer) -> bool:
        if not self.networks:  # the common case, asked for every new request: no address parse
            return False
        try:
            address = ipaddress.ip_address(peer.host.strip("[]"))
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self.networks)


def take_asserted_identity(req: Request, trusted: bool) -> tuple[str | None, bool]:
    """The AoR a trusted peer asserts for *req*, and whether an untrusted assertion was removed.

    From a trusted peer: the first ``sip:``/``sips:`` URI of ``P-Asserted-Identity`` (RFC 3325 §9.1 allows
    one SIP and one tel URI; a tel URI alone names no AoR the conference can use), as ``scheme:user@host``.
    From anyone else every ``P-Asserted-Identity`` value is removed from *req*, so that nothing after the
    endpoint can take it for an identity.
    """
    values = req.headers.get_all(PAI)
    if not values:
        return None, False
    if not trusted:
        req.headers.remove(PAI)
        return None, True
    for value in values:
        try:
            uri = NameAddr.parse(value).uri
        except SipParseError:
            continue
        if uri.scheme in ("sip", "sips") and uri.user and uri.host:
            return uri.aor, False
    return None, False
