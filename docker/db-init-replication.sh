#!/bin/sh
# First start of `db` only (/docker-entrypoint-initdb.d): the compose
# replica's login (oxp_replicator, created by the migrate step, password
# REPLICATION_PASSWORD) may stream over the network, with SCRAM. A volume
# made before this file existed: run it once by hand (README "Docker
# compose"), then `docker compose exec db psql -U postgres -c 'select pg_reload_conf()'`.
set -eu
hba="${PGDATA:-/var/lib/postgresql/data}/pg_hba.conf"
grep -q '^host replication oxp_replicator ' "$hba" \
  || echo 'host replication oxp_replicator all scram-sha-256' >>"$hba"
