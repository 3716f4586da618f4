#!/usr/bin/env bash
# Installs the build into a temporary prefix, builds tests/install/consumer
# against it with find_package(saga), and runs it: the embedding API works
# for users outside this tree. Usage: run.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S "$src/tests/install/consumer" -B "$tmp/build" -G Ninja -DCMAKE_PREFIX_PATH="$tmp/prefix" \
  "${launcher[@]}" >/dev/null
cmake --build "$tmp/build" >/dev/null
"$tmp/prefix/bin/sagactl" compile "$src/tests/install/consumer/greet.saga" -o "$tmp/greet.sagac" 2>/dev/null
out=$("$tmp/build/consumer" "$tmp/greet.sagac" "$tmp/sagas.db" ada)
if [ "$out" != "hello ada" ]; then
  echo "FAIL: consumer printed '$out', expected 'hello ada'"
  exit 1
fi
echo "install: 1 passed, 0 failed"
