"""UsageWriter: returns at once, commits promptly in batches, survives kill -9, drops when full, drains."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from imsconf.app.usage import UsageWriter
from imsconf.store.errors import StoreUnavailable
from imsconf.usage.records import ConferenceUsage, LegUsage, UsageSink
from imsconf.usage.store import UsageStore
from usage_records import T0, conference, leg

SRC = Path(__file__).resolve().parents[2] / "src"
TESTS = Path(__file__).resolve().parents[1]


class SlowBackend:
    """Records the batches; each append waits until released."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, int]] = []
        self.release = threading.Event()
        self.entered = threading.Event()
        self.closed = False

    def append(self, legs: Sequence[LegUsage], conferences: Sequence[ConferenceUsage]) -> None:
        self.entered.set()
        self.release.wait(5)
        self.batches.append((len(legs), len(conferences)))

    def append_legs(self, records: Sequence[LegUsage]) -> None:
        self.append(records, ())

    def append_conferences(self, records: Sequence[ConferenceUsage]) -> None:
        self.append((), records)

    def records(
        self, since: datetime | None, until: datetime | None
    ) -> tuple[tuple[LegUsage, ...], tuple[ConferenceUsage, ...]]:
        return (), ()

    def close(self) -> None:
        self.closed = True


def _wait(cond: object, timeout: float = 2.0) -> bool:
    assert callable(cond)
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.005)
    return bool(cond())


def test_records_are_committed_promptly(tmp_path: Path) -> None:
    writer = UsageWriter(UsageStore.open(tmp_path)).start()
    sink: UsageSink = writer
    t0 = time.monotonic()
    sink.leg_ended(leg(T0))
    sink.conference_ended(conference(T0))
    assert time.monotonic() - t0 < 0.01  # returned at once
    with UsageStore.open(tmp_path) as reader:
        assert _wait(lambda: reader.records(None, None) == ((leg(T0),), (conference(T0),)), 1.0)
    assert time.monotonic() - t0 < 1.0
    assert writer.close() is True
    assert writer.written == 2 and writer.dropped == 0


def test_queued_records_go_in_one_transaction_per_batch() -> None:
    backend = SlowBackend()
    writer = UsageWriter(backend, batch=10).start()
    writer.leg_ended(leg(T0))
    assert backend.entered.wait(2)  # the first record is being written alone
    for i in range(15):
        writer.leg_ended(leg(T0, pid=f"p{i}"))
    writer.conference_ended(conference(T0))
    backend.release.set()
    assert writer.close(2.0) is True
    assert backend.batches == [(1, 0), (10, 0), (5, 1)]
    assert backend.closed and writer.written == 17


def test_records_ended_within_the_linger_share_one_commit(tmp_path: Path) -> None:
    """A churn of short calls: legs ending a few ms apart are committed together, all on disk in 100 ms."""
    store = UsageStore.open(tmp_path)
    commits: list[int] = []
    append = store.append

    def counting(legs: Sequence[LegUsage], conferences: Sequence[ConferenceUsage]) -> None:
        commits.append(len(legs) + len(conferences))
        append(legs, conferences)

    store.append = counting  # type: ignore[method-assign]
    writer = UsageWriter(store, linger=0.05).start()
    t0 = time.monotonic()
    for i in range(5):
        writer.leg_ended(leg(T0, pid=f"p{i}"))
        time.sleep(0.002)
    with UsageStore.open(tmp_path) as reader:
        assert _wait(lambda: len(reader.records(None, None)[0]) == 5, 1.0)
    assert time.monotonic() - t0 < 0.1
    assert commits == [5]
    assert writer.close() is True and writer.written == 5


def test_a_full_queue_drops_and_counts_without_blocking(caplog: object) -> None:
    backend = SlowBackend()
    writer = UsageWriter(backend, queue_size=3).start()
    writer.leg_ended(leg(T0))
    assert backend.entered.wait(2)
    t0 = time.monotonic()
    for _ in range(10):
        writer.leg_ended(leg(T0))
    assert time.monotonic() - t0 < 0.05
    assert writer.dropped == 7
    backend.release.set()
    assert writer.close(2.0) is True
    assert writer.written == 4
    writer.leg_ended(leg(T0))  # after close: refused, counted
    assert writer.dropped == 8


def test_close_is_bounded_when_the_disk_hangs() -> None:
    backend = SlowBackend()
    writer = UsageWriter(backend).start()
    writer.leg_ended(leg(T0))
    assert backend.entered.wait(2)
    t0 = time.monotonic()
    assert writer.close(0.1) is False
    assert time.monotonic() - t0 < 0.5
    assert not backend.closed  # the busy writer keeps its store
    backend.release.set()


def test_close_without_start_closes_the_store(tmp_path: Path) -> None:
    writer = UsageWriter(UsageStore.open(tmp_path))
    assert writer.close() is True


_CHILD = textwrap.dedent(
    """
    import sys, time
    from datetime import datetime, timedelta, timezone
    from imsconf.app.usage import UsageWriter
    from imsconf.usage.store import UsageStore
    from usage_records import leg
    writer = UsageWriter(UsageStore.open(sys.argv[1])).start()
    writer.leg_ended(leg(datetime(2030, 6, 1, 9, 0, tzinfo=timezone.utc), pid="survivor"))
    print("returned", flush=True)
    time.sleep(60)
    """
)


def test_a_record_survives_kill_9(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(SRC), str(TESTS)]))
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(tmp_path)], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "returned"
        time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(5)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(5)
    assert proc.returncode == -signal.SIGKILL
    with UsageStore.open(tmp_path) as store:
        legs, _ = store.records(T0 - timedelta(seconds=1), None)
    assert [r.participant_id for r in legs] == ["survivor"]


def test_records_wait_for_an_unreachable_store_and_are_written_once_it_is_back() -> None:
    """StoreUnavailable (PostgreSQL down): the batch is held and retried; records that end meanwhile wait
    in the queue; the store back, everything is written, nothing counted failed."""

    class Flaky(SlowBackend):
        def __init__(self) -> None:
            super().__init__()
            self.down = threading.Event()
            self.down.set()
            self.attempts = 0

        def append(self, legs: Sequence[LegUsage], conferences: Sequence[ConferenceUsage]) -> None:
            self.attempts += 1
            if self.down.is_set():
                raise StoreUnavailable("store postgresql://db unavailable: connection refused")
            self.batches.append((len(legs), len(conferences)))

    backend = Flaky()
    writer = UsageWriter(backend, retry_interval=0.02).start()
    writer.leg_ended(leg(T0))
    assert _wait(lambda: backend.attempts >= 3)
    writer.leg_ended(leg(T0 + timedelta(seconds=1)))
    writer.conference_ended(conference(T0))
    assert writer.waiting and writer.failed == 0 and writer.written == 0
    backend.down.clear()
    assert _wait(lambda: writer.written == 3)
    assert not writer.waiting and writer.failed == 0
    assert sum(n for n, _ in backend.batches) == 2 and sum(c for _, c in backend.batches) == 1
    assert writer.close()
