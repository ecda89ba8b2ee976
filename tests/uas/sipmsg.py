"""Minimal SIP message model for the test UAs: parse, build, header helpers, URIs, digest (client side).

Written independently of ``imsconf.sip`` on purpose: the test UA must not share the server's parser bugs.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote, unquote

COMPACT = {
    "v": "Via",
    "f": "From",
    "t": "To",
    "i": "Call-ID",
    "m": "Contact",
    "l": "Content-Length",
    "c": "Content-Type",
    "k": "Supported",
    "e": "Content-Encoding",
    "s": "Subject",
    "r": "Refer-To",
    "b": "Referred-By",
    "o": "Event",
    "u": "Allow-Events",
    "x": "Session-Expires",
}
CANONICAL = {
    name.lower(): name
    for name in (
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Length",
        "Content-Type",
        "Max-Forwards",
        "Route",
        "Record-Route",
        "Refer-To",
        "Referred-By",
        "Replaces",
        "Event",
        "Subscription-State",
        "WWW-Authenticate",
        "Proxy-Authenticate",
        "Authorization",
        "Proxy-Authorization",
        "Allow",
        "Supported",
        "Require",
        "Session-Expires",
        "User-Agent",
        "Expires",
        "Allow-Events",
        "Accept",
    )
}
# headers whose comma-separated values are separate entries
MULTI = {"via", "route", "record-route", "contact", "allow", "supported", "require"}
REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    407: "Proxy Authentication Required",
    481: "Call/Transaction Does Not Exist",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    489: "Bad Event",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    603: "Decline",
}


class SipParseError(ValueError):
    pass


def canonical(name: str) -> str:
    low = name.strip().lower()
    if low in COMPACT:
        return COMPACT[low]
    return CANONICAL.get(low, "-".join(p.capitalize() for p in low.split("-")))


def split_commas(value: str) -> list[str]:
    """Split a header value at commas outside quotes and angle brackets."""
    out: list[str] = []
    cur: list[str] = []
    in_q = esc = False
    depth = 0
    for ch in value:
        if in_q:
            cur.append(ch)
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_q = False
            continue
        if ch == '"':
            in_q = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    if "".join(cur).strip():
        out.append("".join(cur).strip())
    return out


@dataclass
class SipMessage:
    """One SIP request or response. Header names are kept canonical; order is preserved."""

    method: str | None = None
    uri: str | None = None
    status: int | None = None
    reason: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def get(self, name: str) -> str | None:
        name = canonical(name)
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def get_all(self, name: str) -> list[str]:
        name = canonical(name)
        out: list[str] = []
        for k, v in self.headers:
            if k == name:
                out.extend(split_commas(v) if name.lower() in MULTI else [v])
        return out

    def add(self, name: str, value: str) -> None:
        self.headers.append((canonical(name), value))

    def set(self, name: str, value: str) -> None:
        self.remove(name)
        self.add(name, value)

    def remove(self, name: str) -> None:
        name = canonical(name)
        self.headers = [(k, v) for k, v in self.headers if k != name]

    @property
    def call_id(self) -> str:
        return self.get("Call-ID") or ""

    @property
    def cseq(self) -> tuple[int, str]:
        parts = (self.get("CSeq") or "0 NONE").split()
        return int(parts[0]), parts[1].upper()

    @property
    def from_tag(self) -> str | None:
        return NameAddr.parse(self.get("From") or "<sip:x>").params.get("tag")

    @property
    def to_tag(self) -> str | None:
        return NameAddr.parse(self.get("To") or "<sip:x>").params.get("tag")

    @property
    def branch(self) -> str:
        vias = self.get_all("Via")
        if not vias:
            return ""
        m = re.search(r";\s*branch=([^;,\s]+)", vias[0], re.I)
        return m.group(1) if m else ""

    def to_bytes(self) -> bytes:
        if self.method is not None:
            first = f"{self.method} {self.uri} SIP/2.0"
        else:
            first = f"SIP/2.0 {self.status} {self.reason or REASONS.get(self.status or 0, 'Unknown')}"
        lines = [first]
        lines += [f"{k}: {v}" for k, v in self.headers if k != "Content-Length"]
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + self.body

    def __str__(self) -> str:
        return self.to_bytes().decode(errors="replace")


def parse_message(data: bytes) -> SipMessage:
    idx = data.find(b"\r\n\r\n")
    sep = 4
    if idx < 0:
        idx, sep = data.find(b"\n\n"), 2
    if idx < 0:
        head, body = data, b""
    else:
        head, body = data[:idx], data[idx + sep :]
    text = head.decode("utf-8", errors="replace")
    raw_lines = re.split(r"\r?\n", text)
    if not raw_lines or not raw_lines[0]:
        raise SipParseError("empty message")
    lines: list[str] = []
    for ln in raw_lines[1:]:
        if ln[:1] in (" ", "\t") and lines:  # header folding
            lines[-1] += " " + ln.strip()
        elif ln:
            lines.append(ln)
    msg = SipMessage()
    first = raw_lines[0]
    if first.startswith("SIP/2.0 "):
        parts = first.split(" ", 2)
        try:
            msg.status = int(parts[1])
        except (IndexError, ValueError) as exc:
            raise SipParseError(f"bad status line {first!r}") from exc
        msg.reason = parts[2] if len(parts) > 2 else ""
    else:
        parts = first.split(" ")
        if len(parts) != 3 or parts[2] != "SIP/2.0":
            raise SipParseError(f"bad request line {first!r}")
        msg.method, msg.uri = parts[0].upper(), parts[1]
    for ln in lines:
        if ":" not in ln:
            raise SipParseError(f"bad header line {ln!r}")
        k, v = ln.split(":", 1)
        msg.headers.append((canonical(k), v.strip()))
    clen = msg.get("Content-Length")
    if clen is not None and clen.strip().isdigit():
        body = body[: int(clen)]
    msg.body = body
    return msg


def frame_stream(buf: bytes) -> tuple[list[bytes], bytes]:
    """Cut whole messages (by Content-Length) off a stream buffer; returns (messages, rest)."""
    out: list[bytes] = []
    while True:
        while buf.startswith(b"\r\n"):  # keep-alive CRLFs
            buf = buf[2:]
        idx = buf.find(b"\r\n\r\n")
        if idx < 0:
            return out, buf
        m = re.search(rb"(?im)^(?:content-length|l)[ \t]*:[ \t]*(\d+)", buf[:idx])
        end = idx + 4 + (int(m.group(1)) if m else 0)
        if len(buf) < end:
            return out, buf
        out.append(buf[:end])
        buf = buf[end:]


def _parse_params(text: str) -> dict[str, str]:
    params: dict[str, str] = {}
    for p in text.split(";"):
        p = p.strip()
        if not p:
            continue
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip()
    return params


@dataclass
class SipUri:
    scheme: str
    user: str | None
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SipUri:
        text = text.strip().strip("<>")
        m = re.match(r"(?i)(sips?):(?:([^@]*)@)?(\[[^\]]+\]|[^:;?]+)(?::(\d+))?([^?]*)(?:\?(.*))?$", text)
        if not m:
            raise SipParseError(f"bad SIP URI {text!r}")
        headers: dict[str, str] = {}
        if m.group(6):
            for h in m.group(6).split("&"):
                k, _, v = h.partition("=")
                headers[unquote(k)] = unquote(v)
        return cls(
            m.group(1).lower(),
            m.group(2),
            m.group(3),
            int(m.group(4)) if m.group(4) else None,
            _parse_params(m.group(5)),
            headers,
        )

    def __str__(self) -> str:
        s = f"{self.scheme}:"
        if self.user is not None:
            s += f"{self.user}@"
        s += self.host
        if self.port is not None:
            s += f":{self.port}"
        for k, v in self.params.items():
            s += f";{k}={v}" if v else f";{k}"
        if self.headers:
            s += "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in self.headers.items())
        return s

    def without_headers(self) -> SipUri:
        return SipUri(self.scheme, self.user, self.host, self.port, dict(self.params), {})


@dataclass
class NameAddr:
    """``"Display" <uri>;params`` or ``uri;params`` (From, To, Contact, Route, Refer-To)."""

    uri: str
    display: str = ""
    params: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        m = re.match(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^<"]*?))\s*<([^>]*)>(.*)$', text)
        if m:
            return cls(m.group(3), (m.group(1) or m.group(2) or "").strip(), _parse_params(m.group(4)))
        uri, _, rest = text.partition(";")
        return cls(uri.strip(), "", _parse_params(rest))

    def __str__(self) -> str:
        s = f'"{self.display}" <{self.uri}>' if self.display else f"<{self.uri}>"
        for k, v in self.params.items():
            s += f";{k}={v}" if v else f";{k}"
        return s


ALLOW = "INVITE, ACK, CANCEL, BYE, UPDATE, REFER, NOTIFY, SUBSCRIBE, OPTIONS, INFO, MESSAGE"


def make_response(
    req: SipMessage,
    code: int,
    *,
    to_tag: str | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    contact: bool = False,
    contact_uri: str = "",
    user_agent: str = "",
    extra: list[tuple[str, str]] | None = None,
    reason: str = "",
) -> SipMessage:
    """A response to ``req`` (RFC 3261 §8.2.6); ``contact`` adds Contact, Record-Route, Allow, Supported."""
    resp = SipMessage(status=code, reason=reason or REASONS.get(code, "Unknown"))
    for v in req.get_all("Via"):
        resp.add("Via", v)
    resp.add("From", req.get("From") or "")
    to = req.get("To") or ""
    if to_tag and "tag" not in NameAddr.parse(to).params:
        to += f";tag={to_tag}"
    resp.add("To", to)
    resp.add("Call-ID", req.call_id)
    resp.add("CSeq", req.get("CSeq") or "")
    if contact:
        resp.add("Contact", contact_uri)
        for rr in req.get_all("Record-Route"):
            resp.add("Record-Route", rr)
        resp.add("Allow", ALLOW)
        resp.add("Supported", "replaces")
    for k, v in extra or []:
        resp.add(k, v)
    if content_type:
        resp.add("Content-Type", content_type)
    if user_agent:
        resp.add("User-Agent", user_agent)
    resp.body = body
    return resp


def new_branch() -> str:
    return "z9hG4bK" + secrets.token_hex(8)


def new_tag() -> str:
    return secrets.token_hex(6)


# ----------------------------------------------------------------------------------------- digest client
def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = value.strip().partition(" ")
    params: dict[str, str] = {}
    for m in re.finditer(r'([\w-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]+))', rest):
        params[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return scheme, params


def _h(alg: str, text: str) -> str:
    base = alg[:-5] if alg.upper().endswith("-SESS") else alg
    if base.upper() == "SHA-512-256":
        return hashlib.new("sha512_256", text.encode()).hexdigest()
    return (hashlib.sha256 if base.upper() == "SHA-256" else hashlib.md5)(text.encode()).hexdigest()


def choose_challenge(values: list[str]) -> str | None:
    """Prefer SHA-256 over MD5 (RFC 8760); ignore unknown algorithms."""
    best: tuple[int, str] | None = None
    for v in values:
        scheme, p = parse_auth_params(v)
        if scheme.lower() != "digest":
            continue
        alg = p.get("algorithm", "MD5").upper()
        rank = {"SHA-256": 0, "SHA-256-SESS": 1, "MD5": 2, "MD5-SESS": 3}.get(alg)
        if rank is not None and (best is None or rank < best[0]):
            best = (rank, v)
    return best[1] if best else None


def digest_credentials(
    challenge: str, method: str, uri: str, username: str, password: str, body: bytes = b"", nc: int = 1
) -> str:
    """The Authorization value answering one Digest challenge (RFC 2617 / 7616 / 8760)."""
    _, p = parse_auth_params(challenge)
    alg = p.get("algorithm", "MD5")
    realm, nonce = p.get("realm", ""), p.get("nonce", "")
    cnonce = secrets.token_hex(8)
    ha1 = _h(alg, f"{username}:{realm}:{password}")
    if alg.upper().endswith("-SESS"):
        ha1 = _h(alg, f"{ha1}:{nonce}:{cnonce}")
    qops = [q.strip() for q in p.get("qop", "").split(",") if q.strip()]
    qop = "auth" if "auth" in qops else ("auth-int" if "auth-int" in qops else "")
    a2 = f"{method}:{uri}" + (f":{_h(alg, body.decode('latin-1'))}" if qop == "auth-int" else "")
    ha2 = _h(alg, a2)
    ncs = f"{nc:08x}"
    resp = _h(alg, f"{ha1}:{nonce}:{ncs}:{cnonce}:{qop}:{ha2}") if qop else _h(alg, f"{ha1}:{nonce}:{ha2}")
    out = (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{resp}", algorithm={alg}'
    )
    if qop:
        out += f', cnonce="{cnonce}", nc={ncs}, qop={qop}'
    if "opaque" in p:
        out += f', opaque="{p["opaque"]}"'
    return out


def sipfrag_status(body: bytes) -> int | None:
    m = re.match(rb"\s*SIP/2\.0\s+(\d{3})", body)
    return int(m.group(1)) if m else None
