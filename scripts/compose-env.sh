#!/usr/bin/env bash
# Writes .env for `docker compose up` with fresh random secrets (passwords,
# JWT keys, the TOTP key); refuses to overwrite one. The values only you
# know (VENDOR_URL, VENDOR_SECRET, AD_SSV_AD_UNITS, PUBLIC_BASE_URL,
# OAUTH_REDIRECT_URI, ...) are left for you to fill in: compose refuses to
# start until they are. Keep the file out of git (.gitignore) and images
# (.dockerignore), and do not put it in a checkout you `make run` or
# `make test` in: the settings read .env too.
#   scripts/compose-env.sh [FILE]   (default: .env)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.env}
if [ -e "$out" ]; then
  echo "$out exists: not overwriting it" >&2
  exit 1
fi
secret() { openssl rand -hex 32; }
pem() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null; }
umask 077
{
  echo "# docker compose settings, made by scripts/compose-env.sh on $(date -u +%F)."
  for name in POSTGRES_PASSWORD AUTHENTICATOR_PASSWORD ADMIN_AUTHENTICATOR_PASSWORD \
    SERVICE_PASSWORD OPERATOR_PASSWORD AUDITOR_PASSWORD REPLICATION_PASSWORD; do
    echo "$name=$(secret)"
  done
  echo "TOTP_ENCRYPTION_KEY=$(secret)"
  echo "JWT_PRIVATE_KEY=\"$(pem)\""
  echo "JWT_ADMIN_PRIVATE_KEY=\"$(pem)\""
  echo "# Fill these in (see .env.example):"
  echo "VENDOR_URL="
  echo "VENDOR_SECRET="
  echo "AD_SSV_AD_UNITS="
  echo "PUBLIC_BASE_URL="
  echo "OAUTH_REDIRECT_URI="
} >"$out"
echo "wrote $out (mode 600); fill in the empty values, then: docker compose up -d"
