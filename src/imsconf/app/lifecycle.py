"""The running server's life after start-up: signals, the drain of a SIGTERM, the re-read of a SIGHUP.

* SIGTERM or SIGINT: the focus stops taking calls (503 with Retry-After), ends every subscription with a
  ``terminated`` NOTIFY and every call with a BYE (:meth:`imsconf.focus.core.Focus.shutdown`); the process
  exits once every BYE and final NOTIFY is answered, or when ``drain_seconds`` are over. A second SIGTERM
  or SIGINT ends the wait at once.
* SIGHUP: the configuration file, the users file and the TLS certificate are read again
  (:mod:`.reload`); calls go on.
* The service manager hears of each step (:class:`.systemd.ServiceNotifier`), and gets its watchdog pings
  from this loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .systemd import ServiceNotifier

if TYPE_CHECKING:
    from .reload import Reloader
    from .server import Server

__all__ = ["DrainOutcome", "Lifecycle"]

log = logging.getLogger("imsconf.server")

CLOSE_SECONDS = 1.5  # sockets, listeners, the mixer link: what Server.close may take at most
RETRY_AFTER = 30  # seconds a caller refused while the server drains should wait (a restart is quicker)
_POLL = 0.02  # the drain looks at the focus this often


@dataclass(frozen=True, slots=True)
class DrainOutcome:
    calls: int
    subscriptions: int
    complete: bool  # every BYE and final NOTIFY was answered in time
    aborted: bool  # a second signal cut the wait short
    seconds: float


class Lifecycle:
    """Waits for signals and carries them out, in the event loop of *server*."""

    def __init__(self, server: Server, notifier: ServiceNotifier, reloader: Reloader) -> None:
        self.server = server
        self.notifier = notifier
        self.reloader = reloader
        self._requests: asyncio.Queue[Literal["stop", "reload"]] = asyncio.Queue()
        self._stopping = False
        self._abort = asyncio.Event()
        self._watchdog: asyncio.TimerHandle | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, self._on_stop_signal, sig)
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(signal.SIGHUP, self._requests.put_nowait, "reload")

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        if not self._stopping:
            self._stopping = True
            self._requests.put_nowait("stop")
            return
        log.warning("event=drain_aborted signal=%s", sig.name)
        self._abort.set()

    def _ping(self) -> None:
        self.notifier.watchdog()
        interval = self.notifier.watchdog_interval
        if interval is not None:
            self._watchdog = asyncio.get_running_loop().call_later(interval, self._ping)

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT, then drain and close; the process's exit code."""
        if self.notifier.watchdog_interval is not None:
            self._ping()
        while await self._requests.get() == "reload":
            if self._stopping:  # a SIGHUP queued behind the SIGTERM
                break
            try:
                self.reloader.reload()
            except Exception:  # a fault in the reload itself must not take the service down
                log.exception("event=reload_failed reason=internal")
                self.notifier.ready("serving; reload failed, the old configuration stays")
        outcome = await self.drain()
        self.drain_completed(outcome)
        if self._watchdog is not None:
            self._watchdog.cancel()
        try:
            await asyncio.wait_for(self.server.close(), 0.5 if outcome.aborted else CLOSE_SECONDS)
        except TimeoutError:
            log.warning("event=shutdown_timeout")
        counters = dict(self.server.endpoint.counters)
        counters.update({f"transport_{k}": v for k, v in self.server.transports.counters.items()})
        log.info("event=stopped counters=%s", dict(sorted(counters.items())))
        return 0

    async def drain(self) -> DrainOutcome:
        """End every call and subscription; wait for their answers at most ``drain_seconds``."""
        server = self.server
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        log.info("event=stopping")
        server.stopping = True  # /health/ready says 503 from now on
        self.notifier.stopping("draining: ending every call and subscription")
        focus = server.focus
        calls = subscriptions = 0
        failed = False
        if focus is not None:
            try:
                start = focus.shutdown(server.endpoint, server.driver.now(), retry_after=RETRY_AFTER)
                calls, subscriptions = start.calls, start.subscriptions
            except Exception:  # a fault while ending the calls: the process still closes and exits
                log.exception("event=drain_error")
                focus, failed = None, True
            server.driver.flush()
        log.info("event=draining calls=%d subscriptions=%d", calls, subscriptions)
        deadline = loop.time() + server.settings.drain_seconds
        while focus is not None and not focus.drained and not self._abort.is_set():
            left = deadline - loop.time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._abort.wait(), min(_POLL, left))
        complete = not failed and (focus is None or focus.drained)
        outcome = DrainOutcome(calls, subscriptions, complete, self._abort.is_set(), time.monotonic() - t0)
        log.info(
            "event=drained calls=%d complete=%s aborted=%s seconds=%.3f",
            calls,
            str(complete).lower(),
            str(outcome.aborted).lower(),
            outcome.seconds,
        )
        return outcome

    def drain_completed(self, outcome: DrainOutcome) -> None:
        """The drain is over (complete, timed out or aborted): every call has left the roster. This is the
        place where per-call usage records, once the server keeps them, are closed and written."""
