"""``imsconf cdr export``: usage records from the command line, read from the server's store.

``--since`` / ``--until`` bound the window (ISO 8601 with an offset, e.g. ``2030-06-01T00:00:00Z``; either
may be left out): a record is in it when it *ended* at or after ``--since`` and before ``--until``.
``--kind legs`` (the default) gives one record per participant leg, ``--kind conferences`` one per
conference.  ``--format csv`` (the default) writes a header row then one row per record; ``--format json``
writes ``{"legs": [...]}`` or ``{"conferences": [...]}``.  Exit codes: 0 done, 1 storage failure, 2
invalid input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .store import UsageBackend

__all__ = ["add_cdr_parser", "parse_instant", "run_cdr"]


def add_cdr_parser(sub: Any) -> None:
    """Register ``cdr`` on the top-level subparsers of ``imsconf``."""
    p = sub.add_parser("cdr", help="usage records (call detail records) of ended legs and conferences")
    p.add_argument("--config", type=Path, help="TOML configuration file")
    p.add_argument("--data-dir", type=Path, help="data directory (default ./var)")
    cs = p.add_subparsers(dest="cdr_cmd", required=True)
    x = cs.add_parser(
        "export",
        help="write the records that ended in a window to standard output",
        description="Write the usage records that ended in [--since, --until) to standard output. "
        'CSV: a header row, then one row per record; JSON: {"legs": [...]} or {"conferences": [...]}.',
    )
    x.add_argument("--since", metavar="ISO", help="window start, inclusive (ISO 8601 with offset)")
    x.add_argument("--until", metavar="ISO", help="window end, exclusive (ISO 8601 with offset)")
    # also after "export" (the parent's value stands unless given here)
    x.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML configuration file")
    x.add_argument("--data-dir", type=Path, default=argparse.SUPPRESS, help="data directory (default ./var)")
    x.add_argument("--format", choices=["csv", "json"], default="csv", help="output format (default csv)")
    x.add_argument(
        "--kind",
        choices=["legs", "conferences"],
        default="legs",
        help="one record per participant leg (default) or per conference",
    )


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant with an offset (``Z`` allowed), as UTC; ValueError otherwise."""
    dt = datetime.fromisoformat(text.strip())
    if dt.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset (add Z or +HH:MM)")
    return dt.astimezone(UTC)


def run_cdr(args: argparse.Namespace, open_store: Callable[[], UsageBackend]) -> int:
    """``imsconf cdr``: *open_store* opens the node's usage store (the backend the settings select)."""
    from .export import conference_to_json, conferences_csv, leg_to_json, legs_csv

    window: list[datetime | None] = []
    for name in ("since", "until"):
        text = getattr(args, name)
        try:
            window.append(None if text is None else parse_instant(text))
        except ValueError as exc:
            print(f"imsconf: invalid --{name}: {exc}", file=sys.stderr)
            return 2
    since, until = window
    if since is not None and until is not None and until < since:
        print("imsconf: --until is before --since", file=sys.stderr)
        return 2
    try:
        store = open_store()
        try:
            legs, conferences = store.records(since, until)
        finally:
            store.close()
    except OSError as exc:
        print(f"imsconf: {exc}", file=sys.stderr)
        return 1
    if args.format == "json":
        if args.kind == "legs":
            doc: dict[str, object] = {"legs": [leg_to_json(r) for r in legs]}
        else:
            doc = {"conferences": [conference_to_json(r) for r in conferences]}
        print(json.dumps(doc, indent=2))
    else:
        sys.stdout.write(legs_csv(legs) if args.kind == "legs" else conferences_csv(conferences))
    return 0
