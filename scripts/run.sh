#!/usr/bin/env bash
# `make run`: the product on an embedded default. Starts (or reuses) a local PostgreSQL cluster under
# .data/postgres unless DATABASE_URL is set, then serves on EASEL_BIND (default 127.0.0.1:8080).
set -euo pipefail
cd "$(dirname "$0")/.."

export EASEL_ENV=${EASEL_ENV:-development}
export EASEL_DATA_DIR=${EASEL_DATA_DIR:-.data}
# Checkouts complete locally (no Stripe needed) on the development server; see README "Billing".
if [ "$EASEL_ENV" = development ]; then export EASEL_DEV_PAYMENTS=${EASEL_DEV_PAYMENTS:-true}; fi
if [ -z "${DATABASE_URL:-}" ]; then
  port=${EASEL_PG_PORT:-54320}
  scripts/pg.sh start "$EASEL_DATA_DIR/postgres" "$port" durable
  scripts/pg.sh createdb "$port" easel
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/easel"
  echo "PostgreSQL: local cluster in $EASEL_DATA_DIR/postgres on port $port (stop it with: make db-stop)"
fi

scripts/frontend.sh build
cargo build --quiet --bin easel
# exec: Ctrl-C reaches the server itself, which finishes in-flight requests and exits 0.
exec target/debug/easel serve
