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

import json
import os
import secrets
import shutil
import ssl
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from streams.security import PLAINTEXT, KafkaSecurity
from streams.topics import (
    TopicError,
    TopicSpec,
    create_missing_topics,
)
from yujing.services.kafka_dist import (
    DEFAULT_VERSION,
    SECURE_TEMPLATE,
    SERVER_TEMPLATE,
    BrokerError,
    KafkaDistribution,
    admin_client,
    kafka_responds,
    last_logged_error,
    make_tls_material,
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
# The SCRAM users of a secure broker: the clients' and the broker's own (inter-broker).
CLIENT_USER = "yujing"
BROKER_USER = "yujing-broker"
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")


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
    # SASL_SSL instead of PLAINTEXT on ``port`` (deploy/local/server-secure.properties.template).
    secure: bool = False
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
    def secure_dir(self) -> Path:
        """The secure broker's CA, certificate, SCRAM passwords and the clients' settings (client.env)."""
        return self.broker_dir / "secure"

    @property
    def client_env(self) -> Path:
        return self.secure_dir / "client.env"

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
            if self.secure:
                self._prepare_secure()
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
        templates = [SERVER_TEMPLATE, SECURE_TEMPLATE] if self.secure else [SERVER_TEMPLATE]
        values: dict[str, object] = dict(
            host=self.host, port=self.port, controller_port=self.controller_port, log_dirs=self.data_dir
        )
        if self.secure:
            values.update(secure_dir=self.secure_dir, broker_user=BROKER_USER,
                          broker_password=self._passwords()[BROKER_USER])
        parts = []
        for template in templates:
            require_file(template)
            try:
                parts.append(render_server_properties(template.read_text(), **values))
            except (KeyError, ValueError) as exc:
                raise BrokerError(f"{template} has a placeholder yujing cannot fill: {exc}") from exc
        return "\n".join(parts)

    def _write_config(self) -> None:
        # Rendered on every start so a changed port or template takes effect.
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.touch(mode=0o600)  # a secure broker's holds its own SCRAM password
        self.config_path.write_text(self.server_properties())

    # -- SASL_SSL ----------------------------------------------------------------

    def _prepare_secure(self) -> None:
        """The CA and certificate, the SCRAM passwords and the clients' settings file, made once."""
        make_tls_material(self.secure_dir, self.host)
        passwords = self._passwords()
        self.client_env.touch(mode=0o600)
        self.client_env.write_text(
            "# A yujing client of the local SASL_SSL broker: set -a; . <this file>; set +a\n"
            "YUJING_KAFKA_SECURITY_PROTOCOL=SASL_SSL\nYUJING_KAFKA_SASL_MECHANISM=SCRAM-SHA-512\n"
            f"YUJING_KAFKA_SASL_USERNAME={CLIENT_USER}\nYUJING_KAFKA_SASL_PASSWORD={passwords[CLIENT_USER]}\n"
            f"YUJING_KAFKA_SSL_CAFILE={self.secure_dir / 'ca.crt'}\n"
        )

    def _passwords(self) -> dict[str, str]:
        """The SCRAM users' passwords, made on first use and kept: the users live in the
        formatted storage, so a password must outlive every restart (and a wipe re-adds them)."""
        path = self.secure_dir / "passwords.json"
        if path.is_file():
            return dict(json.loads(path.read_text()))
        # URL-safe letters only: they go into a JAAS line and kafka-storage's --add-scram syntax.
        passwords = {user: secrets.token_urlsafe(24) for user in (CLIENT_USER, BROKER_USER)}
        self.secure_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.write_text(json.dumps(passwords))
        return passwords

    def client_security(self) -> KafkaSecurity:
        """How a client reaches this broker: PLAINTEXT, or SASL_SSL as the clients' user."""
        if not self.secure:
            return PLAINTEXT
        return KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", CLIENT_USER, self._passwords()[CLIENT_USER],
                             cafile=self.secure_dir / "ca.crt")

    def _probe_tls(self) -> ssl.SSLContext | None:
        # Before the CA exists (a secure broker never started) there is nothing to trust yet.
        if self.secure and not (self.secure_dir / "ca.crt").is_file():
            return None
        return self.client_security().ssl_context()

    def _format_once(self, java: str) -> None:
        """Format the KRaft storage unless it already is; keep the cluster id in home."""
        scram_marker = self.data_dir / "yujing-scram-users"
        if (self.data_dir / "meta.properties").is_file():
            if self.secure and not scram_marker.is_file():
                raise BrokerError(f"the storage in {self.data_dir} was formatted without SCRAM users: "
                                  "start it once with --fresh to serve SASL_SSL (its topics are deleted)")
            return
        credentials = [
            f"{mechanism}=[name={user},password={password}]"
            for user, password in (self._passwords().items() if self.secure else ())
            for mechanism in SCRAM_MECHANISMS
        ]
        self.distribution.format_storage(
            java, self.logs_dir, self.config_path, self._cluster_id(), self.data_dir, credentials
        )
        if self.secure:
            scram_marker.write_text(f"SCRAM users {', '.join(self._passwords())} added at format\n")

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
            ready=lambda: kafka_responds(self.host, self.port, timeout=1.0, tls=self._probe_tls()),
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
        reachable = kafka_responds(self.host, self.port, timeout=1.0, tls=self._probe_tls())
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
        with admin_client(self.host, self.port, self.client_security()) as admin:
            return sorted(t for t in admin.list_topics() if not t.startswith("__"))

    def ensure_topics(self, topics: Sequence[TopicSpec], timeout: float = 30) -> list[str]:
        """Create the topics that do not exist yet; return the names created.

        An existing topic with another partition count is an error rather than
        silently accepted: co-partitioned topics must have equal counts.
        """
        with admin_client(self.host, self.port, self.client_security()) as admin:
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
        # The local broker serves what the clients are set to speak (yujing broker start --secure too).
        secure=settings.kafka_security.protocol == "SASL_SSL",
    )


# -- the `yujing broker` commands ----------------------------------------------------
