#!/usr/bin/env bash
# The test suite: install, start the local Kafka broker the integration tests use, run pytest.
# Extra arguments go to pytest (e.g. -k parity, -m "not kafka").
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/setup.sh
# A dedicated broker for tests (own home and ports), so a running demo or dev broker is untouched.
export YUJING_HOME="${YUJING_TEST_HOME:-.yujing/test}"
export YUJING_BROKER_PORT="${YUJING_TEST_BROKER_PORT:-9392}"
export YUJING_CONTROLLER_PORT="${YUJING_TEST_CONTROLLER_PORT:-9393}"
.venv/bin/yujing broker start
export YUJING_TEST_BOOTSTRAP="127.0.0.1:${YUJING_BROKER_PORT}"
status=0
.venv/bin/python -m pytest "$@" || status=$?
.venv/bin/yujing broker stop || true
exit $status
