#!/bin/sh
# `db-replica`: on its first start (an empty volume) a pg_basebackup -R of
# `db` as oxp_replicator (what `oxp db replica init` does on one machine),
# then the image's own entrypoint runs it as a hot standby streaming from
# `db`. Later starts find the data and stream on. The password reaches the
# standby's primary_conninfo (postgresql.auto.conf, in its volume).
set -eu
: "${REPLICATION_PASSWORD:?}"
data=${PGDATA:-/var/lib/postgresql/data}
if [ ! -s "$data/PG_VERSION" ]; then
  mkdir -p "$data"
  chown postgres:postgres "$data"
  chmod 700 "$data"
  PGPASSWORD=$REPLICATION_PASSWORD gosu postgres pg_basebackup \
    --host=db --port=5432 --username=oxp_replicator --pgdata="$data" \
    --write-recovery-conf --wal-method=stream --checkpoint=fast --progress
fi
exec docker-entrypoint.sh "$@"
