#!/usr/bin/env bash
# Installs what yujing needs on a fresh machine, from Debian when missing: Java 17 and Maven (for
# the local Kafka broker), PostgreSQL (the local database of the case service), Chromium and its
# driver (the browser test); then a virtualenv with the project. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."
mkdir -p .yujing

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
# Debian keeps the server programs off PATH, under /usr/lib/postgresql/<version>/bin.
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
[ -x /usr/bin/chromedriver ] || need_apt+=(chromium-driver)
# Chinese glyphs for the browser test's screenshots of the inbox (else they render as boxes).
[ -d /usr/share/fonts/opentype/noto ] || need_apt+=(fonts-noto-cjk)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need_apt[*]} from Debian..." >&2
    # apt's chatter goes to a log; it is shown only when the install fails.
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"; } > .yujing/apt.log 2>&1; then
      tail -n 30 .yujing/apt.log >&2
      echo "error: installing ${need_apt[*]} failed (full log: .yujing/apt.log)" >&2
      exit 1
    fi
  else
    echo "error: missing ${need_apt[*]}: install them (sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# pip's chatter goes to a log; it is shown only when the install fails.
if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e '.[test]'; } > .yujing/setup.log 2>&1; then
  tail -n 30 .yujing/setup.log >&2
  echo "error: installing the Python packages failed (full log: .yujing/setup.log)" >&2
  exit 1
fi
