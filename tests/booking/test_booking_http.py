"""The booking API in-process (the operator plane's aiohttp server on a real socket, its loop in a thread):
routes under /api/v1/bookings and the old /bookings aliases, the token, every error."""

from __future__ import annotations

import asyncio
import http.client
import json
import os
import socket
import stat
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from booking_cases import DOMAIN, FACTORY, INVALID, NOW, iso, valid_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from imsconf.app.config import Settings
from imsconf.app.server import start_web_listener
from imsconf.booking.store import BookingStore
from imsconf.store.errors import RETRY_AFTER, StoreUnavailable
from imsconf.web.auth import TOKEN_FILE, VIEWER_TOKEN_FILE, ApiTokenError, Tokens, ensure_api_token
from imsconf.web.deps import BookingBackend, WebDeps
from imsconf.web.errors import MAX_BODY
from imsconf.web.server import MAX_FIELD
from web_harness import ServedApi, raw_exchange, with_deps


def _booking_deps(store: Any, request_timeout: float) -> Callable[[Tokens], WebDeps]:
    backend = BookingBackend(store, DOMAIN, reserved_users=(FACTORY,), clock=lambda: NOW)
    return with_deps(bookings=backend, request_timeout=request_timeout)


class ApiThread(ServedApi):
    """The booking API on the operator plane's server, in a background thread."""

    def __init__(self, data_dir: Path, *, store: Any = None, request_timeout: float = 5.0) -> None:
        self.store = store if store is not None else BookingStore.open(data_dir)
        super().__init__(data_dir, _booking_deps(self.store, request_timeout))

    def close(self) -> None:
        super().close()
        if isinstance(self.store, BookingStore):
            self.store.close()


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiThread]:
    a = ApiThread(tmp_path / "var")
    yield a
    a.close()


@pytest.fixture(scope="module")
def shared_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiThread]:
    a = ApiThread(tmp_path_factory.mktemp("shared") / "var")
    yield a
    a.close()


# -- the token --


def test_token_file_created_private_and_reused(tmp_path: Path) -> None:
    token = ensure_api_token(tmp_path)
    path = tmp_path / TOKEN_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(token) >= 43 and path.read_text().strip() == token
    assert ensure_api_token(tmp_path) == token
    tokens = Tokens.ensure(tmp_path)
    assert tokens.operator == token and tokens.viewer != token and len(tokens.viewer) >= 43
    assert stat.S_IMODE(os.stat(tmp_path / VIEWER_TOKEN_FILE).st_mode) == 0o600
    assert token not in repr(tokens) and tokens.viewer not in repr(tokens)
    os.chmod(path, 0o644)
    assert ensure_api_token(tmp_path) == token
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600  # tightened
    path.write_text("short\n")
    with pytest.raises(ApiTokenError):
        ensure_api_token(tmp_path)


BASES = ["/api/v1/bookings", "/bookings"]  # the API's path and the old one, kept as an alias
ROUTES = [
    *[(method, path) for base in BASES for method, path in (
        ("GET", base), ("POST", base), ("GET", f"{base}/abcdefgh12"), ("DELETE", f"{base}/abcdefgh12"))],
    ("GET", "/nowhere"),
    ("GET", "/api/v1/conferences"),
    ("GET", "/api/v1/events"),
    ("GET", "/api/v1/cdrs"),
    ("GET", "/metrics"),
]  # fmt: skip
UNAUTHORIZED: list[tuple[str, dict[str, str] | None, str | None]] = [
    ("missing", None, None),
    ("wrong", None, "x" * 43),
    ("empty", {"Authorization": "Bearer "}, None),
    ("basic-scheme", {"Authorization": "Basic dXNlcjpwYXNz"}, None),
    ("token-prefix", None, "PREFIX"),
]


@pytest.mark.parametrize(
    ("headers", "token"), [c[1:] for c in UNAUTHORIZED], ids=[c[0] for c in UNAUTHORIZED]
)
@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_401(
    shared_api: ApiThread, method: str, path: str, headers: dict[str, str] | None, token: str | None
) -> None:
    if token == "PREFIX":
        token = shared_api.token[:-1]
    status, body, resp = shared_api.request(
        method, path, valid_request() if method == "POST" else None, token=token, headers=headers
    )
    assert status == 401
    assert resp.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert body["error"] and "bookings" not in body


def test_two_authorization_headers_are_refused(shared_api: ApiThread) -> None:
    req = (f"GET /bookings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {shared_api.token}\r\n"
           f"Authorization: Bearer {shared_api.token}\r\nConnection: close\r\n\r\n")  # fmt: skip
    assert raw_exchange(shared_api.port, req.encode()).startswith(b"HTTP/1.1 401 ")


# -- the routes --


@pytest.mark.parametrize("base", BASES)
def test_create_get_list_cancel(api: ApiThread, base: str) -> None:
    status, created, resp = api.request("POST", base, valid_request())
    assert status == 201, created
    bid = created["id"]
    assert resp.getheader("Location") == f"{base}/{bid}"
    assert resp.getheader("Content-Type") == "application/json"
    assert resp.getheader("Cache-Control") == "no-store"
    assert created["uri"] == "sip:weekly@example.com" and created["has_pin"] is True
    assert "pin" not in created and "0123" not in json.dumps(created)
    other = BASES[1 - BASES.index(base)]  # one booking, whichever path names it
    assert api.request("GET", f"{base}/{bid}")[1] == created
    assert api.request("GET", f"{other}/{bid}")[1] == created
    assert [b["id"] for b in api.request("GET", base)[1]["bookings"]] == [bid]
    status, gone, _ = api.request("DELETE", f"{base}/{bid}")
    assert status == 200 and gone["cancelled"] is True
    assert api.request("DELETE", f"{base}/{bid}")[0] == 200  # idempotent
    assert api.request("GET", base)[1]["bookings"] == []
    listed = api.request("GET", f"{base}?include_cancelled=true")[1]["bookings"]
    assert [b["id"] for b in listed] == [bid]
    assert api.store.verify_pin(bid, "0123")


def test_generated_uri_and_list_filter(api: ApiThread) -> None:
    status, b, _ = api.request("POST", "/bookings", {"start": iso(NOW), "end": "2027-03-01T13:00:00Z"})
    assert status == 201 and b["uri"].startswith("sip:conf-")
    assert len(api.request("GET", f"/bookings?active_at={iso(NOW)}")[1]["bookings"]) == 1
    assert api.request("GET", "/bookings?active_at=2027-03-01T13:00:00Z")[1]["bookings"] == []


def test_audio_codecs_shown_and_an_unknown_one_is_422_naming_the_field(api: ApiThread) -> None:
    status, b, _ = api.request("POST", "/bookings", valid_request(audio_codecs=["g722", "PCMU"]))
    assert status == 201 and b["audio_codecs"] == ["G722", "PCMU"]
    assert api.request("GET", f"/bookings/{b['id']}")[1]["audio_codecs"] == ["G722", "PCMU"]
    status, body, _ = api.request(
        "POST", "/bookings", valid_request(uri="sip:other@example.com", audio_codecs=["opus", "G729"])
    )
    assert status == 422
    assert [e["field"] for e in body["errors"]] == ["audio_codecs"]
    assert "G729" in body["errors"][0]["reason"] and "choose from" in body["errors"][0]["reason"]
    status, plain, _ = api.request("POST", "/bookings", valid_request(uri="sip:plain@example.com"))
    assert status == 201 and plain["audio_codecs"] == []


def test_conflict_is_409_naming_uri(api: ApiThread) -> None:
    assert api.request("POST", "/bookings", valid_request())[0] == 201
    status, body, _ = api.request("POST", "/bookings", valid_request(uri="sips:weekly@example.com"))
    assert status == 409
    assert [e["field"] for e in body["errors"]] == ["uri"]


@pytest.mark.parametrize(
    ("changes", "field", "fragment"), [c[1:] for c in INVALID], ids=[c[0] for c in INVALID]
)
def test_422_names_each_invalid_field(
    shared_api: ApiThread, changes: dict[str, Any], field: str, fragment: str
) -> None:
    status, body, _ = shared_api.request("POST", "/bookings", valid_request(**changes))
    assert status == 422, body
    assert body["error"] == "invalid booking"
    assert {e["field"] for e in body["errors"]} == {field}
    assert any(fragment in e["reason"] for e in body["errors"])


def test_422_lists_every_field_at_once(shared_api: ApiThread) -> None:
    req = valid_request(start="x", end="y", pin="1", capacity=-1, downlink="z", colour="red")
    status, body, _ = shared_api.request("POST", "/bookings", req)
    assert status == 422
    assert {e["field"] for e in body["errors"]} >= {"start", "end", "pin", "capacity", "downlink", "colour"}


BAD_BODY: list[tuple[str, bytes, str]] = [
    ("empty", b"", "empty body"),
    ("not-json", b"{start:", "invalid JSON"),
    ("array", b"[1, 2]", "JSON object"),
    ("string", b'"x"', "JSON object"),
    ("duplicate-key", b'{"start": "a", "start": "b"}', "duplicate key"),
    ("nan", b'{"capacity": NaN}', "not JSON"),
    ("not-utf8", b'{"subject": "\xff"}', "UTF-8"),
    ("deep", b"[" * 50000 + b"]" * 50000, "nested"),
]


@pytest.mark.parametrize(("raw", "fragment"), [c[1:] for c in BAD_BODY], ids=[c[0] for c in BAD_BODY])
def test_400_for_malformed_body(shared_api: ApiThread, raw: bytes, fragment: str) -> None:
    if len(raw) > MAX_BODY:
        raw = b"[" * (MAX_BODY // 2) + b"]" * (MAX_BODY // 2)
    status, body, _ = shared_api.request("POST", "/bookings", raw_body=raw)
    assert status == 400, body
    assert body["errors"][0]["field"] == "body"
    assert fragment in body["errors"][0]["reason"]


def test_400_for_bad_query(shared_api: ApiThread) -> None:
    for query, field in [("active_at=never", "active_at"), ("include_cancelled=maybe", "include_cancelled"),
                         ("colour=red", "colour"), ("active_at=x&active_at=y", "active_at")]:  # fmt: skip
        status, body, _ = shared_api.request("GET", f"/bookings?{query}")
        assert status == 400, query
        assert field in [e["field"] for e in body["errors"]], body
    assert shared_api.request("GET", "/bookings/abcdefgh12?x=1")[0] == 400


def test_404_405_415_413(shared_api: ApiThread) -> None:
    assert shared_api.request("GET", "/nowhere")[0] == 404  # "/" is the console now
    assert shared_api.request("GET", "/bookings/")[0] == 404
    assert shared_api.request("GET", "/bookings/abcdefgh12")[0] == 404
    assert shared_api.request("GET", "/bookings/../etc/passwd")[0] == 404
    assert shared_api.request("DELETE", "/bookings/NOT-AN-ID")[0] == 404
    status, _, resp = shared_api.request("PUT", "/bookings", {})
    assert status == 405 and resp.getheader("Allow") == "GET, POST"
    status, _, resp = shared_api.request("PATCH", "/bookings/abcdefgh12", {})
    assert status == 405 and resp.getheader("Allow") == "GET, DELETE"
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1"):
        status, _, _ = shared_api.request(
            "POST", "/bookings", valid_request(), headers={"Content-Type": ctype}
        )
        assert status == 415, ctype
    status, _, _ = shared_api.request(
        "POST", "/bookings", valid_request(), headers={"Content-Type": "application/json; charset=UTF-8"}
    )
    assert status in (201, 409)
    big = b'{"subject": "' + b"x" * MAX_BODY + b'"}'
    reply = raw_exchange(shared_api.port, (
        f"POST /bookings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {shared_api.token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(big)}\r\n\r\n").encode() + big)  # fmt: skip
    assert reply.startswith(b"HTTP/1.1 413 ")


def test_keep_alive_serves_several_requests(shared_api: ApiThread) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", shared_api.port, timeout=10)
    for _ in range(3):
        conn.request("GET", "/bookings", headers={"Authorization": f"Bearer {shared_api.token}"})
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read()
    conn.request("GET", "/nowhere", headers={"Authorization": "Bearer nope"})
    assert conn.getresponse().status == 401
    conn.close()


def test_request_timeout_is_408(tmp_path: Path) -> None:
    a = ApiThread(tmp_path, request_timeout=0.3)
    try:
        reply = raw_exchange(a.port, b"GET /bookings HTTP/1.1\r\nHost: x\r\n", shut=False)
        assert reply.startswith(b"HTTP/1.1 408 ")
    finally:
        a.close()


# aiohttp's parser answers a malformed request head itself, before any middleware: 400 on an HTTP/1.0
# status line with a text/plain reason (the hand-written server said 431 for an oversized head)
AIOHTTP_400 = (b"HTTP/1.0 400 ", b"HTTP/1.1 400 ")


def test_oversized_head_is_refused(shared_api: ApiThread) -> None:
    reply = raw_exchange(shared_api.port, b"GET /bookings HTTP/1.1\r\nX-A: " + b"a" * (MAX_FIELD + 10))
    assert reply.startswith(AIOHTTP_400)
    assert b"Traceback" not in reply and b"File " not in reply


@pytest.mark.parametrize(
    "head",
    [
        b"GET /bookings HTTX/1.1\r\nHost: x\r\n",
        b"G(T /bookings HTTP/1.1\r\nHost: x\r\n",
        b"GET /bookings HTTP/1.1\r\nHost : x\r\n",
        b"GET /bookings HTTP/1.1\r\nHost: x\x00y\r\n",
        b"GET /bookings HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n",
        b"POST /bookings HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n",
        b"POST /bookings HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n",
        b"GET /bookings HTTP/1.1\r\n" + b"X-A: b\r\n" * 70,
    ],
    ids=["bad-version", "bad-method", "space-before-colon", "nul-in-value", "obs-fold",
         "conflicting-length", "negative-length", "too-many-headers"],
)  # fmt: skip
def test_malformed_request_head_is_400(shared_api: ApiThread, head: bytes) -> None:
    reply = raw_exchange(shared_api.port, head + b"\r\n")
    assert reply.startswith(AIOHTTP_400), reply[:200]
    assert b"Traceback" not in reply


def test_truncated_body_is_400(shared_api: ApiThread) -> None:
    # the token is checked before the body is read: without one this is a 401
    reply = raw_exchange(shared_api.port, (
        f"POST /bookings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {shared_api.token}\r\n"
        "Content-Type: application/json\r\nContent-Length: 50\r\n\r\n{}").encode())  # fmt: skip
    assert reply.startswith(b"HTTP/1.1 400 ")


class BrokenStore:
    def list(self, active_at: datetime | None = None, include_cancelled: bool = False) -> list[Any]:
        raise RuntimeError("secret internal detail /srv/db")


def test_bug_is_a_500_without_traceback(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    a = ApiThread(tmp_path, store=BrokenStore())
    try:
        status, body, _ = a.request("GET", "/bookings")
    finally:
        a.close()
    assert status == 500
    text = json.dumps(body)
    assert "Traceback" not in text and "secret" not in text and "RuntimeError" not in text
    assert "event=http_internal_error" in caplog.text


class UnreachableStore:
    """PostgreSQL down: every call fails at once with StoreUnavailable."""

    def list(self, active_at: datetime | None = None, include_cancelled: bool = False) -> list[Any]:
        raise StoreUnavailable("store host=db.example.net unavailable: connection refused")

    def create(self, booking: Any) -> Any:
        raise StoreUnavailable("store host=db.example.net unavailable: connection refused")


def test_an_unreachable_store_is_a_503_with_retry_after(tmp_path: Path) -> None:
    a = ApiThread(tmp_path, store=UnreachableStore())
    try:
        for method, body in (("GET", None), ("POST", valid_request())):
            status, payload, resp = a.request(method, "/api/v1/bookings", body)
            assert status == 503 and resp.getheader("Retry-After") == str(RETRY_AFTER), (method, payload)
            assert payload == {"error": "store unavailable, try again later", "errors": []}
    finally:
        a.close()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(min_size=1, max_size=600))
def test_random_bytes_get_an_error_and_a_closed_connection(shared_api: ApiThread, data: bytes) -> None:
    reply = raw_exchange(shared_api.port, data + b"\r\n\r\n")
    status_line = reply.split(b"\r\n", 1)[0]
    assert status_line[:9] in (b"HTTP/1.1 ", b"HTTP/1.0 "), reply[:200]  # 1.0: aiohttp's own 400
    # 408: only blank lines (which RFC 9112 §2.2 lets a server skip before a request line) wait for the
    # request deadline
    assert int(status_line[9:12]) in (400, 401, 404, 405, 408, 431, 501, 505), status_line
    assert b"Traceback" not in reply
    # raw_exchange returned: the server closed the connection after answering


def test_start_web_listener_uses_settings(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings_ = Settings(domain=DOMAIN, data_dir=tmp_path, http=f"127.0.0.1:{port}")

    async def scenario() -> tuple[tuple[str, int], int]:
        with BookingStore.open(tmp_path) as store:
            api = await start_web_listener(settings_, store, ready=lambda: True)
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /bookings HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                reply = await reader.read()
                writer.close()
                return api.address, int(reply[9:12])
            finally:
                await api.close()

    address, status = asyncio.run(scenario())
    assert address == ("127.0.0.1", port) and status == 401
    assert (tmp_path / TOKEN_FILE).exists() and (tmp_path / VIEWER_TOKEN_FILE).exists()


def test_viewer_token_reads_but_does_not_write(api: ApiThread) -> None:
    viewer = api.tokens.viewer
    assert api.request("POST", "/api/v1/bookings", valid_request())[0] == 201
    status, body, _ = api.request("GET", "/api/v1/bookings", token=viewer)
    assert status == 200 and len(body["bookings"]) == 1
    bid = body["bookings"][0]["id"]
    assert api.request("GET", f"/api/v1/bookings/{bid}", token=viewer)[0] == 200
    status, body, _ = api.request("POST", "/api/v1/bookings", valid_request(), token=viewer)
    assert status == 403 and body["error"] and body["errors"] == []
    assert api.request("DELETE", f"/api/v1/bookings/{bid}", token=viewer)[0] == 403
    assert api.request("GET", f"/api/v1/bookings/{bid}")[1]["cancelled"] is False
