#!/bin/sh
# PgBouncer for the API (compose `pgbouncer`): the API's two logins only, in
# transaction mode, SCRAM to both sides. The worker, the migrate step and
# the CLI connect to `db` directly (LISTEN/NOTIFY, advisory locks, session
# settings) and are not in the userlist, so PgBouncer refuses them.
# Written under /tmp (the image's only writable place); the passwords come
# from the environment and are never logged.
set -eu
: "${AUTHENTICATOR_PASSWORD:?}" "${ADMIN_AUTHENTICATOR_PASSWORD:?}"
dir=/tmp/pgbouncer
mkdir -p "$dir"
umask 077
printf '"authenticator" "%s"\n"admin_authenticator" "%s"\n' \
  "$AUTHENTICATOR_PASSWORD" "$ADMIN_AUTHENTICATOR_PASSWORD" >"$dir/userlist.txt"
cat >"$dir/pgbouncer.ini" <<INI
[databases]
oxp = host=db port=5432 dbname=oxp

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $dir/userlist.txt
; A server connection is the client's for one transaction only: the API's
; set_config(..., true) role and claims end with it.
pool_mode = transaction
default_pool_size = ${PGBOUNCER_POOL_SIZE:-20}
max_client_conn = 500
INI
exec pgbouncer "$dir/pgbouncer.ini"
