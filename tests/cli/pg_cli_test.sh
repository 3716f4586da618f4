#!/usr/bin/env bash
# sagactl on PostgreSQL: the same commands with a postgresql:// --db or
# $SAGA_DB, two `sagactl worker`s sharing one database (every instance run
# once), and the errors for an unknown scheme and a refused login. Uses the
# test cluster (fixture `pg`: $SAGA_TEST_PG_DIR, tests/support/pg_cluster.sh).
# usage: pg_cli_test.sh SAGACTL SOURCE_DIR
. "$(dirname "$0")/lib.sh" "$@"

admin=$(cat "$SAGA_TEST_PG_DIR/url")
dbname="cli_$$"
psql "$admin" -qc "CREATE DATABASE $dbname" >/dev/null
url="${admin%/postgres}/$dbname"
sql() { psql "$url" -Atc "$1"; }

expect 0 "run on postgresql" -- "$ctl" run "$src/samples/hello.saga" --db "$url" --input '{"name": "ada", "times": 2}'
contains "$tmp/out" '"greeting": "hello ADA"' "run prints the output"
contains "$tmp/err" "nap step_completed" "run shows the steps live"

# $SAGA_DB works as --db does: start records, ls lists, resume runs, show reads.
expect 0 "start" -- env SAGA_DB="$url" "$ctl" start "$src/samples/hello.saga" --input '{"name": "bo", "times": 1}'
id=$(tr -d '\n' < "$tmp/out")
expect 0 "ls" -- env SAGA_DB="$url" "$ctl" ls --status pending
contains "$tmp/out" "$id" "ls shows the pending instance"
expect 0 "resume" -- env SAGA_DB="$url" "$ctl" resume
expect 0 "show" -- "$ctl" show "$id" --db "$url"
contains "$tmp/out" "completed" "show: the instance completed"

# Two workers share the work: every instance completes, each started once.
for i in $(seq 1 30); do
  "$ctl" start "$src/samples/hello.saga" --db "$url" --input "{\"name\": \"n$i\", \"times\": 1}" >/dev/null 2>&1
done
"$ctl" worker --db "$url" --poll-ms 50 >"$tmp/w1.log" 2>&1 &
w1=$!
"$ctl" worker --db "$url" --poll-ms 50 >"$tmp/w2.log" 2>&1 &
w2=$!
for _ in $(seq 1 300); do  # At most 30 s; ends as soon as all are done.
  [ "$(sql "SELECT count(*) FROM instances WHERE status = 3")" = 32 ] && break
  sleep 0.1
done
kill "$w1" "$w2" 2>/dev/null
wait "$w1" "$w2" 2>/dev/null
expect 0 "all completed" -- test "$(sql "SELECT count(*) FROM instances WHERE status = 3")" = 32
expect 0 "each started once" -- test "$(sql "SELECT count(*) FROM history WHERE convert_from(kind, 'UTF8') = 'started'")" = 32
expect 0 "each completed once" -- test "$(sql "SELECT count(*) FROM history WHERE convert_from(kind, 'UTF8') = 'completed'")" = 32

expect 1 "unknown scheme" -- "$ctl" ls --db "mysql://root:pw@127.0.0.1/x"
contains "$tmp/err" "unknown database URL scheme 'mysql'" "names the scheme"
bad="${url/saga-test@/wrong-secret@}"
expect 1 "wrong password" -- "$ctl" ls --db "$bad"
contains "$tmp/err" "refused the login" "says the login was refused"
lacks "$tmp/err" "wrong-secret" "never shows the password"
expect 1 "nothing listens" -- "$ctl" ls --db "postgresql://postgres@127.0.0.1:1/x?connect_timeout=2"
contains "$tmp/err" "cannot reach PostgreSQL at" "names the server"

psql "$admin" -qc "DROP DATABASE $dbname WITH (FORCE)" >/dev/null
finish pg_cli_test
