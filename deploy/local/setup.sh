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
# Prometheus and promtool: the observability tests run a real Prometheus and check the
# configs and alert rules (tests/test_deploy.py: `promtool check config`).
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
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
# pip's chatter goes to a log; it is shown only when the install fails. A download cut off midway
# is resumed by pip up to 20 times, and the whole install is tried three times, a while apart,
# before giving up.
install_python_packages() {
  .venv/bin/python -m pip install -q --retries 10 --upgrade pip &&
    .venv/bin/python -m pip install -q --retries 10 --resume-retries 20 -e '.[test]'
}
: > .yujing/setup.log
for attempt in 1 2 3; do
  if install_python_packages >> .yujing/setup.log 2>&1; then
    break
  fi
  # A full disk also cuts downloads off (the CI of one stop died so): retrying cannot help.
  free_mb=$(df -Pm . | awk 'NR == 2 {print $4}')
  if [ "${free_mb:-0}" -lt 1024 ]; then
    tail -n 5 .yujing/setup.log >&2
    echo "error: installing the Python packages failed: only ${free_mb} MB free on this disk (.venv needs about 1 GB)" >&2
    exit 1
  fi
  if [ "$attempt" = 3 ]; then
    tail -n 30 .yujing/setup.log >&2
    echo "error: installing the Python packages failed three times (full log: .yujing/setup.log)" >&2
    exit 1
  fi
  echo "setup: installing the Python packages failed (attempt $attempt of 3), trying again in $((attempt * 20)) s..." >&2
  sleep $((attempt * 20))
done

# `docker compose` for tests/test_deploy.py (`docker compose config` needs no Docker engine). Where
# no Compose plugin answers, build the Compose v2 CLI from its Go module (the Go module proxy; its
# go.mod has exclude directives, so `go install pkg@version` refuses it and it is built inside the
# downloaded module instead), cache the binary per version (2-3 minutes the first time, then
# instant) and install it as the docker CLI plugin and as .venv/bin/docker-compose.
COMPOSE_VERSION=v2.40.3
compose_bin="${YUJING_CACHE_DIR:-$HOME/.cache/yujing}/compose-$COMPOSE_VERSION/docker-compose"
if ! docker compose version >/dev/null 2>&1 && [ ! -x "$compose_bin" ]; then
  if command -v go >/dev/null 2>&1; then
    echo "setup: building Docker Compose $COMPOSE_VERSION from its Go module (once)..." >&2
    mkdir -p "$(dirname "$compose_bin")"
    if ! {
      compose_src=$(go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" \
        | .venv/bin/python -c 'import json, sys; print(json.load(sys.stdin)["Dir"])') &&
      (cd "$compose_src" && CGO_ENABLED=0 go build -trimpath \
        -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
        -o "$compose_bin.partial" ./cmd) &&
      mv "$compose_bin.partial" "$compose_bin"
    } > .yujing/compose.log 2>&1; then
      tail -n 30 .yujing/compose.log >&2
      echo "error: building Docker Compose failed (full log: .yujing/compose.log)" >&2
      exit 1
    fi
  else
    echo "warning: no \`docker compose\` and no Go to build it: tests/test_deploy.py will fail" >&2
  fi
fi
if [ -x "$compose_bin" ]; then
  mkdir -p "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  ln -sf "$compose_bin" "${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins/docker-compose"
  ln -sf "$compose_bin" .venv/bin/docker-compose
fi
