#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests, on 127.0.0.1.
#   scripts/pg_test_server.sh start DIR [PORT]   prints the DSN to use (CALLGATE_TEST_PG_DSN)
#   scripts/pg_test_server.sh stop DIR
# Installs the Debian server package if it is missing (needs root, as CI has).
set -euo pipefail
cmd="${1:?start|stop}"
dir="${2:?a directory for the cluster}"
port="${3:-54329}"
pgbin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
case "$cmd" in
start)
    if [ -z "$(pgbin)" ] || [ ! -x "$(pgbin)/initdb" ]; then
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >/dev/null && apt-get install -y -qq postgresql >/dev/null
    fi
    bin="$(pgbin)"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    as_pg "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
    as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -h 127.0.0.1 -c fsync=off" start >/dev/null
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
stop)
    bin="$(pgbin)"
    [ -d "$dir/data" ] && as_pg "$bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    ;;
esac
