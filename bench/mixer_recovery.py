"""Recovery time after the separate mixer is killed: SIGKILL of ``imsconf mixer`` during a three-party SRTP
conference, the mixer started again at once at the same address, until every participant hears every other
one again (0.5 s windows of what each test UA receives, polled every 50 ms).

The scenario is the end-to-end test's (``tests/integration/test_mixer_recovery.py``: the real server, a
real mixer process, the project's pylibsrtp test UAs over TLS).  The figure includes the mixer process's own
restart (interpreter start, PKI load, sockets), printed separately, and the reconnection backoff (0.5 s,
then 1 s).  Prints every run and the median.

Usage: ``python bench/mixer_recovery.py [--runs 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO / "tests" / "integration"), str(REPO / "tests")]

from test_mixer_recovery import run_recovery  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    took: list[float] = []
    restarts: list[float] = []
    for i in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="imsconf-recovery-") as tmp:
            r = run_recovery(Path(tmp), fourth=False)
        took.append(r.seconds)
        restarts.append(r.restart)
        print(f"run {i + 1}: recovery {r.seconds:.2f} s (mixer restart {r.restart:.2f} s)", flush=True)
    restart = statistics.median(restarts)
    print(
        f"median recovery {statistics.median(took):.2f} s over {len(took)} runs "
        f"(min {min(took):.2f}, max {max(took):.2f}; mixer restart median {restart:.2f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
