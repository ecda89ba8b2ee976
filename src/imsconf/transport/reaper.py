"""Closing idle SIP stream connections: one periodic sweep over two queues, no timer per connection.

A connection is *unused* until it carries its first complete SIP message, *used* after.  Each queue is
ordered by last activity (a complete message, or an RFC 5626 keep-alive CRLF), so a sweep looks only at
the heads it closes and stops at the first connection still within its time.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Protocol

log = logging.getLogger("imsconf.transport")


class Reapable(Protocol):
    """What the reaper needs of a connection."""

    conn_id: int

    def close(self) -> None: ...


class IdleReaper:
    """Closes a connection *unused* seconds after its last activity while it has carried no message, and
    *used* seconds after its last activity once it has.  The sweep runs every *interval* seconds (default:
    an eighth of the shorter time) while there are connections, so a connection is closed at most one
    interval late."""

    def __init__(self, unused: float, used: float, interval: float | None = None) -> None:
        self.unused = unused
        self.used = used
        self.interval = interval if interval is not None else max(0.01, min(unused, used) / 8)
        self.reaped = 0
        # conn_id -> (connection, last activity)
        self._unused: OrderedDict[int, tuple[Reapable, float]] = OrderedDict()
        self._used: OrderedDict[int, tuple[Reapable, float]] = OrderedDict()
        self._timer: asyncio.TimerHandle | None = None

    def __len__(self) -> int:
        return len(self._unused) + len(self._used)

    def add(self, conn: Reapable, now: float, *, used: bool = False) -> None:
        (self._used if used else self._unused)[conn.conn_id] = (conn, now)
        self._arm()

    def keepalive(self, conn: Reapable, now: float) -> None:
        """A keep-alive: restarts the connection's time in its own queue (an unused one stays unused)."""
        for queue in (self._unused, self._used):
            if conn.conn_id in queue:
                queue[conn.conn_id] = (conn, now)
                queue.move_to_end(conn.conn_id)
                return

    def message(self, conn: Reapable, now: float) -> None:
        """A complete SIP message: the connection is used from now on (one already taken out by a sweep
        stays out: it is being closed)."""
        if self._unused.pop(conn.conn_id, None) is None and conn.conn_id not in self._used:
            return
        self._used[conn.conn_id] = (conn, now)
        self._used.move_to_end(conn.conn_id)

    def forget(self, conn: Reapable) -> None:
        self._unused.pop(conn.conn_id, None)
        self._used.pop(conn.conn_id, None)
        if not self._unused and not self._used:
            self.stop()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def sweep(self, now: float) -> list[Reapable]:
        """Take out and return the connections whose time is up (the caller closes them)."""
        out: list[Reapable] = []
        for queue, limit in ((self._unused, self.unused), (self._used, self.used)):
            while queue:
                conn, last = next(iter(queue.values()))
                if now - last < limit:
                    break
                queue.popitem(last=False)
                out.append(conn)
        self.reaped += len(out)
        return out

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        loop = asyncio.get_running_loop()
        for conn in self.sweep(loop.time()):
            log.debug("event=stream_idle_closed conn=%d", conn.conn_id)
            conn.close()
        if self._unused or self._used:
            self._arm()
