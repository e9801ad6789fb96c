# Sourced by CI scripts: builds the debug keygate binary, starts it on a fresh data
# directory on a free loopback port, and waits for the first-start banner. Sets ADDRESS
# (host:port), DIR (scratch directory, removed on exit) and field NAME (a banner value:
# api_key_id, api_key, user_id). Extra KEYGATE__… variables pass through.
cargo build --quiet --bin keygate

DIR=$(mktemp -d)
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
KEYGATE__DATA_DIR="$DIR/data" KEYGATE__SERVER__BIND=127.0.0.1:0 KEYGATE__SERVER__WORKERS=1 \
  KEYGATE__LOG__LEVEL=info ./target/debug/keygate >"$DIR/out" 2>"$DIR/err" &
PID=$!
for _ in $(seq 200); do
  grep -q '^user_id:' "$DIR/out" 2>/dev/null && grep -q ' listening ' "$DIR/err" && break
  sleep 0.1
done
ADDRESS=$(grep ' listening ' "$DIR/err" | grep -o 'address=[^ ]*' | head -1 | cut -d= -f2)
if [ -z "$ADDRESS" ]; then
  echo "keygate did not start:" >&2
  cat "$DIR/err" >&2
  exit 1
fi
field() { awk -v f="$1:" '$1 == f { print $2 }' "$DIR/out"; }
