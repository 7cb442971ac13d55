#!/usr/bin/env bash
# Installs what yujing needs on a fresh machine: Java 17 and Maven (for the local Kafka broker,
# from Debian if missing) and a virtualenv with the project. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/../.."

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
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
mkdir -p .yujing
if ! { .venv/bin/python -m pip install -q --upgrade pip && .venv/bin/python -m pip install -q -e '.[test]'; } > .yujing/setup.log 2>&1; then
  tail -n 30 .yujing/setup.log >&2
  echo "error: installing the Python packages failed (full log: .yujing/setup.log)" >&2
  exit 1
fi
