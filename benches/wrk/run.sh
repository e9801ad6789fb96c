#!/usr/bin/env bash
# Measures signin_with_api_key with wrk against a release build on a fresh data dir.
#   benches/wrk/run.sh                 # SQLite (embedded default)
#   benches/wrk/run.sh postgres://postgres@127.0.0.1:5432/keygate_bench
# The PostgreSQL database must exist and be empty. Prints wrk's latency distribution and a
# one-line summary (median, p99, requests/s).
set -euo pipefail
cd "$(dirname "$0")/../.."
DB_URL="${1:-}"
DURATION="${DURATION:-20s}"
CONNECTIONS="${CONNECTIONS:-32}"
cargo build --release --quiet
DIR=$(mktemp -d)
PID=
trap '[ -n "$PID" ] && kill "$PID" 2>/dev/null; rm -rf "$DIR"' EXIT
export KEYGATE__DATA_DIR="$DIR/data" KEYGATE__SERVER__BIND=127.0.0.1:18089 KEYGATE__LOG__LEVEL=warn
[ -n "$DB_URL" ] && export KEYGATE__DATABASE__URL="$DB_URL"
# One key and one user drive every request here: the per-key issuance limits and the
# per-user request limit (README, "Limits") are turned off (0), so the run measures keygate
# rather than its 429s. Set LIMITS=on to measure with the defaults.
if [ "${LIMITS:-off}" = off ]; then
  export KEYGATE__LIMITS__ISSUANCE_PER_MINUTE=0 KEYGATE__LIMITS__ISSUANCE_PER_HOUR=0
  export KEYGATE__LIMITS__REQUESTS_PER_USER_PER_MINUTE=0
fi
./target/release/keygate >"$DIR/out" 2>"$DIR/err" &
PID=$!
fail() {
  echo "benches/wrk/run.sh: $1" >&2
  echo "--- keygate stdout" >&2; cat "$DIR/out" >&2
  echo "--- keygate stderr" >&2; cat "$DIR/err" >&2
  exit 1
}
# Wait until /healthz answers 200; a server that died is reported at once (with its
# output), not benchmarked.
for _ in $(seq 100); do
  kill -0 "$PID" 2>/dev/null || fail "keygate exited before it was ready"
  [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18089/healthz)" = 200 ] && break
  sleep 0.1
done
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:18089/healthz)" = 200 ] \
  || fail "keygate did not answer /healthz within 10 s"
KG_API_KEY=$(awk '/^api_key:/{print $2}' "$DIR/out")
KG_API_KEY_ID=$(awk '/^api_key_id:/{print $2}' "$DIR/out")
KG_USER_ID=$(awk '/^user_id:/{print $2}' "$DIR/out")
# Empty credentials would benchmark 401s (a non-empty database prints no banner).
[ -n "$KG_API_KEY" ] && [ -n "$KG_API_KEY_ID" ] && [ -n "$KG_USER_ID" ] \
  || fail "no bootstrap credentials in the banner (is the database empty?)"
export KG_API_KEY KG_API_KEY_ID KG_USER_ID
# One sign-in must succeed before anything is measured.
STATUS=$(curl -s -o "$DIR/sample" -w '%{http_code}' -X POST \
  -H "x-api-key: $KG_API_KEY" -H "x-api-key-id: $KG_API_KEY_ID" -H "x-user-id: $KG_USER_ID" \
  http://127.0.0.1:18089/v1/default/user/signin_with_api_key) || STATUS=000
[ "$STATUS" = 200 ] || fail "a sample sign-in answered $STATUS: $(cat "$DIR/sample" 2>/dev/null)"
THREADS=$(( CONNECTIONS < 2 ? 1 : 2 ))
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s benches/wrk/signin.lua http://127.0.0.1:18089
