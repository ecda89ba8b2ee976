#!/usr/bin/env bash
# Installs what building the venv needs from Debian: "python3 -m venv" (python3-venv, shipped separately)
# with Python >= 3.11, and the codec libraries the C extension imsconf.media._codecs links against
# (docs/decisions/0016-codecs.md). Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail
PY="${1:-python3}"
need=()
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "ensure-python: $PY not found" >&2
    need+=(python3 python3-venv)
elif ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
    echo "ensure-python: imsconf needs Python 3.11 or newer ($("$PY" --version 2>&1))" >&2
    exit 1
elif ! "$PY" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    need+=(python3-venv)
fi
# HD voice codecs: header → Debian -dev package (the -dev packages pull in the runtime libraries:
# libopus0, libopencore-amrwb0, libopencore-amrnb0, libvo-amrwbenc0, libspandsp2).
declare -A codec_dev=(
    [/usr/include/opus/opus.h]=libopus-dev
    [/usr/include/opencore-amrwb/dec_if.h]=libopencore-amrwb-dev
    [/usr/include/opencore-amrnb/interf_dec.h]=libopencore-amrnb-dev
    [/usr/include/vo-amrwbenc/enc_if.h]=libvo-amrwbenc-dev
    [/usr/include/spandsp/g722.h]=libspandsp-dev
)
for header in "${!codec_dev[@]}"; do
    [ -e "$header" ] || need+=("${codec_dev[$header]}")
done
if [ ${#need[@]} -eq 0 ]; then
    exit 0
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
