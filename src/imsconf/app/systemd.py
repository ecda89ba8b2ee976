"""The service manager's notification protocol (sd_notify(3)): readiness, reload, stop, watchdog.

Under systemd with ``Type=notify`` the variable ``NOTIFY_SOCKET`` names an AF_UNIX datagram socket; each
state change is one datagram of ``KEY=VALUE`` lines, sent through the ``sdnotify`` package (the choice is in
docs/decisions/0009-systemd-sdnotify.md). Without the variable nothing is sent and nothing fails: the
server runs the same from a shell. ``WATCHDOG_USEC`` (set by ``WatchdogSec=``) asks for a ``WATCHDOG=1``
at least that often; the runtime pings at half the interval from its event loop, so a stuck loop is what
the watchdog sees.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

from sdnotify import SystemdNotifier

__all__ = ["ServiceNotifier", "watchdog_interval"]


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between two ``WATCHDOG=1`` pings (half of ``WATCHDOG_USEC``), or None when no watchdog is
    asked for this process (unset, zero, malformed, or meant for another PID as ``WATCHDOG_PID`` says)."""
    usec = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and (not pid.isdigit() or int(pid) != os.getpid()):
        return None
    return int(usec) / 2e6


class ServiceNotifier:
    """Tells the service manager what the server is doing; a no-op outside systemd."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        """*environ* (default: the process's) says whether to notify and how often to ping; the address
        itself the package reads from the process's environment."""
        env = os.environ if environ is None else environ
        self.enabled = bool(env.get("NOTIFY_SOCKET"))
        self.watchdog_interval = watchdog_interval(env) if self.enabled else None
        # the package reads NOTIFY_SOCKET itself (an '@' name is in the abstract namespace) and connects
        # once; a send that fails is dropped, as sd_notify(3) does
        self._sd = SystemdNotifier() if self.enabled else None

    def _send(self, *lines: str) -> None:
        if self._sd is not None:
            self._sd.notify("\n".join(lines))

    def ready(self, status: str) -> None:
        """Start-up (or a reload) is over: the listeners are up."""
        self._send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> None:
        """A SIGHUP re-read begins; :meth:`ready` ends it. ``MONOTONIC_USEC`` is what systemd 253+ wants with
        it (``Type=notify-reload``), older ones ignore it."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self._send("RELOADING=1", f"MONOTONIC_USEC={usec}", "STATUS=reloading the configuration")

    def stopping(self, status: str) -> None:
        """The drain of a SIGTERM begins."""
        self._send("STOPPING=1", f"STATUS={status}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")
