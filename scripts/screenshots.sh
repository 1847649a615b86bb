#!/usr/bin/env bash
# PNGs of the player's main screens (today, after a prediction, after the
# cutoff, the result, the shop, the ranking) at 360x740, into the git-ignored
# .local/screenshots/: the browser tests take them on a throwaway cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
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
