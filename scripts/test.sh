#!/usr/bin/env bash
# `make test`: every check, against a throwaway PostgreSQL cluster under target/pg.
set -euo pipefail
cd "$(dirname "$0")/.."

port=${EASEL_TEST_PG_PORT:-54330}
step() { printf '\n==> %s\n' "$*"; }

step "PostgreSQL: fresh throwaway cluster on port $port"
scripts/pg.sh fresh target/pg "$port"
trap 'scripts/pg.sh stop target/pg' EXIT
export EASEL_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"

step "rustfmt"
cargo fmt --all --check

step "clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "build"
cargo build --workspace --all-targets --quiet

step "Python test tools (target/venv: schemathesis, cog)"
scripts/venv.sh

step "Rust tests"
cargo test --workspace --quiet 2>&1 | tee target/test-output.log
grep -E '^test result:' target/test-output.log | awk '
  { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } }
  END { printf "\nRust tests: %d passed, %d failed\n", p, f }'

step "OpenAPI document matches the code"
target/debug/easel openapi --check --out openapi/openapi.json

step "Web app: generated API types up to date, type check, unit tests (Vitest), build"
scripts/frontend.sh check

step "Browser tests (playwright-core + Debian Chromium; screenshots in target/e2e/)"
scripts/e2e.sh "$port"

step "schemathesis against the running server"
scripts/schemathesis.sh "$port"

printf '\nAll checks passed.\n'
