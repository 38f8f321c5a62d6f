#!/usr/bin/env bash
# bench/credits: reservations per second through HTTP (the release `easel serve`, 32 connections,
# wrk) against the same SQL transaction through pgbench (32 clients), on one database in one run,
# for one user's hot row and across many users. Prints both figures and their ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${BENCH_SECONDS:-15}
connections=32
many=${BENCH_USERS:-200}
bench_name=credits
. bench/lib.sh

start_server
token=$(token_for bench)
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
