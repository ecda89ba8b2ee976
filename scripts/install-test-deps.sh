#!/usr/bin/env bash
# Installs the real peers the tests drive: SIPp (sip-tester), baresip, linphone (linphonec), tshark, socat,
# PostgreSQL 15 (the shared-store tests run a throw-away cluster of their own; libpq5 for psycopg),
# Debian's headless Chromium with its WebDriver (the console's browser test; Selenium drives it), and
# Kamailio 5.6 with its TLS and PostgreSQL modules (the cluster front, contrib/kamailio).
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail
need=()
command -v sipp >/dev/null 2>&1 || need+=(sip-tester)
command -v baresip >/dev/null 2>&1 || need+=(baresip-core)
command -v linphonec >/dev/null 2>&1 || need+=(linphone-cli)
command -v tshark >/dev/null 2>&1 || need+=(tshark)
command -v socat >/dev/null 2>&1 || need+=(socat)
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
command -v kamailio >/dev/null 2>&1 || need+=(kamailio)
dpkg -s kamailio-tls-modules >/dev/null 2>&1 || need+=(kamailio-tls-modules)
dpkg -s kamailio-postgres-modules >/dev/null 2>&1 || need+=(kamailio-postgres-modules)
if [ ${#need[@]} -eq 0 ]; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "install-test-deps: missing ${need[*]} and not root; peer tests will skip (fail under CI=true)" >&2
        exit 0
    fi
fi
echo "install-test-deps: installing ${need[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
