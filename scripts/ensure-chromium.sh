#!/usr/bin/env bash
# The browser test drives the system Chromium (Debian's `chromium` package) through Playwright;
# test tools' own browser downloads are not used. Install it when missing and we may.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian's chromium for the browser test"
  (apt-get install -y -qq chromium >/dev/null 2>&1) || (apt-get update -qq && apt-get install -y -qq chromium >/dev/null)
  exit 0
fi
echo "the browser test needs Chromium at /usr/bin/chromium: sudo apt-get install chromium" >&2
exit 1
