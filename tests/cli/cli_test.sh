#!/usr/bin/env bash
# Command-line tests of sagactl: exit codes (README.md, "Exit codes"), the
# files it writes and what it prints. Usage: cli_test.sh SAGACTL SOURCE_DIR
. "$(dirname "$0")/lib.sh" "$@"

expect 0 "--version" -- "$ctl" --version
contains "$tmp/out" "sagactl 0." "version text"
expect 0 "--help" -- "$ctl" --help
contains "$tmp/out" "compile" "help lists compile"
expect 0 "compile --help" -- "$ctl" compile --help
expect 2 "no subcommand" -- "$ctl"
expect 2 "unknown subcommand" -- "$ctl" frobnicate
contains "$tmp/err" "unknown command 'frobnicate'" "unknown command named"
expect 2 "unknown option" -- "$ctl" compile --frob "$src/samples/order.saga"
expect 2 "missing file argument" -- "$ctl" compile

expect 2 "worker with a lease below the minimum" -- "$ctl" worker --db "$tmp/lease.db" --lease 500ms
contains "$tmp/err" "--lease 500ms: a lease must be at least 1000 ms" "the minimum lease is named"
expect 2 "worker with a lease that is no duration" -- "$ctl" worker --db "$tmp/lease.db" --lease soon
contains "$tmp/err" "--lease soon: expected a duration such as 2s, 30s or 5m" "a lease is a duration"
[ ! -e "$tmp/lease.db" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: a refused worker created its database"; }

expect 0 "check order.saga" -- "$ctl" check "$src/samples/order.saga"
expect 0 "compile order.saga" -- "$ctl" compile "$src/samples/order.saga" -o "$tmp/order.sagac"
[ -s "$tmp/order.sagac" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: no .sagac written"; }
expect 0 "disasm order.sagac" -- "$ctl" disasm "$tmp/order.sagac"
contains "$tmp/out" "INVOKE" "listing shows INVOKE"
contains "$tmp/out" "reserve" "listing names the step"
expect 0 "disasm of a .saga compiles in memory" -- "$ctl" disasm "$src/samples/travel.saga"
contains "$tmp/out" "flight" "listing of travel names the step"
# Forks and joins: the block's branches, and each branch's code under its name.
contains "$tmp/out" "FORK          0                 ; block 0: parallel: branches flight@" "listing shows the fork and its branches"
contains "$tmp/out" "JOIN          0" "listing shows the join"
contains "$tmp/out" "branch hotel of block 0" "listing heads a branch's code"
expect 0 "disasm of a parallel foreach" -- "$ctl" disasm "$src/samples/fulfil_items.saga"
contains "$tmp/out" "; block 0: foreach item  max 4  body@" "listing shows the loop's bound"
contains "$tmp/out" "loop body item of block 0" "listing heads the loop body"
contains "$tmp/out" "END           0" "listing shows the body's end"

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
# Invert the middle byte (whatever it was, it changes).
byte=$(od -An -tu1 -j $((size / 2)) -N1 "$tmp/flip.sagac" | tr -d ' ')
printf "\\$(printf '%03o' $((255 - byte)))" | dd of="$tmp/flip.sagac" bs=1 seek=$((size / 2)) conv=notrunc status=none
cmp -s "$tmp/flip.sagac" "$tmp/order.sagac" && { failed=$((failed + 1)); echo "FAIL: the byte flip changed nothing"; }
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

# The runtime commands, on a database of their own.
db="$tmp/sagas.db"
expect 0 "run hello" -- "$ctl" run "$src/samples/hello.saga" --db "$db" --input '{"name": "ada", "times": 2}'
contains "$tmp/out" '"greeting": "hello ADA"' "run prints the output"
contains "$tmp/err" "nap step_completed" "run shows the steps live"
expect 0 "run --quiet with --input-file" -- sh -c "echo '{\"name\": \"bo\", \"times\": 1}' > '$tmp/in.json' && '$ctl' run '$src/samples/hello.saga' --db '$db' --input-file '$tmp/in.json' --durability normal -q"
contains "$tmp/out" '"greeting": "hello BO"' "input file read"
expect 3 "run that compensates" -- "$ctl" run "$src/tests/cli/fails.saga" --db "$db" --input '{"x": "q"}'
contains "$tmp/err" "compensated: rejected: refused q" "final status printed"
contains "$tmp/err" "note undo_completed" "the undo ran"
expect 2 "input that is not JSON" -- "$ctl" run "$src/samples/hello.saga" --db "$db" --input '{name:'
contains "$tmp/err" "not valid JSON" "bad JSON message"
expect 2 "input that misses a parameter" -- "$ctl" run "$src/samples/hello.saga" --db "$db" --input '{"name": "x"}'
contains "$tmp/err" "missing 'times' (number)" "missing parameter message"
expect 2 "input of the wrong type" -- "$ctl" run "$src/samples/hello.saga" --db "$db" --input '{"name": 1, "times": 1}'
expect 2 "no such saga" -- "$ctl" run "$src/samples/hello.saga" --db "$db" --saga nope --input '{}'
expect 0 "ls" -- "$ctl" ls --db "$db"
[ "$(grep -c completed "$tmp/out")" -eq 2 ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: ls should list 2 completed instances"; cat "$tmp/out"; }
expect 0 "start records a pending instance" -- "$ctl" start "$src/samples/hello.saga" --db "$db" --input '{"name": "cy", "times": 1}'
pending=$(cat "$tmp/out")
expect 0 "ls --status pending --json" -- "$ctl" ls --db "$db" --status pending --json
contains "$tmp/out" "$pending" "pending instance listed"
expect 0 "resume runs it" -- "$ctl" resume --db "$db"
contains "$tmp/err" "resumed 1 instance" "resume count"
expect 0 "show" -- "$ctl" show "$pending" --db "$db"
contains "$tmp/out" "status    completed" "show status"
contains "$tmp/out" "greeting" "show variables"
expect 0 "show --json" -- "$ctl" show "$pending" --db "$db" --json
contains "$tmp/out" '"kind": "completed"' "show history as JSON"
expect 5 "show of an unknown id" -- "$ctl" show nope --db "$db"
expect 2 "ls with an unknown status" -- "$ctl" ls --db "$db" --status sleeping
echo "not a database" >"$tmp/text.db"
expect 1 "a file that is not a saga database" -- "$ctl" ls --db "$tmp/text.db"
contains "$tmp/err" "not a Saga database" "not-a-database message"
cmp -s "$tmp/text.db" <(echo "not a database") && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: the foreign file was modified"; }
SAGA_DB="$db" expect 0 "SAGA_DB selects the database" -- "$ctl" ls
contains "$tmp/out" "$pending" "SAGA_DB listing"

# Reading commands open the database read-only: never create, never wait
# for a writer, never migrate (issue 8).
expect 1 "ls of a database that does not exist" -- "$ctl" ls --db "$tmp/missing.db"
contains "$tmp/err" "no such database: $tmp/missing.db" "missing database named"
[ ! -e "$tmp/missing.db" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: ls created the database"; }
expect 1 "show in a database that does not exist" -- "$ctl" show nope --db "$tmp/missing.db"
[ ! -e "$tmp/missing.db" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: show created the database"; }
SAGA_DB="$tmp/no/such/dir/x.db" expect 1 "SAGA_DB in a missing directory" -- "$ctl" ls
contains "$tmp/err" "the directory of the database does not exist: $tmp/no/such/dir" "missing directory named"
# hold_lock DB FIFO: another process (sqlite3, in the background as
# $lockpid) takes the write lock of DB and keeps it until `exec 9>&-`.
hold_lock() {
  mkfifo "$2"
  sqlite3 "$1" <"$2" >/dev/null 2>&1 &
  lockpid=$!
  exec 9>"$2"
  echo "BEGIN IMMEDIATE; UPDATE instances SET updated_ms = updated_ms;" >&9
  # Wait until the lock is really held (a writer with no busy timeout fails).
  for _ in $(seq 1 500); do
    sqlite3 -cmd ".timeout 0" "$1" "BEGIN IMMEDIATE; ROLLBACK;" >/dev/null 2>&1 || break
  done
}
# Another process holds the write lock: a reader does not wait for it.
hold_lock "$db" "$tmp/lock.fifo"
expect 0 "ls while another process holds the write lock" -- "$ctl" ls --db "$db"
contains "$tmp/out" "$pending" "ls reads through the lock"
expect 0 "show while another process holds the write lock" -- "$ctl" show "$pending" --db "$db"
exec 9>&-
wait "$lockpid"

# Text that is not UTF-8 in the database (as an older build could store it)
# does not break the readers: JSON with U+FFFD, exit 0.
sqlite3 "$db" "UPDATE instances SET error_class = 'rejected', error_message = CAST(X'6261642062797465203a20ff21' AS TEXT) WHERE id = '$pending';"
expect 0 "ls --json with a non-UTF-8 message" -- "$ctl" ls --db "$db" --json
contains "$tmp/out" "bad byte : �!" "replacement character in ls --json"
expect 0 "show --json with a non-UTF-8 message" -- "$ctl" show "$pending" --db "$db" --json
contains "$tmp/out" "bad byte : �!" "replacement character in show --json"
expect 0 "show with a non-UTF-8 message" -- "$ctl" show "$pending" --db "$db"
contains "$tmp/out" "bad byte : �!" "replacement character in show"

# start does not take options it could not keep; run checks its bindings.
expect 2 "start --service is refused" -- "$ctl" start "$src/samples/hello.saga" --db "$db" --service x=http://127.0.0.1:1 --input '{"name": "a", "times": 1}'
contains "$tmp/err" "--service is not recorded with the instance" "start --service message"
expect 2 "start --allow-exec is refused" -- "$ctl" start "$src/samples/hello.saga" --db "$db" --allow-exec --input '{"name": "a", "times": 1}'
expect 2 "run --service naming no declared service" -- "$ctl" run "$src/samples/order.saga" --db "$db" --service shiping=http://127.0.0.1:1 --input '{}'
contains "$tmp/err" "declares no service 'shiping' (did you mean 'shipping'?)" "unknown service binding named"
expect 2 "two sagas without --saga" -- "$ctl" run "$src/tests/cli/two_sagas.saga" --db "$db"
contains "$tmp/err" "choose one with --saga" "two sagas message"
expect 0 "two sagas with --saga" -- "$ctl" run "$src/tests/cli/two_sagas.saga" --db "$db" --saga two -q
[ ! -e "$tmp/fresh.db" ] && expect 1 "a program that does not compile opens no database" -- "$ctl" run "$src/tests/compiler/cases/unknown_service.saga" --db "$tmp/fresh.db"
[ ! -e "$tmp/fresh.db" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: run created a database for a program that does not compile"; }

# cancel says what it did, and what it did not.
expect 5 "cancel of an unknown instance" -- "$ctl" cancel nope --db "$db"
contains "$tmp/err" "no instance nope" "unknown instance named"
expect 6 "cancel of a completed instance" -- "$ctl" cancel "$pending" --db "$db"
contains "$tmp/err" "is completed: only a pending or running instance can be cancelled" "finished instance named"
expect 4 "a saga whose undo cannot run is stuck" -- "$ctl" run "$src/tests/cli/stuck.saga" --db "$db" --input '{"n": 1}'
stuck=$("$ctl" ls --db "$db" --status stuck --json | sed -n 's/.*"id": "\(.*\)".*/\1/p' | head -1)
expect 6 "cancel of a stuck instance" -- "$ctl" cancel "$stuck" --db "$db"
contains "$tmp/err" "is stuck" "stuck named"
contains "$tmp/err" "the undo of step 'second' gave up" "the undo that gave up"
contains "$tmp/err" "the compensations after it have not run: first" "what is left"
expect 0 "resume names the stuck instances it leaves" -- "$ctl" resume --db "$db"
contains "$tmp/err" "not resumed: 1 stuck instance" "resume reports stuck"
contains "$tmp/err" "$stuck" "resume names the stuck id"
expect 0 "a pending instance to cancel" -- "$ctl" start "$src/tests/cli/fails.saga" --db "$db" --input '{"x": "p"}'
pending2=$(cat "$tmp/out")
expect 0 "cancel of a pending instance" -- "$ctl" cancel "$pending2" --db "$db"
contains "$tmp/out" "$pending2: cancelled" "pending instance cancelled"
expect 0 "show the cancelled instance" -- "$ctl" show "$pending2" --db "$db" --json
if grep -q '"kind": "undo_' "$tmp/out"; then failed=$((failed + 1)); echo "FAIL: cancelling a pending instance ran an undo"; else passed=$((passed + 1)); fi

# diff and migrate: moving running instances to a new version (README.md,
# "Changing a saga that is running").
v1="$src/tests/cli/renew_v1.saga"; v2="$src/tests/cli/renew_v2.saga"; v3="$src/tests/cli/renew_v3.saga"
expect 0 "diff of a safe change" -- "$ctl" diff "$v1" "$v2"
contains "$tmp/out" "step grace (sleep)     4  safe" "the sleep is safe when a step is added after it"
contains "$tmp/out" "4 of 4 wait points safe" "diff counts the safe points"
expect 0 "diff of a step inserted before the sleep" -- "$ctl" diff "$v1" "$v3" --json
contains "$tmp/out" "NEW runs step 'verify' (line 5) before this point" "diff --json says why"
contains "$tmp/out" '"safe": 2' "diff --json counts the safe points"
expect 1 "diff of a file that does not compile" -- "$ctl" diff "$v1" "$src/tests/compiler/cases/unknown_service.saga"
contains "$tmp/err" "error: unknown service 'inventry'" "diff prints the diagnostics"
expect 2 "migrate without --to" -- "$ctl" migrate --from "$v1"
mdb="$tmp/migrate.db"
expect 1 "migrate in a database that does not exist" -- "$ctl" migrate --from "$v1" --to "$v2" --db "$mdb"
[ ! -e "$mdb" ] && passed=$((passed + 1)) || { failed=$((failed + 1)); echo "FAIL: migrate created a database"; }
expect 0 "an instance to migrate" -- "$ctl" start "$v1" --db "$mdb" --input '{"customer": "ada"}'
sleeping=$(cat "$tmp/out")
"$ctl" worker --db "$mdb" --poll-ms 20 >"$tmp/worker.out" 2>&1 &
workerpid=$!
# Until the worker has run the first step and waits in the sleep.
for _ in $(seq 1 500); do
  "$ctl" show "$sleeping" --db "$mdb" 2>/dev/null | grep -q "step_completed      remind" && break
done
expect 0 "migrate under a live worker" -- "$ctl" migrate --from "$v1" --to "$v2" --db "$mdb"
contains "$tmp/out" "$sleeping  pinned  it is being run by the engine" "a live worker keeps its instance"
contains "$tmp/out" "0 moved, 1 pinned" "nothing moved under the worker"
{ kill -9 "$workerpid" && wait "$workerpid"; } 2>/dev/null
expect 0 "a pending instance to migrate" -- "$ctl" start "$v1" --db "$mdb" --input '{"customer": "bo"}'
pending3=$(cat "$tmp/out")
expect 0 "migrate --dry-run to an unsafe version" -- "$ctl" migrate --from "$v1" --to "$v3" --db "$mdb" --dry-run
contains "$tmp/out" "$sleeping  pinned  at step grace (sleep): NEW runs step 'verify'" "the pinned instance and why"
contains "$tmp/out" "$pending3  would move  at start" "a pending instance can start on NEW"
contains "$tmp/out" "nothing was written" "dry run says it wrote nothing"
expect 0 "migrate --dry-run to a safe version" -- "$ctl" migrate --from "$v1" --to "$v2" --db "$mdb" --dry-run
contains "$tmp/out" "2 would move, 0 pinned" "dry run counts"
expect 0 "show after a dry run" -- "$ctl" show "$sleeping" --db "$mdb"
if grep -q "migrated" "$tmp/out"; then failed=$((failed + 1)); echo "FAIL: a dry run migrated"; else passed=$((passed + 1)); fi
expect 1 "migrate from an unknown hash" -- "$ctl" migrate --from 0123456789abcdef0123456789abcdef --to "$v2" --db "$mdb"
contains "$tmp/err" "no program 0123456789abcdef0123456789abcdef in" "unknown hash named"
expect 0 "migrate to the safe version" -- "$ctl" migrate --from "$v1" --to "$v2" --db "$mdb"
contains "$tmp/out" "$sleeping  moved  at step grace (sleep)" "the sleeping instance moved"
contains "$tmp/out" "2 moved, 0 pinned" "both moved"
expect 0 "resume runs the moved instances on NEW" -- "$ctl" resume --db "$mdb"
expect 0 "show a moved instance" -- "$ctl" show "$sleeping" --db "$mdb" --json
contains "$tmp/out" '"version": 2' "the moved instance completed on NEW"
contains "$tmp/out" '"kind": "migrated"' "the move is in the history"
expect 0 "show the moved pending instance" -- "$ctl" show "$pending3" --db "$mdb" --json
contains "$tmp/out" '"version": 2' "the pending instance ran on NEW"
new_hash=$("$ctl" ls --db "$mdb" --json | sed -n 's/.*"program": "\([0-9a-f]*\)".*/\1/p' | head -1)
expect 0 "diff by hashes in the database" -- "$ctl" diff "$new_hash" "$v2" --db "$mdb"
contains "$tmp/out" "5 of 5 wait points safe" "a hash names the stored program"
expect 2 "migrate to the same program" -- "$ctl" migrate --from "$new_hash" --to "$v2" --db "$mdb"
# Another process holds the write lock: migrate names it and changes nothing.
hold_lock "$mdb" "$tmp/mlock.fifo"
expect 1 "migrate while the database is locked" -- "$ctl" migrate --from "$v2" --to "$v1" --db "$mdb"
contains "$tmp/err" "database is locked by another process" "lock named"
exec 9>&-
wait "$lockpid"

# explore: every failure path of a saga, judged (README.md, "Exploring failure paths").
expect 0 "explore order.saga" -- "$ctl" explore "$src/samples/order.saga"
contains "$tmp/out" "saga order_fulfillment: 141 paths with up to 2 faults each" "explore counts the paths"
contains "$tmp/out" "no violation" "explore finds nothing in the sample"
expect 0 "explore --json" -- "$ctl" explore "$src/samples/travel.saga" --faults 1 --json
contains "$tmp/out" '"paths":' "explore --json gives the paths"
expect 1 "explore finds a planted bug" -- "$ctl" explore "$src/tests/explore/cases/in_doubt_without_undo.saga"
contains "$tmp/err" "in_doubt_without_undo.saga:6:8: error: step 'b' may have had its effect" "the violation is a diagnostic at the step"
contains "$tmp/err" "trace (1 fault):" "the violation comes with its trace"
contains "$tmp/err" "b attempt 1 times out -> step_failed b, compensating, undo_skipped b" "the trace shows the fault"
contains "$tmp/out" "1 violation" "the summary counts it"
expect 2 "explore an unknown saga" -- "$ctl" explore "$src/samples/order.saga" --saga order
contains "$tmp/err" "has no saga 'order'" "explore names the unknown saga"
expect 2 "explore with input of the wrong type" -- "$ctl" explore "$src/samples/hello.saga" --input '{"name": 1, "times": 1}'
expect 2 "explore with a fault bound out of range" -- "$ctl" explore "$src/samples/hello.saga" --faults 99
expect 1 "explore a file with errors" -- "$ctl" explore "$src/tests/compiler/cases/unknown_service.saga"

# Step kinds and idempotency obligations (README.md, "Step kinds and obligations").
expect 1 "check a compensable step after the pivot" -- "$ctl" check "$src/tests/compiler/cases/compensable_after_pivot.saga"
contains "$tmp/err" "compensable_after_pivot.saga:10:8: error: step 'ship' has an undo, but it runs after the pivot step 'charge' (at 9:14)" "the step after the pivot is named at file:line:col"
expect 0 "check --obligations" -- "$ctl" check --obligations "$src/samples/order.saga"
contains "$tmp/out" "samples/order.saga: 8 obligations for participants" "obligations are counted"
contains "$tmp/out" "samples/order.saga:13:13: inventory.release (undo of step 'reserve' in saga order_fulfillment), key <instance>/reserve/undo" "an undo's obligation gives its key"
contains "$tmp/out" "    retried: up to 4 attempts on timeout, unavailable" "a retried do says how often"
expect 0 "check --obligations --json" -- "$ctl" check --obligations --json "$src/tests/compiler/pivot_ok.saga"
contains "$tmp/out" '"key": "<instance>/ship[i]"' "json obligations give the key of a loop's step"
expect 1 "check --obligations of a file with errors" -- "$ctl" check --obligations "$src/tests/compiler/cases/compensable_after_pivot.saga"
expect 2 "--json needs --obligations" -- "$ctl" check --json "$src/samples/order.saga"
expect 2 "--obligations excludes --format" -- "$ctl" check --obligations --format json "$src/samples/order.saga"
expect 0 "disasm shows step kinds" -- "$ctl" disasm "$src/tests/compiler/pivot_ok.saga"
contains "$tmp/out" "format 3" "a program with step kinds is format 3"
contains "$tmp/out" "charge (pivot)" "the pivot is marked in the step table"
expect 0 "explore a saga with a pivot" -- "$ctl" explore "$src/tests/compiler/pivot_ok.saga"
contains "$tmp/out" "no violation" "past the pivot nothing is compensated"
expect 0 "a saga past its pivot outlives its deadline" -- "$ctl" run "$src/tests/cli/pivot_deadline.saga" --db "$tmp/pivot.db" --input '{}'
contains "$tmp/out" '"done": true' "the saga completed after its deadline had passed"

finish "cli"
