#!/usr/bin/env bash
# CTest fixture of the deploy tier.
# The images the shipped path runs, built offline (no registry): the Debian base from this
# machine's apt sources (docker/base-image.sh), psnic-agent:VERSION from docker/Dockerfile, and
# psnic-prometheus:debian, a Prometheus from Debian's package for compose.yaml's
# PROMETHEUS_IMAGE. docker's layer cache keeps them fast after the first run.
# And the host as README's Deploy section expects it (systemd hosts are so from boot): a bpf
# filesystem on /sys/fs/bpf, and /run/netns a shared mount (what `ip netns add` makes it), so
# that the agent container's rslave mount of it can follow new namespaces.
set -euo pipefail
cd "$(dirname "$0")/../.."
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH  # Debian's docker client, as the dockerd it talks to

bash docker/build-image.sh --offline -q >/dev/null
echo "setup: psnic-agent (docker/build-image.sh --offline)"
docker build -q -f docker/prometheus/Dockerfile --build-arg BASE_IMAGE=psnic-debian:12 \
  -t psnic-prometheus:debian docker/prometheus >/dev/null
echo "setup: psnic-prometheus:debian"

mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
if ! mountpoint -q /run/netns; then
  ip netns add psnictest-setup && ip netns del psnictest-setup
fi
echo "setup: host ready (bpf filesystem on /sys/fs/bpf, /run/netns a mount)"
