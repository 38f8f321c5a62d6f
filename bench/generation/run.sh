#!/usr/bin/env bash
# bench/generation: N users submit generations to the instant `local` model through HTTP (wrk);
# reports accepted/s, completed/s and p50/p99 from submit to succeeded, then checks that no job was
# lost or duplicated (images and ledger entries against generations). Then the two halves alone:
# the same submits with no job runner (accepted/s), and the runner draining them with nothing else
# running (completed/s). The floor is the same submits
# (same wrk script, same clients) to a route on the same stack that only inserts the row
# (bench/generation/floor.rs); pgbench inserting the bare row is reported beside it.
set -euo pipefail
cd "$(dirname "$0")/../.."

duration=${BENCH_SECONDS:-10}
users=${BENCH_USERS:-16}
bench_name=generation
. bench/lib.sh

serve() {  # serve JOB_WORKERS
  start_server EASEL_MODELS_PATH=bench/generation/models.toml EASEL_SIGNUP_BONUS_CREDITS=1000000 \
    EASEL_MAX_IN_FLIGHT=100000 EASEL_LOCAL_RENDER_MS=0 EASEL_JOB_WORKERS="$1" EASEL_GENERATION_DEADLINE_SECS=3600
}
# Submits for the bench's duration as run $1 to port $2; prints the accepted submits per second.
submit() {
  BENCH_RUN=$1 BENCH_TOKENS=$tokens wrk -t2 -c"$users" -d"${duration}s" -s bench/generation/submit.lua \
    "http://127.0.0.1:$2" >"target/bench-wrk-$1.log" 2>&1
  local line
  line=$(grep BENCH_RESULT "target/bench-wrk-$1.log")
  [ "$(echo "$line" | sed -E 's/.*non2xx=([0-9]+).*/\1/')" = 0 ] \
    || { cat "target/bench-wrk-$1.log" >&2; echo "submits were refused" >&2; exit 1; }
  echo "$line" | awk '{ split($2,r,"="); split($3,s,"="); printf "%.0f", r[2] / s[2] }'
}
drain() {
  for _ in $(seq 1 600); do
    active=$(psql -At -c "SELECT count(*) FROM generations WHERE status IN ('queued','starting','processing')")
    [ "$active" = 0 ] && break
    sleep 0.5
  done
  kill $server; wait $server 2>/dev/null || true; server=""
}

workers=${BENCH_JOB_WORKERS:-256}
serve "$workers"
tokens=$(for i in $(seq 1 "$users"); do token_for "gen$i"; done | paste -sd, -)
accepted_per_s=$(submit generation "$app_port")
drain

read -r completed_per_s p50 p99 < <(psql -At -F ' ' -c "
  SELECT round(count(*) FILTER (WHERE status = 'succeeded')
               / GREATEST(extract(epoch FROM max(completed_at) - min(created_at)), 0.001)),
         round(1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY completed_at - created_at))),
         round(1000 * extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY completed_at - created_at)))
  FROM generations WHERE prompt LIKE 'bench generation %'")

# The halves alone.
serve 0
alone_accepted=$(submit alone "$app_port")
kill $server; wait $server 2>/dev/null || true; server=""
serve "$workers"
drain
alone_completed=$(psql -At -c "
  SELECT round(count(*) / GREATEST(extract(epoch FROM max(completed_at) - min(started_at)), 0.001))
  FROM generations WHERE prompt LIKE 'bench alone %' AND status = 'succeeded'")

read -r total succeeded < <(psql -At -F ' ' -c "
  SELECT count(*), count(*) FILTER (WHERE status = 'succeeded') FROM generations")
read -r images reservations refunds duplicates < <(psql -At -F ' ' -c "
  SELECT (SELECT count(*) FROM images),
         (SELECT count(*) FROM credit_entries WHERE kind = 'reservation'),
         (SELECT count(*) FROM credit_entries WHERE kind = 'refund'),
         (SELECT count(*) FROM (SELECT generation_id FROM images GROUP BY 1 HAVING count(*) > 1) d)")
target/release/easel admin verify-ledger >/dev/null

cargo build --release --quiet --example generation_floor
floor_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
EASEL_BIND="127.0.0.1:$floor_port" EASEL_DB_POOL_SIZE=32 setsid target/release/examples/generation_floor \
  >target/bench-floor-generation.log 2>&1 &
server=$!
for _ in $(seq 1 100); do
  curl -fsS -o /dev/null -X POST "http://127.0.0.1:$floor_port/v1/generations" -H 'content-type: application/json' \
    -d '{"prompt": "ready", "model": "easel-sketch", "seed": 0}' 2>/dev/null && break
  sleep 0.2
done
weight_server_below_postgres  # as the server was (bench/lib.sh)
floor=$(submit floor "$floor_port")
kill $server; wait $server 2>/dev/null || true; server=""
pgbench=$("$PGBIN/pgbench" -n -c "$users" -j 2 -T "$duration" -f bench/generation/floor.sql "$DATABASE_URL" 2>/dev/null \
  | awk '/^tps =/ { printf "%.0f", $3 }')

echo "bench/generation: $users users, ${duration}s of submits"
echo "accepted  $accepted_per_s/s   completed $completed_per_s/s   submit→succeeded p50 ${p50} ms, p99 ${p99} ms"
echo "floor (the same submits to a route that only inserts the row): $floor/s   completed/floor $(python3 -c "print(f'{$completed_per_s / $floor:.2f}')") (target 0.5)"
echo "bare row insert through pgbench: $pgbench/s   completed/pgbench $(python3 -c "print(f'{$completed_per_s / $pgbench:.2f}')")"
echo "alone: submits with no job runner $alone_accepted/s ($(python3 -c "print(f'{$alone_accepted / $floor:.2f}')") of the floor); the runner draining them with nothing else running $alone_completed/s"
echo "all runs: generations $total, succeeded $succeeded, images $images, reservations $reservations, refunds $refunds, duplicated images $duplicates"
if [ "$images" != "$succeeded" ] || [ "$reservations" != "$total" ] || [ "$duplicates" != 0 ]; then
  echo "a job was lost or duplicated" >&2
  exit 1
fi
