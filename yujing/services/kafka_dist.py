"""The Kafka distribution the local broker runs, and what it reads and says.

The broker's jars come from Maven Central through ``deploy/local/pom.xml`` (``mvn
dependency:copy-dependencies``) and are cached once per machine under
``cache_dir/kafka-<version>/libs``; :class:`KafkaDistribution` fetches them and builds the java
command lines of the broker and of its storage tool. Besides: the broker's
``server.properties`` and KRaft cluster id, the ApiVersions probe that tells whether a Kafka
broker answers, an admin client on it, and the one line that says why Maven or the broker
failed. :class:`yujing.services.broker.LocalBroker` decides what runs where and when.
Importing this module has no side effects.
"""

from __future__ import annotations

import base64
import contextlib
import ipaddress
import os
import re
import secrets
import shutil
import socket
import ssl
import struct
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING

from streams import topics
from streams.security import PLAINTEXT, KafkaSecurity
from streams.topics import TopicError
from yujing.services.lifecycle import ServiceError, failure_line, locked, strip_ansi

if TYPE_CHECKING:
    from kafka import KafkaAdminClient

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "local"
POM = DEPLOY_DIR / "pom.xml"
SERVER_TEMPLATE = DEPLOY_DIR / "server.properties.template"
SECURE_TEMPLATE = DEPLOY_DIR / "server-secure.properties.template"
LOG4J_CONFIG = DEPLOY_DIR / "log4j2.properties"

KAFKA_ARTIFACT = "org.apache.kafka:kafka_2.13"
DEFAULT_VERSION = "4.1.1"

MVN_HINT = "install Maven to fetch the Kafka jars (apt-get install maven)"
FETCH_TIMEOUT_S = 30 * 60
FORMAT_TIMEOUT_S = 120

# Same flags as Kafka's own kafka-run-class.sh (KAFKA_JVM_PERFORMANCE_OPTS).
JVM_OPTS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


class BrokerError(ServiceError):
    """The local broker cannot do what was asked; the message is one line for a human."""


@dataclass(frozen=True)
class KafkaDistribution:
    """One Kafka version's jars in the machine's cache, shared by every yujing home."""

    cache_dir: Path
    version: str = DEFAULT_VERSION

    # -- the jars, fetched once --------------------------------------------------------

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

    def fetch(self) -> Path:
        """Download the broker's jars once per machine and version; return the libs dir."""
        if self.is_fetched:
            return self.libs_dir
        mvn = require_tool("mvn", MVN_HINT)
        require_file(POM)
        self.dist_dir.mkdir(parents=True, exist_ok=True)
        # Several checkouts share the cache: one fetches, the others wait and reuse it.
        with locked(self.dist_dir / ".fetch.lock"):
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

    # -- running its programs --------------------------------------------------------

    def java_cmd(self, java: str, logs_dir: Path, main: str, *args: str) -> list[str]:
        """``java`` running ``main`` of these jars, logging through yujing's log4j2 config
        into ``logs_dir``."""
        require_file(LOG4J_CONFIG)
        return [
            java,
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={logs_dir}",
            "-cp", f"{self.libs_dir}/*",  # java expands the wildcard itself
            main, *args,
        ]  # fmt: skip

    def server_cmd(self, java: str, logs_dir: Path, config_path: Path, heap: str) -> list[str]:
        """The broker itself (``kafka.Kafka`` on ``config_path``) with a ``heap`` such as 512m."""
        if not re.fullmatch(r"\d+[kKmMgG]?", heap):
            raise BrokerError(f"heap size {heap!r} is not a JVM size such as 512m or 1g")
        cmd = self.java_cmd(java, logs_dir, "kafka.Kafka", str(config_path))
        cmd[1:1] = [f"-Xms{heap}", f"-Xmx{heap}", *JVM_OPTS]
        return cmd

    def format_storage(
        self, java: str, logs_dir: Path, config_path: Path, cluster_id: str, data_dir: Path,
        scram_credentials: Sequence[str] = (),
    ) -> None:
        """Format the KRaft storage of ``config_path`` (in ``data_dir``) for ``cluster_id``, with
        SCRAM users such as ``SCRAM-SHA-512=[name=yujing,password=...]`` in its first metadata."""
        cmd = self.java_cmd(
            java, logs_dir, "kafka.tools.StorageTool",
            "format", "-t", cluster_id, "-c", str(config_path),
        )  # fmt: skip
        for credential in scram_credentials:
            cmd += ["--add-scram", credential]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=FORMAT_TIMEOUT_S, check=False
            )
        except subprocess.TimeoutExpired as exc:
            raise BrokerError(f"formatting {data_dir} took over {FORMAT_TIMEOUT_S} s") from exc
        if done.returncode != 0:
            raise BrokerError(f"could not format broker storage in {data_dir}: {failure_line(done)}")


# -- what the broker reads and says -----------------------------------------------------


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


def kafka_responds(host: str, port: int, timeout: float = 1.0, tls: ssl.SSLContext | None = None) -> bool:
    """Whether a Kafka broker at ``host:port`` answers an ApiVersions request (inside TLS with
    ``tls``: a SASL_SSL listener answers it before any login).

    A bare TCP connect is not enough: the port may belong to something else, and
    Kafka only answers once the broker has joined its quorum and is unfenced.
    """
    correlation_id = 0x594A  # "YJ"
    client_id = b"yujing-probe"
    # Request header v1 + empty ApiVersions v0 body; v0 is accepted by every broker.
    request = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    try:
        with contextlib.ExitStack() as stack:
            sock = stack.enter_context(socket.create_connection((host, port), timeout=timeout))
            if tls is not None:
                sock = stack.enter_context(tls.wrap_socket(sock, server_hostname=host))
            sock.sendall(struct.pack(">i", len(request)) + request)
            head = _recv_exact(sock, 10)  # size, correlation id, error code
    except OSError:  # ssl.SSLError too: a plain port or a certificate we do not trust
        return False
    if head is None:
        return False
    _length, echoed, error = struct.unpack(">iih", head)
    return bool(echoed == correlation_id and error == 0)


@contextlib.contextmanager
def admin_client(host: str, port: int, security: KafkaSecurity = PLAINTEXT) -> Iterator[KafkaAdminClient]:
    """A Kafka admin client on the broker at ``host:port``, closed after the ``with`` block."""
    bootstrap = f"{host}:{port}"
    # Probe first: kafka-python logs a burst of connection errors to stderr
    # when pointed at a closed port.
    if not kafka_responds(host, port, timeout=2.0, tls=security.ssl_context()):
        raise BrokerError(f"no {security.protocol} broker answers at {bootstrap}: run `yujing broker start`")
    try:
        with topics.admin_client(bootstrap, client_id="yujing-broker", security=security) as admin:
            yield admin
    except TopicError as exc:
        raise BrokerError(str(exc)) from exc


# The throwaway CA's own openssl config: only the extensions a CA needs (the system's config varies).
_CA_CONFIG = """[req]
distinguished_name = dn
x509_extensions = ca
prompt = no
[dn]
CN = yujing local broker CA
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
"""


def make_tls_material(directory: Path, host: str, days: int = 825) -> None:
    """A throwaway CA (``ca.crt``, ``ca.key``) and a broker certificate it signs for ``host``,
    localhost and 127.0.0.1, with its key in one file (``broker.pem``, as Kafka's PEM keystore
    reads it), made with the ``openssl`` command; files already there are kept."""
    ca_crt, ca_key, broker_pem = directory / "ca.crt", directory / "ca.key", directory / "broker.pem"
    if ca_crt.is_file() and broker_pem.is_file():
        return
    openssl = require_tool("openssl", "install OpenSSL (apt-get install openssl)")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    names = {"IP:127.0.0.1", "DNS:localhost"}
    try:
        names.add(f"IP:{ipaddress.ip_address(host)}")
    except ValueError:
        names.add(f"DNS:{host}")
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        work = Path(scratch)
        (work / "ca.cnf").write_text(_CA_CONFIG)
        (work / "broker.ext").write_text(
            f"subjectAltName={','.join(sorted(names))}\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n"
        )
        new_key = ("-newkey", "rsa:2048", "-nodes", "-config", str(work / "ca.cnf"))
        if not (ca_crt.is_file() and ca_key.is_file()):
            _openssl(openssl, "req", "-x509", "-new", *new_key, "-days", str(days),
                     "-keyout", str(ca_key), "-out", str(ca_crt))  # fmt: skip
        _openssl(openssl, "req", "-new", *new_key, "-subj", f"/CN={host}",
                 "-keyout", str(work / "broker.key"), "-out", str(work / "broker.csr"))  # fmt: skip
        _openssl(openssl, "x509", "-req", "-in", str(work / "broker.csr"), "-CA", str(ca_crt),
                 "-CAkey", str(ca_key), "-set_serial", str(secrets.randbits(63)), "-days", str(days),
                 "-extfile", str(work / "broker.ext"), "-out", str(work / "broker.crt"))  # fmt: skip
        chain = [work / "broker.key", work / "broker.crt", ca_crt]
        broker_pem.write_text("".join(part.read_text() for part in chain))
    for secret in (ca_key, broker_pem):
        secret.chmod(0o600)


def _openssl(openssl: str, *args: str) -> None:
    done = subprocess.run([openssl, *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise BrokerError(f"openssl {args[0]} failed: {failure_line(done)}")


def maven_failure_reason(output: str) -> str:
    """The line of Maven's output that says what went wrong, without its boilerplate."""
    boilerplate = re.compile(
        r"^(To see the full stack trace|Re-run Maven|For more information|\[Help \d+\])"
    )
    lines = [strip_ansi(line).removeprefix("[ERROR]").strip() for line in output.splitlines()]
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


def _recv_exact(sock: socket.socket, count: int) -> bytes | None:
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        if not chunk:
            return None
        data += chunk
    return data


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
