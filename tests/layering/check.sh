#!/usr/bin/env bash
# The build enforces the layering: each probe target, linked to one layer's library, includes a
# header of a layer above; each must fail to compile because that header is not on its include
# path, and the control (an include of the layer below) must build.
#   check.sh BUILD_DIR
set -uo pipefail
build=$1
failed=0
expect_missing() {  # TARGET HEADER
  local out
  if out=$(cmake --build "$build" --target "$1" 2>&1); then
    echo "layering: $1 built, but it includes $2 from a layer above"
    failed=1
  elif ! grep -q "$2: No such file or directory" <<<"$out"; then
    echo "layering: $1 failed for another reason than $2 missing:"
    echo "$out" | tail -20
    failed=1
  else
    echo "layering: $1 does not compile: $2 is not visible to it"
  fi
}
expect_missing psnic_probe_kernel_includes_agent agent/inventory.h
expect_missing psnic_probe_resolver_includes_kernel kernel/attach.h
expect_missing psnic_probe_exporter_includes_kernel kernel/attach.h
if out=$(cmake --build "$build" --target psnic_probe_agent_includes_kernel 2>&1); then
  echo "layering: psnic_probe_agent_includes_kernel builds (the control)"
else
  echo "layering: the control psnic_probe_agent_includes_kernel does not build:"
  echo "$out" | tail -20
  failed=1
fi
exit $failed
