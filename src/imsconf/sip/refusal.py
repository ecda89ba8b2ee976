"""The cheap refusal of a flooding source's new requests: a 503 built from five header fields, sans-I/O.

A source marked flooding (:mod:`.overload`) sends thousands of INVITEs a second; the full parse and
validation of each would cost more than the refusal saves. :func:`scan_new_request` reads only the
request line and the header lines it needs (Via, From, To, Call-ID, CSeq, compact forms too) and leaves
the body alone; :func:`refusal` renders the stateless answer (RFC 3261 §8.2.6: the Vias, From, To with a
tag, Call-ID, CSeq; the top Via stamped with ``received``/``rport``, RFC 3581) and where it goes
(§18.2.2). Anything it does not understand plainly (a response, ACK/CANCEL, a To tag, folded or
repeated fields, a top Via list, ``maddr``, a branch without the magic cookie, a CSeq for another
method) returns None and takes the full path, which answers it exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import SipParseError
from .headers import Via
from .util import MAGIC_COOKIE, default_port

__all__ = ["Scanned", "refusal", "scan_new_request"]

_WANTED = {
    b"via": "via",
    b"v": "via",
    b"from": "from",
    b"f": "from",
    b"to": "to",
    b"t": "to",
    b"call-id": "call-id",
    b"i": "call-id",
    b"cseq": "cseq",
}
_PASS_THROUGH = frozenset([b"ACK", b"CANCEL"])


@dataclass(frozen=True, slots=True)
class Scanned:
    """The fields of a new out-of-dialog request that its refusal needs."""

    method: str
    top_via: Via
    vias: tuple[str, ...]  # every Via line's value, in order (the first is the top Via alone)
    from_: str
    to: str
    call_id: str
    cseq: str


def scan_new_request(data: bytes) -> Scanned | None:
    """The refusal's fields of *data*, or None when it is not plainly a new out-of-dialog request."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[2] != b"SIP/2.0" or parts[0] in _PASS_THROUGH or not parts[0].isalpha():
        return None
    vias: list[str] = []
    found: dict[str, str] = {}
    for line in lines[1:]:
        if not line or line[0] in b" \t":
            return None  # a folded line: the full parser knows
        colon = line.find(b":")
        if colon <= 0:
            return None
        name = _WANTED.get(line[:colon].rstrip().lower())
        if name is None:
            continue
        try:
            value = line[colon + 1 :].strip().decode("utf-8")
        except UnicodeDecodeError:
            return None
        if name == "via":
            vias.append(value)
        elif name in found:
            return None
        else:
            found[name] = value
    if not vias or len(found) != 4 or "," in vias[0]:
        return None
    to = found["to"]
    if ";tag=" in to.replace(" ", "").lower():
        return None  # in a dialog
    method = parts[0].decode("ascii")
    cseq = found["cseq"].split()
    if len(cseq) != 2 or not cseq[0].isdigit() or cseq[1] != method:
        return None
    try:
        top = Via.parse(vias[0])
    except SipParseError:
        return None
    branch = top.branch
    if not branch or not branch.startswith(MAGIC_COOKIE) or "maddr" in top.params:
        return None
    return Scanned(method, top, tuple(vias), found["from"], to, found["call-id"], found["cseq"])


def refusal(
    scanned: Scanned,
    host: str,
    port: int,
    status_line: str,
    to_tag: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> tuple[bytes, tuple[str, int]]:
    """The stateless answer to *scanned*, received from ``host:port``, and the address it goes to."""
    via = scanned.top_via
    params = dict(via.params)
    rport = "rport" in params and not params["rport"]
    if rport:
        params["rport"] = str(port)
    if rport or via.host != host.lower():
        params["received"] = host
    top = str(Via(via.transport, via.host, via.port, params, via.protocol))
    dest = (host, port if rport else via.port if via.port is not None else default_port(via.transport))
    lines = [f"SIP/2.0 {status_line}", f"Via: {top}"]
    lines += [f"Via: {v}" for v in scanned.vias[1:]]
    lines += [
        f"From: {scanned.from_}",
        f"To: {scanned.to};tag={to_tag}",
        f"Call-ID: {scanned.call_id}",
        f"CSeq: {scanned.cseq}",
    ]
    lines += [f"{name}: {value}" for name, value in extra]
    lines += ["Content-Length: 0", "", ""]
    return "\r\n".join(lines).encode("utf-8"), dest
