#!/usr/bin/env bash
# Makes sure "python3 -m venv" works (Debian ships it separately: python3-venv) and Python is >= 3.11.
set -euo pipefail
PY="${1:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "ensure-python: $PY not found" >&2
    need=(python3 python3-venv)
elif ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "ensure-python: imsconf needs Python 3.11 or newer ($("$PY" --version 2>&1))" >&2
    exit 1
elif "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    exit 0
else
    need=(python3-venv)
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "ensure-python: please install ${need[*]} (apt-get install ${need[*]})" >&2
        exit 1
    fi
fi
echo "ensure-python: installing ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
