#!/usr/bin/env bash
# Installs what is missing, builds, and runs a worker on libvirt's built-in test driver
# (test:///default, as scripts/run-worker.sh does) with the web console following it, and prints
# the console's address. Ctrl-C stops both. Arguments go to ecp-console (e.g. --listen).
#   ECP_CONSOLE_PORT   the console's port on 127.0.0.1 (8080)
#   ECP_BUILD          debug (default: quicker to build) or release
set -euo pipefail
cd "$(dirname "$0")/.."
[[ -d /opt/swift/usr/bin ]] && export PATH="/opt/swift/usr/bin:$PATH"
scripts/install-deps.sh

config="${ECP_BUILD:-debug}"
port="${ECP_CONSOLE_PORT:-8080}"
swift build -c "$config" --product ecp-worker >&2
swift build -c "$config" --product ecp-console >&2
bin=".build/$config"

work=$(mktemp -d -t ecp-console.XXXXXX)
worker_id="$(hostname -s 2>/dev/null || echo host1)"
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap stop INT TERM EXIT

# The worker's embedded defaults: control @tcp://127.0.0.1:5557, events @tcp://127.0.0.1:5556.
"$bin/ecp-worker" --worker-id "$worker_id" --state-file "$work/state.json" --metrics none \
    --heartbeat-ms 1000 --stats-interval-ms 5000 --log-format text 2>"$work/worker.log" &
pids+=($!)

"$bin/ecp-console" --worker "$worker_id=tcp://127.0.0.1:5557,tcp://127.0.0.1:5556" \
    --listen "127.0.0.1:$port" --log-format text "$@" &
pids+=($!)

for _ in $(seq 1 100); do
  if curl -s -o /dev/null "http://127.0.0.1:$port/favicon.ico" 2>/dev/null; then break; fi
  if ! kill -0 "${pids[1]}" 2>/dev/null; then echo "run-console: the console did not start" >&2; exit 1; fi
  sleep 0.1
done
echo
echo "ECP console: http://127.0.0.1:$port/   (worker $worker_id on test:///default; its log: $work/worker.log)"
echo "Ctrl-C stops both."
wait "${pids[1]}"
