#!/usr/bin/env bash
# Under SAGA_SANITIZE (./dev.sh test-asan, test-tsan): every program the tests
# run, in-process or as a child (participant, crash_child, sagactl, shop), is
# linked with the sanitizers' runtimes and not with jemalloc, whose malloc
# would hide the heap from them. Usage: binaries_test.sh SANITIZERS PROGRAM...
set -u
sanitizers=$1
shift
declare -A runtime=([address]=libasan.so [undefined]=libubsan.so [thread]=libtsan.so)
passed=0
failed=0
for program in "$@"; do
  needed=$(readelf -d "$program" | awk '/NEEDED/ {print $5}')
  for s in ${sanitizers//,/ }; do
    if grep -qF "[${runtime[$s]}" <<<"$needed"; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      echo "FAIL: $program does not link ${runtime[$s]} (-fsanitize=$s)"
    fi
  done
  if grep -q jemalloc <<<"$needed"; then
    failed=$((failed + 1))
    echo "FAIL: $program links jemalloc under -fsanitize=$sanitizers"
  else
    passed=$((passed + 1))
  fi
done
echo "sanitized binaries: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
