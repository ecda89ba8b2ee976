"""Real external peers (SIPp, baresip, linphonec, tshark, socat).

A missing peer skips the test on a laptop; under CI (``CI=true``) it is a failure, never a silent skip.
``make test`` installs them through ``scripts/install-test-deps.sh``.
"""

from __future__ import annotations

import os
import shutil

import pytest


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_peer(binary: str) -> str:
    """Return the path of *binary*, or skip (laptop) / fail (CI) when it is not installed."""
    path = shutil.which(binary)
    if path is None:
        msg = f"{binary} is not installed (scripts/install-test-deps.sh installs it)"
        if in_ci():
            pytest.fail(msg)
        pytest.skip(msg)
    return path
