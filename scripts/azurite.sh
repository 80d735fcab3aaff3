#!/usr/bin/env bash
# Local Azure Blob Storage for the tests: Azurite's blob service on 127.0.0.1.
#
#   scripts/azurite.sh start   install Azurite into .npm/azurite if missing,
#                              start the blob service in the background (in
#                              memory), create the test container, print the
#                              environment the Azure tests read
#   scripts/azurite.sh stop    stop the server this script started
#   scripts/azurite.sh env     print the environment (export lines) again
#   scripts/azurite.sh status  exit 0 if the server this script started runs
#
# Environment: AZURITE_PORT (default: a free port picked at start, then kept
# in the state directory), AZURITE_CONTAINER (default coordinator-test).
# State (pid file, port, log) lives in target/azurite/.
#
# Needs Node.js 20 and npm. azurite 3.35.0 is pinned: 3.36 wants Node >= 21
# and 3.37 Node >= 22. `--disableTelemetry` is not optional: without it
# Azurite 3.35 sends telemetry to Application Insights, off this machine.
# The account is Azurite's well-known development account `devstoreaccount1`
# and its published key; they are not secrets.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CONTAINER="${AZURITE_CONTAINER:-coordinator-test}"
PREFIX="$ROOT/.npm/azurite"
BIN="$PREFIX/node_modules/.bin/azurite-blob"
STATE="$ROOT/target/azurite"
PIDFILE="$STATE/azurite.pid"
PORTFILE="$STATE/azurite.port"
LOGFILE="$STATE/azurite.log"
AZURITE_SPEC='azurite@3.35.0'
ACCOUNT=devstoreaccount1
KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

port() {
    if [[ -n "${AZURITE_PORT:-}" ]]; then
        echo "$AZURITE_PORT"
    elif [[ -f "$PORTFILE" ]]; then
        cat "$PORTFILE"
    else
        free_port
    fi
}

endpoint() { echo "http://127.0.0.1:$(port)/$ACCOUNT"; }

install() {
    if [[ -x "$BIN" ]]; then
        return
    fi
    if ! command -v npm >/dev/null 2>&1; then
        log "npm not found: the Azure tests need Node.js 20 and npm to install $AZURITE_SPEC"
        exit 1
    fi
    log "installing $AZURITE_SPEC into $PREFIX (about 20 s, 190 MB)"
    mkdir -p "$PREFIX"
    npm install --prefix "$PREFIX" --no-audit --no-fund --no-save --loglevel=error \
        "$AZURITE_SPEC" >&2
}

print_env() {
    cat <<ENV
export COORD_AZURE_ENDPOINT=$(endpoint)
export COORD_AZURE_CONTAINER=$CONTAINER
export AZURE_STORAGE_ACCOUNT_NAME=$ACCOUNT
export AZURE_STORAGE_ACCOUNT_KEY=$KEY
ENV
}

# Creates the container with a SharedKey-signed `PUT ?restype=container`
# (201 created, 409 already there). Python's standard library only: the
# signature is an HMAC-SHA256 over the canonical request, as Azure's
# "Authorize with Shared Key" page gives it.
create_container() {
    python3 - "$(port)" "$ACCOUNT" "$KEY" "$CONTAINER" <<'PY'
import base64, hashlib, hmac, sys, urllib.error, urllib.request
from email.utils import formatdate

port, account, key, container = sys.argv[1:5]
date = formatdate(usegmt=True)
version = "2023-11-03"
string_to_sign = "\n".join([
    "PUT", "", "", "", "", "", "", "", "", "", "", "",
    f"x-ms-date:{date}\nx-ms-version:{version}",
    f"/{account}/{account}/{container}\nrestype:container",
])
signature = base64.b64encode(
    hmac.new(base64.b64decode(key), string_to_sign.encode(), hashlib.sha256).digest()
).decode()
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/{account}/{container}?restype=container",
    method="PUT",
    # No body: with one, urllib would add a Content-Type the signature lacks.
    headers={
        "x-ms-date": date,
        "x-ms-version": version,
        "Content-Length": "0",
        "Authorization": f"SharedKey {account}:{signature}",
    },
)
try:
    urllib.request.urlopen(request, timeout=5)
except urllib.error.HTTPError as e:
    if e.code != 409:
        sys.exit(f"azurite.sh: creating the container {container}: HTTP {e.code} {e.read()[:300]!r}")
PY
}

start() {
    mkdir -p "$STATE"
    local started=0
    if pid_running "$PIDFILE"; then
        log "already running (pid $(cat "$PIDFILE")) on $(endpoint)"
    else
        install
        local p
        p="$(port)"
        refuse_foreign "http://127.0.0.1:$p/" AZURITE_PORT
        echo "$p" >"$PORTFILE"
        log "starting azurite-blob on $(endpoint) (log: $LOGFILE)"
        # Nothing is written to disk (--inMemoryPersistence) and nothing
        # leaves the machine (--disableTelemetry).
        start_server azurite-blob "http://127.0.0.1:$p/" "$PIDFILE" "$LOGFILE" \
            "$BIN" --inMemoryPersistence --disableTelemetry --silent \
            --blobHost 127.0.0.1 --blobPort "$p"
        started=1
    fi
    if ! create_container; then
        log "could not create the container $CONTAINER on $(endpoint)"
        if ((started)); then stop; fi
        exit 1
    fi
    print_env
}

stop() { stop_server azurite-blob "$PIDFILE"; }

case "${1:-}" in
start) start ;;
stop) stop ;;
env)
    if ! pid_running "$PIDFILE"; then
        log "not running; start it with: scripts/azurite.sh start"
        exit 1
    fi
    print_env
    ;;
status) pid_running "$PIDFILE" ;;
*) usage ;;
esac
