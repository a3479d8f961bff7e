#!/usr/bin/env bash
# The deploy files checked offline with Node's test runner: installs the validators at the
# versions package-lock.json pins (npm ci), then runs the given test files.
#   node-test.sh k8s.test.mjs       deploy/kubernetes against the Kubernetes OpenAPI schemas
#   node-test.sh compose.test.mjs   docker/compose.yaml against the Compose Specification
# (both also against deploy/runtime.json)
set -euo pipefail
cd "$(dirname "$0")"
command -v npm >/dev/null ||
  { echo "node-test: npm not found (bash .ci/install-deps --tests installs it)" >&2; exit 1; }
# npm ci empties and refills node_modules: run it only when node_modules was not filled from this
# very lock file.
# Two of these may run at once (ctest -j): one installs while the other waits.
exec 9>"${TMPDIR:-/tmp}/psnictest-node-modules.lock"
flock 9
stamp=node_modules/.psnic-installed-from
lock=$(sha256sum package-lock.json)
if [ "$(cat "$stamp" 2>/dev/null)" != "$lock" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$lock" >"$stamp"
fi
flock -u 9
exec node --test "$@"
