"""Usage records over HTTP: ``GET /api/v1/cdrs?since=ISO&until=ISO``, and the seam to the record store."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from imsconf.usage import ConferenceUsage, LegUsage

__all__ = ["UsageReader"]


class UsageReader(Protocol):
    """The stored usage records of the window ``since`` .. ``until`` (None: unbounded on that side);
    called in a worker thread."""

    def records(
        self, since: datetime | None, until: datetime | None
    ) -> tuple[tuple[LegUsage, ...], tuple[ConferenceUsage, ...]]: ...
