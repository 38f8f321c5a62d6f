#!/usr/bin/env bash
# bench/credits: reservations per second through HTTP (the release `easel serve`, 32 connections,
# wrk) against the same SQL transaction through pgbench (32 clients), on one database in one run,
# for one user's hot row and across many users. Prints both figures and their ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${BENCH_SECONDS:-15}
connections=32
many=${BENCH_USERS:-200}
pg_port=${EASEL_BENCH_PG_PORT:-54340}

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (apt)" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --bin easel
PGBIN=$(scripts/pg.sh bindir)

scripts/pg.sh fresh target/bench-pg "$pg_port"
trap 'kill $server 2>/dev/null || true; scripts/pg.sh stop target/bench-pg' EXIT
scripts/pg.sh createdb "$pg_port" easel_bench
export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/easel_bench"
psql() { "$PGBIN/psql" -q -X -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }

app_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
EASEL_ENV=test EASEL_BIND="127.0.0.1:$app_port" EASEL_DATA_DIR=target/bench-data EASEL_LOG=warn \
  EASEL_DB_POOL_SIZE=32 EASEL_RATE_LIMIT_API_PER_MINUTE=1000000 EASEL_RATE_LIMIT_AUTH_PER_MINUTE=1000 \
  target/release/easel serve >target/bench-server.log 2>&1 &
server=$!
for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$app_port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -fsS "http://127.0.0.1:$app_port/readyz" >/dev/null || { cat target/bench-server.log >&2; exit 1; }

token=$(curl -fsS -X POST "http://127.0.0.1:$app_port/v1/auth/signup" -H 'content-type: application/json' \
  -d '{"email":"bench@example.com","username":"bench","password":"bench-password"}' \
  | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
target/release/easel admin set-role bench admin >/dev/null

# Users 1..N with ids md5(n)::uuid (what reserve.sql picks) and a large, ledger-backed balance.
psql -c "
  INSERT INTO users (id, email, username) SELECT md5(n::text)::uuid, 'u' || n || '@bench.test', 'bench-u' || n
    FROM generate_series(1, $many) n;
  INSERT INTO credit_balances (user_id, purchased, free_granted_on) SELECT md5(n::text)::uuid, 1000000000, current_date
    FROM generate_series(1, $many) n;
  INSERT INTO credit_entries (id, user_id, kind, free_delta, purchased_delta, free_after, purchased_after)
    SELECT gen_random_uuid(), md5(n::text)::uuid, 'purchase', 0, 1000000000, 0, 1000000000 FROM generate_series(1, $many) n;"
psql -c "VACUUM ANALYZE"
ids() { psql -At -c "SELECT string_agg(md5(n::text)::uuid::text, ',') FROM generate_series(1, $1) n"; }

http_rps() {
  local users=$1
  BENCH_TOKEN=$token BENCH_USER_IDS=$(ids "$users") wrk -t2 -c$connections -d"${duration}s" \
    -s bench/credits/reserve.lua "http://127.0.0.1:$app_port" >target/bench-wrk.log 2>&1
  local line; line=$(grep BENCH_RESULT target/bench-wrk.log)
  local non2xx; non2xx=$(echo "$line" | sed -E 's/.*non2xx=([0-9]+).*/\1/')
  if [ "$non2xx" != 0 ]; then cat target/bench-wrk.log >&2; echo "HTTP run had $non2xx non-2xx answers" >&2; exit 1; fi
  echo "$line" | awk '{ split($2,r,"="); split($3,s,"="); printf "%.0f", r[2] / s[2] }'
}

pgbench_tps() {
  local users=$1
  "$PGBIN/pgbench" -n -c $connections -j 2 -T "$duration" -D users="$users" -f bench/credits/reserve.sql "$DATABASE_URL" 2>/dev/null \
    | awk '/^tps =/ { printf "%.0f", $3 }'
}

report() {
  local label=$1 users=$2 target=$3
  local http pg
  http=$(http_rps "$users")
  pg=$(pgbench_tps "$users")
  python3 -c "
http, pg, target = $http, $pg, $target
ratio = http / pg if pg else 0
print(f'{\"$label\":<22} HTTP {http:>7.0f} req/s   pgbench {pg:>7.0f} tx/s   ratio {ratio:.2f} (target {target})')"
}

echo "bench/credits: ${duration}s per run, $connections connections"
report "one user (hot row)" 1 0.5
report "$many users" "$many" 0.6
target/release/easel admin verify-ledger
