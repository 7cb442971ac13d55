"""A local Prometheus (Debian's ``prometheus`` package) for the demo and the observability tests.

It scrapes the given targets under the production job names (``yujing-worker``, ``yujing-cases``)
with the alert rules of ``deploy/prometheus/rules/``, keeps its data under its own home, and
answers PromQL through :meth:`LocalPrometheus.query`. In production Prometheus runs from
``deploy/`` (Compose or Kubernetes); this is the same binary and the same rules, on loopback.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import httpx
import yaml

from yujing.services.lifecycle import (
    Readiness,
    child_alive,
    spawn_detached,
    terminate,
    wait_until_ready,
)

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"


class PrometheusError(RuntimeError):
    """Prometheus is missing, refuses its configuration or does not become ready."""


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


class LocalPrometheus:
    """Prometheus on ``127.0.0.1:port`` scraping ``targets`` ({job: "host:port"}) every
    ``scrape_seconds``; :meth:`start` checks the configuration with promtool first."""

    def __init__(self, home: Path, port: int, targets: dict[str, str], scrape_seconds: float = 5.0) -> None:
        self.home, self.port, self.targets = home, port, targets
        self.url = f"http://127.0.0.1:{port}"
        self.scrape_seconds = scrape_seconds
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self.home / "prometheus.log"

    def config(self) -> dict:
        interval = f"{self.scrape_seconds:g}s"
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": [str(RULES_DIR / "*.yml")],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [target]}]}
                for job, target in self.targets.items()
            ],
        }

    def start(self, timeout: float = 60) -> None:
        binary, promtool = prometheus_binary(), shutil.which("promtool")
        if binary is None or promtool is None:
            raise PrometheusError("Prometheus is not installed: run deploy/local/setup.sh (Debian's prometheus)")
        self.home.mkdir(parents=True, exist_ok=True)
        config = self.home / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(), allow_unicode=True))
        check = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise PrometheusError(f"promtool refuses {config}: {(check.stderr or check.stdout).strip()}")
        process = self.process = spawn_detached(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={self.home / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            self.log_path,
        )
        readiness = wait_until_ready(
            self._ready, lambda: process.poll() is None, time.monotonic() + timeout, poll=0.3
        )
        if readiness is Readiness.EXITED:
            raise PrometheusError(f"Prometheus exited with code {process.returncode}; log: {self.log_path}")
        if readiness is Readiness.TIMED_OUT:
            self.stop()
            raise PrometheusError(f"Prometheus did not become ready in {timeout:.0f} s; log: {self.log_path}")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, promql: str) -> list[dict]:
        """An instant query; the result's series (a scalar or string comes back as one item)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=30)
        body = response.json()
        if body.get("status") != "success":
            raise PrometheusError(f"{promql!r}: {body.get('error', body)}")
        data = body["data"]
        return data["result"] if data["resultType"] in ("vector", "matrix") else [data["result"]]

    def value(self, promql: str) -> float | None:
        """The single number an aggregate query returns (None: no data)."""
        result = self.query(promql)
        if not result:
            return None
        sample = result[0]["value"] if isinstance(result[0], dict) else result[0]
        return float(sample[1])

    def up(self, job: str) -> bool:
        try:
            return any(r["value"][1] == "1" for r in self.query(f'up{{job="{job}"}}'))
        except (httpx.HTTPError, PrometheusError):
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        if not terminate(process.pid, 20, alive=lambda pid: child_alive(process, pid), kill_wait=5):
            raise PrometheusError(f"Prometheus (pid {process.pid}) did not exit even after SIGKILL")
