#!/usr/bin/env bash
# The test suite: install, start the local Kafka broker and PostgreSQL the integration tests use,
# run pytest. Extra arguments go to pytest (e.g. -k parity, -m "not kafka and not postgres").
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/setup.sh
# A dedicated broker and database for tests (own home and ports), so a running demo or dev
# broker or database is untouched.
export YUJING_HOME="${YUJING_TEST_HOME:-.yujing/test}"
export YUJING_BROKER_PORT="${YUJING_TEST_BROKER_PORT:-9392}"
export YUJING_CONTROLLER_PORT="${YUJING_TEST_CONTROLLER_PORT:-9393}"
export YUJING_POSTGRES_PORT="${YUJING_TEST_POSTGRES_PORT:-5533}"
# Both are stopped however the run ends. The broker starts empty: every test makes its own topics,
# and kept they grew a developer's .yujing/test to 8.5 GB (1,520 partitions) over a few dozen runs.
trap '.venv/bin/yujing db stop || true; .venv/bin/yujing broker stop || true' EXIT
# Known vulnerabilities of the dependencies (docs/dependencies.md): an advisory that applies and is
# not accepted fails the run; an unreachable registry is reported and the tests go on.
.venv/bin/python -m deploy.audit || [ $? -eq 2 ]
.venv/bin/yujing broker start --fresh
.venv/bin/yujing db start
export YUJING_TEST_BOOTSTRAP="127.0.0.1:${YUJING_BROKER_PORT}"
unset YUJING_DATABASE_URL  # tests use the fixtures' databases, never a developer's
export YUJING_TEST_DATABASE_URL="postgresql+psycopg://yujing@127.0.0.1:${YUJING_POSTGRES_PORT}/yujing"
.venv/bin/python -m pytest "$@"
