#!/usr/bin/env bash
# A private PostgreSQL 15 cluster for the tests: initdb into DIR, a free port
# on 127.0.0.1 only, started and stopped by ctest (tests/CMakeLists.txt, the
# fixture `pg`) or by tests/support/pg_server.hpp when a test binary runs on
# its own. As root the server runs as the `postgres` user (initdb refuses
# root), as /work/shared/peers/pg.sh does. fsync is off: the tests kill
# workers, never the server's machine, and a fast shutdown is clean.
#
# usage: pg_cluster.sh start DIR   (writes DIR/url: postgresql://...)
#        pg_cluster.sh stop DIR
#        pg_cluster.sh restart DIR  (stop and start on the same port)
#        pg_cluster.sh stop-only DIR  (stop, keep the data: start again later)
set -euo pipefail
BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
cmd=${1:?usage: pg_cluster.sh start|stop|stop-only|restart DIR}
dir=${2:?usage: pg_cluster.sh start|stop|stop-only|restart DIR}
PASSWORD=saga-test
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

start() {
  local port
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    chmod 700 "$dir"
    echo "$PASSWORD" > "$dir/pwfile"
    [ "$(id -u)" = 0 ] && chown postgres "$dir/pwfile"
    as_pg "$BIN/initdb" -D "$dir/data" -U postgres --auth-local=trust --auth-host=scram-sha-256 \
      --pwfile="$dir/pwfile" -E UTF8 -N >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    rm -f "$dir/pwfile"
    port=$(free_port)
    cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 200
fsync = off
full_page_writes = off
shared_buffers = 64MB
CONF
    printf 'local all all trust\nhost all all 127.0.0.1/32 scram-sha-256\n' > "$dir/data/pg_hba.conf"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir/data/pg_hba.conf"
    echo "$port" > "$dir/port"
  fi
  port=$(cat "$dir/port")
  # Already running (a run that stopped before its cleanup): use it.
  if ! as_pg "$BIN/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    as_pg "$BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 start >/dev/null ||
      { cat "$dir/server.log" >&2; exit 1; }
  fi
  echo "postgresql://postgres:$PASSWORD@127.0.0.1:$port/postgres" > "$dir/url"
}

stop() {
  [ -d "$dir/data" ] || return 0
  as_pg "$BIN/pg_ctl" -D "$dir/data" -m fast -w -t 30 stop >/dev/null 2>&1 || true
}

case "$cmd" in
  start) start ;;
  stop) stop; rm -rf "$dir" ;;
  stop-only) stop ;;
  restart) stop; start ;;
  *) echo "usage: pg_cluster.sh start|stop|stop-only|restart DIR" >&2; exit 2 ;;
esac
