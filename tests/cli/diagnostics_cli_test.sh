#!/usr/bin/env bash
# Command-line tests of the compiler's diagnostics through sagactl: files that
# are too large to read (grammar/source.hpp, kMaxFileBytes), sources that are
# not UTF-8, in text and JSON formats, and long lines. Usage:
# diagnostics_cli_test.sh SAGACTL SOURCE_DIR
. "$(dirname "$0")/lib.sh" "$@"

# --- Files larger than the 16 MiB limit ---------------------------------------
# bounded COMMAND...: runs COMMAND with 2 GB of address space and 20 s, so that
# a reader without a limit fails the test instead of exhausting the machine.
# A sanitized sagactl reserves terabytes of address space for its shadow
# memory, so under SAGA_SANITIZE the sanitizer's own limit on resident
# memory stands in for ulimit -v (it aborts the program past 2 GB).
bounded() {
  case "${SAGA_SANITIZE:-}" in
    *address*) (export ASAN_OPTIONS="${ASAN_OPTIONS:-}:hard_rss_limit_mb=2000" && exec timeout 20 "$@") ;;
    *thread*) (export TSAN_OPTIONS="${TSAN_OPTIONS:-}:hard_rss_limit_mb=2000" && exec timeout 20 "$@") ;;
    *) (ulimit -v 2000000 && exec timeout 20 "$@") ;;
  esac
}
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
# run's --input-file is read by the same function. Its exit code is run's
# business (README.md, "Exit codes": 1 for a file that cannot be read, which
# older builds reported as a usage error, 2); here it must end at once, with the
# message, not crash or run out of memory.
bounded "$ctl" run "$src/samples/hello.saga" --db "$tmp/sagas.db" --input-file /dev/zero \
  >"$tmp/out" 2>"$tmp/err"
code=$?
[ "$code" -eq 1 ] || [ "$code" -eq 2 ] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: run --input-file /dev/zero: exit $code, expected 1 (or 2)"; }
contains "$tmp/err" "cannot read '/dev/zero': it is larger than 16 MiB" "the input file is refused"
expect 1 "check a directory" -- "$ctl" check "$tmp"
contains "$tmp/err" "cannot read '$tmp': Is a directory" "a directory is not read as empty"

# --- Sources that are not UTF-8 -------------------------------------------------
# utf8 FILE DESCRIPTION: FILE must be valid UTF-8.
utf8() {
  if iconv -f UTF-8 -t UTF-8 "$1" >/dev/null 2>&1; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $2: not valid UTF-8:"
    od -c "$1" | head -20
  fi
}
# An invalid byte in a string (which the url error message quotes), a comment and code.
printf 'service s { url "\xff" }\n// caf\xe9\nsaga a() { let x = 1 \xfe }\n' >"$tmp/latin1.saga"
for format in text json; do
  expect 1 "check --format $format of a file that is not UTF-8" -- "$ctl" check --format $format "$tmp/latin1.saga"
  expect 1 "compile --format $format of a file that is not UTF-8" -- \
    "$ctl" compile --format $format "$tmp/latin1.saga" -o "$tmp/latin1.sagac"
  [ "$format" = json ] && out="$tmp/out" || out="$tmp/err"
  contains "$out" "invalid UTF-8 byte 0xFF: the source must be UTF-8" "$format: the byte in the string"
  contains "$out" "invalid UTF-8 byte 0xE9: the source must be UTF-8" "$format: the byte in the comment"
  contains "$out" "invalid UTF-8 byte 0xFE: the source must be UTF-8" "$format: the byte in code"
  contains "$out" "save the file as UTF-8" "$format: help"
  contains "$out" "service url '$(printf '\xef\xbf\xbd')' must start with http://" "$format: U+FFFD in a message"
  utf8 "$tmp/out" "$format: stdout"
  utf8 "$tmp/err" "$format: stderr"
done
contains "$tmp/out" '"line": 3' "json: line of the byte in code"
contains "$tmp/out" '"column": 22' "json: column of the byte in code"
[ ! -e "$tmp/latin1.sagac" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: a .sagac was written for a file that is not UTF-8"; }
# A file name that is not UTF-8, in a valid source with an error.
printf 'saga a() { output x }\n' >"$tmp/$(printf 'n\xe9')".saga
expect 1 "check --format json of a file whose name is not UTF-8" -- \
  "$ctl" check --format json "$tmp/$(printf 'n\xe9')".saga
contains "$tmp/out" "unknown variable 'x'" "the error is reported"
utf8 "$tmp/out" "json with a file name that is not UTF-8"
expect 1 "check of a missing file whose name is not UTF-8" -- "$ctl" check "$tmp/$(printf 'gone\xff')".saga
contains "$tmp/err" "cannot read" "the missing file is reported"
utf8 "$tmp/err" "sagactl's own error line"

finish "diagnostics cli"
