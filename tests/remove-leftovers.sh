#!/usr/bin/env bash
# Removes what earlier, crashed test runs left on this host. Only objects whose name starts with
# "psnictest" are touched: the prefix every psnic test gives what it creates.
# $1: the psnic-agent binary, whose --cleanup removes what a killed test agent pinned and attached.
set -u
agent=${1:-}
if [ -n "$agent" ]; then
  for dir in /sys/fs/bpf/psnictest*; do
    [ -d "$dir" ] && "$agent" --cleanup --pin-dir "$dir"
  done
fi
for ns in $(ip netns list 2>/dev/null | awk '$1 ~ /^psnictest/ {print $1}'); do
  ip netns pids "$ns" 2>/dev/null | xargs -r kill -9
  ip netns del "$ns"
done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep '^psnictest'); do
  ip link del "$link" 2>/dev/null
done
if docker info >/dev/null 2>&1; then
  docker ps -aq --filter name='^psnictest' | xargs -r docker rm -f >/dev/null
  docker network ls -q --filter name='^psnictest' | xargs -r docker network rm >/dev/null
  docker volume ls -q --filter name='^psnictest' | xargs -r docker volume rm >/dev/null
fi
exit 0
