#!/usr/bin/env bash
# Local S3 for the tests: moto's standalone server on 127.0.0.1.
#
#   scripts/moto.sh start   install moto into .venv/moto if missing, start the
#                           server in the background, create the test bucket,
#                           print the environment the S3 tests read
#   scripts/moto.sh stop    stop the server this script started
#   scripts/moto.sh env     print the environment (export lines) again
#   scripts/moto.sh status  exit 0 if the server this script started runs
#
# Environment: MOTO_PORT (default 9000), MOTO_BUCKET (default coordinator-test).
# State (pid file, log) lives in target/moto/.
#
# Facts about moto 5.2.5 that the tests rely on or work around: it accepts any
# credentials; it needs path-style requests over plain http; buckets must be
# created first (names of at least 3 characters); `POST /moto-api/reset` wipes
# everything, buckets included; its ETag is the MD5 of the body; and its
# conditional PUT is a check-then-write without a lock, so concurrent
# conditional writes can both succeed on moto (never on real S3).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PORT="${MOTO_PORT:-9000}"
BUCKET="${MOTO_BUCKET:-coordinator-test}"
VENV="$ROOT/.venv/moto"
STATE="$ROOT/target/moto"
PIDFILE="$STATE/moto-$PORT.pid"
LOGFILE="$STATE/moto-$PORT.log"
ENDPOINT="http://127.0.0.1:$PORT"
MOTO_SPEC='moto[s3]==5.2.5'

# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"

# GET or PUT/POST a URL on the local server, failing on an error status;
# curl if present, else python.
http() {
    local method="$1" url="$2"
    if command -v curl >/dev/null 2>&1; then
        curl -fsS -o /dev/null --max-time 5 -X "$method" "$url"
    else
        python3 - "$method" "$url" <<'PY'
import sys, urllib.request
req = urllib.request.Request(sys.argv[2], method=sys.argv[1], data=b"" if sys.argv[1] != "GET" else None)
urllib.request.urlopen(req, timeout=5).read()
PY
    fi
}

install() {
    if [[ -x "$VENV/bin/moto_server" ]]; then
        return
    fi
    log "installing $MOTO_SPEC into $VENV (about 15 s, 140 MB)"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "$MOTO_SPEC" flask flask-cors
}

print_env() {
    cat <<ENV
export COORD_S3_ENDPOINT=$ENDPOINT
export COORD_S3_BUCKET=$BUCKET
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
ENV
}

start() {
    mkdir -p "$STATE"
    if pid_running "$PIDFILE"; then
        log "already running (pid $(cat "$PIDFILE")) on $ENDPOINT"
    else
        install
        refuse_foreign "$ENDPOINT/moto-api/" MOTO_PORT
        log "starting moto_server on $ENDPOINT (log: $LOGFILE)"
        start_server moto_server "$ENDPOINT/moto-api/" "$PIDFILE" "$LOGFILE" \
            "$VENV/bin/moto_server" -H 127.0.0.1 -p "$PORT"
    fi
    # Creating an existing bucket is harmless on moto (us-east-1).
    if ! http PUT "$ENDPOINT/$BUCKET"; then
        log "could not create bucket $BUCKET on $ENDPOINT"
        exit 1
    fi
    print_env
}

stop() { stop_server moto_server "$PIDFILE"; }

case "${1:-}" in
start) start ;;
stop) stop ;;
env) print_env ;;
status) pid_running "$PIDFILE" ;;
*) usage ;;
esac
