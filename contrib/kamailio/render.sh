#!/usr/bin/env bash
# Writes a ready-to-run Kamailio configuration for an imsconf cluster into OUTDIR:
#   kamailio.cfg (a copy of the shipped one), local.cfg (addresses, ports, paths as #!substdef),
#   tls.cfg, dispatcher.list and nodes.cfg (the node list: id -> SIP address).
# Everything an operator edits is in the environment variables below (docs/decisions/0018-kamailio-front.md).
#
#   FRONT_IP        the front's listen address (default 127.0.0.1)
#   FRONT_NAME      a name the front also answers to (default localhost)
#   FRONT_PLAIN     yes: also plain UDP and TCP for phones on FRONT_PORT (default no: TLS only)
#   FRONT_PORT      UDP and TCP port for phones (default 5060)
#   FRONT_TLS_PORT  TLS port for phones (default 5061)
#   TLS_CERT TLS_KEY  the front's certificate and key (PEM); TLS_CA: the CA phones and nodes trust
#   INTERNAL_IP INTERNAL_PORT  the nodes' side: TLS; the front reaches the nodes from here and the nodes'
#                   outbound_proxy names it (default FRONT_IP, 5081); keep phones off it
#   NODES           "id=host:port ..." the nodes' SIP over TLS listeners (the front reaches nodes over TLS only), id = each node's node_id setting
#   DS_PING_INTERVAL  seconds between OPTIONS probes to every node (default 1)
#   DIRECTORY_DB_URL  optional: postgres://user:password@host:port/db of the nodes' shared store; the
#                   front then sends a request for a conference URI held by a live node straight there
#                   (one query per initial request without a hint; local.cfg is then written mode 0600)
#   CONFERENCE_DOMAIN  the nodes' domain setting: booked URIs are user@CONFERENCE_DOMAIN (default FRONT_NAME)
#   LOG_LEVEL       Kamailio's debug level (default 2: info)
#
# usage: NODES="a=127.0.0.2:5071 b=127.0.0.3:5071" TLS_CERT=... TLS_KEY=... TLS_CA=... render.sh OUTDIR
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: render.sh OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
: "${FRONT_IP:=127.0.0.1}" "${FRONT_NAME:=localhost}" "${FRONT_PORT:=5060}" "${FRONT_TLS_PORT:=5061}"
: "${INTERNAL_IP:=$FRONT_IP}" "${INTERNAL_PORT:=5081}"
: "${FRONT_PLAIN:=no}" "${DS_PING_INTERVAL:=1}" "${LOG_LEVEL:=2}"
: "${DIRECTORY_DB_URL:=}" "${CONFERENCE_DOMAIN:=$FRONT_NAME}"
: "${TLS_CERT:?TLS_CERT: the certificate of the front (PEM)}" "${TLS_KEY:?TLS_KEY: its key}" "${TLS_CA:?TLS_CA}"
: "${NODES:?NODES: id=host:port ...}"
modules="${MODULE_PATH:-}"
if [ -z "$modules" ]; then
    for d in /usr/lib/x86_64-linux-gnu/kamailio/modules /usr/lib/aarch64-linux-gnu/kamailio/modules \
             /usr/lib/kamailio/modules /usr/local/lib64/kamailio/modules; do
        if [ -d "$d" ]; then modules="$d"; break; fi
    done
fi
cp "$here/kamailio.cfg" "$out/kamailio.cfg"
rm -f "$out/local.cfg"
if [ -n "$DIRECTORY_DB_URL" ]; then (umask 077 && : >"$out/local.cfg"); fi
{
    echo "# written by contrib/kamailio/render.sh"
    if [ "$FRONT_PLAIN" = yes ]; then echo "#!define WITH_PLAIN"; fi
    if [ -n "$DIRECTORY_DB_URL" ]; then
        echo "#!define WITH_DIRECTORY"
        # the heartbeat timeout of imsconf.store.directory: rows older than this belong to dead nodes
        for pair in "DIRECTORY_DB_URL=$DIRECTORY_DB_URL" "CONFERENCE_DOMAIN=$CONFERENCE_DOMAIN" "HEARTBEAT_TIMEOUT=30"; do
            echo "#!substdef \"!${pair%%=*}!${pair#*=}!g\""
        done
    fi
    for pair in "FRONT_IP=$FRONT_IP" "FRONT_NAME=$FRONT_NAME" "FRONT_PORT=$FRONT_PORT" \
                "FRONT_TLS_PORT=$FRONT_TLS_PORT" "INTERNAL_IP=$INTERNAL_IP" "INTERNAL_PORT=$INTERNAL_PORT" "MODULE_PATH=$modules" "TLS_CFG=$out/tls.cfg" \
                "DS_LIST=$out/dispatcher.list" "DS_PING_INTERVAL=$DS_PING_INTERVAL" "L_LOG_LEVEL=$LOG_LEVEL"; do
        echo "#!substdef \"!${pair%%=*}!${pair#*=}!g\""
    done
} >"$out/local.cfg"
cat >"$out/tls.cfg" <<TLS
# phones: the front's certificate; no client certificate asked for
[server:default]
method = TLSv1.2+
certificate = $TLS_CERT
private_key = $TLS_KEY
ca_list = $TLS_CA
verify_certificate = no
require_certificate = no

# the nodes: their certificates are checked against the cluster's CA
[client:default]
method = TLSv1.2+
ca_list = $TLS_CA
verify_certificate = yes
require_certificate = yes
TLS
{
    echo "# setid destination flags priority attrs (written by contrib/kamailio/render.sh)"
    for node in $NODES; do
        echo "1 sip:${node#*=};transport=tls 0 0 duid=${node%%=*};node=${node%%=*}"
    done
} >"$out/dispatcher.list"
{
    echo "# node id (the hint in conf-<node>-<id>) -> the node's address (written by contrib/kamailio/render.sh)"
    echo "route[NODE_ADDRESS] {"
    for node in $NODES; do
        id="${node%%=*}"
        case "$id" in *[!a-z0-9]*|"") echo "render.sh: node id '$id' must be lower-case letters and digits" >&2; exit 2;; esac
        printf '\tif ($var(node) == "%s") {\n\t\t$du = "sip:%s;transport=tls";\n\t\treturn 1;\n\t}\n' \
            "$id" "${node#*=}"
    done
    printf '\treturn -1;\n}\n'
} >"$out/nodes.cfg"
echo "$out/kamailio.cfg"
