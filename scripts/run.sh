#!/usr/bin/env bash
# The whole service on this machine: database (with pg_cron), migrations,
# calendar, demo data, the worker and the API on http://127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."

export DATABASE_URL=${DATABASE_URL:-postgresql://postgres@127.0.0.1:54329/oxp}
scripts/localpg.sh start .local/pg 54329 oxp
# WAL archived continuously and backups into .local/backups (pgBackRest).
scripts/backups.sh setup .local/pg 54329 .local/backups
oxp=.venv/bin/oxp
$oxp db migrate
$oxp calendar sync
$oxp demo seed
$oxp schedule tick >/dev/null
# Something to restore from on the first run; pg_cron takes it from there.
[ "$($oxp db backups --json)" != "[]" ] || $oxp db backup --type full

# The worker and the CLI always use the direct URL (LISTEN/NOTIFY, advisory
# locks); with POOLER=pgbouncer the API's two logins go through PgBouncer in
# transaction mode on port 54330 (README "Connection pooling").
if [ "${POOLER:-}" = pgbouncer ]; then
  { [ -x /usr/sbin/pgbouncer ] || command -v pgbouncer >/dev/null; } || { echo "POOLER=pgbouncer: apt-get install pgbouncer" >&2; exit 1; }
  scripts/pgbouncer.sh start .local/pgbouncer 54330 54329 "${PGBOUNCER_POOL_SIZE:-20}"
  export API_DATABASE_URL=postgresql://authenticator@127.0.0.1:54330/oxp
  export ADMIN_API_DATABASE_URL=postgresql://admin_authenticator@127.0.0.1:54330/oxp
  export DATABASE_POOLER=pgbouncer
fi
$oxp worker &
worker=$!
stop() {
  kill "$worker" 2>/dev/null || true
  wait "$worker" 2>/dev/null || true
  [ "${POOLER:-}" != pgbouncer ] || scripts/pgbouncer.sh stop .local/pgbouncer
  scripts/localpg.sh stop .local/pg
}
trap stop EXIT
echo "OX Predict: http://127.0.0.1:8000 (docs at /docs); .venv/bin/oxp works from another terminal. Ctrl-C stops."
$oxp serve --host 127.0.0.1 --port 8000
