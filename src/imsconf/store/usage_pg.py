"""Usage records in PostgreSQL: the :class:`~imsconf.usage.store.UsageBackend` shared by every node.

Times are ``TIMESTAMPTZ`` (microseconds, UTC on the way out).  PostgreSQL text cannot hold a NUL
character, which the SQLite store keeps: the text columns are stored escaped (a backslash doubled, NUL as
backslash-0; :func:`escape`), so every record round-trips as it does in SQLite.  Each append is one
transaction; the window queries use the indexes on the end times and return records by end time, then
insertion order.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Final

from imsconf.usage.records import ConferenceUsage, LegUsage
from imsconf.usage.store import UsageStoreError

from .pg import PgComponentStore, PgDatabase

__all__ = ["COMPONENT", "MIGRATIONS", "PgUsageStore"]

COMPONENT: Final = "usage"
MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    (
        """CREATE TABLE usage_legs (
            seq BIGSERIAL PRIMARY KEY,
            conference_id TEXT NOT NULL,
            conference_uri TEXT NOT NULL,
            participant_id TEXT NOT NULL,
            identity TEXT NOT NULL,
            privacy BOOLEAN NOT NULL,
            joined TIMESTAMPTZ NOT NULL,
            left_at TIMESTAMPTZ NOT NULL,
            reason TEXT NOT NULL,
            codec TEXT,
            srtp_suite TEXT,
            key_mode TEXT NOT NULL,
            packets_sent BIGINT NOT NULL,
            packets_received BIGINT NOT NULL,
            loss DOUBLE PRECISION,
            jitter_ms DOUBLE PRECISION
        )""",
        """CREATE TABLE usage_conferences (
            seq BIGSERIAL PRIMARY KEY,
            conference_id TEXT NOT NULL,
            conference_uri TEXT NOT NULL,
            owner TEXT,
            created TIMESTAMPTZ NOT NULL,
            ended TIMESTAMPTZ NOT NULL,
            reason TEXT NOT NULL,
            participants BIGINT NOT NULL,
            planned BOOLEAN NOT NULL
        )""",
        "CREATE INDEX usage_legs_by_end ON usage_legs (left_at)",
        "CREATE INDEX usage_conferences_by_end ON usage_conferences (ended)",
    ),
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

_LEG_COLUMNS: Final = (
    "conference_id, conference_uri, participant_id, identity, privacy, joined, left_at, reason, codec, "
    "srtp_suite, key_mode, packets_sent, packets_received, loss, jitter_ms"
)
_CONF_COLUMNS: Final = "conference_id, conference_uri, owner, created, ended, reason, participants, planned"


def escape(text: str) -> str:
    """*text* without NUL characters, reversibly (:func:`unescape`)."""
    return text.replace("\\", "\\\\").replace("\0", "\\0")


def unescape(text: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            out.append("\0" if text[i + 1] == "0" else text[i + 1])
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _esc(text: str | None) -> str | None:
    return None if text is None else escape(text)


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def _time(v: object) -> datetime:
    if not isinstance(v, datetime):
        raise ValueError(f"not a timestamp: {v!r}")
    return _utc(v)


def _str(v: object) -> str:
    return unescape(str(v))


def _opt_str(v: object) -> str | None:
    return None if v is None else unescape(str(v))


def _opt_float(v: object) -> float | None:
    return None if v is None else float(str(v))


def _leg(row: tuple[object, ...]) -> LegUsage:
    (conf_id, conf_uri, pid, identity, privacy, joined, left, reason, codec, suite, key_mode, sent, received,
     loss, jitter) = row  # fmt: skip
    return LegUsage(
        conference_id=_str(conf_id), conference_uri=_str(conf_uri), participant_id=_str(pid),
        identity=_str(identity), privacy=bool(privacy), joined=_time(joined), left=_time(left),
        reason=_str(reason), codec=_opt_str(codec), srtp_suite=_opt_str(suite), key_mode=_str(key_mode),
        packets_sent=int(str(sent)), packets_received=int(str(received)), loss=_opt_float(loss),
        jitter_ms=_opt_float(jitter),
    )  # fmt: skip


def _conference(row: tuple[object, ...]) -> ConferenceUsage:
    conf_id, conf_uri, owner, created, ended, reason, participants, planned = row
    return ConferenceUsage(
        conference_id=_str(conf_id), conference_uri=_str(conf_uri), owner=_opt_str(owner),
        created=_time(created), ended=_time(ended), reason=_str(reason), participants=int(str(participants)),
        planned=bool(planned),
    )  # fmt: skip


class PgUsageStore(PgComponentStore):
    """The PostgreSQL :class:`~imsconf.usage.store.UsageBackend`."""

    def __init__(self, db: PgDatabase, *, migrate_to: int = SCHEMA_VERSION) -> None:
        super().__init__(db, COMPONENT, MIGRATIONS, migrate_to)

    def append(self, legs: Sequence[LegUsage], conferences: Sequence[ConferenceUsage]) -> None:
        if not legs and not conferences:
            return
        with self.db.transaction() as cur:
            if legs:
                cur.executemany(
                    f"INSERT INTO usage_legs ({_LEG_COLUMNS}) VALUES ({', '.join(['%s'] * 15)})".encode(),
                    [
                        (escape(r.conference_id), escape(r.conference_uri), escape(r.participant_id),
                         escape(r.identity), r.privacy, _utc(r.joined), _utc(r.left), escape(r.reason),
                         _esc(r.codec), _esc(r.srtp_suite), escape(r.key_mode), r.packets_sent,
                         r.packets_received, r.loss, r.jitter_ms)
                        for r in legs
                    ],
                )  # fmt: skip
            if conferences:
                cur.executemany(
                    f"INSERT INTO usage_conferences ({_CONF_COLUMNS}) VALUES ({', '.join(['%s'] * 8)})"
                    .encode(),
                    [
                        (escape(r.conference_id), escape(r.conference_uri), _esc(r.owner), _utc(r.created),
                         _utc(r.ended), escape(r.reason), r.participants, r.planned)
                        for r in conferences
                    ],
                )  # fmt: skip

    def append_legs(self, records: Sequence[LegUsage]) -> None:
        self.append(records, ())

    def append_conferences(self, records: Sequence[ConferenceUsage]) -> None:
        self.append((), records)

    def records(
        self, since: datetime | None, until: datetime | None
    ) -> tuple[tuple[LegUsage, ...], tuple[ConferenceUsage, ...]]:
        leg_where, leg_args = _window("left_at", since, until)
        conf_where, conf_args = _window("ended", since, until)
        with self.db.transaction() as cur:
            cur.execute(f"SELECT {_LEG_COLUMNS} FROM usage_legs{leg_where} ORDER BY left_at, seq".encode(),
                        leg_args)  # fmt: skip
            leg_rows = cur.fetchall()
            cur.execute(
                f"SELECT {_CONF_COLUMNS} FROM usage_conferences{conf_where} ORDER BY ended, seq".encode(),
                conf_args,
            )
            conf_rows = cur.fetchall()
        try:
            return tuple(_leg(r) for r in leg_rows), tuple(_conference(r) for r in conf_rows)
        except ValueError as exc:
            raise UsageStoreError(f"usage {self.db.where}: {exc}") from None


def _window(column: str, since: datetime | None, until: datetime | None) -> tuple[str, tuple[datetime, ...]]:
    where: list[str] = []
    args: list[datetime] = []
    if since is not None:
        where.append(f"{column} >= %s")
        args.append(_utc(since))
    if until is not None:
        where.append(f"{column} < %s")
        args.append(_utc(until))
    return (" WHERE " + " AND ".join(where)) if where else "", tuple(args)
