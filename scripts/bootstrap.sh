#!/usr/bin/env bash
# Installs what `make run` and `make test` need on Debian 12, only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(postgresql-15 postgresql-15-cron postgresql-15-partman postgresql-15-pgtap postgresql-15-plpgsql-check
  libtap-parser-sourcehandler-pgtap-perl postgresql-client-15 python3 python3-venv pgbackrest)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a default cluster on 5432; we run our own and need none of it.
  if command -v pg_lsclusters >/dev/null; then
    $sudo pg_ctlcluster 15 main stop 2>/dev/null || true
  fi
fi

# uv from PyPI into a tools venv of ours: Debian's own Python refuses a global pip install.
uv=$(command -v uv || true)
if [ -z "$uv" ]; then
  uv=.local/tools/bin/uv
  if [ ! -x "$uv" ]; then
    python3 -m venv .local/tools
    .local/tools/bin/pip install --quiet --disable-pip-version-check uv
  fi
fi
"$uv" sync --frozen --quiet
