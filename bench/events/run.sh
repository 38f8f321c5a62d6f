#!/usr/bin/env bash
# bench/events: what open event streams (GET /v1/generations/{id}/events) cost the database. Each
# stream reads its generation only on word of a change (LISTEN/NOTIFY), so a stream on a generation
# that does not change should cost nothing, and one on a running job a read per change. Reports,
# for BENCH_STREAMS streams, the database's commits per second with streams open on queued
# generations (no runner) against the same moment without them, and the commits that BENCH_STREAMS
# generations (5 s renders of the `local` model, which report progress five times) cost from
# submission to the end with a stream on each against the same generations without.
set -euo pipefail
cd "$(dirname "$0")/../.."

streams=${BENCH_STREAMS:-200}
seconds=${BENCH_SECONDS:-5}
bench_name=events
. bench/lib.sh

run_phase() {  # PHASE JOB_WORKERS
  start_server EASEL_SIGNUP_BONUS_CREDITS=1000000 EASEL_MAX_IN_FLIGHT=100000 EASEL_JOB_WORKERS="$2" \
    EASEL_LOCAL_RENDER_MS=5000
  python3 bench/events/watch.py "http://127.0.0.1:$app_port" "$(token_for "events$1")" "$streams" \
    "$seconds" "$PGBIN/psql" "$DATABASE_URL" "$1"
  kill $server; wait $server 2>/dev/null || true; server=""
}

echo "bench/events: $streams streams, ${seconds}s each measurement"
run_phase idle 0
run_phase running "$streams"
