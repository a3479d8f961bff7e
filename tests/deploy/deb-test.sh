#!/usr/bin/env bash
# The Debian package, built and installed for real:
#   deb-test.sh SOURCE_DIR PACKAGE_BUILD_DIR VERSION
# builds psnic in PACKAGE_BUILD_DIR (RelWithDebInfo, no tests or benchmarks, as a packager
# would), runs cpack, checks the .deb and its -dbgsym .ddeb, then installs the .deb with apt
# (dpkg, its Depends from Debian's archive) into a fresh root, a container of the offline base
# psnic-debian:12 (docker/base-image.sh), and runs both binaries and systemd-analyze verify there.
set -euo pipefail
source_dir=$1 build_dir=$2 version=$3
export PATH=/usr/bin:$PATH  # Debian's docker first
fail() { echo "deb-test: $*" >&2; exit 1; }
pass() { echo "deb-test: ok: $*"; }

docker image inspect psnic-debian:12 >/dev/null 2>&1 ||
  fail "no psnic-debian:12 image (bash docker/base-image.sh makes it)"

cmake -S "$source_dir" -B "$build_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBUILD_TESTING=OFF \
  -DPSNIC_BENCH=OFF >/dev/null
cmake --build "$build_dir" -j"$(nproc)" --target psnic psnic-agent >/dev/null
rm -f "$build_dir"/*.deb "$build_dir"/*.ddeb
(cd "$build_dir" && cpack -G DEB) >"$build_dir/cpack.log" 2>&1 ||
  { cat "$build_dir/cpack.log" >&2; fail "cpack failed"; }

arch=$(dpkg --print-architecture)
deb=$build_dir/psnic_${version}_${arch}.deb
ddeb=$build_dir/psnic-dbgsym_${version}_${arch}.ddeb
[ -f "$deb" ] || fail "cpack made no $deb: $(ls "$build_dir")"
[ -f "$ddeb" ] || fail "cpack made no $ddeb"
[ "$(dpkg-deb -f "$deb" Package Version Section | tr '\n' ' ')" = \
  "Package: psnic Version: $version Section: net " ] || fail "control: $(dpkg-deb -f "$deb")"
# dpkg-shlibdeps wrote Depends from what the binaries link: libbpf for the agent at least.
dpkg-deb -f "$deb" Depends | grep -q 'libbpf1' || fail "Depends lacks libbpf1: $(dpkg-deb -f "$deb" Depends)"
pass "$(basename "$deb"): Depends: $(dpkg-deb -f "$deb" Depends)"

# Stripped binaries in the .deb; their debug info in the .ddeb, by build id.
extract=$(mktemp -d /tmp/psnictest-deb.XXXXXX)
trap 'rm -rf "$extract"; docker rm -f "psnictest-deb-$$" >/dev/null 2>&1 || true' EXIT
dpkg-deb -x "$deb" "$extract/deb"
dpkg-deb -x "$ddeb" "$extract/ddeb"
for binary in psnic psnic-agent; do
  path=$extract/deb/usr/bin/$binary
  ! readelf -S "$path" | grep -q '\.debug_info' || fail "$binary in the .deb is not stripped"
  id=$(readelf -n "$path" | awk '/Build ID:/ { print $3 }')
  debug=$extract/ddeb/usr/lib/debug/.build-id/${id:0:2}/${id:2}.debug
  readelf -S "$debug" 2>/dev/null | grep -q '\.debug_info' || fail "$binary: no debug info at ${debug#"$extract/ddeb"}"
done
pass "binaries stripped, debug symbols in $(basename "$ddeb") by build id"

# A fresh root: install, run, verify. apt-get install of a local file is dpkg -i with its
# Depends resolved from the archive.
docker run --rm --name "psnictest-deb-$$" --network host -v "$build_dir:/deb:ro" psnic-debian:12 \
  sh -euc '
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "/deb/$1" >/dev/null
    test "$(psnic --version)" = "$2" || { echo "psnic --version: $(psnic --version)"; exit 1; }
    test "$(psnic-agent --version)" = "$2" || { echo "psnic-agent --version: $(psnic-agent --version)"; exit 1; }
    echo "deb-test: ok: psnic --version and psnic-agent --version print $2"
    test -f /lib/systemd/system/psnic-agent.service
    test -f /usr/share/doc/psnic/LICENSE && test -f /usr/share/doc/psnic/README.md
    echo "deb-test: ok: /lib/systemd/system/psnic-agent.service, /usr/share/doc/psnic/{LICENSE,README.md}"
    apt-get install -y -qq --no-install-recommends systemd >/dev/null
    out=$(systemd-analyze verify psnic-agent.service 2>&1) && test -z "$out" ||
      { echo "systemd-analyze verify: $out"; exit 1; }
    echo "deb-test: ok: systemd-analyze verify psnic-agent.service, as installed"
    dpkg -i "/deb/$3" >/dev/null
    echo "deb-test: ok: $3 installs beside it"
  ' sh "$(basename "$deb")" "$version" "$(basename "$ddeb")" ||
  fail "installing $(basename "$deb") into psnic-debian:12 failed (above)"
