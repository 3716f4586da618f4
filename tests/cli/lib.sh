# What every command-line test script starts with: source it as
#   . "$(dirname "$0")/lib.sh" "$@"
# with the script's arguments SAGACTL SOURCE_DIR. It sets $ctl, $src and a
# temporary $tmp (removed at exit), counts $passed and $failed, and gives
# the checks below; the script ends with `finish NAME`.
set -u
ctl=$1
src=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# show FILE...: the files, indented, at most 4000 bytes (a failure's context).
show() { sed 's/^/  | /' "$@" | head -c 4000; }

# expect CODE DESCRIPTION -- COMMAND...: runs COMMAND (stdout to $tmp/out,
# stderr to $tmp/err), checks its exit code.
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
    show "$tmp/out" "$tmp/err"
  fi
}

# contains FILE TEXT DESCRIPTION
contains() {
  if grep -qF -- "$2" "$1"; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $3: '$2' not found in:"
    show "$1"
  fi
}

# lacks FILE TEXT DESCRIPTION: TEXT must not be in FILE.
lacks() {
  if grep -qF -- "$2" "$1"; then
    failed=$((failed + 1))
    echo "FAIL: $3: '$2' found in:"
    show "$1"
  else
    passed=$((passed + 1))
  fi
}

# finish NAME: prints the counts; the script's exit status is 0 when none failed.
finish() {
  echo "$1: $passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
