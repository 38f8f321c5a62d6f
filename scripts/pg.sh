#!/usr/bin/env bash
# A project-local PostgreSQL cluster, no system service needed.
#
#   scripts/pg.sh start DIR PORT [durable|fast]   start (initdb first if needed); reuse if running
#   scripts/pg.sh fresh DIR PORT                  stop, wipe and start a new throwaway fast cluster
#   scripts/pg.sh stop DIR                        stop it if running
#   scripts/pg.sh createdb PORT NAME              create database NAME unless it exists
#
# initdb and pg_ctl refuse to run as root, so as root they run as the `postgres` user.
set -euo pipefail

die() { echo "pg.sh: $*" >&2; exit 1; }

find_bindir() {
  local d
  if command -v pg_config >/dev/null 2>&1; then
    d=$(pg_config --bindir 2>/dev/null || true)
    if [ -n "$d" ] && [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  fi
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ]; then echo "$d"; return 0; fi
  done
  return 1
}

PGBIN=$(find_bindir || true)
if [ -z "$PGBIN" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "pg.sh: PostgreSQL not found; installing it with apt-get" >&2
    apt-get update -qq >&2 && apt-get install -y -qq postgresql >&2
    PGBIN=$(find_bindir) || die "PostgreSQL installed but initdb not found"
  else
    die "PostgreSQL server binaries (initdb, pg_ctl) not found; install PostgreSQL or set DATABASE_URL"
  fi
fi

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# The directory the server really uses. When root runs from a checkout the postgres user cannot
# reach (say, under a 0700 home), the cluster lives under /var/tmp and DIR is a link to it.
resolve_dir() {
  local dir=$1
  mkdir -p "$(dirname "$dir")"
  if [ -L "$dir" ]; then readlink -f "$dir"; return; fi
  mkdir -p "$dir"
  if [ "$(id -u)" = 0 ]; then
    chown postgres:postgres "$dir"
    if ! runuser -u postgres -- test -w "$dir"; then
      local alt
      alt=/var/tmp/easel-pg-$(echo -n "$(readlink -f "$dir")" | sha1sum | cut -c1-12)
      mkdir -p "$alt" && chown postgres:postgres "$alt"
      rmdir "$dir" && ln -s "$alt" "$dir"
      echo "$alt"; return
    fi
  fi
  readlink -f "$dir"
}

is_running() {
  [ -f "$1/data/postmaster.pid" ] && as_owner "$PGBIN/pg_ctl" -D "$1/data" status >/dev/null 2>&1
}

start() {
  local dir port mode
  dir=$(resolve_dir "$1"); port=$2; mode=${3:-durable}
  if is_running "$dir"; then return 0; fi
  if [ ! -f "$dir/data/PG_VERSION" ]; then
    as_owner "$PGBIN/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 \
      $([ "$mode" = fast ] && echo --no-sync) >"$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
  fi
  local opts="-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories= -c max_connections=400"
  if [ "$mode" = fast ]; then
    # Throwaway test data: durability off for speed. Never used for `make run`.
    opts="$opts -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
  fi
  as_owner "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 -o "$opts" start >/dev/null \
    || { tail -n 20 "$dir/server.log" >&2; die "PostgreSQL did not start on port $port (is the port taken?)"; }
}

stop() {
  local dir=$1
  [ -e "$dir" ] || return 0
  dir=$(readlink -f "$dir")
  if is_running "$dir"; then
    as_owner "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || true
  fi
}

createdb_if_missing() {
  local port=$1 name=$2
  local exists
  exists=$("$PGBIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "SELECT 1 FROM pg_database WHERE datname = '$name'")
  if [ "$exists" != 1 ]; then
    "$PGBIN/createdb" -h 127.0.0.1 -p "$port" -U postgres "$name"
  fi
}

case "${1:-}" in
  start) start "$2" "$3" "${4:-durable}" ;;
  fresh)
    stop "$2"
    if [ -e "$2" ]; then rm -rf "$(readlink -f "$2")"; rm -rf "$2"; fi
    start "$2" "$3" fast ;;
  stop) stop "$2" ;;
  createdb) createdb_if_missing "$2" "$3" ;;
  bindir) echo "$PGBIN" ;;
  *) die "usage: pg.sh start DIR PORT [durable|fast] | fresh DIR PORT | stop DIR | createdb PORT NAME" ;;
esac
