#!/bin/sh
# `db-replica`: on its first start (an empty volume) a pg_basebackup -R of
# `db` as oxp_replicator (what `oxp db replica init` does on one machine),
# then the image's own entrypoint runs it as a hot standby streaming from
# `db`. Later starts find the data and stream on.
# The password is never frozen into the volume: every start writes it from
# REPLICATION_PASSWORD to a passfile that primary_conninfo names, so a
# rotated password (edit .env, `up -d`) keeps the replica streaming.
set -eu
: "${REPLICATION_PASSWORD:?}"
data=${PGDATA:-/var/lib/postgresql/data}
passfile=/var/lib/postgresql/.pgpass-replica
umask 077
printf 'db:5432:*:oxp_replicator:%s\n' "$REPLICATION_PASSWORD" >"$passfile"
chown postgres:postgres "$passfile"
if [ ! -s "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  chown postgres:postgres "$data"
  chmod 700 "$data"
  PGPASSFILE=$passfile gosu postgres pg_basebackup \
    --host=db --port=5432 --username=oxp_replicator --pgdata="$data" \
    --write-recovery-conf --wal-method=stream --checkpoint=fast --progress
fi
# The standby's link to db, without the password (pg_basebackup -R wrote one in).
conf="$data/postgresql.auto.conf"
grep -v '^primary_conninfo' "$conf" >"$conf.new" || true
echo "primary_conninfo = 'host=db port=5432 user=oxp_replicator passfile=$passfile application_name=db-replica'" >>"$conf.new"
mv "$conf.new" "$conf"
chown postgres:postgres "$conf"
exec docker-entrypoint.sh "$@"
