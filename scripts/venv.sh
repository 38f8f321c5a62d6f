#!/usr/bin/env bash
# The project's Python venv (target/venv) with the test tools: schemathesis, and Cog with Pillow for
# the Cog provider tests. Reinstalls only when scripts/requirements-test.txt changes.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=target/venv
stamp="$venv/.requirements.sha256"
want=$(sha256sum scripts/requirements-test.txt | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  exit 0
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r scripts/requirements-test.txt
echo "$want" >"$stamp"
