#!/usr/bin/env bash
# The quick start: builds modelsync, starts a local redis-server (unless
# MODELSYNC_REDIS_URL names one), writes an identity file, starts the
# daemon, pushes the real model weights, pulls them back, checks them and
# prints the figures. Everything it starts lives in a temporary folder and
# is stopped when it ends; with --keep, Redis and the daemon stay up so
# that the clients' examples can be tried against them.
#
# Usage: bash deploy/quickstart.sh [--keep]
set -euo pipefail
keep=false
[ "${1:-}" = "--keep" ] && keep=true
cd "$(dirname "$0")/.."

bash .ci/setup
cargo build --release --locked --quiet
bin=$PWD/target/release/modelsync
model=$(bash ../shared/data/fetch-real-model.sh)

work=$(mktemp -d)
pids=()
cleanup() {
  if $keep && [ "${ok:-false}" = true ]; then
    return
  fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# Waits up to 20 s for a command to succeed while process $1 lives; shows
# its log ($2) and fails otherwise.
wait_for() {
  local pid=$1 log=$2
  shift 2
  for _ in $(seq 400); do
    "$@" >/dev/null 2>&1 && return 0
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "quickstart: $(basename "$log" .log) exited at start-up:" >&2
      cat "$log" >&2
      exit 1
    fi
    sleep 0.05
  done
  echo "quickstart: $(basename "$log" .log) did not become ready in 20 s:" >&2
  cat "$log" >&2
  exit 1
}

if [ -n "${MODELSYNC_REDIS_URL:-}" ]; then
  redis=$MODELSYNC_REDIS_URL
else
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$work" \
    --logfile "$work/redis.log" </dev/null >/dev/null 2>&1 &
  pids+=($!)
  redis=redis://127.0.0.1:$port/0
  wait_for "$!" "$work/redis.log" redis-cli -p "$port" ping
fi

echo "address: quickstart-node" > "$work/identity.yaml"
socket=$work/modelsync.sock
"$bin" --socket "$socket" serve --identity "$work/identity.yaml" --redis "$redis" \
  </dev/null >/dev/null 2>"$work/daemon.log" &
pids+=($!)
wait_for "$!" "$work/daemon.log" "$bin" --socket "$socket" health

echo "model:  $model ($(stat -c %s "$model") bytes)"
echo "redis:  $redis"
"$bin" --socket "$socket" push -n quickstart -k minilm "$model" --meta format=safetensors 2>&1
"$bin" --socket "$socket" pull -n quickstart -k minilm -o "$work/pulled.safetensors" 2>&1
if cmp -s "$model" "$work/pulled.safetensors"; then
  echo "check:  pulled bytes are identical ($(sha256sum "$model" | cut -c1-16)...)"
else
  echo "check:  FAILED, pulled bytes differ" >&2
  exit 1
fi
"$bin" --socket "$socket" exists -n quickstart -k minilm
ok=true
if $keep; then
  echo
  echo "kept running: the daemon on $socket, Redis at $redis"
  echo "  export MODELSYNC_SOCKET=$socket     # the clients and the CLI use it"
  echo "  stop with: kill ${pids[*]} && rm -rf $work"
fi
