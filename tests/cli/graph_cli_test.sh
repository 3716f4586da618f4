#!/bin/bash
# sagactl graph and sagactl show ID --graph (README "Seeing a saga",
# docs/graph.md): formats, files, --saga, exit codes, the missing-dot error,
# and the marks of a completed, a compensated, a stuck and a running instance.
# Usage: graph_cli_test.sh SAGACTL SOURCE_DIR
. "$(dirname "$0")/lib.sh" "$@"
db="$tmp/graph.db"

# holds DESCRIPTION -- COMMAND...: COMMAND must succeed.
holds() {
  local what=$1
  shift 2
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); echo "FAIL: $what"; fi
}

# The picture of a file, in each format.
expect 0 "graph, dot by default" -- "$ctl" graph "$src/samples/order.saga"
contains "$tmp/out" "digraph saga {" "dot text"
contains "$tmp/out" 'label="express"' "a condition on an edge"
contains "$tmp/out" "style=dashed" "the compensation path"
cp "$tmp/out" "$tmp/order.dot"
expect 0 "graph --format mermaid" -- "$ctl" graph "$src/samples/order.saga" --format mermaid
contains "$tmp/out" "flowchart TB" "mermaid text"
contains "$tmp/out" "-.->" "mermaid dashed edges"
expect 0 "graph --format svg" -- "$ctl" graph "$src/samples/travel.saga" --format svg
contains "$tmp/out" "<svg" "svg from dot"
contains "$tmp/out" "branch flight" "svg has the clusters"
expect 0 "graph -o FILE" -- "$ctl" graph "$src/samples/order.saga" -o "$tmp/written.dot"
holds "-o writes what stdout had" -- cmp -s "$tmp/written.dot" "$tmp/order.dot"
holds "-o prints nothing" -- test ! -s "$tmp/out"
# A compiled file without its source draws the same picture.
expect 0 "compile without source" -- "$ctl" compile "$src/samples/order.saga" -o "$tmp/order.sagac" --no-source
expect 0 "graph of a .sagac" -- "$ctl" graph "$tmp/order.sagac"
holds "the .sagac is drawn the same" -- cmp -s "$tmp/out" "$tmp/order.dot"

# Several sagas: all of them, or the one named.
expect 0 "graph of two sagas" -- "$ctl" graph "$src/tests/cli/two_sagas.saga"
contains "$tmp/out" "subgraph cluster_s0 {" "first saga's cluster"
contains "$tmp/out" "subgraph cluster_s1 {" "second saga's cluster"
expect 0 "graph --saga" -- "$ctl" graph "$src/tests/cli/two_sagas.saga" --saga two
contains "$tmp/out" 'label="saga two()"' "the saga named"
lacks "$tmp/out" "saga one" "only the saga named"
expect 2 "graph --saga of no saga" -- "$ctl" graph "$src/tests/cli/two_sagas.saga" --saga tow
contains "$tmp/err" "no saga 'tow' in the program (its sagas: one, two)" "the sagas there are"
contains "$tmp/err" "did you mean 'two'" "a suggestion"
expect 2 "graph --format of no format" -- "$ctl" graph "$src/samples/order.saga" --format png
expect 1 "graph of a file that does not compile" -- "$ctl" graph "$src/tests/compiler/cases/unknown_service.saga"
expect 1 "graph of no file" -- "$ctl" graph "$tmp/nothing.saga"

# Without Graphviz: a clear message and exit 8, nothing written.
expect 8 "svg without dot on PATH" -- env PATH=/nonexistent "$ctl" graph "$src/samples/order.saga" --format svg -o "$tmp/no.svg"
contains "$tmp/err" "Graphviz's 'dot' program, which is not on PATH" "the missing program"
contains "$tmp/err" "apt-get install graphviz" "the package"
holds "nothing written without dot" -- test ! -e "$tmp/no.svg"
expect 0 "dot and mermaid need no dot" -- env PATH=/nonexistent "$ctl" graph "$src/samples/order.saga" --format mermaid

# show --graph: a completed instance, on the path it took.
id_of() { "$ctl" ls --db "$db" --json --status "$1" | sed -n 's/.*"id": "\(.*\)".*/\1/p' | head -1; }
expect 0 "a completed run" -- "$ctl" run "$src/samples/hello.saga" --db "$db" --input '{"name": "ada", "times": 1}' -q
done_id=$(id_of completed)
expect 0 "show --graph of a completed instance" -- "$ctl" show "$done_id" --db "$db" --graph
contains "$tmp/out" 'label="saga hello(name: string, times: number)  [completed]"' "the status in the title"
contains "$tmp/out" 'label="nap\nsleep", fillcolor="#dff0d8"' "a step on the path"
contains "$tmp/out" 'label="completed", peripheries=2, fillcolor="#dff0d8"' "the end it reached"
expect 0 "show --graph --format mermaid" -- "$ctl" show "$done_id" --db "$db" --graph --format mermaid
contains "$tmp/out" "class s0_n0,s0_n1,s0_n2,s0_n3,s0_n4 taken;" "mermaid marks"
expect 0 "show --graph --format svg" -- "$ctl" show "$done_id" --db "$db" --graph --format svg
contains "$tmp/out" "<svg" "svg of an instance"
expect 5 "show --graph of no instance" -- "$ctl" show nope --db "$db" --graph
expect 2 "show --graph --json" -- "$ctl" show "$done_id" --db "$db" --graph --json
expect 2 "show --format without --graph" -- "$ctl" show "$done_id" --db "$db" --format mermaid

# A compensated instance: the fail, and the undo that ran.
expect 3 "a run that compensates" -- "$ctl" run "$src/tests/cli/fails.saga" --db "$db" --input '{"x": "q"}' -q
expect 0 "show --graph of a compensated instance" -- "$ctl" show "$(id_of compensated)" --db "$db" --graph
contains "$tmp/out" 'label="fail rejected\n\"refused ${x}\"\n[failed]"' "what failed"
contains "$tmp/out" 'label="undo note\nlog\n[compensated]"' "what was compensated"
contains "$tmp/out" 'label="compensated\n[compensated]"' "the end of the compensation"

# A stuck instance: the undo that gave up, and the one that did not run.
expect 4 "a run that is stuck" -- "$ctl" run "$src/tests/cli/stuck.saga" --db "$db" --input '{"n": 1}' -q
expect 0 "show --graph of a stuck instance" -- "$ctl" show "$(id_of stuck)" --db "$db" --graph
contains "$tmp/out" 'label="undo second\nlog\n[failed]"' "the undo that gave up"
contains "$tmp/out" 'label="undo first\nlog", color=' "the undo still to run is unmarked"
contains "$tmp/out" '[stuck]' "stuck in the title"

# A running instance, stopped (kill -9) while it waits in its second step.
"$ctl" run "$src/tests/cli/graph_sleeper.saga" --db "$db" --input '{"n": 7}' -q >"$tmp/sleeper.out" 2>&1 &
sleeper=$!
running=""
for _ in $(seq 1 200); do  # Up to 20 s for the run to commit its wait.
  running=$(id_of running)
  if [ -n "$running" ] && "$ctl" show "$running" --db "$db" --json 2>/dev/null | grep -q '"nap"'; then break; fi
  running=""
  sleep 0.1
done
kill -9 "$sleeper" 2>/dev/null
wait "$sleeper" 2>/dev/null
if [ -z "$running" ]; then
  failed=$((failed + 1)); echo "FAIL: the sleeper never waited in its step nap"; show "$tmp/sleeper.out"
else
  expect 0 "show --graph of a running instance" -- "$ctl" show "$running" --db "$db" --graph
  contains "$tmp/out" 'label="nap\nsleep\n[now]"' "where it is"
  contains "$tmp/out" 'label="first\nlog", fillcolor="#dff0d8"' "what it did"
  contains "$tmp/out" 'label="completed", peripheries=2];' "where it has not been"
  lacks "$tmp/out" '[compensated]' "nothing compensated"
fi

finish graph_cli_test
