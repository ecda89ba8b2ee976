from __future__ import annotations

import sys
from pathlib import Path

# make tests/peers.py and other test helpers importable as plain modules
sys.path.insert(0, str(Path(__file__).parent))
