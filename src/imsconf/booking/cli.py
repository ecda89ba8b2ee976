"""``imsconf book create|list|show|cancel``: bookings from the command line, on the same store as the server.

Output is JSON (one booking, or ``{"bookings": [...]}``), never the PIN.  Exit codes: 0 done, 1 not found
or storage failure, 2 invalid input (each wrong field on its own line:
``imsconf: invalid booking: FIELD: reason``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from .backend import BookingStorage

__all__ = ["BookingSettings", "add_book_parser", "run_book"]


class BookingSettings(Protocol):
    """What ``imsconf book`` reads from the server's settings (``imsconf.app.config.Settings``)."""

    @property
    def domain(self) -> str: ...
    @property
    def data_dir(self) -> Path: ...
    @property
    def factory_user(self) -> str: ...


_ROLES = ("chair", "moderator", "participant")


def add_book_parser(sub: Any) -> None:
    """Register ``book`` on the top-level subparsers of ``imsconf``."""
    p = sub.add_parser("book", help="manage planned conferences (bookings)")
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--data-dir", type=Path, help="data directory (default ./var)")
    p.add_argument("--domain", help="SIP domain of the conference URIs (default: the configured domain)")
    bs = p.add_subparsers(dest="book_cmd", required=True)

    c = bs.add_parser("create", help="book a conference; prints the booking as JSON")
    c.add_argument("--uri", help="conference URI, sip:NAME@DOMAIN (default: an unguessable generated one)")
    c.add_argument("--start", help="window start, ISO 8601 with offset, e.g. 2030-06-01T09:00:00Z")
    c.add_argument("--end", help="window end, ISO 8601 with offset (at most 7 days after start)")
    g = c.add_mutually_exclusive_group()
    g.add_argument("--pin", help="4-12 digit PIN (prefer --pin-stdin: argv is visible to other users)")
    g.add_argument("--pin-stdin", action="store_true", help="read the PIN from standard input")
    c.add_argument("--capacity", help="maximum participants, 1-1000 (default 10)")
    c.add_argument(
        "--invite",
        action="append",
        default=[],
        metavar="URI[:ROLE]",
        help="roster entry, e.g. sip:alice@example.com:chair (role chair|moderator|participant; repeatable)",
    )
    c.add_argument("--downlink", help="per-participant | group (default group)")
    c.add_argument("--rekey", help="on-join | on-leave | both | never | interval:SECONDS (default both)")
    c.add_argument("--allow-pin-in-uri", action="store_true", help="accept the PIN as a ;pin= URI parameter")
    c.add_argument("--dial-out", action="store_true", help="call the roster when the window opens")
    c.add_argument(
        "--overrun",
        metavar="MIN",
        help="minutes the conference may run past the end before it is closed, 0-240 (default 0)",
    )
    c.add_argument("--subject", help="a subject line for the conference")
    c.add_argument(
        "--audio-codecs",
        metavar="LIST",
        help="the conference's audio codecs, preferred first, e.g. G722,PCMU (default: the server's setting)",
    )

    ls = bs.add_parser("list", help="list bookings as JSON")
    ls.add_argument("--active-at", metavar="ISO", help="only bookings whose window holds this instant")
    ls.add_argument("--all", action="store_true", help="include cancelled bookings")
    s = bs.add_parser("show", help="show one booking as JSON")
    s.add_argument("id")
    x = bs.add_parser("cancel", help="cancel a booking (idempotent); prints it as JSON")
    x.add_argument("id")


def _invitee(text: str) -> dict[str, str]:
    uri, sep, role = text.rpartition(":")
    if sep and role in _ROLES:
        return {"uri": uri, "role": role}
    return {"uri": text}


def _request(args: argparse.Namespace, pin: str | None) -> dict[str, object]:
    data: dict[str, object] = {}
    for name in ("uri", "start", "end", "downlink", "rekey", "subject"):
        value = getattr(args, name)
        if value is not None:
            data[name] = value
    for name in ("capacity", "overrun"):
        value = getattr(args, name)
        if value is not None:
            text = value.strip()
            data[name] = int(text) if text.lstrip("-").isdigit() and text.isascii() else text
    if pin is not None:
        data["pin"] = pin
    if args.invite:
        data["invitees"] = [_invitee(t) for t in args.invite]
    if args.audio_codecs is not None:
        data["audio_codecs"] = [t.strip() for t in args.audio_codecs.split(",") if t.strip()]
    if args.allow_pin_in_uri:
        data["allow_pin_in_uri"] = True
    if args.dial_out:
        data["dial_out"] = True
    return data


def _print(obj: Any) -> None:
    print(json.dumps(obj, indent=2))


def run_book(
    args: argparse.Namespace, settings: BookingSettings, open_store: Callable[[], BookingStorage]
) -> int:
    """``imsconf book``: *open_store* opens the node's bookings store (the backend the settings select)."""
    from .model import InvalidBooking, booking_from_request, booking_to_json, parse_time

    cmd = args.book_cmd
    active_at = None
    if cmd == "list" and args.active_at is not None:
        try:
            active_at = parse_time(args.active_at)
        except ValueError as exc:
            print(f"imsconf: invalid --active-at: {exc}", file=sys.stderr)
            return 2
    pin: str | None = None
    if cmd == "create":
        pin = args.pin
        if args.pin_stdin:
            pin = sys.stdin.readline().rstrip("\r\n")
    try:
        store = open_store()
    except OSError as exc:
        print(f"imsconf: {exc}", file=sys.stderr)
        return 1
    try:
        if cmd == "create":
            try:
                booking = booking_from_request(
                    _request(args, pin),
                    domain=settings.domain,
                    now=datetime.now(UTC),
                    reserved_users=(settings.factory_user,),
                )
                store.create(booking)
            except InvalidBooking as exc:
                for err in exc.errors:
                    print(f"imsconf: invalid booking: {err.field}: {err.reason}", file=sys.stderr)
                return 2
            _print(booking_to_json(booking))
        elif cmd == "list":
            _print(
                {"bookings": [booking_to_json(b) for b in store.list(active_at, include_cancelled=args.all)]}
            )
        else:
            found = store.get(args.id) if cmd == "show" else store.cancel(args.id)
            if found is None:
                print(f"imsconf: no booking {args.id!r}", file=sys.stderr)
                return 1
            _print(booking_to_json(found))
    except OSError as exc:
        print(f"imsconf: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0
