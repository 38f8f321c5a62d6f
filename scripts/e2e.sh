#!/usr/bin/env bash
# Browser tests: builds the web app, starts `easel serve` on a free port against a fresh database in
# the test cluster (the `local` provider, development payments), and drives Debian's Chromium with
# playwright-core (frontend/e2e). Screenshots land in target/e2e/. Usage: scripts/e2e.sh PG_PORT
set -euo pipefail
cd "$(dirname "$0")/.."
pg_port=$1

# Debian's Chromium, installed when missing (no browser downloads).
chromium=${CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "the browser tests need Chromium at $chromium (apt-get install chromium)" >&2; exit 1
  fi
fi

scripts/frontend.sh build
cargo build --quiet --bin easel

db=easel_e2e
# A fresh database, as the image store below is fresh: rows left by an earlier run would point to
# files that are gone.
"$(scripts/pg.sh bindir)/psql" -q -X -h 127.0.0.1 -p "$pg_port" -U postgres -d postgres \
  -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
scripts/pg.sh createdb "$pg_port" "$db" >/dev/null
app_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
log=target/e2e-server.log
rm -rf target/e2e target/e2e-data
mkdir -p target/e2e

# Renders take a couple of seconds so the progress bar has something to show.
EASEL_ENV=development EASEL_DEV_PAYMENTS=true DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/$db" \
  EASEL_BIND="127.0.0.1:$app_port" EASEL_DATA_DIR=target/e2e-data EASEL_WEB_DIR=frontend/dist EASEL_LOG=warn \
  EASEL_LOCAL_RENDER_MS=2000 EASEL_RATE_LIMIT_AUTH_PER_MINUTE=1000 \
  target/debug/easel serve >"$log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT

for _ in $(seq 1 100); do
  if curl -fsS "http://127.0.0.1:$app_port/readyz" >/dev/null 2>&1; then break; fi
  sleep 0.2
done
curl -fsS "http://127.0.0.1:$app_port/readyz" >/dev/null || { cat "$log"; echo "server did not become ready" >&2; exit 1; }

# An admin for the support journey, made the way an operator makes one.
admin_password="support-password-for-e2e"
EASEL_ENV=development DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/$db" EASEL_DATA_DIR=target/e2e-data \
  EASEL_LOG=warn EASEL_NEW_USER_PASSWORD="$admin_password" \
  target/debug/easel admin create-user --email support@example.com --username support --admin >/dev/null

status=0
E2E_BASE_URL="http://127.0.0.1:$app_port" CHROMIUM="$chromium" E2E_SCREENSHOTS=target/e2e \
  E2E_ADMIN_EMAIL=support@example.com E2E_ADMIN_PASSWORD="$admin_password" E2E_MAIL_DIR=target/e2e-data/mail \
  node frontend/e2e/run.mjs "${2:-}" || status=$?
if [ "$status" != 0 ]; then tail -50 "$log"; fi
echo "screenshots: target/e2e/"
exit $status
