#!/usr/bin/env bash
# The reconciliation report is checked in a real headless browser: install Debian's
# Chromium when the machine has none (it needs root, as on CI and the dev machines).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
    exit 0
fi
echo "installing Chromium (the reconciliation report is checked in it)" >&2
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
