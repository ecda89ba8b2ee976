"""The live conference routes over a fake ConferenceAdmin: views, commands, errors, tokens."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from fake_admin import FakeAdmin, conference, participant
from imsconf.focus.admin import ParticipantView
from web_harness import ServedApi, with_deps

BASE = "/api/v1/conferences"


@pytest.fixture
def admin() -> FakeAdmin:
    return FakeAdmin(
        conference("weekly", participant("p1", "sip:alice@example.com", role="owner"),
                   participant("p2", "sips:bob@example.com", display="Bob")),
        conference("empty"),
    )  # fmt: skip


@pytest.fixture
def api(tmp_path: Path, admin: FakeAdmin) -> Iterator[ServedApi]:
    a = ServedApi(tmp_path, with_deps(admin=admin))
    yield a
    a.close()


def test_list_and_one_conference(api: ServedApi) -> None:
    status, body, _ = api.request("GET", BASE)
    assert status == 200
    assert body == {"conferences": [
        {"id": "weekly", "uri": "sip:weekly@example.com", "created": "2027-03-01T12:00:00Z",
         "owner": "sip:alice@example.com", "participants": 2, "locked": False, "downlink": "per-leg",
         "key_epoch": None, "messages": 0},
        {"id": "empty", "uri": "sip:empty@example.com", "created": "2027-03-01T12:00:00Z", "owner": None,
         "participants": 0, "locked": False, "downlink": "per-leg", "key_epoch": None, "messages": 0},
    ]}  # fmt: skip
    status, conf, _ = api.request("GET", f"{BASE}/weekly")
    assert status == 200 and conf["id"] == "weekly"
    first = conf["participants"][0]
    names = {f.name for f in dataclasses.fields(ParticipantView)}
    assert set(first) == names  # every field of the view
    assert first["rtcp"] == {"loss": 0.01, "jitter_ms": 2.5}
    assert first["joined"] == "2027-03-01T12:00:00Z" and first["role"] == "owner"
    assert conf["participants"][1]["display"] == "Bob"
    assert first["chat"] is False and conf["messages"] == 0
    assert api.request("GET", f"{BASE}/weekly", token=api.tokens.viewer)[0] == 200


def test_participant_commands(api: ServedApi, admin: FakeAdmin) -> None:
    for action, field, value in (("mute", "muted", True), ("unmute", "muted", False),
                                 ("deaf", "deaf", True), ("undeaf", "deaf", False)):  # fmt: skip
        status, body, _ = api.request("POST", f"{BASE}/weekly/participants/p2/{action}")
        assert status == 200, body
        assert body["id"] == "p2" and body[field] is value
    assert api.request("POST", f"{BASE}/weekly/participants/p2/mute")[1]["muted"] is True
    assert admin.conference("weekly").participants[1].muted is True
    status, body, _ = api.request("DELETE", f"{BASE}/weekly/participants/p2")
    assert status == 204 and body == {}
    assert admin.calls == [("kick", "weekly", "p2")]
    assert api.request("DELETE", f"{BASE}/weekly/participants/p2")[0] == 404


def test_lock_unlock_end(api: ServedApi, admin: FakeAdmin) -> None:
    status, body, _ = api.request("POST", f"{BASE}/weekly/lock")
    assert status == 200 and body["locked"] is True and len(body["participants"]) == 2
    assert api.request("POST", f"{BASE}/weekly/unlock")[1]["locked"] is False
    assert api.request("DELETE", f"{BASE}/weekly")[0] == 204
    assert admin.calls == [("end", "weekly")]
    assert api.request("GET", f"{BASE}/weekly")[0] == 404


def test_invite(api: ServedApi, admin: FakeAdmin) -> None:
    status, body, _ = api.request("POST", f"{BASE}/weekly/participants", {"uri": "sip:carol@example.com"})
    assert status == 202, body
    assert admin.calls == [("invite", "weekly", "sip:carol@example.com")]
    for req, field in (({}, "uri"), ({"uri": 5}, "uri"), ({"uri": "mailto:x"}, "uri"),
                       ({"uri": "sip:a@b", "colour": "red"}, "colour"), ({"uri": ""}, "uri")):  # fmt: skip
        status, body, _ = api.request("POST", f"{BASE}/weekly/participants", req)
        assert status == 422, (req, body)
        assert field in [e["field"] for e in body["errors"]], body
    assert api.request("POST", f"{BASE}/weekly/participants", raw_body=b"{uri:")[0] == 400
    status, body, _ = api.request("POST", f"{BASE}/weekly/participants", raw_body=b'{"uri":1,"uri":2}')
    assert status == 400 and body["errors"][0]["field"] == "body"
    status, _, _ = api.request(
        "POST", f"{BASE}/weekly/participants", {"uri": "sip:c@d"}, headers={"Content-Type": "text/plain"}
    )
    assert status == 415
    assert api.request("POST", f"{BASE}/nowhere/participants", {"uri": "sip:carol@example.com"})[0] == 404
    assert len(admin.calls) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", f"{BASE}/nope"), ("POST", f"{BASE}/nope/lock"), ("DELETE", f"{BASE}/nope"),
     ("POST", f"{BASE}/weekly/participants/nobody/mute"), ("DELETE", f"{BASE}/weekly/participants/nobody"),
     ("POST", f"{BASE}/nope/participants/p1/deaf")],
)  # fmt: skip
def test_unknown_conference_or_participant_is_404(api: ServedApi, method: str, path: str) -> None:
    status, body, _ = api.request(method, path)
    assert status == 404 and body["error"].startswith("no such") and body["errors"] == []


WRITES = [
    ("POST", f"{BASE}/weekly/lock"),
    ("POST", f"{BASE}/weekly/unlock"),
    ("DELETE", f"{BASE}/weekly"),
    ("POST", f"{BASE}/weekly/participants"),
    ("POST", f"{BASE}/weekly/participants/p1/mute"),
    ("POST", f"{BASE}/weekly/participants/p1/unmute"),
    ("POST", f"{BASE}/weekly/participants/p1/deaf"),
    ("POST", f"{BASE}/weekly/participants/p1/undeaf"),
    ("DELETE", f"{BASE}/weekly/participants/p1"),
]


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_writes_need_the_operator_token(api: ServedApi, admin: FakeAdmin, method: str, path: str) -> None:
    body = {"uri": "sip:carol@example.com"} if path.endswith("participants") else None
    status, reply, resp = api.request(method, path, body, token=None)
    assert status == 401 and resp.getheader("WWW-Authenticate", "").startswith("Bearer")
    assert api.request(method, path, body, token="y" * 43)[0] == 401
    status, reply, _ = api.request(method, path, body, token=api.tokens.viewer)
    assert status == 403 and reply["error"]
    assert admin.calls == [] and admin.conference("weekly").locked is False


def test_without_an_admin_the_routes_answer_503(tmp_path: Path) -> None:
    a = ServedApi(tmp_path, with_deps())
    try:
        for method, path in [("GET", BASE), ("GET", f"{BASE}/x"), ("POST", f"{BASE}/x/lock"),
                             ("GET", "/api/v1/events")]:  # fmt: skip
            status, body, _ = a.request(method, path)
            assert status == 503 and "not available" in body["error"], (path, body)
    finally:
        a.close()


def test_tokens_are_never_logged(api: ServedApi, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "w" * 43
    api.request("GET", BASE)
    api.request("GET", BASE, token=wrong)
    api.request("POST", f"{BASE}/weekly/lock", token=api.tokens.viewer)
    api.request("GET", "/nowhere", token=api.tokens.viewer)
    assert "event=http_unauthorized" in caplog.text and "event=http_request" in caplog.text
    for secret in (api.tokens.operator, api.tokens.viewer, wrong):
        assert secret not in caplog.text


def test_chat_participants_and_the_message_count(tmp_path: Path) -> None:
    chatting = dataclasses.replace(participant("p1", "sip:alice@example.com", role="owner"), chat=True)
    bob = participant("p2", "sip:bob@example.com")
    conf = dataclasses.replace(conference("talk", chatting, bob), messages=7)
    api = ServedApi(tmp_path, with_deps(admin=FakeAdmin(conf)))
    try:
        status, body, _ = api.request("GET", f"{BASE}/talk")
        assert status == 200 and body["messages"] == 7
        assert [p["chat"] for p in body["participants"]] == [True, False]
        (summary,) = api.request("GET", BASE)[1]["conferences"]
        assert summary["messages"] == 7 and summary["participants"] == 2
    finally:
        api.close()
