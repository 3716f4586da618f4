#!/usr/bin/env bash
# Command-line tests of sagactl: exit codes (README.md, "Exit codes"), the
# files it writes and what it prints. Usage: cli_test.sh SAGACTL SOURCE_DIR
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
    sed 's/^/  | /' "$tmp/out" "$tmp/err"
  fi
}

# contains FILE TEXT DESCRIPTION
contains() {
  if grep -qF -- "$2" "$1"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $3: '$2' not found in:"
    sed 's/^/  | /' "$1"
  fi
}

expect 0 "--version" -- "$ctl" --version
contains "$tmp/out" "sagactl 0." "version text"
expect 0 "--help" -- "$ctl" --help
contains "$tmp/out" "compile" "help lists compile"
expect 0 "compile --help" -- "$ctl" compile --help
expect 2 "no subcommand" -- "$ctl"
expect 2 "unknown subcommand" -- "$ctl" frobnicate
expect 2 "unknown option" -- "$ctl" compile --frob "$src/samples/order.saga"
expect 2 "missing file argument" -- "$ctl" compile

expect 0 "check order.saga" -- "$ctl" check "$src/samples/order.saga"
expect 0 "compile order.saga" -- "$ctl" compile "$src/samples/order.saga" -o "$tmp/order.sagac"
[ -s "$tmp/order.sagac" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: no .sagac written"; }
expect 0 "disasm order.sagac" -- "$ctl" disasm "$tmp/order.sagac"
contains "$tmp/out" "INVOKE" "listing shows INVOKE"
contains "$tmp/out" "reserve" "listing names the step"
expect 0 "disasm of a .saga compiles in memory" -- "$ctl" disasm "$src/samples/travel.saga"
contains "$tmp/out" "flight" "listing of travel names the step"

expect 1 "check with errors" -- "$ctl" check "$src/tests/compiler/cases/unknown_service.saga"
contains "$tmp/err" "error: unknown service 'inventry'" "error text"
contains "$tmp/err" "help: did you mean 'inventory'?" "help line"
expect 1 "check --format json with errors" -- "$ctl" check --format json "$src/tests/compiler/cases/unknown_service.saga"
contains "$tmp/out" "\"severity\": \"error\"" "json output"
expect 1 "compile with errors writes nothing" -- "$ctl" compile "$src/tests/compiler/cases/unknown_service.saga" -o "$tmp/bad.sagac"
[ ! -e "$tmp/bad.sagac" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: .sagac written despite errors"; }
expect 0 "warnings only" -- "$ctl" check "$src/tests/compiler/cases/missing_undo.saga"
contains "$tmp/err" "warning:" "warning printed"
expect 1 "missing file" -- "$ctl" check "$tmp/nope.saga"
contains "$tmp/err" "cannot read" "missing file message"

# A damaged .sagac: one flipped byte, then a truncation, then not a .sagac at all.
cp "$tmp/order.sagac" "$tmp/flip.sagac"
size=$(stat -c %s "$tmp/flip.sagac")
printf '\x00' | dd of="$tmp/flip.sagac" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect 1 "corrupted sagac" -- "$ctl" disasm "$tmp/flip.sagac"
contains "$tmp/err" "error:" "corruption message"
head -c $((size / 3)) "$tmp/order.sagac" >"$tmp/short.sagac"
expect 1 "truncated sagac" -- "$ctl" disasm "$tmp/short.sagac"
echo "hello" >"$tmp/text.sagac"
expect 1 "not a sagac" -- "$ctl" disasm "$tmp/text.sagac"
contains "$tmp/err" "magic" "bad magic message"

expect 0 "doc opcodes" -- "$ctl" doc opcodes
contains "$tmp/out" "INVOKE" "opcode doc"
expect 0 "doc stdlib" -- "$ctl" doc stdlib
contains "$tmp/out" "len(value)" "stdlib doc"

echo "cli: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
