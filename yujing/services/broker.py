"""A local Apache Kafka broker that yujing fetches, caches and runs itself.

There is no Docker here: the broker's jars come from Maven Central through
``deploy/local/pom.xml`` (``mvn dependency:copy-dependencies``), are cached once per
machine under ``cache_dir/kafka-<version>/libs`` (:mod:`yujing.services.kafka_dist`) and
run with the system's Java as a single KRaft node (broker and controller in one process)
on loopback. Pid file, lock, readiness wait and stop are those of every local service
(:mod:`yujing.services.lifecycle`).

:class:`LocalBroker` does the work; the ``yujing broker`` command
group (``start``, ``stop``, ``status``, ``logs``, ``create-topics``) is :mod:`yujing.cli.broker`.
Importing this module has no side effects.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from streams.topics import (
    TopicError,
    TopicSpec,
    create_missing_topics,
)
from yujing.services.kafka_dist import (
    DEFAULT_VERSION,
    SERVER_TEMPLATE,
    BrokerError,
    KafkaDistribution,
    admin_client,
    kafka_responds,
    last_logged_error,
    new_cluster_id,
    render_server_properties,
    require_file,
    require_tool,
)
from yujing.services.lifecycle import (
    Readiness,
    ServiceStatus,
    check_ports_free,
    child_alive,
    file_size,
    last_line,
    locked,
    process_args,
    read_from,
    read_pid,
    spawn_detached,
    terminate,
    wait_until_ready,
)

if TYPE_CHECKING:
    from yujing.settings import Settings

JAVA_HINT = "install OpenJDK 17 (apt-get install openjdk-17-jre-headless)"


@dataclass(frozen=True, kw_only=True)
class BrokerStatus(ServiceStatus):
    """What :meth:`LocalBroker.status` and :meth:`LocalBroker.start` observed; ``reachable``:
    something answers Kafka requests at ``address``."""

    version: str
    topics: tuple[str, ...] = ()  # user topics, internal ``__*`` ones left out


@dataclass
class LocalBroker:
    """One single-node Kafka broker whose files all live under ``home/"broker"``."""

    home: Path
    cache_dir: Path
    version: str = DEFAULT_VERSION
    host: str = "127.0.0.1"
    port: int = 9092
    controller_port: int = 9093
    heap: str = "512m"
    # The Popen of a broker this object started, so stop() can reap it (no zombie).
    _proc: subprocess.Popen[bytes] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Absolute paths: they go into server.properties and the java command line.
        self.home = Path(self.home).expanduser().resolve()
        self.cache_dir = Path(self.cache_dir).expanduser().resolve()

    # -- paths -------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def broker_dir(self) -> Path:
        return self.home / "broker"

    @property
    def data_dir(self) -> Path:
        return self.broker_dir / "data"

    @property
    def logs_dir(self) -> Path:
        return self.broker_dir / "logs"

    @property
    def log_path(self) -> Path:
        return self.logs_dir / "server.log"

    @property
    def console_log(self) -> Path:
        """The JVM's own stdout/stderr: where a crash before logging starts shows up."""
        return self.logs_dir / "console.log"

    @property
    def pid_file(self) -> Path:
        return self.broker_dir / "broker.pid"

    @property
    def config_path(self) -> Path:
        return self.broker_dir / "server.properties"

    @property
    def cluster_id_file(self) -> Path:
        return self.broker_dir / "cluster.id"

    @property
    def distribution(self) -> KafkaDistribution:
        """The jars this broker runs: cached once per machine and version, for every home."""
        return KafkaDistribution(self.cache_dir, self.version)

    @property
    def dist_dir(self) -> Path:
        return self.distribution.dist_dir

    @property
    def libs_dir(self) -> Path:
        return self.distribution.libs_dir

    @property
    def fetched_marker(self) -> Path:
        return self.distribution.fetched_marker

    @property
    def is_fetched(self) -> bool:
        return self.distribution.is_fetched

    def fetch(self) -> Path:
        """Download the broker's jars once per machine and version; return the libs dir."""
        return self.distribution.fetch()

    # -- start -------------------------------------------------------------------

    def start(self, timeout: float = 60) -> BrokerStatus:
        """Start the broker detached and wait until it answers Kafka requests.

        Idempotent: a broker already running from this home is waited for and
        returned, never started twice. The storage is formatted on the first start
        only. The broker survives the calling process (its own session).
        """
        began = time.monotonic()
        self.broker_dir.mkdir(parents=True, exist_ok=True)
        with locked(self.broker_dir / ".lock"):
            pid = self._running_pid()
            if pid is not None:
                self._wait_ready(pid, began + timeout, timeout)
                return self._status(pid, began, already_running=True)
            java = require_tool("java", JAVA_HINT)
            self._check_ports_free()
            self.fetch()
            self._write_config()
            self._format_once(java)
            pid = self._launch(java)
            launched = time.monotonic()
            try:
                self._wait_ready(pid, launched + timeout, timeout)
            except BrokerError:
                # A broker that never came up is not left behind half-alive.
                if self._alive(pid):
                    self._terminate(pid, grace=10)
                self.pid_file.unlink(missing_ok=True)
                raise
            return self._status(pid, began, already_running=False)

    def _status(self, pid: int, began: float, already_running: bool) -> BrokerStatus:
        return BrokerStatus(
            running=True,
            reachable=True,
            pid=pid,
            address=self.bootstrap,
            version=self.version,
            log_path=self.log_path,
            elapsed=time.monotonic() - began,
            already_running=already_running,
        )

    def _check_ports_free(self) -> None:
        ports = ((self.port, "YUJING_BROKER_PORT"), (self.controller_port, "YUJING_CONTROLLER_PORT"))
        check_ports_free(self.host, ports, "a broker", BrokerError)

    def server_properties(self) -> str:
        """This broker's ``server.properties``, rendered from the template."""
        require_file(SERVER_TEMPLATE)
        try:
            return render_server_properties(
                SERVER_TEMPLATE.read_text(),
                host=self.host,
                port=self.port,
                controller_port=self.controller_port,
                log_dirs=self.data_dir,
            )
        except (KeyError, ValueError) as exc:
            raise BrokerError(
                f"{SERVER_TEMPLATE} has a placeholder yujing cannot fill: {exc}"
            ) from exc

    def _write_config(self) -> None:
        # Rendered on every start so a changed port or template takes effect.
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self.server_properties())

    def _format_once(self, java: str) -> None:
        """Format the KRaft storage unless it already is; keep the cluster id in home."""
        if (self.data_dir / "meta.properties").is_file():
            return
        self.distribution.format_storage(
            java, self.logs_dir, self.config_path, self._cluster_id(), self.data_dir
        )

    def _cluster_id(self) -> str:
        if self.cluster_id_file.is_file():
            cluster_id = self.cluster_id_file.read_text().strip()
            if cluster_id:
                return cluster_id
        cluster_id = new_cluster_id()
        self.cluster_id_file.write_text(cluster_id + "\n")
        return cluster_id

    def _launch(self, java: str) -> int:
        cmd = self.distribution.server_cmd(java, self.logs_dir, self.config_path, self.heap)
        self._proc = spawn_detached(cmd, self.console_log, append=False, cwd=self.broker_dir)
        self.pid_file.write_text(f"{self._proc.pid}\n")
        return self._proc.pid

    def _wait_ready(self, pid: int, deadline: float, timeout: float) -> None:
        log_offset = file_size(self.log_path)
        readiness = wait_until_ready(
            ready=lambda: kafka_responds(self.host, self.port, timeout=1.0),
            alive=lambda: self._alive(pid),
            deadline=deadline,
        )
        if readiness is Readiness.EXITED:
            self.pid_file.unlink(missing_ok=True)
            raise BrokerError(self._exit_reason(pid, log_offset))
        if readiness is Readiness.TIMED_OUT:
            raise BrokerError(
                f"broker did not accept connections on {self.bootstrap} within "
                f"{timeout:g} s; see {self.log_path}"
            )

    def _exit_reason(self, pid: int, log_offset: int) -> str:
        code = self._proc.returncode if self._proc and self._proc.pid == pid else None
        how = f" (exit code {code})" if code is not None else ""
        reason = last_logged_error(self.log_path, log_offset) or last_line(
            read_from(self.console_log)
        )
        detail = f": {reason}" if reason else ""
        return f"broker exited during startup{how}{detail}; see {self.log_path}"

    # -- stop --------------------------------------------------------------------

    def stop(self, timeout: float = 30) -> bool:
        """Stop the broker (SIGTERM, then SIGKILL after ``timeout`` s).

        Returns whether a broker was running; stopping a stopped broker is not an error.
        """
        if not self.broker_dir.is_dir():
            return False
        with locked(self.broker_dir / ".lock"):
            pid = self._running_pid()
            if pid is not None:
                self._terminate(pid, grace=timeout)
            self.pid_file.unlink(missing_ok=True)
            return pid is not None

    def wipe(self, timeout: float = 30) -> None:
        """Stop the broker and delete its topics (data directory); the next start formats afresh.

        The fetched Kafka and the cluster id stay.
        """
        self.stop(timeout=timeout)
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def _terminate(self, pid: int, grace: float) -> None:
        # SIGTERM lets Kafka shut down cleanly (flush, close logs): a faster next start.
        if not terminate(pid, grace, alive=self._alive):
            raise BrokerError(f"broker (pid {pid}) did not exit even after SIGKILL")

    # -- process bookkeeping -----------------------------------------------------

    def _alive(self, pid: int) -> bool:
        return child_alive(self._proc, pid)

    def _running_pid(self) -> int | None:
        """The pid of this home's broker if it is alive; a stale pid file is removed."""
        pid = read_pid(self.pid_file)
        if pid is None:
            return None
        if self._alive(pid) and self._is_ours(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def _is_ours(self, pid: int) -> bool:
        """Guard against a recycled pid: the process must be Kafka with our config."""
        args = process_args(pid)
        if args is None:
            return True  # no /proc (not Linux): trust the pid file
        return b"kafka.Kafka" in args and os.fsencode(self.config_path) in args

    # -- status and topics -------------------------------------------------------

    def status(self) -> BrokerStatus:
        """Is it running, where, which version, and which topics it holds (if reachable)."""
        pid = read_pid(self.pid_file)
        if pid is not None and not (self._alive(pid) and self._is_ours(pid)):
            pid = None
        reachable = kafka_responds(self.host, self.port, timeout=1.0)
        return BrokerStatus(
            running=pid is not None,
            reachable=reachable,
            pid=pid,
            address=self.bootstrap,
            version=self.version,
            log_path=self.log_path,
            topics=tuple(self.list_topics()) if reachable else (),
        )

    def list_topics(self) -> list[str]:
        """Names of the user topics, sorted; Kafka's internal ``__*`` topics left out."""
        with admin_client(self.host, self.port) as admin:
            return sorted(t for t in admin.list_topics() if not t.startswith("__"))

    def ensure_topics(self, topics: Sequence[TopicSpec], timeout: float = 30) -> list[str]:
        """Create the topics that do not exist yet; return the names created.

        An existing topic with another partition count is an error rather than
        silently accepted: co-partitioned topics must have equal counts.
        """
        with admin_client(self.host, self.port) as admin:
            try:
                return create_missing_topics(admin, topics, self.bootstrap, timeout)
            except TopicError as exc:
                raise BrokerError(str(exc)) from exc


# -- building from settings -------------------------------------------------------


def broker_from_settings(settings: Settings) -> LocalBroker:
    return LocalBroker(
        home=settings.home,
        cache_dir=settings.cache_dir,
        version=settings.kafka_version,
        host=settings.broker_host,
        port=settings.broker_port,
        controller_port=settings.controller_port,
    )


# -- the `yujing broker` commands ----------------------------------------------------
