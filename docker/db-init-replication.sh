#!/bin/sh
# First start of `db` only (/docker-entrypoint-initdb.d): the compose
# replica's login (oxp_replicator, created by the migrate step, password
# REPLICATION_PASSWORD) may stream over the network, with SCRAM, and do
# nothing else: its line that refuses every database comes FIRST (pg_hba is
# read top down; the image's `host all all all` would let it in to read the
# catalog). A volume made before this file existed: run it once by hand
# (README "Docker compose"), then
# `docker compose exec db psql -U postgres -c 'select pg_reload_conf()'`.
set -eu
hba="${PGDATA:-/var/lib/postgresql/data}/pg_hba.conf"
if ! grep -q '^host replication oxp_replicator ' "$hba"; then
  {
    echo 'host replication oxp_replicator all scram-sha-256'
    echo 'host all oxp_replicator all reject'
    cat "$hba"
  } >"$hba.new"
  mv "$hba.new" "$hba"
fi
