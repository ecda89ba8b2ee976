"""Command line: ``imsconf serve``, ``imsconf users add|remove|list``, ``imsconf book ...``,
``imsconf cdr export``, ``imsconf conf ...`` (live conferences through the running server's API),
``imsconf --version``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imsconf import __version__

if TYPE_CHECKING:
    from imsconf.app.config import Settings


def _serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the conference server")
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--domain", help="SIP domain served (default localhost)")
    p.add_argument(
        "--listen",
        action="append",
        metavar="TRANSPORT:HOST:PORT",
        help="udp:HOST:PORT, tcp:HOST:PORT or tls:HOST:PORT (repeatable; default UDP+TCP 5060, TLS 5061)",
    )
    p.add_argument("--data-dir", type=Path, help="data directory (default ./var)")
    p.add_argument("--auth", choices=["digest", "none"], help="participant authentication (default digest)")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])
    p.add_argument(
        "--http",
        metavar="HOST:PORT|off",
        type=_http_address,
        help="the operator plane: HTTP API, console, metrics, health (default 127.0.0.1:8080; a bare PORT "
        "means 127.0.0.1:PORT; off for none); tokens in DATA_DIR/api-token and DATA_DIR/api-token-viewer",
    )


def _http_address(text: str) -> str:
    """``--http 8080`` is loopback: ``127.0.0.1:8080``."""
    return f"127.0.0.1:{text}" if text.isdigit() else text


def _users_parser(sub: Any) -> None:
    p = sub.add_parser("users", help="manage digest users in the data directory")
    p.add_argument("--config", type=Path)
    p.add_argument("--data-dir", type=Path)
    p.add_argument("--domain", help="realm (default: the configured domain)")
    us = p.add_subparsers(dest="users_cmd", required=True)
    a = us.add_parser("add", help="add or replace a user")
    a.add_argument("username")
    g = a.add_mutually_exclusive_group()
    g.add_argument("--password", help="the password (prefer --password-stdin: argv is visible to others)")
    g.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    r = us.add_parser("remove", help="remove a user")
    r.add_argument("username")
    us.add_parser("list", help="list user names")


def _mixer_parser(sub: Any) -> None:
    p = sub.add_parser(
        "mixer", help="run the media mixer (MRFP) as its own process, controlled over mutual TLS"
    )
    p.add_argument("--config", type=Path)
    p.add_argument(
        "--data-dir", type=Path, help="holds pki/ (the conference CA issues the mixer's certificate)"
    )
    p.add_argument(
        "--listen", dest="mixer_listen", metavar="HOST:PORT", help="control channel (default 127.0.0.1:7100)"
    )
    p.add_argument("--media-host")
    p.add_argument("--rtp-port-range", metavar="LOW-HIGH")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"])


def _cmd_mixer(args: argparse.Namespace) -> int:
    from imsconf.app.logging import setup_logging
    from imsconf.app.mixer import run_mixer

    overrides = _overrides(args)
    given = vars(args)
    for name in ("media_host", "rtp_port_range"):
        if given.get(name) is not None:
            overrides[name] = given[name]
    settings = _load_settings(args, overrides)
    if settings is None:
        return 2
    setup_logging(settings.log_level)
    return _run(run_mixer(settings, args.mixer_listen))


def _run(coro: Coroutine[Any, Any, int]) -> int:
    runner: Callable[[Coroutine[Any, Any, int]], int]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        runner = asyncio.run
    return runner(coro)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="imsconf", description="Secure IMS conference server")
    parser.add_argument("--version", action="version", version=f"imsconf {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _serve_parser(sub)
    _users_parser(sub)
    _mixer_parser(sub)
    from imsconf.booking.cli import add_book_parser

    add_book_parser(sub)
    from imsconf.usage.cli import add_cdr_parser

    add_cdr_parser(sub)
    from imsconf.app.conf_cli import add_conf_parser

    add_conf_parser(sub)
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    given = vars(args)  # the options of the subcommand that was run (each has its own)
    for name in ("domain", "data_dir", "auth", "log_level", "http"):
        value = given.get(name)
        if value is not None:
            out[name] = value
    if given.get("listen"):
        out["listen"] = list(given["listen"])
    return out


def _load_settings(args: argparse.Namespace, overrides: dict[str, Any] | None = None) -> Settings | None:
    """The settings from ``--config`` and the command line; None (after saying why) when they are wrong."""
    from imsconf.app.config import load_settings

    try:
        return load_settings(args.config, _overrides(args) if overrides is None else overrides)
    except (ValueError, OSError) as exc:
        print(f"imsconf: configuration error: {exc}", file=sys.stderr)
        return None


def _cmd_serve(args: argparse.Namespace, argv: list[str] | None = None) -> int:
    from imsconf.app.logging import setup_logging
    from imsconf.app.server import run_server

    overrides = _overrides(args)
    settings = _load_settings(args, overrides)
    if settings is None:
        return 2
    if argv is not None:  # the real command line (not a call from Python): the allocator can still change
        from imsconf.app.allocator import reexec_for_allocator

        reexec_for_allocator(settings.python_allocator, argv)
    setup_logging(settings.log_level)
    return _run(run_server(settings, config_file=args.config, overrides=overrides))


def _cmd_users(args: argparse.Namespace) -> int:
    from imsconf.app.stores import open_users
    from imsconf.app.users import UserStoreError

    settings = _load_settings(args)
    if settings is None:
        return 2
    try:
        store = open_users(settings)
    except OSError as exc:  # StoreUnavailable among them
        print(f"imsconf: {exc}", file=sys.stderr)
        return 1
    try:
        if args.users_cmd == "add":
            if args.password is not None:
                password = args.password
            elif args.password_stdin:
                password = sys.stdin.readline().rstrip("\r\n")
            else:
                password = getpass.getpass(f"password for {args.username}: ")
            if not password:
                print("imsconf: empty password refused", file=sys.stderr)
                return 2
            store.add(args.username, password, settings.realm, replace=True)
            print(f"user {args.username} added (realm {settings.realm})")
        elif args.users_cmd == "remove":
            store.remove(args.username)
            print(f"user {args.username} removed")
        else:
            for name in store.list():
                print(name)
    except (KeyError, ValueError, UserStoreError, OSError) as exc:
        print(f"imsconf: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    return 0


def _cmd_conf(args: argparse.Namespace) -> int:
    from imsconf.app.conf_cli import ApiFailure, client_for, run_conf
    from imsconf.web.auth import TOKEN_FILE

    settings = _load_settings(args)
    if settings is None:
        return 2
    try:
        client = client_for(settings, TOKEN_FILE)
    except ApiFailure as exc:
        print(f"imsconf: {exc}", file=sys.stderr)
        return 2
    return run_conf(args, client)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        # only a process started from the command line re-executes itself for its allocator
        return _cmd_serve(args, sys.argv[1:] if argv is None else None)
    if args.command == "users":
        return _cmd_users(args)
    if args.command == "mixer":
        return _cmd_mixer(args)
    if args.command == "book":
        from imsconf.booking.cli import run_book

        settings = _load_settings(args)
        if settings is None:
            return 2
        from functools import partial

        from imsconf.app.stores import open_bookings

        return run_book(args, settings, partial(open_bookings, settings))
    if args.command == "cdr":
        from imsconf.usage.cli import run_cdr

        settings = _load_settings(args)
        if settings is None:
            return 2
        from functools import partial

        from imsconf.app.stores import open_usage

        return run_cdr(args, partial(open_usage, settings))
    if args.command == "conf":
        return _cmd_conf(args)
    return 2  # pragma: no cover - argparse enforces the choices


if __name__ == "__main__":
    sys.exit(main())
