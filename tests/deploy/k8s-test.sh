#!/usr/bin/env bash
# deploy/kubernetes checked offline against the Kubernetes OpenAPI schemas and deploy/runtime.json:
# installs the validator at the versions package-lock.json pins (npm ci), then runs
# k8s.test.mjs with Node's test runner.
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null ||
  { echo "k8s-test: npm not found (bash .ci/install-deps --tests installs it)" >&2; exit 1; }
# npm ci empties and refills node_modules: run it only when node_modules was not filled from this
# very lock file.
stamp=node_modules/.psnic-installed-from
lock=$(sha256sum package-lock.json)
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" >"$stamp"
fi
exec node --test k8s.test.mjs
