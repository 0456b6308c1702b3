#!/usr/bin/env bash
# The moto AWS emulator the `aws` provider's tests run against.
#
#   eval "$(scripts/moto.sh start)"   installs moto[server] 5.2.5 into a venv if missing, starts
#                                     moto_server on a free port of 127.0.0.1 (or reuses the one
#                                     already running) and prints `export LATCH_TEST_MOTO_URL=...`
#   scripts/moto.sh stop              stops the server `start` made
#
# Files live in ${LATCH_TOOLS_DIR:-${CARGO_TARGET_DIR:-target}/test-tools}: venv-moto/, moto.pid,
# moto.url and moto.log. Tests isolate themselves by account (each assumes a role into its own
# 12-digit account), so one server serves every test and is never reset.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS_DIR=${LATCH_TOOLS_DIR:-${CARGO_TARGET_DIR:-target}/test-tools}
MOTO_VERSION=5.2.5
venv="$TOOLS_DIR/venv-moto"
pidfile="$TOOLS_DIR/moto.pid"
urlfile="$TOOLS_DIR/moto.url"
logfile="$TOOLS_DIR/moto.log"

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

start() {
  mkdir -p "$TOOLS_DIR"
  if running && [ -f "$urlfile" ] && curl -sf "$(cat "$urlfile")/moto-api/" >/dev/null; then
    echo "export LATCH_TEST_MOTO_URL=$(cat "$urlfile")"
    return
  fi
  stamp="$venv/.moto-$MOTO_VERSION"
  if [ ! -x "$venv/bin/moto_server" ] || [ ! -f "$stamp" ]; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/pip" install --quiet --disable-pip-version-check "moto[server]==$MOTO_VERSION" >&2
    touch "$stamp"
  fi
  # A free port: bind port 0 and let the kernel pick. The tiny race until moto binds it is
  # covered by the readiness check below.
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  url="http://127.0.0.1:$port"
  # AWS-managed policies (arn:aws:iam::aws:policy/...) are loaded only with this at start.
  # MOTO_ACCOUNT_ID must stay unset: it would override the per-test accounts.
  env -u MOTO_ACCOUNT_ID MOTO_IAM_LOAD_MANAGED_POLICIES=true \
    nohup "$venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$logfile" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 300); do
    if curl -sf "$url/moto-api/" >/dev/null; then
      echo "$url" >"$urlfile"
      echo "export LATCH_TEST_MOTO_URL=$url"
      return
    fi
    if ! running; then
      echo "moto_server exited; see $logfile:" >&2
      tail -n 20 "$logfile" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "moto_server did not answer on $url within 30 s; see $logfile" >&2
  exit 1
}

stop() {
  if running; then
    kill "$(cat "$pidfile")"
  fi
  rm -f "$pidfile" "$urlfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *)
    echo "usage: $0 start|stop" >&2
    exit 2
    ;;
esac
