#!/usr/bin/env bash
# PgBouncer (Debian's) in transaction mode in front of a local cluster, for
# the API's two logins only (README "Connection pooling").
#   pgbouncer.sh start DIR PORT PG_PORT [POOL_SIZE]   write DIR/pgbouncer.ini, start it
#   pgbouncer.sh stop DIR                             stop the one DIR/pgbouncer.pid names
# The worker (LISTEN/NOTIFY, advisory locks) and the CLI keep their direct
# URL: they are not in the userlist, so PgBouncer would refuse them anyway.
# PgBouncer refuses to run as root, so when we are root it runs as `postgres`.
set -euo pipefail

cmd=${1:?usage: pgbouncer.sh start DIR PORT PG_PORT [POOL_SIZE] | stop DIR}
dir=$(realpath -m "${2:?DIR missing}")

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
start)
  port=${3:?PORT missing}
  pg_port=${4:?PG_PORT missing}
  pool=${5:-20}
  mkdir -p "$dir"
  # Local clusters trust 127.0.0.1 (localpg.sh); production uses
  # auth_type = scram-sha-256 with the logins' SCRAM secrets in the userlist.
  cat >"$dir/userlist.txt" <<EOF
"authenticator" ""
"admin_authenticator" ""
EOF
  cat >"$dir/pgbouncer.ini" <<EOF
[databases]
* = host=127.0.0.1 port=$pg_port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $port
unix_socket_dir =
auth_type = trust
auth_file = $dir/userlist.txt
; A server connection is the client's for one transaction only: the API's
; set_config(..., true) role and claims end with it.
pool_mode = transaction
default_pool_size = $pool
max_client_conn = 1000
logfile = $dir/pgbouncer.log
pidfile = $dir/pgbouncer.pid
EOF
  [ "$(id -u)" = 0 ] && chown -R postgres: "$dir"
  if [ -f "$dir/pgbouncer.pid" ] && kill -0 "$(cat "$dir/pgbouncer.pid")" 2>/dev/null; then
    exit 0
  fi
  # Debian puts it in /usr/sbin, which a non-root PATH may lack.
  as_owner "$(command -v pgbouncer || echo /usr/sbin/pgbouncer)" -d -q "$dir/pgbouncer.ini"
  for _ in $(seq 50); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && exit 0
    sleep 0.1
  done
  echo "pgbouncer did not start: see $dir/pgbouncer.log" >&2
  exit 1
  ;;
stop)
  if [ -f "$dir/pgbouncer.pid" ]; then
    pid=$(cat "$dir/pgbouncer.pid")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
  fi
  ;;
*)
  echo "unknown command: $cmd" >&2
  exit 2
  ;;
esac
