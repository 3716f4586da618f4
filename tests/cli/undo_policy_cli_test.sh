#!/bin/bash
# `then: pause` and `undo_retry` end to end: a step whose retry policy ends in
# a pause parks the instance (status paused) when its attempts are used up,
# survives a restart without running again, and `sagactl retry` completes it
# once the cause is fixed; an undo's own policy (`undo_retry`, or the saga's
# default) decides when the instance is stuck, over --undo-attempts. Run by
# ctest as sagactl_undo_policy_cli.
. "$(dirname "$0")/lib.sh" "$@"
db="$tmp/undo.db"
tool="$tmp/tool"  # Does not exist until the test "fixes the cause".

cat >"$tmp/pausing.saga" <<'SAGA'
saga pausing(tool: string) {
  step first { do log(message: "first") undo log(message: "undo first") }
  step fixme {
    do    exec(cmd: tool, args: []) -> r
    retry { attempts: 2, backoff: fixed(10ms), on: any, then: pause }
  }
  output r.exit
}
SAGA
input="{\"tool\": \"$tool\"}"
expect 4 "a step whose policy ends in a pause" -- "$ctl" run "$tmp/pausing.saga" --db "$db" --allow-exec --input "$input"
id=$("$ctl" ls --db "$db" --status paused --json | sed -n 's/.*"id": "\(.*\)".*/\1/p' | head -1)
[ -n "$id" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: no paused instance"; }
expect 0 "show the paused instance" -- "$ctl" show "$id" --db "$db" --json
contains "$tmp/out" '"status": "paused"' "paused"
contains "$tmp/out" "its retry policy ends in a pause" "the history says why it paused"
contains "$tmp/out" "attempts exhausted: pausing" "the last attempt's event says so"
[ "$(grep -c '"kind": "attempt_failed"' "$tmp/out")" -eq 2 ] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: expected 2 failed attempts"; show "$tmp/out"; }

expect 0 "resume leaves a paused instance alone" -- "$ctl" resume --db "$db" --allow-exec
expect 0 "show after the restart" -- "$ctl" show "$id" --db "$db" --json
contains "$tmp/out" '"status": "paused"' "still paused after the restart"
[ "$(grep -c '"kind": "attempt_failed"' "$tmp/out")" -eq 2 ] && passed=$((passed + 1)) ||
  { failed=$((failed + 1)); echo "FAIL: resume ran the paused step again"; show "$tmp/out"; }

printf '#!/bin/sh\nexit 0\n' >"$tool"
chmod +x "$tool"
expect 0 "retry after the cause is fixed" -- "$ctl" retry "$id" --db "$db" --allow-exec --json
contains "$tmp/out" '"status": "completed"' "the retried step completed the saga"
expect 0 "show after the retry" -- "$ctl" show "$id" --db "$db" --json
contains "$tmp/out" '"kind": "retried"' "retry is in the history"
rm -f "$tool"

# An undo's own policy: one attempt, so stuck at once (the built-in policy
# would try 20 times), also against --undo-attempts.
cat >"$tmp/stuck_fast.saga" <<'SAGA'
saga stuck_fast(tool: string) {
  step first {
    do         log(message: "first")
    undo       exec(cmd: tool, args: [])
    undo_retry { attempts: 1 }
  }
  fail rejected "give up"
}
SAGA
expect 4 "an undo_retry of one attempt is stuck at once" -- "$ctl" run "$tmp/stuck_fast.saga" --db "$db" --allow-exec --undo-attempts 5 --input "$input"
fast=$("$ctl" ls --db "$db" --status stuck --json | sed -n 's/.*"id": "\(.*\)".*/\1/p' | head -1)
expect 0 "show the stuck instance" -- "$ctl" show "$fast" --db "$db" --json
contains "$tmp/out" '"status": "stuck"' "stuck"
contains "$tmp/out" "undo failed 1 times" "one attempt, over --undo-attempts 5"
expect 0 "dlq ls" -- "$ctl" dlq ls --db "$db" --json
contains "$tmp/out" "$fast" "a dead letter"

# The saga's default for all its undos.
db2="$tmp/undo2.db"
cat >"$tmp/saga_default.saga" <<'SAGA'
saga saga_default(tool: string) {
  undo_retry { attempts: 2, backoff: fixed(10ms), on: any }
  step first { do log(message: "first") undo exec(cmd: tool, args: []) }
  fail rejected "give up"
}
SAGA
expect 4 "the saga's undo_retry" -- "$ctl" run "$tmp/saga_default.saga" --db "$db2" --allow-exec --input "$input"
other=$("$ctl" ls --db "$db2" --status stuck --json | sed -n 's/.*"id": "\(.*\)".*/\1/p' | head -1)
expect 0 "show the saga default's instance" -- "$ctl" show "$other" --db "$db2" --json
contains "$tmp/out" "undo failed 2 times" "the saga's default policy: two attempts"

finish undo_policy_cli
