"""A local Apache Kafka broker that yujing fetches, caches and runs itself.

There is no Docker here: the broker's jars come from Maven Central through
``deploy/local/pom.xml`` (``mvn dependency:copy-dependencies``), are cached once per
machine under ``cache_dir/kafka-<version>/libs`` and run with the system's Java as a
single KRaft node (broker and controller in one process) on loopback.

:class:`LocalBroker` does the work; ``broker_app`` is the ``yujing broker`` command
group (``start``, ``stop``, ``status``, ``logs``) that the main CLI mounts.
Importing this module has no side effects.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from streams.topics import (
    TopicError,
    TopicSpec,
    contract_topics,
    create_missing_topics,
    worker_topics,
)

if TYPE_CHECKING:
    from kafka import KafkaAdminClient

    from yujing.settings import Settings

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "local"
POM = DEPLOY_DIR / "pom.xml"
SERVER_TEMPLATE = DEPLOY_DIR / "server.properties.template"
LOG4J_CONFIG = DEPLOY_DIR / "log4j2.properties"

KAFKA_ARTIFACT = "org.apache.kafka:kafka_2.13"
DEFAULT_VERSION = "4.1.1"

JAVA_HINT = "install OpenJDK 17 (apt-get install openjdk-17-jre-headless)"
MVN_HINT = "install Maven to fetch the Kafka jars (apt-get install maven)"

# Same flags as Kafka's own kafka-run-class.sh (KAFKA_JVM_PERFORMANCE_OPTS).
JVM_OPTS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
FETCH_TIMEOUT_S = 30 * 60
FORMAT_TIMEOUT_S = 120


class BrokerError(Exception):
    """The local broker cannot do what was asked; the message is one line for a human."""




@dataclass(frozen=True)
class BrokerStatus:
    """What :meth:`LocalBroker.status` and :meth:`LocalBroker.start` observed."""

    running: bool  # our broker process is alive
    reachable: bool  # something answers Kafka requests at ``address``
    pid: int | None
    address: str
    version: str
    log_path: Path
    topics: tuple[str, ...] = ()  # user topics, internal ``__*`` ones left out
    elapsed: float | None = None  # seconds :meth:`LocalBroker.start` took
    already_running: bool = False


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
    def dist_dir(self) -> Path:
        return self.cache_dir / f"kafka-{self.version}"

    @property
    def libs_dir(self) -> Path:
        return self.dist_dir / "libs"

    @property
    def fetched_marker(self) -> Path:
        return self.dist_dir / ".fetched"

    @property
    def is_fetched(self) -> bool:
        # The marker is written last, so a fetch that died half-way is not trusted.
        return self.fetched_marker.is_file() and self.libs_dir.is_dir()

    # -- fetch -------------------------------------------------------------------

    def fetch(self) -> Path:
        """Download the broker's jars once per machine and version; return the libs dir."""
        if self.is_fetched:
            return self.libs_dir
        mvn = require_tool("mvn", MVN_HINT)
        require_file(POM)
        self.dist_dir.mkdir(parents=True, exist_ok=True)
        # Several checkouts share the cache: one fetches, the others wait and reuse it.
        with _locked(self.dist_dir / ".fetch.lock"):
            if self.is_fetched:
                return self.libs_dir
            for stale in self.dist_dir.glob("libs.partial-*"):
                shutil.rmtree(stale, ignore_errors=True)
            staging = self.dist_dir / f"libs.partial-{os.getpid()}"
            try:
                self._copy_dependencies(mvn, staging)
                shutil.rmtree(self.libs_dir, ignore_errors=True)  # leftover of a broken fetch
                staging.rename(self.libs_dir)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
            jars = len(list(self.libs_dir.glob("*.jar")))
            stamp = datetime.now(UTC).isoformat(timespec="seconds")
            self.fetched_marker.write_text(f"{KAFKA_ARTIFACT}:{self.version} {jars} jars {stamp}\n")
        return self.libs_dir

    def _copy_dependencies(self, mvn: str, target: Path) -> None:
        coordinate = f"{KAFKA_ARTIFACT}:{self.version}"
        cmd = [
            mvn, "-q", "-B", "-Dstyle.color=never", "-f", str(POM),
            f"-Dkafka.version={self.version}",
            "dependency:copy-dependencies", f"-DoutputDirectory={target}",
        ]  # fmt: skip
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            minutes = FETCH_TIMEOUT_S // 60
            raise BrokerError(f"Maven did not fetch {coordinate} within {minutes} min") from exc
        if done.returncode != 0:
            reason = maven_failure_reason(done.stdout + "\n" + done.stderr)
            raise BrokerError(f"Maven could not fetch {coordinate}: {reason}")
        if not (target / f"kafka_2.13-{self.version}.jar").is_file():
            raise BrokerError(f"Maven could not fetch {coordinate}: the broker jar is missing")

    # -- start -------------------------------------------------------------------

    def start(self, timeout: float = 60) -> BrokerStatus:
        """Start the broker detached and wait until it answers Kafka requests.

        Idempotent: a broker already running from this home is waited for and
        returned, never started twice. The storage is formatted on the first start
        only. The broker survives the calling process (its own session).
        """
        began = time.monotonic()
        self.broker_dir.mkdir(parents=True, exist_ok=True)
        with _locked(self.broker_dir / ".lock"):
            pid = self._running_pid()
            if pid is not None:
                self._wait_ready(pid, began + timeout, timeout)
                return self._status(pid, began, already_running=True)
            java = require_tool("java", JAVA_HINT)
            self._check_ports_free()
            libs = self.fetch()
            self._write_config()
            self._format_once(java, libs)
            pid = self._launch(java, libs)
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
        for port, variable in (
            (self.port, "BROKER_PORT"),
            (self.controller_port, "CONTROLLER_PORT"),
        ):
            if port_in_use(self.host, port):
                raise BrokerError(
                    f"{self.host}:{port} is already in use by another process "
                    f"(a broker from another home?): stop it or set YUJING_{variable}"
                )

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

    def _java_cmd(self, java: str, libs: Path, main: str, *args: str) -> list[str]:
        require_file(LOG4J_CONFIG)
        return [
            java,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={self.logs_dir}",
            "-cp", f"{libs}/*",  # java expands the wildcard itself
            main, *args,
        ]  # fmt: skip

    def _format_once(self, java: str, libs: Path) -> None:
        """Format the KRaft storage unless it already is; keep the cluster id in home."""
        if (self.data_dir / "meta.properties").is_file():
            return
        cluster_id = self._cluster_id()
        cmd = self._java_cmd(
            java, libs, "kafka.tools.StorageTool",
            "format", "-t", cluster_id, "-c", str(self.config_path),
        )  # fmt: skip
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"formatting {self.data_dir} took over {FORMAT_TIMEOUT_S} s") from exc
        if done.returncode != 0:
            reason = last_line(done.stdout + "\n" + done.stderr) or f"exit code {done.returncode}"
            raise BrokerError(f"could not format broker storage in {self.data_dir}: {reason}")

    def _cluster_id(self) -> str:
        if self.cluster_id_file.is_file():
            cluster_id = self.cluster_id_file.read_text().strip()
            if cluster_id:
                return cluster_id
        cluster_id = new_cluster_id()
        self.cluster_id_file.write_text(cluster_id + "\n")
        return cluster_id

    def _launch(self, java: str, libs: Path) -> int:
        if not re.fullmatch(r"\d+[kKmMgG]?", self.heap):
            raise BrokerError(f"heap size {self.heap!r} is not a JVM size such as 512m or 1g")
        cmd = self._java_cmd(java, libs, "kafka.Kafka", str(self.config_path))
        cmd[1:1] = [f"-Xms{self.heap}", f"-Xmx{self.heap}", *JVM_OPTS]
        with self.console_log.open("wb") as console:
            # Its own session: Ctrl-C in the terminal and the CLI exiting leave it running.
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                cwd=self.broker_dir,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._proc.pid}\n")
        return self._proc.pid

    def _wait_ready(self, pid: int, deadline: float, timeout: float) -> None:
        log_offset = _size(self.log_path)
        while True:
            if not self._alive(pid):
                self.pid_file.unlink(missing_ok=True)
                raise BrokerError(self._exit_reason(pid, log_offset))
            if kafka_responds(self.host, self.port, timeout=1.0):
                return
            if time.monotonic() >= deadline:
                raise BrokerError(
                    f"broker did not accept connections on {self.bootstrap} within "
                    f"{timeout:g} s; see {self.log_path}"
                )
            time.sleep(0.1)

    def _exit_reason(self, pid: int, log_offset: int) -> str:
        code = self._proc.returncode if self._proc and self._proc.pid == pid else None
        how = f" (exit code {code})" if code is not None else ""
        reason = last_logged_error(self.log_path, log_offset) or last_line(
            _read_text(self.console_log)
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
        with _locked(self.broker_dir / ".lock"):
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
        _signal(pid, signal.SIGTERM)
        if self._wait_exit(pid, grace):
            return
        _signal(pid, signal.SIGKILL)
        if not self._wait_exit(pid, 10):
            raise BrokerError(f"broker (pid {pid}) did not exit even after SIGKILL")

    def _wait_exit(self, pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self._alive(pid):
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True

    # -- process bookkeeping -----------------------------------------------------

    def _alive(self, pid: int) -> bool:
        if self._proc is not None and self._proc.pid == pid:
            return self._proc.poll() is None  # also reaps our own child
        return pid_alive(pid)

    def _running_pid(self) -> int | None:
        """The pid of this home's broker if it is alive; a stale pid file is removed."""
        pid = self._recorded_pid()
        if pid is None:
            return None
        if self._alive(pid) and self._is_ours(pid):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def _recorded_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def _is_ours(self, pid: int) -> bool:
        """Guard against a recycled pid: the process must be Kafka with our config."""
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            return True  # no /proc (not Linux): trust the pid file
        return b"kafka.Kafka" in args and os.fsencode(self.config_path) in args

    # -- status and topics -------------------------------------------------------

    def status(self) -> BrokerStatus:
        """Is it running, where, which version, and which topics it holds (if reachable)."""
        pid = self._recorded_pid()
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
        with self._admin() as admin:
            return sorted(t for t in admin.list_topics() if not t.startswith("__"))

    def ensure_topics(self, topics: Sequence[TopicSpec], timeout: float = 30) -> list[str]:
        """Create the topics that do not exist yet; return the names created.

        An existing topic with another partition count is an error rather than
        silently accepted: co-partitioned topics must have equal counts.
        """
        with self._admin() as admin:
            try:
                return create_missing_topics(admin, topics, self.bootstrap, timeout)
            except TopicError as exc:
                raise BrokerError(str(exc)) from exc

    @contextlib.contextmanager
    def _admin(self) -> Iterator[KafkaAdminClient]:
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        # Probe first: kafka-python logs a burst of connection errors to stderr
        # when pointed at a closed port.
        if not kafka_responds(self.host, self.port, timeout=2.0):
            raise BrokerError(f"no broker answers at {self.bootstrap}: run `yujing broker start`")
        try:
            admin = KafkaAdminClient(
                bootstrap_servers=self.bootstrap,
                client_id="yujing-broker",
                bootstrap_timeout_ms=10_000,
            )
        except KafkaError as exc:
            raise BrokerError(f"cannot talk to the broker at {self.bootstrap}: {exc}") from exc
        try:
            yield admin
        finally:
            admin.close()


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


# -- small helpers ------------------------------------------------------------------


def render_server_properties(template: str, **values: object) -> str:
    """Fill ``${name}`` placeholders; a placeholder without a value raises ``KeyError``."""
    return Template(template).substitute({k: str(v) for k, v in values.items()})


def new_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` prints it, without a JVM start.

    Kafka's ``Uuid`` is 16 random bytes in URL-safe base64 without padding, and it
    avoids ids starting with ``-`` (they read as command-line options).
    """
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


def require_tool(name: str, hint: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BrokerError(f"{name} not found on PATH: {hint}")
    return path


def require_file(path: Path) -> None:
    if not path.is_file():
        raise BrokerError(f"{path} is missing: install yujing from its checkout (pip install -e .)")


def kafka_responds(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether a Kafka broker at ``host:port`` answers an ApiVersions request.

    A bare TCP connect is not enough: the port may belong to something else, and
    Kafka only answers once the broker has joined its quorum and is unfenced.
    """
    correlation_id = 0x594A  # "YJ"
    client_id = b"yujing-probe"
    # Request header v1 + empty ApiVersions v0 body; v0 is accepted by every broker.
    request = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(struct.pack(">i", len(request)) + request)
            head = _recv_exact(sock, 10)  # size, correlation id, error code
    except OSError:
        return False
    if head is None:
        return False
    _length, echoed, error = struct.unpack(">iih", head)
    return bool(echoed == correlation_id and error == 0)


def port_in_use(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, belongs to someone else
    # An exited child nobody reaped yet still answers signal 0: reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    return _proc_state(pid) not in ("Z", "X")


def maven_failure_reason(output: str) -> str:
    """The line of Maven's output that says what went wrong, without its boilerplate."""
    boilerplate = re.compile(
        r"^(To see the full stack trace|Re-run Maven|For more information|\[Help \d+\])"
    )
    lines = [_strip_ansi(line).removeprefix("[ERROR]").strip() for line in output.splitlines()]
    lines = [line for line in lines if line and not boilerplate.match(line)]
    if not lines:
        return "no output from Maven"
    reason = lines[-1].removesuffix("-> [Help 1]").strip()
    # Peel the generic wrappers Maven puts around the actual cause.
    for wrapper in (
        r"^Failed to execute goal .*?on project \S+?: ",
        r"^Could not resolve dependencies for project \S+?: ",
        r"^The following artifacts could not be resolved: \S+?(?:, \S+?)*: ",
    ):
        reason = re.sub(wrapper, "", reason)
    return reason


def last_line(text: str) -> str:
    lines = [_strip_ansi(line).strip() for line in text.splitlines()]
    return next((line for line in reversed(lines) if line), "")[:400]


def tail_lines(path: Path, count: int) -> list[str]:
    """The last ``count`` lines of a text file, read from its end (logs grow large)."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        block, data = 8192, b""
        while end > 0 and data.count(b"\n") <= count:
            start = max(0, end - block)
            f.seek(start)
            data = f.read(end - start) + data
            end = start
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:] if count > 0 else []










def _recv_exact(sock: socket.socket, count: int) -> bytes | None:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


def _proc_state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) S ...": comm may contain spaces and parentheses.
    return stat.rpartition(")")[2].split()[0]


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def last_logged_error(log: Path, offset: int) -> str:
    """The last ERROR/FATAL entry the broker logged since ``offset``, with its exception.

    Kafka logs a generic line ("Exiting Kafka due to fatal exception") and puts the
    actual cause in the stack trace under it, so the trace's first line is appended.
    """
    try:
        with log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    entries = re.split(r"^(?=\[[^]\n]+\] )", text, flags=re.MULTILINE)
    errors = [e for e in entries if re.match(r"^\[[^]]+\] (ERROR|FATAL)", e)]
    if not errors:
        return ""
    first, *trace = errors[-1].strip().splitlines()
    message = re.sub(r"^\[[^]]+\] (ERROR|FATAL)\s+", "", first)
    message = re.sub(r"\s+\([\w.$]+\)$", "", message)  # the logger name
    cause = next((line.strip() for line in trace if _EXCEPTION_LINE.match(line.strip())), "")
    if cause:
        message += ": " + re.sub(r"^(?:[a-z_][\w$]*\.)+", "", cause)  # drop the package
    return message[:400]


_EXCEPTION_LINE = re.compile(r"^(?:[a-z_][\w$]*\.)+\w*(?:Exception|Error)\b")


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _strip_ansi(text: str) -> str:
    # Debian's Maven colours its output even in batch mode.
    return _ANSI.sub("", text)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive advisory lock on ``path``, held for the ``with`` block."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- the `yujing broker` commands ----------------------------------------------------

broker_app = typer.Typer(
    help="Run a local Apache Kafka broker: fetched from Maven Central once, cached, "
    "started in the background on loopback.",
    no_args_is_help=True,
)
_out = Console(highlight=False)
_err = Console(stderr=True, highlight=False, soft_wrap=True)


def _fail(error: BrokerError) -> NoReturn:
    _err.print(f"[red]error: {escape(str(error))}[/red]")
    raise typer.Exit(1)


def _local_broker() -> tuple[Settings, LocalBroker]:
    from yujing.settings import get_settings

    settings = get_settings()
    return settings, broker_from_settings(settings)


@broker_app.command("start")
def start_command(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker.")] = 60,
    fresh: Annotated[bool, typer.Option(
        "--fresh", help="Stop the broker if running and delete all its topics first (start empty).")] = False,
) -> None:
    """Fetch Kafka if needed, start the broker and create the contract topics."""
    settings, broker = _local_broker()
    try:
        if fresh:
            broker.wipe()
        if not broker.is_fetched:
            began = time.monotonic()
            with _out.status(
                f"Fetching Apache Kafka {broker.version} from Maven Central (once)..."
            ):
                broker.fetch()
            _out.print(
                f"fetched Kafka {broker.version} into {broker.libs_dir} in {time.monotonic() - began:.1f} s"
            )
        with _out.status(f"Starting Kafka {broker.version} on {broker.bootstrap}..."):
            started = broker.start(timeout=timeout)
        with _out.status("Creating topics..."):
            created = broker.ensure_topics(contract_topics(settings))
            topics = broker.list_topics()
    except BrokerError as error:
        _fail(error)
    state = "already running" if started.already_running else "started"
    _out.print(
        f"[green]Kafka {broker.version} {state}[/green] at [bold]{broker.bootstrap}[/bold] "
        f"(pid {started.pid}) in {started.elapsed or 0:.1f} s"
    )
    for name in topics:
        _out.print(f"  {escape(name)}" + ("  [dim](created)[/dim]" if name in created else ""))
    _out.print(f"[dim]log: {broker.log_path}[/dim]")


@broker_app.command("create-topics")
def create_topics_command(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the broker to answer.")] = 120,
) -> None:
    """Create the contract's and the worker's topics on YUJING_BOOTSTRAP_SERVERS (any Kafka, e.g.
    in Compose or Kubernetes) with their partition counts and configs; only what is missing."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError
    from tenacity import Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

    from yujing.settings import get_settings

    settings = get_settings()
    wanted = {t.name: t for t in [*contract_topics(settings), *worker_topics(settings)]}
    try:
        # A broker still starting refuses connections: wait for it rather than fail the deployment.
        for attempt in Retrying(retry=retry_if_exception_type(KafkaError), stop=stop_after_delay(timeout),
                                wait=wait_fixed(2), reraise=True):
            with attempt:
                admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id="yujing-topics")
        try:
            created = create_missing_topics(admin, list(wanted.values()), settings.bootstrap, timeout=60)
        finally:
            admin.close()
    except KafkaError as exc:
        _fail(BrokerError(f"no broker answers at {settings.bootstrap} after {timeout:.0f} s: {exc}"))
    except TopicError as error:
        _fail(BrokerError(str(error)))
    _out.print(f"{len(created)} topic(s) created on {settings.bootstrap}; {len(wanted) - len(created)} existed")
    for name in created:
        _out.print(f"  {escape(name)}")


@broker_app.command("stop")
def stop_command(
    timeout: Annotated[float, typer.Option(help="Seconds before SIGKILL.")] = 30,
) -> None:
    """Stop the broker; its data stays for the next start."""
    _, broker = _local_broker()
    try:
        stopped = broker.stop(timeout=timeout)
    except BrokerError as error:
        _fail(error)
    _out.print("[green]broker stopped[/green]" if stopped else "broker was not running")


@broker_app.command("status")
def status_command() -> None:
    """Show whether the broker runs, its address, version and topics (exit 1 if down)."""
    _, broker = _local_broker()
    try:
        st = broker.status()
    except BrokerError as error:
        _fail(error)
    if st.running and st.reachable:
        _out.print(
            f"[green]running[/green] pid {st.pid}, Kafka {st.version} at [bold]{st.address}[/bold]"
        )
    elif st.running:
        _out.print(
            f"[yellow]starting or stuck[/yellow]: pid {st.pid} does not answer on {st.address}"
        )
    elif st.reachable:
        _out.print(f"[yellow]not ours[/yellow]: another Kafka answers at {st.address}")
    else:
        _out.print(f"[red]not running[/red] ({st.address})")
    for name in st.topics:
        _out.print(f"  {escape(name)}")
    _out.print(f"[dim]log: {st.log_path}[/dim]")
    if not st.running:
        raise typer.Exit(1)


@broker_app.command("logs")
def logs_command(
    lines: Annotated[int, typer.Option("--lines", "-n", help="How many lines to show.")] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines.")
    ] = False,
) -> None:
    """Print the end of the broker's log."""
    _, broker = _local_broker()
    log = broker.log_path
    if not log.is_file():
        _fail(BrokerError(f"no broker log at {log} yet: run `yujing broker start`"))
    for line in tail_lines(log, lines):
        typer.echo(line)
    if follow:
        with contextlib.suppress(KeyboardInterrupt):
            _follow(log)


def _follow(log: Path) -> None:
    position = _size(log)
    while True:
        size = _size(log)
        if size < position:
            position = 0  # rotated: start on the new file
        if size > position:
            with log.open("rb") as f:
                f.seek(position)
                chunk = f.read()
            position += len(chunk)
            typer.echo(chunk.decode("utf-8", errors="replace"), nl=False)
        time.sleep(0.5)
