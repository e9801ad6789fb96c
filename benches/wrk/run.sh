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
trap 'kill $PID 2>/dev/null || true; rm -rf "$DIR"' EXIT
export KEYGATE__DATA_DIR="$DIR/data" KEYGATE__SERVER__BIND=127.0.0.1:18089 KEYGATE__LOG__LEVEL=warn
[ -n "$DB_URL" ] && export KEYGATE__DATABASE__URL="$DB_URL"
./target/release/keygate >"$DIR/out" 2>"$DIR/err" &
PID=$!
for _ in $(seq 100); do grep -q '^api_key:' "$DIR/out" 2>/dev/null && break; sleep 0.1; done
KG_API_KEY=$(awk '/^api_key:/{print $2}' "$DIR/out")
KG_API_KEY_ID=$(awk '/^api_key_id:/{print $2}' "$DIR/out")
KG_USER_ID=$(awk '/^user_id:/{print $2}' "$DIR/out")
export KG_API_KEY KG_API_KEY_ID KG_USER_ID
THREADS=$(( CONNECTIONS < 2 ? 1 : 2 ))
wrk -t"$THREADS" -c"$CONNECTIONS" -d"$DURATION" --latency -s benches/wrk/signin.lua http://127.0.0.1:18089
