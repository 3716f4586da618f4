#!/bin/bash
# sagactl signal: its refusals and exit codes (2 bad data or name, 5 unknown
# instance, 6 finished), samples/approval.saga approved and declined under a
# worker, a signal kept while no worker runs, and exactly one consumption per
# signal across kill -9 of the worker, before the consumption and after it.
# Run by ctest as sagactl_signal_cli.
. "$(dirname "$0")/lib.sh" "$@"
db="$tmp/signals.db"
approval="$src/samples/approval.saga"
relay="$src/tests/cli/relay.saga"
workerpid=

start_worker() {
  "$ctl" worker --db "$db" --poll-ms 20 >>"$tmp/worker.out" 2>&1 &
  workerpid=$!
}
kill_worker() {
  { kill -9 "$workerpid" && wait "$workerpid"; } 2>/dev/null
}
trap 'kill_worker; rm -rf "$tmp"' EXIT

# until_show ID TEXT: polls `show --json` until it contains TEXT (at most
# 2000 reads, a failure guard); fails the check when it never does.
until_show() {
  for _ in $(seq 1 2000); do
    "$ctl" show "$1" --db "$db" --json >"$tmp/show" 2>/dev/null && grep -qF -- "$2" "$tmp/show" && {
      passed=$((passed + 1))
      return 0
    }
  done
  failed=$((failed + 1))
  echo "FAIL: instance $1 never showed '$2'"
  show "$tmp/show"
  return 1
}

# count ID KIND: how many history events of KIND the instance has.
count() {
  "$ctl" show "$1" --db "$db" --json | grep -c "\"kind\": \"$2\""
}

expect 0 "start an expense" -- "$ctl" start "$approval" --db "$db" --input '{"employee": "ada", "amount": 120}'
ok=$(cat "$tmp/out")
expect 0 "start another" -- "$ctl" start "$approval" --db "$db" --input '{"employee": "bob", "amount": 9}'
no=$(cat "$tmp/out")

expect 5 "a signal to an unknown instance" -- "$ctl" signal nope approve --db "$db"
contains "$tmp/err" "no instance nope" "the id is named"
expect 2 "data that is not JSON" -- "$ctl" signal "$ok" approve --db "$db" --data '{bad'
contains "$tmp/err" "the signal's data is not JSON" "bad JSON named"
expect 2 "a name that is not one" -- "$ctl" signal "$ok" 'two words' --db "$db"
contains "$tmp/err" "is not a signal name" "bad name named"
expect 2 "--data with nothing" -- "$ctl" signal "$ok" approve --db "$db" --data ''

# No worker yet: the signal to `no` is kept in its inbox.
expect 0 "a signal kept while no worker runs" -- "$ctl" signal "$no" approve --db "$db" \
  --data '{"approved": false, "by": "grace"}' --json
contains "$tmp/out" '"consumed": false' "kept, not consumed"
expect 0 "show lists the kept signal" -- "$ctl" show "$no" --db "$db"
contains "$tmp/out" "inbox     signal 'approve'" "show names the kept signal"

start_worker
until_show "$ok" '"kind": "signal"'
contains "$tmp/show" '"signal": "approve"' "show --json names the awaited signal"
expect 0 "show while it waits" -- "$ctl" show "$ok" --db "$db"
contains "$tmp/out" "waiting   await approve: signal 'approve' until" "show says what it waits for"
expect 0 "approve" -- "$ctl" signal "$ok" approve --db "$db" --data '{"approved": true, "by": "grace"}'
until_show "$ok" '"status": "completed"'
contains "$tmp/show" '"approved_by": "grace"' "the signal's data reached the saga"
until_show "$no" '"status": "compensated"'
contains "$tmp/show" "declined by grace" "the kept signal was taken by the await"
expect 0 "history of the approved one" -- "$ctl" show "$ok" --db "$db"
contains "$tmp/out" "signal_consumed" "show lists the consumption"
[ "$(count "$ok" signal_consumed)" = 1 ] && passed=$((passed + 1)) || {
  failed=$((failed + 1))
  echo "FAIL: one consumption expected"
}
expect 6 "a signal to a completed instance" -- "$ctl" signal "$ok" approve --db "$db"
contains "$tmp/err" "is completed: a finished instance takes no signal" "the state is named"

# kill -9 of the worker while the instance waits; the signal is posted with
# no worker; the next worker takes it: one consumption. Then kill -9 right
# after that consumption, during the nap: the next worker goes on to the
# second await and does not take the first signal again.
expect 0 "start a relay" -- "$ctl" start "$relay" --db "$db" --input '{"n": 1}'
r=$(cat "$tmp/out")
until_show "$r" '"kind": "signal"'
kill_worker
expect 0 "first signal, no worker" -- "$ctl" signal "$r" go --db "$db" --data '"one"'
start_worker
until_show "$r" '"kind": "signal_consumed"'
kill_worker
[ "$(count "$r" signal_consumed)" = 1 ] && passed=$((passed + 1)) || {
  failed=$((failed + 1))
  echo "FAIL: one consumption after the first kill"
}
start_worker
for _ in $(seq 1 2000); do
  "$ctl" show "$r" --db "$db" 2>/dev/null | grep -q "step_completed      nap" && break
done
# kill -9 between the post of the second signal and (perhaps) its
# consumption: whichever happened, the next worker consumes it at most once.
"$ctl" signal "$r" go --db "$db" --data '"two"' >/dev/null 2>&1
kill_worker
start_worker
until_show "$r" '"status": "completed"'
expect 0 "show the relay" -- "$ctl" show "$r" --db "$db"
contains "$tmp/out" 'output    ["one","two"]' "both signals, in order"
[ "$(count "$r" signal_consumed)" = 2 ] && passed=$((passed + 1)) || {
  failed=$((failed + 1))
  echo "FAIL: two consumptions expected, got $(count "$r" signal_consumed)"
}
lacks "$tmp/show" '"inbox"' "nothing left unconsumed"
kill_worker
finish sagactl_signal_cli
