#!/bin/bash
# The operator commands (sagactl pause, unpause, retry, skip, compensate):
# each in a state it accepts and in one it refuses, with their exit codes,
# --json, and the history they leave. Run by ctest as sagactl_operator_cli.
. "$(dirname "$0")/lib.sh" "$@"
db="$tmp/ops.db"
nap="$src/tests/cli/nap.saga"

# A stuck instance: the undo of `second` cannot compute its arguments.
expect 4 "a stuck instance" -- "$ctl" run "$src/tests/cli/stuck.saga" --db "$db" --input '{"n": 1}'
stuck=$("$ctl" ls --db "$db" --status stuck --json | sed -n 's/.*"id": "\(.*\)".*/\1/p' | head -1)
expect 6 "pause of a stuck instance" -- "$ctl" pause "$stuck" --db "$db"
contains "$tmp/err" "is stuck: only a running instance can be paused" "pause names the state"
expect 6 "unpause of a stuck instance" -- "$ctl" unpause "$stuck" --db "$db"
expect 6 "compensate of a stuck instance" -- "$ctl" compensate "$stuck" --db "$db"
expect 2 "skip without --note" -- "$ctl" skip "$stuck" --db "$db"
expect 4 "retry of an undo that still cannot run" -- "$ctl" retry "$stuck" --db "$db" --json
contains "$tmp/out" '"status": "stuck"' "stuck again, honestly"
contains "$tmp/out" '"carried_out": true' "carried out by the command itself"
expect 0 "skip of the stuck undo" -- "$ctl" skip "$stuck" --db "$db" --note "refunded by hand" --json
contains "$tmp/out" '"status": "compensated"' "the compensation went on"
expect 0 "show after skip" -- "$ctl" show "$stuck" --db "$db" --json
contains "$tmp/out" '"kind": "retried"' "retry is in the history"
contains "$tmp/out" '"message": "refunded by hand"' "the note is in the history"
contains "$tmp/out" '"resolved": "20' "the dead letter is resolved"
contains "$tmp/out" '"message": "undo first"' "the next undo ran"
expect 0 "show after skip, as text" -- "$ctl" show "$stuck" --db "$db"
contains "$tmp/out" "dead letter (resolved 20" "show marks the resolved dead letter"
expect 6 "retry of a compensated instance" -- "$ctl" retry "$stuck" --db "$db"
contains "$tmp/err" "is compensated: only a stuck or paused instance can be retried" "retry names the state"
expect 5 "retry of an unknown instance" -- "$ctl" retry nope --db "$db"
contains "$tmp/err" "no instance nope" "the id is named"

# Paused under a worker (which carries the pause out), then skipped,
# compensated or unpaused with no worker (the command carries it out).
ids=()
for secs in 60 60 3; do
  expect 0 "start a nap" -- "$ctl" start "$nap" --db "$db" --input "{\"secs\": $secs}"
  ids+=("$(cat "$tmp/out")")
done
"$ctl" worker --db "$db" --poll-ms 20 >"$tmp/worker.out" 2>&1 &
workerpid=$!
for id in "${ids[@]}"; do
  for _ in $(seq 1 500); do
    "$ctl" show "$id" --db "$db" 2>/dev/null | grep -q "step_completed      first" && break
  done
  expect 0 "pause under a worker" -- "$ctl" pause "$id" --db "$db" --note "maintenance" --json
  contains "$tmp/out" '"status": "paused"' "paused"
done
expect 6 "pause of a paused instance" -- "$ctl" pause "${ids[0]}" --db "$db"
{ kill -9 "$workerpid" && wait "$workerpid"; } 2>/dev/null
expect 0 "ls --status paused" -- "$ctl" ls --db "$db" --status paused
contains "$tmp/out" "${ids[2]}" "ls lists the paused instance"
expect 2 "skip with a result that is not JSON" -- "$ctl" skip "${ids[0]}" --db "$db" --note x --result '{bad'
contains "$tmp/err" "the result is not JSON" "bad JSON named"
expect 0 "skip of a paused step" -- "$ctl" skip "${ids[0]}" --db "$db" --note "woke it" --result '{"slept": true}'
contains "$tmp/out" "completed" "the saga went on from the skipped step"
expect 0 "compensate of a paused instance" -- "$ctl" compensate "${ids[1]}" --db "$db" --note "not wanted"
contains "$tmp/out" "compensated" "compensated"
expect 0 "unpause" -- "$ctl" unpause "${ids[2]}" --db "$db" --json
contains "$tmp/out" '"status": "completed"' "unpaused, it ran to its end"
expect 0 "show the skipped one" -- "$ctl" show "${ids[0]}" --db "$db" --json
contains "$tmp/out" '"slept": true' "the given result is the step's"

expect 0 "a nap to cancel" -- "$ctl" start "$nap" --db "$db" --input '{"secs": 60}'
napping=$(cat "$tmp/out")
expect 0 "cancel --json" -- "$ctl" cancel "$napping" --db "$db" --json
contains "$tmp/out" '"status": "cancelled"' "cancel prints JSON"

# kill -9 during a retry: the undo runs a script that first outlives its
# timeout (stuck after 2 attempts), then takes a second; the retry is
# killed while it runs, and resume finishes it: one `retried`, compensated.
undo="$tmp/undo.sh"
printf '#!/bin/sh\nsleep 5\n' >"$undo"
chmod +x "$undo"
cat >"$tmp/slow_undo.saga" <<SAGA
saga slow_undo() {
  step a { do log(message: "a") undo exec(cmd: "$undo") timeout 2s }
  fail rejected "give up"
}
SAGA
expect 4 "an undo that times out is stuck" -- "$ctl" run "$tmp/slow_undo.saga" --db "$db" --allow-exec --undo-attempts 2
slow=$("$ctl" ls --db "$db" --status stuck --json | sed -n 's/.*"id": "\(.*\)".*/\1/p' | head -1)
printf '#!/bin/sh\nsleep 1\n' >"$undo"
"$ctl" retry "$slow" --db "$db" --allow-exec >"$tmp/retry.out" 2>&1 &
retrypid=$!
for _ in $(seq 1 500); do
  "$ctl" show "$slow" --db "$db" 2>/dev/null | grep -q "retried" && break
done
{ kill -9 "$retrypid" && wait "$retrypid"; } 2>/dev/null
expect 0 "resume after the killed retry" -- "$ctl" resume --db "$db" --allow-exec
expect 0 "show after the killed retry" -- "$ctl" show "$slow" --db "$db" --json
contains "$tmp/out" '"status": "compensated"' "the retried undo finished after the kill"
contains "$tmp/out" '"kind": "resumed"' "killed mid-undo: resume took it up from its checkpoint"
[ "$(grep -c '"kind": "retried"' "$tmp/out")" -eq 1 ] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: the retry was acted on more than once"; show "$tmp/out"; }

finish operator_cli
