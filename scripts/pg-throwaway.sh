#!/usr/bin/env bash
# Starts or stops a throwaway PostgreSQL cluster for the tests (CI runs it; so can a developer).
#   scripts/pg-throwaway.sh start DIR   prints the URL (postgresql://tessera@127.0.0.1:PORT/postgres)
#   scripts/pg-throwaway.sh stop DIR
#   scripts/pg-throwaway.sh crash DIR    stops it as a crash would (pg_ctl -m immediate)
#   scripts/pg-throwaway.sh resume DIR   starts it again on the same directory and port
# initdb refuses to run as root, so as root the cluster runs as the `postgres` user
# (Debian's postgresql package creates it). Trust authentication on 127.0.0.1 only;
# the directory is temporary and nothing else uses the cluster. fsync stays on: the
# failure tests kill processes and count what was acknowledged.
set -euo pipefail
cmd="$1"; dir="$2"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
[ -n "$bin" ] || { echo "no PostgreSQL server binaries under /usr/lib/postgresql (apt-get install postgresql)" >&2; exit 1; }
as=()
if [ "$(id -u)" = 0 ]; then as=(setpriv --reuid=postgres --regid=postgres --init-groups); fi
case "$cmd" in
  start)
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
    port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
    "${as[@]}" "$bin/initdb" -D "$dir/data" -A trust -U tessera >"$dir/initdb.log" 2>&1
    echo "$port" >"$dir/port"
    "$0" resume "$dir" >/dev/null
    echo "postgresql://tessera@127.0.0.1:$port/postgres"
    ;;
  resume)
    port="$(cat "$dir/port")"
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300" \
      -l "$dir/log" -w start >/dev/null
    ;;
  crash)
    "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null
    ;;
  stop)
    [ -d "$dir/data" ] && "${as[@]}" "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
    ;;
  *) echo "usage: $0 start|stop|crash|resume DIR" >&2; exit 2 ;;
esac
