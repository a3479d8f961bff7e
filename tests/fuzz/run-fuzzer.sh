#!/usr/bin/env bash
# One libFuzzer harness under CTest (tests/fuzz/CMakeLists.txt).
#   run-fuzzer.sh replay BINARY CORPUS ARTIFACTS          every input in CORPUS, once
#   run-fuzzer.sh fuzz   BINARY CORPUS ARTIFACTS SECONDS  fuzzing from CORPUS for SECONDS
# The committed corpus is only read: new inputs go to a temporary directory, removed after.
# A crash fails the test, and the line that ends the output names the reproducer.
set -uo pipefail
mode=$1 binary=$2 corpus=$3 artifacts=$4
mkdir -p "$artifacts"
name=$(basename "$binary")
started=$(mktemp)  # what libFuzzer writes after this is this run's
work=""
trap 'rm -rf "$started" ${work:+"$work"}' EXIT

case "$mode" in
  replay)
    # Files, not the directory: libFuzzer then runs each once and writes nothing.
    inputs=("$corpus"/*)
    "$binary" -artifact_prefix="$artifacts/" "${inputs[@]}"
    status=$? ;;
  fuzz)
    seconds=$5
    work=$(mktemp -d "${TMPDIR:-/tmp}/psnic-fuzz-$name.XXXXXX")
    "$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$work" "$corpus"
    status=$? ;;
  *) echo "run-fuzzer.sh: unknown mode $mode" >&2; exit 2 ;;
esac
if [ $status -ne 0 ]; then
  echo "$name: failed ($mode), status $status" >&2
  find "$artifacts" -type f -newer "$started" | while read -r file; do
    echo "$name: reproducer $file (run it: $binary $file)" >&2
  done
fi
exit $status
