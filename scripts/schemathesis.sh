#!/usr/bin/env bash
# Starts `easel serve` on a free port against its own database in the test cluster, runs schemathesis
# (all checks) against the served spec, then stops the server with SIGINT and requires a clean exit.
set -euo pipefail
cd "$(dirname "$0")/.."
pg_port=$1

scripts/venv.sh
venv=target/venv

db=easel_schemathesis
scripts/pg.sh createdb "$pg_port" "$db"
app_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=target/schemathesis-server.log

# Generous rate limits (schemathesis is fast) and the webhook and upload secrets, so every
# operation's own logic is exercised rather than its 429 or 503. Replicate's API base points at a
# closed port: no catalog model uses it, and nothing may leave this machine (so generations' webhooks
# may only name a host that cannot resolve). Development payments
# (a development server) let checkout succeed without Stripe.
webhook_secret="whsec_$(python3 -c 'import base64,os; print(base64.b64encode(os.urandom(24)).decode())')"
EASEL_ENV=development EASEL_DEV_PAYMENTS=true EASEL_STRIPE_WEBHOOK_SECRET="$webhook_secret" DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/$db" EASEL_BIND="127.0.0.1:$app_port" \
  EASEL_DATA_DIR=target/schemathesis-data EASEL_LOG=warn EASEL_WORKERS=2 \
  EASEL_RATE_LIMIT_AUTH_PER_MINUTE=1000000 EASEL_RATE_LIMIT_API_PER_MINUTE=1000000 \
  EASEL_RATE_LIMIT_ANONYMOUS_PER_MINUTE=1000000 EASEL_RATE_LIMIT_LOGIN_PER_ACCOUNT_PER_MINUTE=1000000 \
  EASEL_IDENTITY_WEBHOOK_SECRET="$webhook_secret" \
  EASEL_REPLICATE_API_TOKEN=r8_schemathesis EASEL_REPLICATE_API_BASE=http://127.0.0.1:9 \
  EASEL_REPLICATE_WEBHOOK_SECRET="$webhook_secret" EASEL_COG_UPLOAD_SECRET=schemathesis-upload-secret \
  EASEL_WEBHOOK_ALLOWED_HOSTS=webhooks.invalid \
  target/debug/easel serve >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$app_port/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$app_port/readyz" >/dev/null || { cat "$log"; echo "server did not become ready" >&2; exit 1; }

# A signed-in account, so the protected operations are tested past their 401.
suffix=$(date +%s%N)
token=$(curl -fsS -X POST "http://127.0.0.1:$app_port/v1/auth/signup" -H 'content-type: application/json' \
  -d "{\"email\":\"st$suffix@example.com\",\"username\":\"st$suffix\",\"password\":\"schemathesis-password\"}" \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')

# An admin, so the admin operations are tested past their 403.
DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/$db" EASEL_ENV=test EASEL_LOG=warn \
  target/debug/easel admin set-role "st$suffix" admin >/dev/null

# One worker: with two, hypothesis parses lambdas' source from two threads at once, which CPython
# 3.11 can fail with "AST constructor recursion depth mismatch" (a Runtime Error of the tool, not of
# the API; seen once in five runs). One worker takes 48 s here against 45 s for two.
status=0
"$venv/bin/schemathesis" --no-color --config-file scripts/schemathesis.toml run "http://127.0.0.1:$app_port/openapi.json" \
  --checks all --max-examples 50 --workers 1 -H "Authorization: Bearer $token" || status=$?

kill -INT $server
server_status=0
wait $server || server_status=$?
trap - EXIT
if [ "$server_status" != 0 ]; then
  cat "$log"; echo "easel serve exited with $server_status after SIGINT (expected 0)" >&2; exit 1
fi
exit $status
