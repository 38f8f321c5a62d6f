#!/usr/bin/env bash
# Starts `easel serve` on a free port against its own database in the test cluster, runs schemathesis
# (all checks) against the served spec, then stops the server with SIGINT and requires a clean exit.
set -euo pipefail
cd "$(dirname "$0")/.."
pg_port=$1

venv=target/venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet -r scripts/requirements-test.txt
fi

db=easel_schemathesis
scripts/pg.sh createdb "$pg_port" "$db"
app_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=target/schemathesis-server.log

EASEL_ENV=test DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/$db" EASEL_BIND="127.0.0.1:$app_port" \
  EASEL_DATA_DIR=target/schemathesis-data EASEL_LOG=warn EASEL_WORKERS=2 \
  target/debug/easel serve >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$app_port/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$app_port/readyz" >/dev/null || { cat "$log"; echo "server did not become ready" >&2; exit 1; }

status=0
"$venv/bin/schemathesis" --no-color run "http://127.0.0.1:$app_port/openapi.json" \
  --checks all --max-examples 50 --workers 2 || status=$?

kill -INT $server
server_status=0
wait $server || server_status=$?
trap - EXIT
if [ "$server_status" != 0 ]; then
  cat "$log"; echo "easel serve exited with $server_status after SIGINT (expected 0)" >&2; exit 1
fi
exit $status
