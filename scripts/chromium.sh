#!/usr/bin/env bash
# Debian's headless Chromium and its chromium-driver for the web page's browser tests (tests/python/test_web_page.py):
# installed from Debian's packages when missing (as root); never a browser download of Selenium's or Playwright's own.
set -euo pipefail

if command -v chromium > /dev/null && command -v chromedriver > /dev/null; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "chromium.sh: chromium and chromium-driver are missing; install them (apt-get install chromium chromium-driver) or run as root" >&2
    exit 1
fi
DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver > /dev/null
