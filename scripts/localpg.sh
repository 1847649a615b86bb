#!/usr/bin/env bash
# A PostgreSQL 15 cluster with pg_cron under a folder of ours, owned by a non-root user.
#   localpg.sh start DIR PORT DBNAME [--throwaway]   create if missing, start if stopped, ensure DBNAME
#   localpg.sh stop DIR
# PostgreSQL refuses to run as root, so when we are root the cluster belongs to `postgres`.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
cmd=${1:?usage: localpg.sh start DIR PORT DBNAME [--throwaway] | stop DIR}
dir=$(realpath -m "${2:?DIR missing}")

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  port=${3:?PORT missing}
  db=${4:?DBNAME missing}
  throwaway=${5:-}
  if [ ! -f "$dir/PG_VERSION" ]; then
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_owner "$PGBIN/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --no-locale --data-checksums >/dev/null
    {
      echo "listen_addresses = '127.0.0.1'"
      echo "port = $port"
      echo "unix_socket_directories = '$dir'"
      echo "shared_preload_libraries = 'pg_cron'"
      echo "cron.database_name = '$db'"
      echo "cron.host = '$dir'"
      echo "timezone = 'UTC'"
      echo "max_connections = 300"
      echo "shared_buffers = ${OXP_PG_SHARED_BUFFERS:-256MB}"
      if [ "$throwaway" = --throwaway ]; then
        # Durability buys nothing in a cluster deleted after the run.
        echo "fsync = off"
        echo "synchronous_commit = off"
        echo "full_page_writes = off"
      fi
    } | as_owner tee -a "$dir/postgresql.conf" >/dev/null
  fi
  if ! as_owner "$PGBIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
    as_owner "$PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -w -t 60 start >/dev/null
  fi
  exists=$(psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc \
    "select 1 from pg_database where datname = '$db'")
  if [ "$exists" != 1 ]; then
    psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -qc "create database \"$db\"" >/dev/null
  fi
  ;;
stop)
  if [ -f "$dir/PG_VERSION" ]; then
    as_owner "$PGBIN/pg_ctl" -D "$dir" -m fast -w stop >/dev/null 2>&1 || true
  fi
  ;;
*)
  echo "unknown command: $cmd" >&2
  exit 2
  ;;
esac
