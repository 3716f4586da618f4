#!/usr/bin/env bash
# Command-line tests of `sagactl test` (sagactl/test_command.cpp, docs/testing.md):
# exit codes 0, 1, 2 and 7, a failure's diagnostic and diff, --filter,
# --junit XML that parses, errors in a test file at file:line:col, the same
# output on every run, and a test file for every sample.
# Usage: test_command_test.sh SAGACTL SOURCE_DIR
. "$(dirname "$0")/lib.sh" "$@"

# Every sample saga has its scenario tests, and they pass.
for saga in "$src"/samples/*.saga; do
  if [ -f "$saga.test" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $saga has no $(basename "$saga").test"
  fi
done
expect 0 "the sample tests pass" -- "$ctl" test "$src"/samples/*.saga.test
contains "$tmp/out" " passed, 0 failed" "closing line"
contains "$tmp/out" "ok   $src/samples/order.saga.test:11: an express order completes" "a line per test"
cp "$tmp/out" "$tmp/first"
expect 0 "the sample tests again" -- "$ctl" test "$src"/samples/*.saga.test
if cmp -s "$tmp/out" "$tmp/first"; then passed=$((passed + 1)); else
  failed=$((failed + 1)); echo "FAIL: a second run printed something else"; diff "$tmp/first" "$tmp/out"; fi

# A failing test: exit 1, the expectation's place, what happened, a diff.
cat >"$tmp/order.saga.test" <<EOT
program "$src/samples/order.saga"
start order_fulfillment {"order_id": "o-1", "customer": "c-1", "amount": 250, "items": []}
answer inventory.reserve ok {"id": "R-1"}
answer payment.charge ok {"id": "P-1"}
answer shipping.express ok {"id": "S-1", "status": "ok", "tracking": "T-1"}
test "passes" {
  expect status completed
}
test "wrong about the refund" {
  answer payment.charge fail rejected "card declined"
  expect status completed
  expect undos [payment.refund {"payment": "P-1"}]
  expect output {"order": "o-1"}
}
EOT
expect 1 "a failing test" -- "$ctl" test "$tmp/order.saga.test"
contains "$tmp/out" "FAIL $tmp/order.saga.test:9: wrong about the refund" "the failed test named with its line"
contains "$tmp/out" "$tmp/order.saga.test:11:3: error: expected status completed, got compensated" "the expectation's place"
contains "$tmp/out" "help: the saga failed with rejected: step 'charge': card declined" "why it failed"
contains "$tmp/out" " 11 |   expect status completed" "the source line"
contains "$tmp/out" "    |   ^~~~" "a caret"
contains "$tmp/out" "    - payment.refund {\"payment\":\"P-1\"}" "the diff's expected call"
contains "$tmp/out" "    + inventory.release {\"reservation\":\"R-1\"}  (reserve/undo, attempt 1)" "the diff's actual call"
contains "$tmp/out" "expected an output, but the saga ended compensated" "an output that never came"
contains "$tmp/out" "1 passed, 1 failed" "closing line with a failure"

# --filter: a part of the name, or a pattern with * and ?.
expect 0 "--filter by a part of the name" -- "$ctl" test "$tmp/order.saga.test" --filter pass
contains "$tmp/out" "1 passed, 0 failed" "only the matching test ran"
expect 1 "--filter with a pattern" -- "$ctl" test "$tmp/order.saga.test" --filter 'wrong*ref?nd'
contains "$tmp/out" "0 passed, 1 failed" "the pattern matched the other test"
expect 2 "--filter that matches nothing" -- "$ctl" test "$tmp/order.saga.test" --filter nothing
contains "$tmp/err" "no test matches --filter 'nothing'" "says so"

# --junit: well-formed XML with the counts, the failure and its text.
expect 1 "--junit" -- "$ctl" test "$tmp/order.saga.test" "$src/samples/hello.saga.test" --junit "$tmp/report.xml"
if python3 - "$tmp/report.xml" <<'PY'; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: the JUnit report"; cat "$tmp/report.xml"; fi
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites" and root.get("tests") == "4" and root.get("failures") == "1", root.attrib
suites = root.findall("testsuite")
assert len(suites) == 2 and suites[0].get("failures") == "1" and suites[1].get("failures") == "0"
cases = suites[0].findall("testcase")
assert [c.get("name") for c in cases] == ["passes", "wrong about the refund"]
assert cases[0].find("failure") is None and cases[1].get("line") == "9"
f = cases[1].find("failure")
assert f.get("message") == "expected status completed, got compensated", f.attrib
assert '- payment.refund {"payment":"P-1"}' in f.text, f.text
PY
expect 1 "--junit to a directory that does not exist" -- "$ctl" test "$src/samples/hello.saga.test" --junit "$tmp/no/such/report.xml"
contains "$tmp/err" "cannot write the JUnit report" "names the report"

# A test file that does not parse: exit 7, the diagnostic format, nothing runs.
printf 'test "a" {\n  start hello {"name": "ada", "times": 3}\n  answer log okay\n}\n' >"$tmp/bad.saga.test"
expect 7 "a syntax error" -- "$ctl" test "$tmp/bad.saga.test" --junit "$tmp/bad.xml"
contains "$tmp/err" "$tmp/bad.saga.test:3:14: error: expected an answer: 'ok', 'fail' or 'never'" "file:line:col"
contains "$tmp/err" " 3 |   answer log okay" "its source line"
contains "$tmp/err" "   |              ^~~~" "its caret"
contains "$tmp/err" "help: ok {\"id\": \"R-1\"}" "its help"
contains "$tmp/out" "0 passed, 0 failed" "nothing ran"
python3 -c 'import sys, xml.etree.ElementTree as ET; r = ET.parse(sys.argv[1]).getroot(); assert r.get("errors") == "1"' "$tmp/bad.xml" \
  && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: the JUnit report of a file with errors"; cat "$tmp/bad.xml"; }

# Names the saga does not have, checked before anything runs.
cp "$src/samples/hello.saga" "$tmp/hello.saga"
printf 'start helo {"name": "ada", "times": 3}\ntest "a" {\n  answer payment.charge ok\n  expect status completed\n}\n' >"$tmp/hello.saga.test"
expect 7 "an unknown saga and action" -- "$ctl" test "$tmp/hello.saga.test"
contains "$tmp/err" "hello.saga.test:1:7: error: $tmp/hello.saga has no saga 'helo'" "unknown saga"
contains "$tmp/err" "help: did you mean 'hello'?" "did you mean"
contains "$tmp/err" "hello.saga.test:3:10: error: $tmp/hello.saga calls no action 'payment.charge'" "unknown action"

# The saga it tests: FILE.saga for FILE.saga.test, else `program`.
printf 'test "a" { start s {} expect status completed }\n' >"$tmp/lonely.test"
expect 7 "a test file that names no saga" -- "$ctl" test "$tmp/lonely.test"
contains "$tmp/err" "cannot tell which saga file this tests" "says so"
printf 'saga broken( { }\n' >"$tmp/broken.saga"
printf 'test "a" { start broken {} expect status completed }\n' >"$tmp/broken.saga.test"
expect 7 "a saga with errors" -- "$ctl" test "$tmp/broken.saga.test"
contains "$tmp/err" "broken.saga:1:" "the saga's own diagnostics"
expect 7 "a test file that does not exist" -- "$ctl" test "$tmp/none.saga.test"
contains "$tmp/err" "cannot read" "says so"
expect 7 "a saga instead of its test file" -- "$ctl" test "$src/samples/order.saga"
contains "$tmp/err" "is a saga, not a test file" "says so"
expect 2 "no file" -- "$ctl" test

finish "test_command_test"
