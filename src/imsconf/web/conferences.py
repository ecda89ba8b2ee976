"""Live conferences over HTTP, through the operator seam (:class:`imsconf.focus.admin.ConferenceAdmin`).

::

    GET    /api/v1/conferences                                   {"conferences": [summary...]}
    GET    /api/v1/conferences/{id}                              the conference with its participants
    POST   /api/v1/conferences/{id}/lock | unlock                200 the conference
    DELETE /api/v1/conferences/{id}                              204 (BYE to everyone)
    POST   /api/v1/conferences/{id}/participants                 {"uri": "sip:..."} -> 202 (dial-out begun)
    POST   /api/v1/conferences/{id}/participants/{pid}/mute | unmute | deaf | undeaf   200 the participant
    DELETE /api/v1/conferences/{id}/participants/{pid}           204 (BYE, "booted")

The commands return at once: the SIP work they start goes on in the background and shows in the event
stream (``/api/v1/events``) and the conference event package.  404 for an unknown conference or
participant, 422 naming ``uri`` for a bad dial-out target.

Each handler's synchronous part (the admin call and the JSON of its answer) runs in a turn of the app's
:class:`~.turns.Turns`: one per loop iteration, so a burst of requests never holds up the mixer's tick.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar

from aiohttp import web

from imsconf.focus.admin import (
    ConferenceAdmin,
    ConferenceView,
    InvalidTarget,
    ParticipantView,
    UnknownConference,
    UnknownParticipant,
)

from .deps import admin_of, deps_of
from .errors import ApiError, FieldError, json_response, no_query, read_json
from .routes import Access, Handler, Param, Route
from .turns import Turns
from .views import conference_json, conference_summary_json, participant_json

__all__ = ["ROUTES", "SCHEMAS", "TURNS"]

TURNS: Final = web.AppKey("imsconf_admin_turns", Turns)

BASE: Final = "/api/v1/conferences"
_SEGMENT: Final = "[A-Za-z0-9._~-]{1,128}"
CONF: Final = f"{BASE}/{{id:{_SEGMENT}}}"
PARTICIPANT: Final = f"{CONF}/participants/{{pid:{_SEGMENT}}}"
_MAX_URI: Final = 512


def _ids(request: web.Request) -> tuple[str, str]:
    no_query(request)
    return request.match_info["id"], request.match_info.get("pid", "")


_T = TypeVar("_T")


def _call(fn: Callable[[], _T]) -> _T:
    try:
        return fn()
    except UnknownConference:
        raise ApiError(404, "no such conference") from None
    except UnknownParticipant:
        raise ApiError(404, "no such participant") from None
    except InvalidTarget as exc:
        raise ApiError(422, "invalid dial-out target", errors=[FieldError("uri", str(exc))]) from None


async def _answer(
    request: web.Request, status: int, make: Callable[[], Mapping[str, Any] | None]
) -> web.StreamResponse:
    """*make*'s result as the JSON answer (None: no body), made in a turn of the app's :data:`TURNS`."""
    async with request.app[TURNS]:
        return json_response(status, make())


async def list_conferences(request: web.Request) -> web.StreamResponse:
    admin = admin_of(request)
    no_query(request)
    return await _answer(
        request, 200, lambda: {"conferences": [conference_summary_json(c) for c in admin.conferences()]}
    )


async def get_conference(request: web.Request) -> web.StreamResponse:
    admin = admin_of(request)
    cid, _ = _ids(request)
    return await _answer(request, 200, lambda: conference_json(_call(lambda: admin.conference(cid))))


def _participant_command(
    command: Callable[[ConferenceAdmin, str, str], ParticipantView],
) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        admin = admin_of(request)
        cid, pid = _ids(request)
        return await _answer(request, 200, lambda: participant_json(_call(lambda: command(admin, cid, pid))))

    return handler


mute = _participant_command(lambda a, c, p: a.set_muted(c, p, True))
unmute = _participant_command(lambda a, c, p: a.set_muted(c, p, False))
deafen = _participant_command(lambda a, c, p: a.set_deaf(c, p, True))
undeafen = _participant_command(lambda a, c, p: a.set_deaf(c, p, False))


async def kick(request: web.Request) -> web.StreamResponse:
    admin = admin_of(request)
    cid, pid = _ids(request)
    return await _answer(request, 204, lambda: _call(lambda: admin.kick(cid, pid)))


def _lock_command(locked: bool) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        admin = admin_of(request)
        cid, _ = _ids(request)

        def apply() -> dict[str, Any]:
            view: ConferenceView = _call(lambda: admin.set_locked(cid, locked))
            return conference_json(view)

        return await _answer(request, 200, apply)

    return handler


lock = _lock_command(True)
unlock = _lock_command(False)


async def end(request: web.Request) -> web.StreamResponse:
    admin = admin_of(request)
    cid, _ = _ids(request)
    return await _answer(request, 204, lambda: _call(lambda: admin.end(cid)))


async def invite(request: web.Request) -> web.StreamResponse:
    admin = admin_of(request)
    cid, _ = _ids(request)
    data = await read_json(request, deps_of(request).request_timeout)
    errors = [FieldError(name[:64], "unknown field") for name in data if name != "uri"]
    uri = data.get("uri")
    if uri is None:
        errors.insert(0, FieldError("uri", "required: the SIP or SIPS URI to dial"))
    elif not isinstance(uri, str):
        errors.insert(0, FieldError("uri", "must be a string"))
    elif not 0 < len(uri) <= _MAX_URI:
        errors.insert(0, FieldError("uri", f"must be 1 to {_MAX_URI} characters"))
    if errors:
        raise ApiError(422, "invalid dial-out request", errors=errors)
    assert isinstance(uri, str)

    def dial() -> dict[str, str]:
        _call(lambda: admin.invite(cid, uri))
        return {"conference": cid, "uri": uri, "status": "dialling"}

    return await _answer(request, 202, dial)


_CID: Final = Param("id", "path", "the conference id")
_PID: Final = Param("pid", "path", "the participant id")
_NO_CONF: Final = ("no such conference", "Error")
_NO_ONE: Final = ("no such conference or participant", "Error")
_TAG: Final = "conferences"


def _participant_route(action: str, summary: str, handler: Handler) -> Route:
    return Route("POST", f"{PARTICIPANT}/{action}", f"participant_{action}", summary, handler, Access.WRITE,
                 _TAG, params=(_CID, _PID),
                 responses={200: ("the participant", "Participant"), 404: _NO_ONE})  # fmt: skip


ROUTES: Final = (
    Route("GET", BASE, "list_conferences", "Live conferences", list_conferences, Access.READ, _TAG,
          responses={200: ("the live conferences", "ConferenceList")}),
    Route("GET", CONF, "get_conference", "One live conference with its participants", get_conference,
          Access.READ, _TAG, params=(_CID,),
          responses={200: ("the conference", "Conference"), 404: _NO_CONF}),
    Route("DELETE", CONF, "end_conference", "End the conference (BYE to every participant)", end,
          Access.WRITE, _TAG, params=(_CID,), responses={204: ("ended", None), 404: _NO_CONF}),
    Route("POST", f"{CONF}/lock", "lock_conference", "Lock: new joins get 403", lock, Access.WRITE, _TAG,
          params=(_CID,), responses={200: ("the conference", "Conference"), 404: _NO_CONF}),
    Route("POST", f"{CONF}/unlock", "unlock_conference", "Unlock", unlock, Access.WRITE, _TAG,
          params=(_CID,), responses={200: ("the conference", "Conference"), 404: _NO_CONF}),
    Route("POST", f"{CONF}/participants", "invite_participant", "Dial a user out into the conference",
          invite, Access.WRITE, _TAG, params=(_CID,), request="DialOut",
          responses={202: ("dial-out begun", "DialOutAccepted"), 400: ("malformed JSON body", "Error"),
                     404: _NO_CONF, 415: ("not application/json", "Error"),
                     422: ("invalid or missing uri", "Error")}),
    Route("DELETE", PARTICIPANT, "kick_participant", "Remove a participant (BYE, booted)", kick,
          Access.WRITE, _TAG, params=(_CID, _PID), responses={204: ("removed", None), 404: _NO_ONE}),
    _participant_route("mute", "Mute: mixed into nobody's audio", mute),
    _participant_route("unmute", "Unmute", unmute),
    _participant_route("deaf", "Deafen: receives silence", deafen),
    _participant_route("undeaf", "Undeafen", undeafen),
)  # fmt: skip

_TIME: Final = {"type": "string", "format": "date-time"}
_NULLABLE_STR: Final = {"type": ["string", "null"]}
_CONFERENCE_PROPS: Final[dict[str, object]] = {
    "id": {"type": "string"},
    "uri": {"type": "string"},
    "created": _TIME,
    "owner": _NULLABLE_STR,
    "locked": {"type": "boolean"},
    "downlink": {"type": "string", "enum": ["per-leg", "group"]},
    "key_epoch": {"type": ["integer", "null"]},
    "messages": {"type": "integer", "description": "instant messages relayed (pager mode and MSRP)"},
}
SCHEMAS: Final[dict[str, dict[str, object]]] = {
    "Participant": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "uri": {"type": "string"},
            "display": _NULLABLE_STR,
            "role": {"type": "string", "enum": ["owner", "moderator", "participant"]},
            "joined": _TIME,
            "transport": {"type": "string", "enum": ["udp", "tcp", "tls"]},
            "codec": _NULLABLE_STR,
            "srtp": _NULLABLE_STR,
            "key": {"type": "string", "enum": ["sdes", "group", "none"]},
            "muted": {"type": "boolean"},
            "deaf": {"type": "boolean"},
            "on_hold": {"type": "boolean"},
            "speaking": {"type": "boolean"},
            "floor": {"type": "boolean"},
            "rtcp": {
                "type": "object",
                "properties": {
                    "loss": {"type": ["number", "null"]},
                    "jitter_ms": {"type": ["number", "null"]},
                },
            },
            "chat": {"type": "boolean", "description": "has an MSRP stream or receives pager messages"},
        },
    },
    "ConferenceSummary": {
        "type": "object",
        "properties": {**_CONFERENCE_PROPS, "participants": {"type": "integer"}},
    },
    "Conference": {
        "type": "object",
        "properties": {
            **_CONFERENCE_PROPS,
            "participants": {"type": "array", "items": {"$ref": "#/components/schemas/Participant"}},
        },
    },
    "ConferenceList": {
        "type": "object",
        "properties": {
            "conferences": {"type": "array", "items": {"$ref": "#/components/schemas/ConferenceSummary"}}
        },
    },
    "DialOut": {"type": "object", "required": ["uri"], "properties": {"uri": {"type": "string"}}},
    "DialOutAccepted": {
        "type": "object",
        "properties": {
            "conference": {"type": "string"},
            "uri": {"type": "string"},
            "status": {"type": "string"},
        },
    },
}
