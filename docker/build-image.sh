#!/usr/bin/env bash
# Builds psnic-agent's image from this repository: psnic-agent:VERSION (VERSION from
# CMakeLists.txt's project()) and psnic-agent:latest, and its build stage as psnic-agent-build:cache.
#   docker/build-image.sh                 base: debian:12, pulled from the registry
#   docker/build-image.sh --offline       base: psnic-debian:12, made by docker/base-image.sh
#                                         from this machine's apt sources (no registry needed)
# Extra arguments go to docker build. Needs docker.
set -euo pipefail
cd "$(dirname "$0")/.."

base=debian:12
if [ "${1:-}" = --offline ]; then
  shift
  base=psnic-debian:12
  bash docker/base-image.sh "$base"
fi
version=$(sed -n 's/^project(psnic VERSION \([0-9][0-9.]*\).*/\1/p' CMakeLists.txt)
[ -n "$version" ] || { echo "build-image: no project(psnic VERSION ...) in CMakeLists.txt" >&2; exit 1; }
revision=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
source=$(git remote get-url origin 2>/dev/null || true)

build=(docker build -f docker/Dockerfile --build-arg BASE_IMAGE="$base" --build-arg VERSION="$version"
  --build-arg SOURCE="$source")
# The build stage first, tagged: it is the layer cache of the next build (the packages, the
# compile), which an untagged stage would lose to the prune below.
"${build[@]}" --target build --label io.psnic.stage=build -t psnic-agent-build:cache "$@" .
"${build[@]}" --label org.opencontainers.image.revision="$revision" --label io.psnic.stage=agent \
  -t "psnic-agent:$version" -t psnic-agent:latest "$@" .
# What earlier builds left untagged (their build stages, their images): about 1 GB each.
docker image prune -f --filter label=io.psnic.stage >/dev/null
echo "build-image: psnic-agent:$version ($(docker image inspect -f '{{.Size}}' "psnic-agent:$version" | numfmt --to=iec))"
