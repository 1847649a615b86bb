#!/usr/bin/env bash
# The deployment files, checked statically (this machine has no Docker
# engine, and CI's lint step runs before any image is built), offline:
#   hadolint        docker/*.Dockerfile
#   check-jsonschema docker-compose.yml (Compose Specification) and
#                   .github/workflows/*.yml (GitHub's workflow schema), both
#                   schemas shipped inside check-jsonschema
#   check_compose_env.py  every ${NAME} and environment key is in .env.example,
#                   no secret has a default
#   promtool        monitoring/prometheus.yml and monitoring/alerts.yml
# (The Grafana dashboard's metric names are checked by pytest against a real
# scrape: tests/python/test_monitoring.py.)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin

$bin/hadolint --failure-threshold info docker/*.Dockerfile
$bin/check-jsonschema --builtin-schema vendor.compose-spec docker-compose.yml
$bin/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
$bin/python scripts/check_compose_env.py
if command -v promtool >/dev/null; then
  promtool check config --syntax-only monitoring/prometheus.yml >/dev/null
  promtool check rules monitoring/alerts.yml >/dev/null
  promtool test rules monitoring/alerts.test.yml >/dev/null
else
  echo "promtool missing (Debian package prometheus; scripts/test.sh installs it)" >&2
  exit 1
fi
echo "deploy files: ok"
