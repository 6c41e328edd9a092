#!/usr/bin/env bash
# Builds mediasoup 3.12.16's C++ worker from its npm tarball against Debian bookworm libraries,
# with no network access beyond the npm registry and deb.debian.org (mediasoup's meson wraps and
# its prebuilt-worker download both need GitHub). Nothing lands in the repo.
#
# Usage: bench/external/build-mediasoup-worker.sh [WORKDIR]   (default /work/msoup-build)
# Needs: apt-get install libuv1-dev libssl-dev libusrsctp-dev libabsl-dev nlohmann-json3-dev pkg-config
#        pip install meson ninja
# Result: WORKDIR/out/mediasoup-worker (export MEDIASOUP_WORKER_BIN=that path).
set -euo pipefail
W=${1:-/work/msoup-build}
VERSION=3.12.16
mkdir -p "$W"
cd "$W"

# 1. Sources: the npm tarball carries worker/ (src, include, deps/libwebrtc, meson.build).
[ -f "mediasoup-$VERSION.tgz" ] || npm pack "mediasoup@$VERSION"
rm -rf package && tar xzf "mediasoup-$VERSION.tgz"

# 2. libsrtp 2.5.0 with OpenSSL crypto, as mediasoup's own wrap builds it. Debian's libsrtp2-1 is
#    built on NSS, which costs mediasoup ~40-60% more CPU per forwarded packet (bench/README.md).
[ -f libsrtp2_2.5.0.orig.tar.gz ] ||
	curl -sfSLO http://deb.debian.org/debian/pool/main/libs/libsrtp2/libsrtp2_2.5.0.orig.tar.gz
rm -rf libsrtp-2.5.0 srtp-out srtp-openssl && tar xzf libsrtp2_2.5.0.orig.tar.gz
(cd libsrtp-2.5.0 && meson setup "$W/srtp-out" --buildtype=release -Ddefault_library=static \
	-Dcrypto-library=openssl -Dcrypto-library-kdf=disabled -Dtests=disabled -Ddoc=disabled \
	--prefix="$W/srtp-openssl" && ninja -C "$W/srtp-out" install)
SRTP_A=$(find "$W/srtp-openssl" -name libsrtp2.a | head -1)

# 3. Replace each wrap by a stub subproject that hands over the system library under the names
#    meson.build asks for (get_variable(...)). The *_lib variables feed only the shared-library
#    target, which is not built by default: an empty static library stands in.
S=package/worker/subprojects
rm -f "$S"/*.wrap
stub() { # name languages body
	mkdir -p "$S/$1"
	printf "project('%s', %s)\n%s\n" "$1" "$2" "$3" >"$S/$1/meson.build"
	echo "int ms_stub_$(echo "$1" | tr -c 'a-z0-9\n' _)(void) { return 0; }" >"$S/$1/dummy.c"
}
stub openssl "'c'" "openssl_dep = dependency('openssl')
libcrypto_lib = static_library('stub_crypto', 'dummy.c')
libssl_lib = static_library('stub_ssl', 'dummy.c')"
stub nlohmann_json "'c'" "nlohmann_json_dep = dependency('nlohmann_json')"
stub libuv "'c'" "libuv_dep = dependency('libuv')
libuv = static_library('stub_uv', 'dummy.c')"
printf "option('build_tests', type: 'boolean', value: false)\noption('build_benchmarks', type: 'boolean', value: false)\n" >"$S/libuv/meson_options.txt"
stub libsrtp2 "'c'" "libsrtp2_dep = declare_dependency(compile_args: ['-I$W/srtp-openssl/include/srtp2'],
  link_args: ['$SRTP_A', '-lcrypto'])
libsrtp2 = static_library('stub_srtp', 'dummy.c')"
printf "option('crypto-library', type: 'string', value: 'openssl')\noption('crypto-library-kdf', type: 'string', value: 'disabled')\noption('tests', type: 'string', value: 'disabled')\n" >"$S/libsrtp2/meson_options.txt"
stub usrsctp "'c'" "usrsctp_dep = dependency('usrsctp')
usrsctp = static_library('stub_usrsctp', 'dummy.c')"
printf "option('sctp_build_programs', type: 'boolean', value: false)\n" >"$S/usrsctp/meson_options.txt"
stub abseil-cpp "['c', 'cpp']" "absl_container_dep = declare_dependency(dependencies: [dependency('absl_flat_hash_map'),
  dependency('absl_flat_hash_set'), dependency('absl_btree'), dependency('absl_inlined_vector'), dependency('absl_memory')])
absl_strings_dep = dependency('absl_strings')
absl_types_dep = declare_dependency(dependencies: [dependency('absl_optional'), dependency('absl_variant')])
absl_container_lib = static_library('stub_absl', 'dummy.c')"
stub catch2 "'c'" "catch2_dep = declare_dependency()"

# 4. Configure and build the worker executable only (about 3 minutes on 2 cores).
rm -rf out
(cd package/worker && meson setup "$W/out" --buildtype=release -Db_ndebug=true --wrap-mode=nodownload)
ninja -C out mediasoup-worker
echo "built $W/out/mediasoup-worker"
