#!/usr/bin/env bash
# PNGs of the main screens, each at 360x740 and 1280x800: the player's (today,
# predicted, after the cutoff, ads, result, settlement, shop, ranking) and the
# admin console's (dashboard, rewards, ads, settings, settlement, audit), into the git-ignored
# .local/screenshots/: the browser tests take them on a throwaway cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
# The Google sign-in test runs a local OpenID provider on Node.js (tests/oidc).
command -v node >/dev/null && command -v npm >/dev/null || missing+=(nodejs npm)
# A Korean font, so the screenshots show Hangul instead of empty boxes.
fc-list 2>/dev/null | grep -qi nanum || missing+=(fonts-nanum)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
rm -rf .local/screenshots
.venv/bin/pytest -q tests/python/test_web.py
ls -1 .local/screenshots/*.png
