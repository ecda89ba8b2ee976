"""The one failure every shared-store backend raises when its database cannot be reached."""

from __future__ import annotations

__all__ = ["RETRY_AFTER", "StoreUnavailable"]

RETRY_AFTER = 5  # seconds a SIP 503 or an HTTP 503 answered for a StoreUnavailable asks the client to wait


class StoreUnavailable(OSError):
    """The database is down or unreachable (refused, timed out, connection lost).  The backend reconnects
    by itself on its next call; the caller answers 503 with ``Retry-After: RETRY_AFTER``."""
