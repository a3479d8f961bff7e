#!/usr/bin/env bash
# CTest fixture for the e2e tier: a dockerd that answers, and the local psnic-test image.
# A dockerd started here is left running for later tests of the same run (and later runs).
set -euo pipefail

if ! docker info >/dev/null 2>&1; then
  command -v dockerd >/dev/null || { echo "ensure-docker: dockerd not installed (apt-get install docker.io)" >&2; exit 1; }
  echo "ensure-docker: starting dockerd (log: /var/log/psnictest-dockerd.log)"
  setsid -f dockerd >/var/log/psnictest-dockerd.log 2>&1 </dev/null
  for _ in $(seq 1 120); do
    docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker info >/dev/null 2>&1 || { echo "ensure-docker: dockerd did not answer within 60 s" >&2; tail -20 /var/log/psnictest-dockerd.log >&2; exit 1; }
fi

# No registry here: the test image is busybox-static in an otherwise empty root filesystem.
if ! docker image inspect psnic-test:latest >/dev/null 2>&1; then
  busybox=/bin/busybox
  [ -x "$busybox" ] && "$busybox" --list | grep -qx httpd || { echo "ensure-docker: busybox-static missing (apt-get install busybox-static)" >&2; exit 1; }
  rootfs=$(mktemp -d /tmp/psnictest-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' EXIT
  mkdir -p "$rootfs/bin" "$rootfs/tmp" "$rootfs/proc" "$rootfs/sys" "$rootfs/dev" "$rootfs/etc"
  cp "$busybox" "$rootfs/bin/busybox"
  for applet in sh sleep ip ping wget nc httpd cat ls ifconfig; do ln -s busybox "$rootfs/bin/$applet"; done
  tar -C "$rootfs" -c . | docker import - psnic-test:latest >/dev/null
  echo "ensure-docker: built psnic-test:latest"
fi
echo "ensure-docker: ready"
