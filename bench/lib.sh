# Shared by the benchmarks: a fresh PostgreSQL, a release `easel serve`, and wrk.
# Source it from the repository root after setting `bench_name`.
set -euo pipefail

pg_port=${EASEL_BENCH_PG_PORT:-54340}

if ! command -v wrk >/dev/null 2>&1; then
  echo "installing wrk (apt)" >&2
  apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null
fi
cargo build --release --quiet --bin easel
PGBIN=$(scripts/pg.sh bindir)

scripts/pg.sh fresh target/bench-pg "$pg_port"
# A fresh image store per run: the local model is deterministic, so a run on the last run's store
# would overwrite its files rather than create its own. Runs' stores are kept (remove
# target/bench-data-* when done): on a file system without a journal, as here, ext4 skips inodes
# freed in the last minutes when it allocates one, so deleting a store just before or between runs
# makes the next run's file creation several times slower.
data_dir="target/bench-data-$bench_name-$(date +%s)"
server=""
trap 'if [ -n "$server" ]; then kill $server 2>/dev/null || true; fi; scripts/pg.sh stop target/bench-pg' EXIT
scripts/pg.sh createdb "$pg_port" easel_bench
export DATABASE_URL="postgres://postgres@127.0.0.1:$pg_port/easel_bench"
psql() { "$PGBIN/psql" -q -X -v ON_ERROR_STOP=1 "$DATABASE_URL" "$@"; }

# PostgreSQL and the server share this machine's 2 cores. Linux groups processes by session
# (autogroup) and splits the CPU between groups, not threads: PostgreSQL's backends (one session) then
# wait up to 100-300 ms for their turn while the server's threads run, and those waits, not work,
# make the p99. The server runs in its own session, weighted below PostgreSQL (as if the database
# had its own cores, as it would in production). BENCH_SERVER_NICE=0 measures without the weighting.
weight_server_below_postgres() {
  local nice=${BENCH_SERVER_NICE:-10}
  if [ -w "/proc/$server/autogroup" ] && echo "$nice" >"/proc/$server/autogroup" 2>/dev/null; then
    echo "server scheduling group nice $nice (BENCH_SERVER_NICE)" >&2
  fi
}

# Starts the release server with generous limits plus any extra VAR=value arguments.
start_server() {
  app_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  env EASEL_ENV=test EASEL_BIND="127.0.0.1:$app_port" EASEL_DATA_DIR="$data_dir" EASEL_LOG=warn \
    EASEL_DB_POOL_SIZE=32 EASEL_RATE_LIMIT_API_PER_MINUTE=1000000 EASEL_RATE_LIMIT_AUTH_PER_MINUTE=1000000 \
    "$@" setsid target/release/easel serve >"target/bench-server-$bench_name.log" 2>&1 &
  server=$!
  for _ in $(seq 1 100); do curl -fsS "http://127.0.0.1:$app_port/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
  curl -fsS "http://127.0.0.1:$app_port/readyz" >/dev/null || { cat "target/bench-server-$bench_name.log" >&2; exit 1; }
  # Ready, so it has long since started its own session.
  weight_server_below_postgres
}

# Signs up `name` and prints its access token.
token_for() {
  curl -fsS -X POST "http://127.0.0.1:$app_port/v1/auth/signup" -H 'content-type: application/json' \
    -d "{\"email\":\"$1@bench.test\",\"username\":\"$1\",\"password\":\"bench-password\"}" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])'
}
