#!/usr/bin/env bash
# Command-line tests of the compiler's diagnostics through sagactl: files that
# are too large to read (grammar/source.hpp, kMaxFileBytes), sources that are
# not UTF-8, in text and JSON formats, and long lines. Usage:
# diagnostics_cli_test.sh SAGACTL SOURCE_DIR
set -u
ctl=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# expect CODE DESCRIPTION -- COMMAND...: runs COMMAND, checks its exit code.
expect() {
  local want=$1 what=$2
  shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  if [ "$got" -eq "$want" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $what: exit $got, expected $want"
    sed 's/^/  | /' "$tmp/out" "$tmp/err" | head -c 4000
  fi
}

# contains FILE TEXT DESCRIPTION
contains() {
  if grep -qF -- "$2" "$1"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $3: '$2' not found in:"
    sed 's/^/  | /' "$1" | head -c 4000
  fi
}

# lacks FILE TEXT DESCRIPTION: TEXT must not be in FILE.
lacks() {
  if grep -qF -- "$2" "$1"; then
    failed=$((failed + 1))
    echo "FAIL: $3: '$2' found in:"
    sed 's/^/  | /' "$1" | head -c 4000
  else
    passed=$((passed + 1))
  fi
}

# --- Files larger than the 16 MiB limit ---------------------------------------
# bounded COMMAND...: runs COMMAND with 2 GB of address space and 20 s, so that
# a reader without a limit fails the test instead of exhausting the machine.
bounded() { (ulimit -v 2000000 && exec timeout 20 "$@"); }
limit=$((16 * 1024 * 1024))
expect 1 "check /dev/zero" -- bounded "$ctl" check /dev/zero
contains "$tmp/err" "cannot read '/dev/zero': it is larger than 16 MiB, the limit for source and input files" \
  "/dev/zero is refused"
ln -s /dev/zero "$tmp/zero.saga"
expect 1 "compile --format json of /dev/zero" -- bounded "$ctl" compile --format json "$tmp/zero.saga"
contains "$tmp/err" "larger than 16 MiB" "compile refuses it too"
truncate -s $((limit + 1)) "$tmp/big.saga"
expect 1 "check a sparse file one byte over the limit" -- bounded "$ctl" check "$tmp/big.saga"
contains "$tmp/err" "big.saga': it is larger than 16 MiB" "the large file is refused"
# A file of exactly the limit is read (and parsed: it is not a saga).
truncate -s $limit "$tmp/edge.saga"
expect 1 "check a file of exactly the limit" -- bounded "$ctl" check "$tmp/edge.saga"
lacks "$tmp/err" "larger than" "a file of exactly 16 MiB is read"
contains "$tmp/err" "edge.saga:1:1: error:" "and parsed"
# Its one line is 16 MiB long: the diagnostic shows a window of it, not all of it.
size=$(wc -c <"$tmp/err")
[ "$size" -lt 2000 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: a diagnostic on a 16 MiB line printed $size bytes"; }
# run's --input-file is read by the same function (an input error: exit 2).
expect 2 "run --input-file /dev/zero" -- \
  bounded "$ctl" run "$src/samples/hello.saga" --db "$tmp/sagas.db" --input-file /dev/zero
contains "$tmp/err" "cannot read '/dev/zero': it is larger than 16 MiB" "the input file is refused"
expect 1 "check a directory" -- "$ctl" check "$tmp"
contains "$tmp/err" "cannot read '$tmp': Is a directory" "a directory is not read as empty"

echo "diagnostics cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
