"""``imsconf conf list|show|mute|unmute|deaf|undeaf|kick|lock|unlock|end|invite``: live conference control
from the shell, through the running server's HTTP API with the operator token from the data directory.

Output is a plain table (``--json`` prints the API's JSON instead).  With ``http_tls`` set the server is
reached over HTTPS, its certificate checked against the data directory's CA (``DATA_DIR/pki/ca.pem``).
Exit codes: 0 done, 1 the server refused (unknown conference or participant, a bad URI: the reason is
printed), 2 the server cannot be reached or the token (or the CA) cannot be read.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

__all__ = ["ApiClient", "ApiFailure", "ConfSettings", "add_conf_parser", "run_conf"]

TIMEOUT = 10.0


class ConfSettings(Protocol):
    """What ``imsconf conf`` reads from the server's settings (app.config.Settings)."""

    @property
    def data_dir(self) -> Path: ...
    @property
    def http_address(self) -> tuple[str, int] | None: ...
    @property
    def http_tls(self) -> bool: ...


class ApiFailure(Exception):
    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def add_conf_parser(sub: Any) -> None:
    """Register ``conf`` on the top-level subparsers of ``imsconf``."""
    p = sub.add_parser("conf", help="list and control live conferences on the running server")
    p.add_argument("--config", type=Path, help="TOML configuration file (to find the server and its token)")
    p.add_argument("--data-dir", type=Path, help="data directory (default ./var)")
    p.add_argument("--http", help="the server's HTTP listener, HOST:PORT (default: from the configuration)")
    p.add_argument("--json", action="store_true", help="print the API's JSON instead of a table")
    cs = p.add_subparsers(dest="conf_cmd", required=True)
    cs.add_parser("list", help="the live conferences")
    cs.add_parser("show", help="one conference and its participants").add_argument("conference")
    for name, text in (
        ("mute", "mix the participant into nobody's audio"),
        ("unmute", "mix the participant again"),
        ("deaf", "send the participant silence"),
        ("undeaf", "send the participant the conference again"),
        ("kick", "remove the participant (BYE)"),
    ):
        c = cs.add_parser(name, help=text)
        c.add_argument("conference")
        c.add_argument("participant")
    for name, text in (
        ("lock", "refuse new joins (403)"),
        ("unlock", "accept new joins again"),
        ("end", "end the conference for everybody"),
    ):
        cs.add_parser(name, help=text).add_argument("conference")
    i = cs.add_parser("invite", help="dial a user out into the conference")
    i.add_argument("conference")
    i.add_argument("uri", help="sip: or sips: URI of the user")


class ApiClient:
    """A small blocking client of ``/api/v1`` (the CLI is a separate short-lived process)."""

    def __init__(self, base: str, token: str, context: ssl.SSLContext | None = None) -> None:
        self.base = base.rstrip("/")
        self._token = token
        self._context = context

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method)
        req.add_header("Authorization", f"Bearer {self._token}")
        req.add_header("Accept", "application/json")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT, context=self._context) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as exc:
            raise ApiFailure(_error_text(exc), status=exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise ApiFailure(f"cannot reach the server at {self.base}: {reason}") from None
        return json.loads(raw) if raw else None


def _error_text(exc: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(exc.read() or b"{}")
    except (ValueError, OSError):
        body = {}
    message = body.get("error") if isinstance(body, dict) else None
    fields = body.get("errors") if isinstance(body, dict) else None
    parts = [f"{exc.code} {message or exc.reason}"]
    if isinstance(fields, list):
        parts += [f"{e.get('field')}: {e.get('reason')}" for e in fields if isinstance(e, dict)]
    return "; ".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers]] + [["" if v is None else str(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    return "\n".join(lines)


def _flags(p: dict[str, Any]) -> str:
    names = ("muted", "deaf", "on_hold", "speaking", "floor")
    return ",".join(n.replace("_", "-") for n in names if p.get(n))


def render_conference(conf: dict[str, Any]) -> str:
    epoch = conf.get("key_epoch")
    locked = "yes" if conf["locked"] else "no"
    head = [
        f"conference {conf['id']}  {conf['uri']}",
        f"owner {conf.get('owner') or '-'}  created {conf['created']}  locked {locked}"
        f"  downlink {conf['downlink']}  key epoch {'-' if epoch is None else epoch}",
    ]
    rows = [
        (
            p["id"],
            p["uri"],
            p["role"],
            p["transport"],
            p.get("codec") or "-",
            p.get("srtp") or "none",
            p["key"],
            _flags(p) or "-",
        )
        for p in conf["participants"]
    ]
    table = _table(("ID", "URI", "ROLE", "TRANSPORT", "CODEC", "SRTP", "KEY", "STATE"), rows)
    return "\n".join(head) + "\n" + table


def render_list(data: dict[str, Any]) -> str:
    rows = [
        (
            c["id"],
            c["uri"],
            c.get("owner") or "-",
            c["participants"],
            "yes" if c["locked"] else "no",
            c["created"],
        )
        for c in data["conferences"]
    ]
    return _table(("ID", "URI", "OWNER", "PARTICIPANTS", "LOCKED", "CREATED"), rows)


def render_participant(p: dict[str, Any]) -> str:
    return _table(("ID", "URI", "ROLE", "STATE"), [(p["id"], p["uri"], p["role"], _flags(p) or "-")])


def client_for(settings: ConfSettings, token_file: str) -> ApiClient:
    """The client for the server these settings describe (a wildcard listener is reached on loopback)."""
    address = settings.http_address
    if address is None:
        raise ApiFailure('the server\'s HTTP listener is off in this configuration (http = "off")')
    host, port = address
    if host in ("0.0.0.0", "", "::"):
        host = "127.0.0.1" if host != "::" else "::1"
    shown = f"[{host}]" if ":" in host else host
    token_path = Path(settings.data_dir) / token_file
    try:
        token = token_path.read_text(encoding="ascii").strip()
    except OSError as exc:
        raise ApiFailure(f"cannot read the API token {token_path}: {exc.strerror}") from None
    if not settings.http_tls:
        return ApiClient(f"http://{shown}:{port}", token)
    from .pki import PkiPaths, client_ssl_context

    ca = PkiPaths.under(Path(settings.data_dir)).ca_cert
    try:
        context = client_ssl_context(ca)
    except (OSError, ssl.SSLError) as exc:
        raise ApiFailure(f"cannot read the CA certificate {ca} (for http_tls): {exc}") from None
    return ApiClient(f"https://{shown}:{port}", token, context)


def run_conf(args: argparse.Namespace, client: ApiClient) -> int:
    cmd = args.conf_cmd
    base = "/api/v1/conferences"
    try:
        if cmd == "list":
            data = client.call("GET", base)
            out = render_list(data)
        elif cmd == "show":
            data = client.call("GET", f"{base}/{quote(args.conference, safe='')}")
            out = render_conference(data)
        elif cmd in ("mute", "unmute", "deaf", "undeaf"):
            path = f"{base}/{quote(args.conference, safe='')}/participants/{quote(args.participant, safe='')}"
            data = client.call("POST", f"{path}/{cmd}")
            out = render_participant(data)
        elif cmd == "kick":
            path = f"{base}/{quote(args.conference, safe='')}/participants/{quote(args.participant, safe='')}"
            data = client.call("DELETE", path)
            out = f"participant {args.participant} removed"
        elif cmd in ("lock", "unlock"):
            data = client.call("POST", f"{base}/{quote(args.conference, safe='')}/{cmd}")
            out = f"conference {args.conference} {'locked' if cmd == 'lock' else 'unlocked'}"
        elif cmd == "end":
            data = client.call("DELETE", f"{base}/{quote(args.conference, safe='')}")
            out = f"conference {args.conference} ended"
        elif cmd == "invite":
            data = client.call(
                "POST", f"{base}/{quote(args.conference, safe='')}/participants", {"uri": args.uri}
            )
            out = f"dialling {args.uri}"
        else:  # pragma: no cover - argparse enforces the choices
            return 2
    except ApiFailure as exc:
        print(f"imsconf: {exc}", file=sys.stderr)
        return 2 if exc.status is None else 1
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=True) if data is not None else "{}")
    else:
        print(out)
    return 0
