#!/usr/bin/env bash
# Makes psnic's offline Debian 12 base image for machines that reach Debian's package archive but
# no image registry: a minbase debootstrap from the Debian mirror this machine's apt already uses
# (read from its sources, so the repository names no mirror), docker-imported as IMAGE.
#   docker/base-image.sh [IMAGE]     default psnic-debian:12; kept if it exists (a cache)
#   docker/base-image.sh --rebuild [IMAGE]
# Then: docker build --build-arg BASE_IMAGE=psnic-debian:12 -f docker/Dockerfile .
# Needs root, docker and debootstrap. Idempotent.
set -euo pipefail

rebuild=false
if [ "${1:-}" = --rebuild ]; then rebuild=true; shift; fi
image=${1:-psnic-debian:12}
suite=bookworm

if ! $rebuild && docker image inspect "$image" >/dev/null 2>&1; then
  echo "base-image: $image is there (--rebuild makes it again)"
  exit 0
fi
command -v debootstrap >/dev/null ||
  { echo "base-image: debootstrap is not installed (apt-get install debootstrap)" >&2; exit 1; }

# The machine's Debian mirrors, as apt has them: deb822 *.sources (URIs:) and one-line *.list.
# A source is Debian's when it serves the suite's Release file signed for Debian; here it is
# enough that its suites name bookworm and it is not a third-party repository with its own key.
debian_uris() {
  local file
  for file in /etc/apt/sources.list.d/*.sources; do
    [ -e "$file" ] || continue
    awk -v suite="$suite" '
      BEGIN { RS = ""; FS = "\n" }
      {
        uris = ""; suites = ""; keyed = ""
        for (i = 1; i <= NF; i++) {
          if ($i ~ /^URIs:/) { uris = $i; sub(/^URIs:[ \t]*/, "", uris) }
          if ($i ~ /^Suites:/) suites = $i
          if ($i ~ /^Signed-By:/ && $i !~ /debian-archive-keyring/) keyed = 1
        }
        if (suites ~ ("[ \t]" suite "([ \t]|$)") && !keyed) print uris
      }' "$file"
  done
  for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$file" ] || continue
    awk -v suite="$suite" '$1 == "deb" && $0 !~ /signed-by=/ {
      for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { if ($(i + 1) == suite) print $i; break }
    }' "$file"
  done
}
mirror=$(debian_uris | tr ' ' '\n' | grep -v -- '-security' | head -1 || true)
security=$(debian_uris | tr ' ' '\n' | grep -- '-security' | head -1 || true)
[ -n "$mirror" ] ||
  { echo "base-image: no Debian $suite source in /etc/apt (sources.list, sources.list.d)" >&2; exit 1; }

rootfs=$(mktemp -d /var/tmp/psnic-base.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
echo "base-image: debootstrap $suite (minbase) from $mirror"
if ! debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$rootfs.log" 2>&1; then
  tail -20 "$rootfs.log" >&2
  rm -f "$rootfs.log"
  echo "base-image: debootstrap failed" >&2
  exit 1
fi
rm -f "$rootfs.log"

# apt inside the image uses the same archive, as the official image's debian.sources does.
{
  printf 'Types: deb\nURIs: %s\nSuites: %s %s-updates\nComponents: main\n' "$mirror" "$suite" "$suite"
  printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  if [ -n "$security" ]; then
    printf '\nTypes: deb\nURIs: %s\nSuites: %s-security\nComponents: main\n' "$security" "$suite"
    printf 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n'
  fi
} >"$rootfs/etc/apt/sources.list.d/debian.sources"
: >"$rootfs/etc/apt/sources.list"
# As the official image: no package caches or lists in the layer, no recommends.
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/90psnic-no-recommends"

tar -C "$rootfs" --numeric-owner -c . |
  docker import --change 'CMD ["bash"]' --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' - "$image" >/dev/null
echo "base-image: made $image ($(docker image inspect -f '{{.Size}}' "$image" | numfmt --to=iec))"
