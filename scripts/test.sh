#!/usr/bin/env bash
# Every test: lint, then pgTAP and pytest against a throwaway cluster that
# is deleted at the end (never the `make run` data).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== lint"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy  # strict, for python_sidecar/ and cli/ ([tool.mypy] in pyproject.toml)
# pgTAP files use psql meta-commands (\gset), which sqlfluff cannot parse.
.venv/bin/sqlfluff lint sql plpgsql pg_cron tests/sql/helpers --processes 2 2>/dev/null

# The sign-in tests run a local OpenID provider on Node.js (tests/oidc); the
# web app's tests drive Debian's Chromium (Playwright cannot download its own);
# the monitoring files are checked with Debian's promtool (package prometheus).
missing=()
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
# test_pooler runs the API through PgBouncer (transaction mode).
[ -x /usr/sbin/pgbouncer ] || missing+=(pgbouncer)
# sql/0034_partitions.sql: the log tables' partitions are pg_partman's.
[ -f /usr/share/postgresql/15/extension/pg_partman.control ] || missing+=(postgresql-15-partman)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  # We need only promtool: no package may start a daemon here (policy-rc.d
  # answers 101 to invoke-rc.d on a machine without systemd; under systemd the
  # server on :9090 is stopped again below).
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
    $sudo chmod 755 /usr/sbin/policy-rc.d
    policy=/usr/sbin/policy-rc.d
  fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ -z "$policy" ] || $sudo rm -f "$policy"
  if [[ " ${missing[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi

echo "== deploy files (hadolint, compose and workflow schemas, .env.example, promtool)"
scripts/check_deploy.sh
[ tests/oidc/node_modules/.package-lock.json -nt tests/oidc/package-lock.json ] ||
  (cd tests/oidc && npm ci --no-audit --no-fund --loglevel=error)

work=$(mktemp -d /tmp/oxp-test.XXXXXX)
chmod 755 "$work"
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cleanup() { scripts/localpg.sh stop "$work/pg"; rm -rf "$work"; }
trap cleanup EXIT

echo "== cluster on port $port"
scripts/localpg.sh start "$work/pg" "$port" oxp --throwaway
export TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$port/oxp"
DATABASE_URL=$TEST_DATABASE_URL .venv/bin/oxp db migrate
psql -q -v ON_ERROR_STOP=1 "$TEST_DATABASE_URL" -f tests/sql/helpers/setup.sql

echo "== pgTAP"
pg_prove --quiet --failures -d "$TEST_DATABASE_URL" tests/sql/*.test.sql

echo "== pytest"
# Branch coverage of the shim and the CLI ([tool.coverage] in pyproject.toml);
# its floor (report.fail_under) only binds a run of the whole suite.
floor=()
[ $# -eq 0 ] || floor=(--cov-fail-under=0)
# One absolute data file for every process, whatever its working directory.
rm -rf .cov && mkdir .cov
export COVERAGE_FILE="$PWD/.cov/data"
.venv/bin/pytest -q --cov --cov-report=term "${floor[@]}" "$@"
