"""REGISTER requests for the registrar tests."""

from __future__ import annotations

import itertools

from imsconf.registrar.core import Registrar, RegistrarConfig
from imsconf.sip.message import Request, parse_message, validate
from imsconf.sip.peer import Peer

DOMAIN = "example.com"
PHONE = Peer("udp", "198.51.100.7", 5070)
SERVICE_ROUTE = "<sip:192.0.2.1:5060;transport=udp;lr>"
_branches = itertools.count(1)


def register_bytes(
    user: str = "alice",
    contacts: tuple[str, ...] = ("<sip:alice@198.51.100.7:5070>",),
    *,
    expires: str | None = None,
    call_id: str = "call-1@phone",
    cseq: int = 1,
    to: str | None = None,
    ruri: str = f"sip:{DOMAIN}",
    extra: tuple[tuple[str, str], ...] = (),
) -> bytes:
    lines = [
        f"REGISTER {ruri} SIP/2.0",
        f"Via: SIP/2.0/UDP 198.51.100.7:5070;branch=z9hG4bK-reg{next(_branches)};rport",
        "Max-Forwards: 70",
        f"From: <sip:{user}@{DOMAIN}>;tag=f{cseq}",
        f"To: {to if to is not None else f'<sip:{user}@{DOMAIN}>'}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
    ]
    lines += [f"Contact: {c}" for c in contacts]
    if expires is not None:
        lines.append(f"Expires: {expires}")
    lines += [f"{k}: {v}" for k, v in extra]
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def parse_request(data: bytes) -> Request:
    msg = parse_message(data)
    assert isinstance(msg, Request)
    validate(msg)
    return msg


def register(
    user: str = "alice",
    contacts: tuple[str, ...] = ("<sip:alice@198.51.100.7:5070>",),
    *,
    expires: str | None = None,
    call_id: str = "call-1@phone",
    cseq: int = 1,
    to: str | None = None,
    ruri: str = f"sip:{DOMAIN}",
    extra: tuple[tuple[str, str], ...] = (),
) -> Request:
    return parse_request(
        register_bytes(
            user, contacts, expires=expires, call_id=call_id, cseq=cseq, to=to, ruri=ruri, extra=extra
        )
    )


def registrar(
    *, min_expires: int = 60, max_expires: int = 3600, default_expires: int = 3600, max_bindings: int = 10,
    max_aors: int = 100_000, require_auth: bool = True,
) -> Registrar:  # fmt: skip
    config = RegistrarConfig(
        domains=frozenset({DOMAIN, "192.0.2.1"}), min_expires=min_expires, max_expires=max_expires,
        default_expires=default_expires, max_bindings=max_bindings, max_aors=max_aors,
        require_auth=require_auth,
    )  # fmt: skip
    return Registrar(config)
