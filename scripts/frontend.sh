#!/usr/bin/env bash
# The web app in frontend/: `scripts/frontend.sh build` installs its packages from the lockfile
# (when they changed) and builds dist/; `scripts/frontend.sh check` also fails when the generated API
# types are stale, then type-checks and runs the unit tests.
set -euo pipefail
cd "$(dirname "$0")/../frontend"
mode=${1:-build}

# Vite 8 needs Node 20.19 or newer.
node_ok() {
  command -v node >/dev/null &&
    node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)'
}
if ! node_ok; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
  fi
  node_ok || { echo "the web app needs Node.js 20.19 or newer (found: $(node --version 2>/dev/null || echo none))" >&2; exit 1; }
fi

# npm ci only when the lockfile differs from what is installed.
stamp=node_modules/.easel-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

if [ "$mode" = check ]; then
  mkdir -p target
  npx openapi-typescript ../openapi/openapi.json -o target/schema.d.ts --silent 2>/dev/null \
    || npx openapi-typescript ../openapi/openapi.json -o target/schema.d.ts
  if ! cmp -s src/api/schema.d.ts target/schema.d.ts; then
    diff -u src/api/schema.d.ts target/schema.d.ts | head -40 >&2 || true
    echo "frontend/src/api/schema.d.ts is stale: run 'make openapi' (it regenerates both)" >&2
    exit 1
  fi
  npx tsc -p .
  npx vitest run
fi
npx vite build --logLevel warn
