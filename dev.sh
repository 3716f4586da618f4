#!/usr/bin/env bash
# dev.sh: the one entry point for building and trying Saga on Debian 12.
#
#   ./dev.sh demo       install what is missing, build, run the main sample (samples/shop)
#   ./dev.sh test       install what is missing, build, run every test, then test-asan, then
#                       fuzz for 10 s per target (FUZZ_SMOKE_SECONDS) (CI runs this)
#   ./dev.sh test-asan  every test under AddressSanitizer + UndefinedBehaviorSanitizer (./build-asan)
#   ./dev.sh test-tsan  the engine, store, HTTP, crash and e2e tests under ThreadSanitizer (./build-tsan)
#   ./dev.sh fuzz [S]   every libFuzzer target of tests/fuzz for S seconds each (60), clang (./build-fuzz)
#   ./dev.sh bench      install what is missing, build, run the benchmarks
#   ./dev.sh build      install what is missing and build only
#   ./dev.sh run-demo   what demo does after building, with the build in BUILD_DIR (a test runs it)
#
# Packages come from Debian only (see README.md, "Dependencies"). Run as root,
# or as a user with sudo. The build goes to ./build (override with BUILD_DIR),
# the sanitized ones to ./build-asan and ./build-tsan (ASAN_BUILD_DIR,
# TSAN_BUILD_DIR); see tests/README.md, "Sanitizers".
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${BUILD_DIR:-build}
ASAN_BUILD_DIR=${ASAN_BUILD_DIR:-build-asan}
TSAN_BUILD_DIR=${TSAN_BUILD_DIR:-build-tsan}
FUZZ_BUILD_DIR=${FUZZ_BUILD_DIR:-build-fuzz}
# The sanitizer runtimes come with GCC 12 (dependencies of g++-12); listed so
# that a missing one is installed instead of failing at link time.
PACKAGES=(
  g++ g++-12 libasan8 libubsan1 libtsan2 clang libclang-rt-14-dev cmake ninja-build pkg-config ccache
  tao-pegtl-dev libfmt-dev libboost-dev libsqlite3-dev libcli11-dev
  nlohmann-json3-dev libxxhash-dev libjemalloc-dev libgtest-dev libgmock-dev prometheus-cpp-dev
  sqlite3
  libpq-dev postgresql  # the PostgreSQL store's client; the server its tests start
  chromium chromium-driver
  graphviz  # dot: sagactl graph --format svg, and the tests that render every dot output
  prometheus  # promtool: the metrics test checks a scrape with `promtool check metrics`
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

# build_in DIR [CMAKE_ARGS...]: configures and builds one tree. The test
# programs are compiled at -O0 (CMakeLists.txt, SAGA_TEST_COMPILE_OPTIONS):
# what they test keeps the tree's optimisation.
build_in() {
  local dir=$1
  shift
  echo "==> building in $dir"
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSAGA_TEST_COMPILE_OPTIONS=-O0 \
    "$@" >/dev/null
  cmake --build "$dir" -j "$(nproc)"
}

# -O2 with line tables only (-g1): backtraces and profiles keep functions,
# files and lines; full debug info (-g, variables and types) would make the
# build take half as long again (engine_test.cpp: 33 s against 22 s).
build() {
  install_packages
  build_in "$BUILD_DIR" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG"
}

# run_sanitized DIR SANITIZERS CTEST_ARGS...: builds DIR with
# -DSAGA_SANITIZE=SANITIZERS and runs ctest there. GCC 12; no benchmarks (no
# test runs them); -Og -g1 instead of -O2 -g, with asserts on: a third of the
# compile time of -O1 less (under ASan engine.cpp 18 s instead of 29,
# http/client.cpp 24 s instead of 37; -O0 is no faster to build and runs
# slower), and the reports keep every frame with file and line. The test
# programs and the samples they start are built at -O0. The
# *SAN_OPTIONS exported by the caller are inherited by every process a test
# starts (participant, crash_child, sagactl: all built sanitized in DIR).
# Each report goes to a file in DIR/sanitizer-logs (log_path), because a test
# often captures or discards a child's stderr; a report fails the run even if
# every test passed, and is printed.
run_sanitized() {
  local dir=$1 sanitizers=$2 rc=0 start=$SECONDS
  shift 2
  install_packages
  rm -rf "$dir/sanitizer-logs"
  mkdir -p "$dir/sanitizer-logs"
  build_in "$dir" -DCMAKE_CXX_COMPILER=g++-12 -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-Og -g1" \
    -DSAGA_SANITIZE="$sanitizers" -DSAGA_BUILD_BENCH=OFF -DSAGA_SAMPLE_COMPILE_OPTIONS=-O0
  echo "==> running the tests under -fsanitize=$sanitizers"
  ctest --test-dir "$dir" --output-on-failure -j "$(nproc)" "$@" || rc=$?
  if [ -n "$(ls -A "$dir/sanitizer-logs")" ]; then
    echo "==> sanitizer reports (in $dir/sanitizer-logs):"
    for f in "$dir"/sanitizer-logs/*; do
      echo "--- $f"
      cat "$f"
    done
    rc=1
  fi
  echo "==> -fsanitize=$sanitizers: built and tested in $((SECONDS - start)) s"
  return $rc
}

# common_options DIR: the options every sanitizer gets. halt_on_error and
# abort_on_error: the first finding ends the process with SIGABRT, which no
# test mistakes for an expected exit code (a sagactl exiting 1 would).
# log_path/log_exe_name: reports go to DIR/sanitizer-logs/report.PROGRAM.PID.
common_options() {
  echo "halt_on_error=1:abort_on_error=1:log_path=$(realpath -m "$1")/sanitizer-logs/report:log_exe_name=1"
}

test_asan() {
  export ASAN_OPTIONS="detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1:$(common_options "$ASAN_BUILD_DIR")"
  export UBSAN_OPTIONS="print_stacktrace=1:$(common_options "$ASAN_BUILD_DIR")"
  run_sanitized "$ASAN_BUILD_DIR" address,undefined
}

# TSan covers the suites with threads (ctest labels): the engine, the store,
# the HTTP client, the kill -9 loops and sagactl end to end.
# No suppressions are needed (tests/README.md, "Sanitizers").
test_tsan() {
  export TSAN_OPTIONS="second_deadlock_stack=1:$(common_options "$TSAN_BUILD_DIR")"
  run_sanitized "$TSAN_BUILD_DIR" thread -L '^(runtime_tests|store_tests|http_tests|crash_tests|e2e_tests|sanitized_binaries)$'
}

# The main sample: the compiler on samples/order.saga, then samples/shop
# running orders with failures, and surviving a SIGKILL. Uses the build in
# BUILD_DIR; tests/CMakeLists.txt runs it (test dev_sh_demo), so the README's
# first command cannot break unnoticed.
run_demo() {
  local ctl="$BUILD_DIR/sagactl/sagactl" shop="$BUILD_DIR/samples/shop/shop" out
  out=$(mktemp -d)
  trap "rm -rf '$out'" EXIT
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
}

demo() {
  build
  run_demo
}

# fuzz [SECONDS]: builds FUZZ_BUILD_DIR with clang and SAGA_FUZZ (libFuzzer,
# ASan, UBSan, asserts on; FUZZ_OPT, -O1 by default), writes the generated seeds (make_seeds), then
# runs every target of tests/fuzz for SECONDS (60): at most 1 s per input,
# 2 GB of memory, leaks reported. Each target's corpus grows in
# FUZZ_BUILD_DIR/fuzz-corpus/TARGET (kept between runs), seeded from the
# repository; a crash, leak or timeout is written to
# FUZZ_BUILD_DIR/fuzz-findings/TARGET/ and fails the command (findings of
# earlier runs stay there but do not count again). Prints one line per
# target: executions, executions per second, coverage and new findings. A
# finding becomes a regression test: copy it to tests/fuzz/regressions/TARGET/
# (tests/README.md, "Fuzzing"). FUZZ_SEED seeds libFuzzer's mutations (0,
# the default: a random seed, printed in the log).
fuzz() {
  local seconds=${1:-60} dir=$FUZZ_BUILD_DIR rc=0 start=$SECONDS
  install_packages
  build_in "$dir" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="${FUZZ_OPT:--O1} -g1" \
    -DSAGA_FUZZ=ON -DSAGA_BUILD_TESTS=OFF -DSAGA_BUILD_BENCH=OFF
  "$dir/tests/fuzz/make_seeds" "$dir/tests/fuzz/seeds"
  local summary=()
  while read -r target seeds; do
    local corpus="$dir/fuzz-corpus/$target" findings="$dir/fuzz-findings/$target"
    local log="$dir/fuzz-logs/$target.log" frc=0 stamp="$dir/fuzz-logs/$target.started"
    mkdir -p "$corpus" "$findings" "$dir/fuzz-logs"
    touch "$stamp"
    echo "==> fuzzing $target for $seconds s"
    # shellcheck disable=SC2086  # $seeds is a list of directories.
    "$dir/tests/fuzz/$target" "$corpus" $seeds -max_total_time="$seconds" -timeout=1 -seed="${FUZZ_SEED:-0}" \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$findings/" </dev/null >"$log" 2>&1 ||
      frc=$?
    local execs rate cov ft found
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1) || true
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1) || true
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2) || true
    ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2) || true
    found=$(find "$findings" -type f -newer "$stamp" | wc -l)
    if [ "$frc" -ne 0 ] || [ "$found" -ne 0 ]; then
      rc=1
      echo "--- $target: FINDING (exit $frc), see $log and $findings"
      grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz: |.*deadly signal|.*-timeout|.*out-of-memory)' "$log" | head -20 || true
    fi
    summary+=("$(printf '%-20s %11s executions %7s/s  %6s edges  %7s features  %s findings' \
      "$target" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$found")")
  done <"$dir/tests/fuzz/seed_dirs.txt"
  echo "==> fuzz: $seconds s per target (logs in $dir/fuzz-logs)"
  printf '%s\n' "${summary[@]}"
  echo "==> fuzzed in $((SECONDS - start)) s"
  return $rc
}

case "${1:-demo}" in
  demo) demo ;;
  run-demo) run_demo ;;
  build) build ;;
  test)
    build
    echo "==> running the tests"
    ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)"
    echo "==> built and tested in $SECONDS s"
    test_asan
    # The fuzz smoke: every target fuzzed briefly, from the seeds and the
    # regressions; a finding fails the run (tests/README.md, "Fuzzing"). A
    # fixed seed, so that CI mutates the same way on every run (FUZZ_SEED=0:
    # libFuzzer picks one).
    # Built at -O0 (FUZZ_OPT): half the compile time of -O1 with clang
    # (engine.cpp 15 s instead of 29), which the smoke's few seconds per
    # target would not win back in executions.
    FUZZ_SEED=${FUZZ_SEED:-1} FUZZ_OPT=${FUZZ_OPT:--O0} fuzz "${FUZZ_SMOKE_SECONDS:-10}"
    ;;
  test-asan) test_asan ;;
  test-tsan) test_tsan ;;
  fuzz) fuzz "${2:-60}" ;;
  bench)
    build
    "$BUILD_DIR/bench/compile_bench"
    ;;
  *)
    echo "usage: ./dev.sh [demo|test|test-asan|test-tsan|fuzz [SECONDS]|bench|build|run-demo]" >&2
    exit 2
    ;;
esac
