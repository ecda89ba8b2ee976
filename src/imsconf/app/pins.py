"""PIN checks of the PIN lobby off the event loop (the PIN hash is scrypt, ~40 ms)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from imsconf.booking.model import Booking

__all__ = ["ExecutorPinChecker"]

log = logging.getLogger("imsconf.focus")


class ExecutorPinChecker:
    """A :class:`imsconf.focus.planned.PinChecker` that runs the check in the loop's default executor and
    calls ``done`` back on the loop (the focus posts the outcome to its inbox, which wakes the driver)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def check(self, booking: Booking, pin: str, done: Callable[[bool], None]) -> None:
        fut = self._loop.run_in_executor(None, booking.verify_pin, pin)

        def finished(f: asyncio.Future[bool]) -> None:
            try:
                ok = bool(f.result())
            except (ValueError, OSError, MemoryError):  # a failed check is a wrong PIN
                log.exception("event=pin_check_error booking=%s", booking.id)
                ok = False
            done(ok)

        fut.add_done_callback(finished)
