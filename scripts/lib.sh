# Sourced, never run: what scripts/moto.sh, scripts/azurite.sh and
# scripts/gcs-emulators.sh share to run a local server for the tests in the
# background. A server's state is a pid file and, for a server on a picked
# port, a port file of the same name ending in `.port` beside it; the
# sourcing script keeps them under target/ of its own checkout, so another
# checkout's servers are never seen, let alone stopped. The sourcing script
# sets `set -euo pipefail` and defines `stop`, which a start that times out
# calls.

# Log lines go to stderr, so that `start` prints only the export lines.
log() { echo "$(basename "$0"): $*" >&2; }

# A port nothing listens on now (the kernel's pick for port 0).
free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# pid_running PIDFILE: exit 0 if the process PIDFILE names runs.
pid_running() {
    [[ -f "$1" ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

# answers URL: exit 0 if something answers HTTP at URL, whatever the status
# (Azurite answers a GET of / with 400); curl if present, else python.
answers() {
    if command -v curl >/dev/null 2>&1; then
        curl -s -o /dev/null --max-time 2 "$1"
    else
        python3 - "$1" <<'PY'
import sys, urllib.request, urllib.error
try:
    urllib.request.urlopen(sys.argv[1], timeout=2)
except urllib.error.HTTPError:
    pass
PY
    fi
}

# refuse_foreign URL VARIABLE: exit 1 (telling to set VARIABLE) if
# something this script did not start already answers at URL.
refuse_foreign() {
    if answers "$1" 2>/dev/null; then
        log "something already answers on $1 but was not started by this script; set $2 to another port"
        exit 1
    fi
}

# start_server NAME URL PIDFILE LOGFILE COMMAND...: starts COMMAND in the
# background, output to LOGFILE, pid to PIDFILE, and polls URL every 0.1 s
# until it answers. setsid: the server leads its own process group, so
# `stop_server` ends it and whatever it spawned without touching anything
# else. If the server exits first: its log is shown, its state files are
# removed, exit 1. If 30 s pass: the script's `stop`, exit 1.
start_server() {
    local name="$1" url="$2" pidfile="$3" logfile="$4"
    shift 4
    setsid "$@" >"$logfile" 2>&1 </dev/null &
    echo $! >"$pidfile"
    local waited=0
    until answers "$url" 2>/dev/null; do
        if ! pid_running "$pidfile"; then
            log "$name exited during start-up; its log:"
            cat "$logfile" >&2
            rm -f "$pidfile" "${pidfile%.pid}.port"
            exit 1
        fi
        if ((waited >= 300)); then
            log "$name did not answer on $url within 30 s; log: $logfile"
            stop
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    log "$name up on $url after ~$((waited / 10)).$((waited % 10)) s"
}

# stop_server NAME PIDFILE: ends the server PIDFILE names, and its process
# group (TERM, then KILL after 5 s), and removes its state files.
stop_server() {
    local name="$1" pidfile="$2" pid
    if ! [[ -f "$pidfile" ]]; then
        log "$name not running (no $pidfile)"
        return 0
    fi
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -KILL -- "-$pid" 2>/dev/null || true
        log "stopped $name (pid $pid)"
    fi
    rm -f "$pidfile" "${pidfile%.pid}.port"
}

# The answer to an unknown command (exit 2).
usage() {
    echo "usage: $0 start|stop|env|status" >&2
    exit 2
}
