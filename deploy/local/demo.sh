#!/usr/bin/env bash
# The demo: install, start a fresh local Kafka broker, the worker and the simulator, and watch
# warnings arrive. Extra arguments go to `yujing demo` (see `yujing demo --help`).
set -euo pipefail
cd "$(dirname "$0")/../.."
bash deploy/local/setup.sh
exec .venv/bin/yujing demo "$@"
