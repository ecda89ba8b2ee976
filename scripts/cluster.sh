#!/usr/bin/env bash
# A development cluster on loopback: Kamailio (contrib/kamailio) in front of two imsconf nodes on
# 127.0.0.2 and 127.0.0.3, each with its own data directory under ./var/cluster/ and the mixer in process,
# and the PostgreSQL they share (users, registrations, bookings, usage records, the conference directory):
# a cluster of its own under var/cluster/pg on 127.0.0.1:CLUSTER_PG_PORT (5433), made on the first start;
# one dev PKI for all (var/cluster/pki). docs/decisions/0018-kamailio-front.md, 0017-shared-store.md.
#
#   scripts/cluster.sh up     (make cluster)       start, print the front's SIP URIs, PIDs in var/cluster/*.pid
#   scripts/cluster.sh down   (make cluster-down)  stop exactly the PIDs in those files
#
# Environment: PY (the interpreter with imsconf, default .venv/bin/python), CLUSTER_DIR (var/cluster),
# CLUSTER_PORT (the front: UDP and TCP, TLS on the next port; 5060), CLUSTER_INTERNAL_PORT (5081), CLUSTER_NODE_PORT
# (5071), CLUSTER_PLAIN (yes: the front also takes UDP/TCP, for SIPp; no: TLS only), CLUSTER_AUTH (digest or none: the nodes challenge, the front does not authenticate; users per node:
# imsconf users --data-dir var/cluster/a add NAME), CLUSTER_NODE_CONFIG (more lines for every node's imsconf.toml),
# CLUSTER_PG_PORT (the script's own PostgreSQL, 5433).
# Another PostgreSQL instead of the script's own: CLUSTER_STORE (postgresql://user@host:port/db) and
# CLUSTER_STORE_PASSWORD_FILE (mode 0600), and CLUSTER_DIRECTORY_DB_URL (postgres://user:password@host:port/db)
# for the front's directory lookup (docs/decisions/0021-booked-uri-claims.md); CLUSTER_PG=no: no shared
# store at all (SQLite per node; booked conferences are then not shared).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PY:-.venv/bin/python}"
DIR="$(realpath -m "${CLUSTER_DIR:-var/cluster}")"
AUTH="${CLUSTER_AUTH:-digest}"
FRONT_IP=127.0.0.1 FRONT_PORT="${CLUSTER_PORT:-5060}" INTERNAL_PORT="${CLUSTER_INTERNAL_PORT:-5081}"
FRONT_TLS_PORT=$((FRONT_PORT + 1))
NODE_PORT="${CLUSTER_NODE_PORT:-5071}"  # not a port of the front: the focus's Contact is the front's host with the node's port
NODES=("a=127.0.0.2" "b=127.0.0.3")
PG_BIN=/usr/lib/postgresql/15/bin
PG_PORT="${CLUSTER_PG_PORT:-5433}"
PG_DIR="$DIR/pg"

stop_pid() {  # stop_pid FILE: TERM the PID in FILE (if it runs), wait up to 5 s, then KILL; remove FILE
    local file="$1" pid
    [ -f "$file" ] || return 0
    pid="$(cat "$file")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$file"
}

pg_up() {  # the shared store: initdb on the first start (as postgres when root: initdb refuses root)
    local runas=() sock
    [ -x "$PG_BIN/initdb" ] || { echo "PostgreSQL 15 is missing: bash scripts/install-test-deps.sh" >&2; exit 1; }
    [ "$(id -u)" = 0 ] && runas=(runuser -u postgres --)
    mkdir -p "$PG_DIR"
    sock="$(cd "$PG_DIR" && pwd)"
    if [ ! -f "$PG_DIR/data/PG_VERSION" ]; then
        ( umask 077; "$PY" -c 'import secrets; print(secrets.token_urlsafe(18))' >"$PG_DIR/password" )
        [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
        install -m 0600 "$PG_DIR/password" "$PG_DIR/initpw"
        [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR/initpw"
        "${runas[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U imsconf --pwfile "$PG_DIR/initpw" \
            --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >"$PG_DIR/initdb.log" 2>&1 \
            || { echo "initdb failed: $PG_DIR/initdb.log" >&2; exit 1; }
        rm -f "$PG_DIR/initpw"
    fi
    "${runas[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$sock/log" -w -t 60 \
        -o "-p $PG_PORT -k $sock -c listen_addresses=127.0.0.1" start >/dev/null \
        || { echo "PostgreSQL did not start: $PG_DIR/log" >&2; exit 1; }
    "$PG_BIN/psql" -h "$sock" -p "$PG_PORT" -U imsconf -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = 'imsconf'" | grep -q 1 \
        || "$PG_BIN/psql" -h "$sock" -p "$PG_PORT" -U imsconf -d postgres -qc "CREATE DATABASE imsconf"
    CLUSTER_STORE="postgresql://imsconf@127.0.0.1:$PG_PORT/imsconf"
    CLUSTER_STORE_PASSWORD_FILE="$PG_DIR/password"
    CLUSTER_DIRECTORY_DB_URL="postgres://imsconf:$(cat "$PG_DIR/password")@127.0.0.1:$PG_PORT/imsconf"
}

pg_down() {  # a fast shutdown of the postmaster, by the PID in its pid file
    local pid
    [ -f "$PG_DIR/data/postmaster.pid" ] || return 0
    pid="$(head -n 1 "$PG_DIR/data/postmaster.pid")"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -INT "$pid"
        for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    return 0
}

down() {
    stop_pid "$DIR/kamailio.pid"
    for n in "${NODES[@]}"; do stop_pid "$DIR/${n%%=*}.pid"; done
    pg_down
    echo "cluster stopped"
}

up() {
    command -v kamailio >/dev/null || { echo "kamailio is missing: bash scripts/install-test-deps.sh" >&2; exit 1; }
    mkdir -p "$DIR"
    for n in "${NODES[@]}"; do
        if [ -f "$DIR/${n%%=*}.pid" ] && kill -0 "$(cat "$DIR/${n%%=*}.pid")" 2>/dev/null; then
            echo "cluster already running (scripts/cluster.sh down first)" >&2; exit 1
        fi
    done
    if [ -z "${CLUSTER_STORE:-}" ] && [ "${CLUSTER_PG:-yes}" != no ]; then pg_up; fi
    "$PY" -c 'import sys; from pathlib import Path; from imsconf.app.pki import ensure_dev_pki
ensure_dev_pki(Path(sys.argv[1]), sys.argv[2:])' "$DIR" "${NODES[@]#*=}"
    local spec="" id ip
    for n in "${NODES[@]}"; do
        id="${n%%=*}" ip="${n#*=}"
        mkdir -p "$DIR/$id"
        cp -r "$DIR/pki" "$DIR/$id/"
        cat >"$DIR/$id/imsconf.toml" <<TOML
node_id = "$id"
focus_host = "$FRONT_IP"
outbound_proxy = "sip:$FRONT_IP:$INTERNAL_PORT;transport=tls;lr"
media_host = "$ip"
http = "$ip:8080"
sip_source_rate = 0
front_peers = ["$FRONT_IP"]
TOML
        [ -n "${CLUSTER_NODE_CONFIG:-}" ] && printf '%s\n' "$CLUSTER_NODE_CONFIG" >>"$DIR/$id/imsconf.toml"
        if [ -n "${CLUSTER_STORE:-}" ]; then
            printf 'store = "%s"\nstore_password_file = "%s"\n' "$CLUSTER_STORE" \
                "${CLUSTER_STORE_PASSWORD_FILE:?CLUSTER_STORE_PASSWORD_FILE}" >>"$DIR/$id/imsconf.toml"
        fi
        "$PY" -m imsconf.cli serve --config "$DIR/$id/imsconf.toml" --data-dir "$DIR/$id" \
            --listen "tls:$ip:$NODE_PORT" --auth "$AUTH" >"$DIR/$id/stdout.log" 2>"$DIR/$id/server.log" &
        echo $! >"$DIR/$id.pid"
        spec="$spec $id=$ip:$NODE_PORT"
    done
    for n in "${NODES[@]}"; do
        id="${n%%=*}"
        for _ in $(seq 200); do grep -q "conference factory" "$DIR/$id/stdout.log" 2>/dev/null && break; sleep 0.1; done
        grep -q "conference factory" "$DIR/$id/stdout.log" || { echo "node $id did not start: see $DIR/$id/server.log" >&2; down; exit 1; }
    done
    FRONT_PLAIN="${CLUSTER_PLAIN:-yes}" FRONT_IP=$FRONT_IP FRONT_PORT=$FRONT_PORT FRONT_TLS_PORT=$FRONT_TLS_PORT INTERNAL_PORT=$INTERNAL_PORT \
        TLS_CERT="$DIR/pki/server.pem" TLS_KEY="$DIR/pki/server.key" TLS_CA="$DIR/pki/ca.pem" \
        NODES="${spec# }" DIRECTORY_DB_URL="${CLUSTER_DIRECTORY_DB_URL:-}" bash contrib/kamailio/render.sh "$DIR/kamailio" >/dev/null
    # -P: the main process's PID (it forks into the background and ends its children on SIGTERM)
    kamailio -f "$DIR/kamailio/kamailio.cfg" -P "$DIR/kamailio.pid" -w "$DIR/kamailio" -m 64 -M 8 \
        -E >"$DIR/kamailio/kamailio.log" 2>&1 || { echo "kamailio did not start: $DIR/kamailio/kamailio.log" >&2; down; exit 1; }
    for _ in $(seq 50); do [ -s "$DIR/kamailio.pid" ] && break; sleep 0.1; done
    echo "front: sip:conference-factory@$FRONT_IP:$FRONT_PORT (UDP, TCP), sip:conference-factory@$FRONT_IP:$FRONT_TLS_PORT;transport=tls"
    echo "nodes:${spec}  logs: $DIR/*/server.log, $DIR/kamailio/kamailio.log  PIDs: $DIR/*.pid"
    [ -n "${CLUSTER_STORE:-}" ] && echo "store: $CLUSTER_STORE (password file $CLUSTER_STORE_PASSWORD_FILE)"
    return 0
}

case "${1:-}" in
    up) up ;;
    down) down ;;
    *) echo "usage: scripts/cluster.sh up|down" >&2; exit 2 ;;
esac
