#!/usr/bin/env bash
# dev.sh: the one entry point for building and trying Saga on Debian 12.
#
#   ./dev.sh demo    install what is missing, build, run the main sample (samples/shop)
#   ./dev.sh test    install what is missing, build, run every test (CI runs this)
#   ./dev.sh bench   install what is missing, build, run the benchmarks
#   ./dev.sh build   install what is missing and build only
#
# Packages come from Debian only (see README.md, "Dependencies"). Run as root,
# or as a user with sudo. The build goes to ./build (override with BUILD_DIR).
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${BUILD_DIR:-build}
PACKAGES=(
  g++ cmake ninja-build pkg-config ccache
  tao-pegtl-dev libfmt-dev libboost-dev libsqlite3-dev libcli11-dev
  nlohmann-json3-dev libxxhash-dev libjemalloc-dev libgtest-dev libgmock-dev
  sqlite3
)

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "==> installing: ${missing[*]}"
  local sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

build() {
  install_packages
  echo "==> building in $BUILD_DIR"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$BUILD_DIR" -j "$(nproc)"
}

demo() {
  build
  local ctl="$BUILD_DIR/sagactl/sagactl" shop="$BUILD_DIR/samples/shop/shop" out
  out=$(mktemp -d)
  echo "==> sagactl check + compile samples/order.saga (the compiler, then the first lines of the listing)"
  "$ctl" check samples/order.saga
  "$ctl" compile samples/order.saga -o "$out/order.sagac"
  "$ctl" disasm "$out/order.sagac" >"$out/order.lst"
  head -n 24 "$out/order.lst"
  echo
  echo "==> samples/shop: 20 orders of samples/order.saga, 10% of calls failing (retries, compensation)"
  "$shop" --program "$out/order.sagac" --orders 20 --fail-rate 0.1 --slow 20 --seed 7 --db "$out/shop.db"
  echo
  echo "==> samples/shop: SIGKILL after 10 finished orders, then the same command with --resume"
  "$shop" --orders 30 --slow 50 --seed 8 --db "$out/crash.db" --crash-after 10 || echo "(killed, exit $?)"
  "$shop" --orders 30 --slow 50 --seed 8 --db "$out/crash.db" --resume
  rm -rf "$out"
}

case "${1:-demo}" in
  demo) demo ;;
  build) build ;;
  test)
    build
    echo "==> running the tests"
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"
    ;;
  bench)
    build
    "$BUILD_DIR/bench/compile_bench"
    ;;
  *)
    echo "usage: ./dev.sh [demo|test|bench|build]" >&2
    exit 2
    ;;
esac
