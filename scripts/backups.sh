#!/usr/bin/env bash
# Continuous backups of a localpg.sh cluster with pgBackRest, into a local repository:
#   backups.sh setup DIR PORT REPO   idempotent: config, WAL archiving (restarts once to turn it on),
#                                    the stanza, a check that a WAL segment reaches REPO
# Retention: OXP_BACKUP_RETENTION_FULL (2) and OXP_BACKUP_RETENTION_DIFF (6); `oxp db backup`
# passes BACKUP_RETENTION_FULL/DIFF from the settings as well. pgBackRest runs as the cluster's
# OS user (`postgres` when we are root), as PostgreSQL's archive_command does.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
cmd=${1:?usage: backups.sh setup DIR PORT REPO}
dir=$(realpath -m "${2:?DIR missing}")
port=${3:?PORT missing}
repo=$(realpath -m "${4:?REPO missing}")
conf=$repo/pgbackrest.conf

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

case "$cmd" in
setup)
  mkdir -p "$repo/spool" "$repo/log" "$repo/lock"
  [ "$(id -u)" = 0 ] && chown -R postgres: "$repo"
  chmod 750 "$repo"
  # zstd: small and fast; every file in a backup is checksummed by pgBackRest, and the
  # pages too where the cluster has data checksums (initdb --data-checksums).
  as_owner tee "$conf" >/dev/null <<CONF
[global]
repo1-path=$repo
repo1-retention-full=${OXP_BACKUP_RETENTION_FULL:-2}
repo1-retention-diff=${OXP_BACKUP_RETENTION_DIFF:-6}
compress-type=zst
compress-level=3
archive-async=y
spool-path=$repo/spool
lock-path=$repo/lock
log-path=$repo/log
log-level-console=warn
log-level-file=info
process-max=2
start-fast=y
delta=y
archive-timeout=60
# The socket lives in the data folder; its lock and the log are not the data.
exclude=.s.PGSQL.$port.lock
exclude=server.log

[oxp]
pg1-path=$dir
pg1-port=$port
pg1-socket-path=$dir
pg1-user=postgres
CONF
  if ! grep -q "^archive_command" "$dir/postgresql.conf"; then
    {
      echo "archive_mode = on"
      echo "archive_command = 'pgbackrest --config=$conf --stanza=oxp archive-push %p'"
      # A quiet database still ships its WAL each minute: at most a minute of commits
      # lives only on this disk.
      echo "archive_timeout = 60"
    } | as_owner tee -a "$dir/postgresql.conf" >/dev/null
    if as_owner "$PGBIN/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
      as_owner "$PGBIN/pg_ctl" -D "$dir" -l "$dir/server.log" -m fast -w -t 60 restart >/dev/null
    fi
  fi
  as_owner pgbackrest --config="$conf" --stanza=oxp stanza-create >/dev/null
  as_owner pgbackrest --config="$conf" --stanza=oxp check >/dev/null
  ;;
*)
  echo "unknown command: $cmd" >&2
  exit 2
  ;;
esac
