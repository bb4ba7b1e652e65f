#!/usr/bin/env bash
# A throwaway PostgreSQL server on a free loopback port, for the tests, the
# store benchmark and the cluster demo (Debian's postgresql package).
#
#   scripts/test-postgres.sh start STATE_DIR [--fast]   prints the URL, writes STATE_DIR/url
#   scripts/test-postgres.sh stop STATE_DIR
#
# The cluster lives in a fresh directory under /tmp (the server runs as an
# unprivileged user, who may not be able to reach the build tree), with
# trust authentication for the superuser `vigil`, listening on 127.0.0.1
# only and on a socket in that directory. --fast turns fsync off: for tests,
# never for figures. Exits 77 when PostgreSQL is not installed.
set -euo pipefail

cmd=${1:?start or stop}
state=${2:?state directory}
fast=${3:-}

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/pg_ctl" ]; then
  echo "PostgreSQL is not installed (Debian package postgresql): the PostgreSQL store tests are skipped" >&2
  exit 77
fi

# PostgreSQL refuses to run as root: run it as the package's own user.
runuser=$(command -v runuser || echo /usr/sbin/runuser)
as_server_user() {
  if [ "$(id -u)" = 0 ]; then "$runuser" -u postgres -- "$@"; else "$@"; fi
}

stop() {
  [ -f "$state/datadir" ] || return 0
  local data
  data=$(cat "$state/datadir")
  if [ -d "$data/data" ]; then
    as_server_user "$bin/pg_ctl" -D "$data/data" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  fi
  rm -rf "$data"
  rm -f "$state/datadir" "$state/url"
}

case "$cmd" in
  start)
    stop
    mkdir -p "$state"
    data=$(mktemp -d /tmp/vigil-postgres.XXXXXX)
    echo "$data" >"$state/datadir"
    chmod 755 "$data"
    [ "$(id -u)" = 0 ] && chown postgres "$data"
    as_server_user "$bin/initdb" -D "$data/data" -U vigil -A trust -E UTF8 --locale=C.UTF-8 --no-sync \
      >"$data/initdb.log" 2>&1 || { cat "$data/initdb.log" >&2; exit 1; }
    options="-c listen_addresses=127.0.0.1 -k $data -c max_connections=200"
    [ "$fast" = "--fast" ] && options="$options -c fsync=off -c full_page_writes=off"
    # A free port: try a few at random in the upper range; pg_ctl fails when
    # the port is taken.
    for _ in $(seq 1 20); do
      port=$((20000 + RANDOM % 30000))
      if as_server_user "$bin/pg_ctl" -D "$data/data" -l "$data/server.log" -w -t 60 \
        -o "-p $port $options" start >/dev/null 2>&1; then
        url="postgres://vigil@127.0.0.1:$port/postgres"
        echo "$url" >"$state/url"
        echo "$url"
        exit 0
      fi
    done
    echo "PostgreSQL did not start; its log:" >&2
    tail -n 30 "$data/server.log" >&2 || true
    exit 1
    ;;
  stop)
    stop
    ;;
  *)
    echo "usage: $0 start|stop STATE_DIR [--fast]" >&2
    exit 2
    ;;
esac
