# Sourced by CI scripts: builds the debug keygate binary, starts it on a fresh data
# directory on a free loopback port, and waits for the first-start banner. Sets ADDRESS
# (host:port), DIR (scratch directory, removed on exit) and field NAME (a banner value:
# api_key_id, api_key, user_id). Extra KEYGATE__… variables pass through.
# When the server does not come up, or the calling script fails later, the server's output
# is printed before the scratch directory is removed.
cargo build --quiet --bin keygate

DIR=$(mktemp -d)
PID=
server_log() {
  echo "--- keygate stdout ($DIR/out)" >&2
  cat "$DIR/out" >&2 2>/dev/null || true
  echo "--- keygate stderr ($DIR/err)" >&2
  cat "$DIR/err" >&2 2>/dev/null || true
}
cleanup() {
  local rc=$?
  [ -n "$PID" ] && kill "$PID" 2>/dev/null
  if [ "$rc" != 0 ]; then
    echo "(exit $rc; the keygate server's output follows)" >&2
    server_log
  fi
  rm -rf "$DIR"
}
trap cleanup EXIT
KEYGATE__DATA_DIR="$DIR/data" KEYGATE__SERVER__BIND=127.0.0.1:0 KEYGATE__SERVER__WORKERS=1 \
  KEYGATE__LOG__LEVEL=info "${CARGO_TARGET_DIR:-target}/debug/keygate" >"$DIR/out" 2>"$DIR/err" &
PID=$!
for _ in $(seq 200); do
  if ! kill -0 "$PID" 2>/dev/null; then
    wait "$PID" && rc=0 || rc=$?
    PID=
    echo "keygate exited (status $rc) before it was listening" >&2
    exit 1
  fi
  grep -q '^user_id:' "$DIR/out" 2>/dev/null && grep -q ' listening ' "$DIR/err" 2>/dev/null && break
  sleep 0.1
done
# `|| true`: with `set -o pipefail` a grep that finds nothing would end the script here,
# before the message below.
ADDRESS=$({ grep ' listening ' "$DIR/err" 2>/dev/null || true; } | grep -o 'address=[^ ]*' | head -1 | cut -d= -f2 || true)
if [ -z "$ADDRESS" ] || ! grep -q '^user_id:' "$DIR/out" 2>/dev/null; then
  echo "keygate did not start within 20 s (no listening line or no bootstrap banner)" >&2
  exit 1
fi
field() { awk -v f="$1:" '$1 == f { print $2 }' "$DIR/out"; }
