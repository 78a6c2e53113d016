#!/usr/bin/env bash
# Headless Chromium and its ChromeDriver from Debian's packages, for the console's tests
# (tests/console): selenium drives /usr/bin/chromium through /usr/bin/chromedriver. No
# browser download: a test tool's own download does not reach this network.
# infra/browser.sh install|path
SERVICE=browser
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

case "${1:-}" in
  install) apt_install chromium chromium-driver ;;
  path) echo /usr/bin/chromium ;;
  *) echo "usage: $0 install|path" >&2; exit 2 ;;
esac
