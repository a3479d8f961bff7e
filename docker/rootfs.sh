#!/usr/bin/env bash
# Lays out the runtime image's root filesystem from a build tree: psnic and psnic-agent, stripped,
# in /usr/bin; every shared library psnic-agent loads (as the dynamic loader resolves them) at its
# own path; the loader itself. The debug symbols go to DEBUG_DIR by build id.
#   rootfs.sh BUILD_DIR ROOTFS DEBUG_DIR
set -euo pipefail
build=$1 rootfs=$2 debug=$3

mkdir -p "$rootfs/usr/bin" "$rootfs/tmp" "$debug"
for binary in psnic psnic-agent; do
  id=$(readelf -n "$build/$binary" | awk '/Build ID:/ { print $3 }')
  [ -n "$id" ] || { echo "rootfs: $build/$binary has no build id" >&2; exit 1; }
  mkdir -p "$debug/usr/lib/debug/.build-id/${id:0:2}"
  objcopy --only-keep-debug --compress-debug-sections "$build/$binary" \
    "$debug/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug"
  strip --strip-all -o "$rootfs/usr/bin/$binary" "$build/$binary"
done

# ldd lists "name => /path (addr)" for each library and "/path (addr)" for the loader; a
# library it cannot find fails the build here rather than the container at start.
ldd "$build/psnic-agent" | awk '
  /not found/ { print "rootfs: " $1 " not found" > "/dev/stderr"; exit 1 }
  $2 == "=>" && $3 ~ /^\// { print $3 }
  $1 ~ /^\// { print $1 }' >/tmp/closure
for library in $(cat /tmp/closure); do
  mkdir -p "$rootfs$(dirname "$library")"
  cp -L "$library" "$rootfs$library"
done
# psnic is static (its start-up is most of a lookup's cost); check it stays so.
if ldd "$build/psnic" >/dev/null 2>&1; then echo "rootfs: psnic is not static" >&2; exit 1; fi
chmod 1777 "$rootfs/tmp"
echo "rootfs: $(wc -l </tmp/closure) libraries, $(du -sh "$rootfs" | cut -f1) in all"
