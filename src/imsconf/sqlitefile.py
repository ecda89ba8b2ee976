"""One way to open an embedded SQLite store file (bookings, usage records, registrar bindings).

:func:`open_sqlite` creates the file with mode 0600 before SQLite does (SQLite would follow the umask; the
``-wal``/``-shm`` files take the file's mode), connects in autocommit mode (each store runs its own
``BEGIN``) for use from any thread (each store guards its connection itself), and sets the pragmas every
store shares: WAL, a busy timeout, and the ``synchronous`` level the store asks for (``FULL``: a commit
fsyncs the log before it returns; ``NORMAL``: soft state whose last write may be lost on a power loss).

The lowest layer: it imports nothing of imsconf, so every store package may use it.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Final, Literal

__all__ = ["BUSY_TIMEOUT_MS", "open_sqlite"]

BUSY_TIMEOUT_MS: Final = 5000  # how long a writer waits for another process's write lock


def open_sqlite(
    path: Path,
    *,
    synchronous: Literal["FULL", "NORMAL"] = "FULL",
    foreign_keys: bool = False,
    busy_timeout_ms: int = BUSY_TIMEOUT_MS,
) -> sqlite3.Connection:
    """A connection to *path* (its folder and the file made if missing) in WAL mode; OSError or
    sqlite3.Error when it cannot be opened or WAL cannot be enabled (the connection is then closed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    db = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False)
    try:
        mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"cannot enable WAL (journal_mode={mode})")
        db.execute(f"PRAGMA synchronous={synchronous}")
        db.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if foreign_keys:
            db.execute("PRAGMA foreign_keys=ON")
    except BaseException:
        db.close()
        raise
    return db
