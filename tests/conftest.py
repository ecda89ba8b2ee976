from __future__ import annotations

import sys
from pathlib import Path

# make tests/peers.py and other test helpers importable as plain modules
sys.path.insert(0, str(Path(__file__).parent))

from hypothesis import HealthCheck, settings

# Property tests check what parsers and codecs do, not how fast: on a loaded machine a single example may
# take longer than hypothesis's default 200 ms deadline, which would fail a correct test.
settings.register_profile("imsconf", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("imsconf")


from collections.abc import Iterator  # noqa: E402

import pytest  # noqa: E402

from pg import PgCluster  # noqa: E402


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL cluster for the whole session (tests/pg.py); each test makes its own database."""
    cluster = PgCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def pg_dsn(pg_cluster: PgCluster) -> str:
    """A fresh database of the session's cluster (its password: ``pg_cluster.password_file``)."""
    return pg_cluster.create_database()
