"""Starting and stopping ``yujing worker`` processes (demo and end-to-end tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from yujing.services.lifecycle import spawn_detached
from yujing.settings import Settings


def settings_env(settings: Settings) -> dict[str, str]:
    """The ``YUJING_*`` variables that reproduce ``settings`` in a child process."""
    env = {
        "YUJING_BOOTSTRAP_SERVERS": settings.bootstrap,
        "YUJING_APP_ID": settings.app_id,
        "YUJING_INPUT_PARTITIONS": str(settings.input_partitions),
        "YUJING_ALLOWED_LATENESS_HOURS": str(settings.allowed_lateness_hours),
        "YUJING_HOME": str(settings.home),
        "YUJING_METRICS_HOST": settings.metrics_host,
        "YUJING_METRICS_PORT": str(settings.metrics_port),
        "YUJING_STALL_SECONDS": str(settings.stall_seconds),
        "YUJING_PRODUCER_LINGER_MS": str(settings.producer_linger_ms),
        "YUJING_COMMIT_EVERY": str(settings.commit_every),
    }
    if settings.thresholds_file is not None:
        env["YUJING_THRESHOLDS_FILE"] = str(settings.thresholds_file)
    for field, value in settings.topics.model_dump().items():
        env[f"YUJING_TOPIC_{field.upper()}"] = value
    # How to reach the broker (TLS, SASL): the child process must connect as its parent does.
    security = {
        "YUJING_KAFKA_SECURITY_PROTOCOL": settings.kafka_security_protocol,
        "YUJING_KAFKA_SASL_MECHANISM": settings.kafka_sasl_mechanism,
        "YUJING_KAFKA_SASL_USERNAME": settings.kafka_sasl_username,
        "YUJING_KAFKA_SASL_PASSWORD": (settings.kafka_sasl_password.get_secret_value()
                                       if settings.kafka_sasl_password else None),
        "YUJING_KAFKA_SSL_CAFILE": settings.kafka_ssl_cafile,
        "YUJING_KAFKA_SSL_CERTFILE": settings.kafka_ssl_certfile,
        "YUJING_KAFKA_SSL_KEYFILE": settings.kafka_ssl_keyfile,
        "YUJING_KAFKA_SSL_CHECK_HOSTNAME": str(settings.kafka_ssl_check_hostname).lower(),
    }
    env.update({name: str(value) for name, value in security.items() if value is not None})
    return env


def start_worker(
    settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Run ``yujing worker`` in its own process group, logging to ``log_path`` (Faust's own
    settings, e.g. ``BROKER_SESSION_TIMEOUT``, in ``extra_env``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings_env(settings), **(extra_env or {})}
    return spawn_detached([sys.executable, "-m", "yujing.cli.app", "worker"], log_path, env=env)


def start_case_service(
    settings: Settings, log_path: Path, extra_env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Run ``yujing cases serve`` in its own process group (``YUJING_CASES_*`` in ``extra_env``)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings_env(settings), "YUJING_DATABASE_URL": settings.database, **(extra_env or {})}
    return spawn_detached([sys.executable, "-m", "yujing.cli.app", "cases", "serve"], log_path, env=env)


def stop_worker(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """Stop a worker the way an operator would (SIGTERM: commit, flush, leave the group)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    return process.returncode
