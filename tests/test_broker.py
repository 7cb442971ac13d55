"""Tests of the local Kafka broker manager, :mod:`yujing.services.broker`.

Most tests need neither Java nor Maven; ``test_local_broker_lifecycle`` (marked
``kafka``) runs a real broker on free ports in a temporary home, reusing the
machine's shared jar cache.
"""

from __future__ import annotations

import base64
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

import yujing.settings as settings_module
from streams.topics import TopicSpec, contract_topics
from yujing.cli.broker import broker_app
from yujing.services.broker import BrokerError, LocalBroker, broker_from_settings
from yujing.services.kafka_dist import (
    kafka_responds,
    last_logged_error,
    maven_failure_reason,
    new_cluster_id,
    render_server_properties,
)
from yujing.services.lifecycle import pid_alive, port_in_use, tail_lines
from yujing.settings import Settings, TopicNames

MAVEN_NOT_FOUND = """\
[ERROR] Failed to execute goal on project local-kafka-broker: Could not resolve dependencies \
for project yujing.local:local-kafka-broker:pom:1: The following artifacts could not be \
resolved: org.apache.kafka:kafka_2.13:jar:9.9.9, org.apache.kafka:kafka-tools:jar:9.9.9: \
Could not find artifact org.apache.kafka:kafka_2.13:jar:9.9.9 in central \
(https://repo.maven.apache.org/maven2) -> [Help 1]
[ERROR] 
[ERROR] To see the full stack trace of the errors, re-run Maven with the -e switch.
[ERROR] Re-run Maven using the -X switch to enable full debug logging.
[ERROR] 
[ERROR] For more information about the errors and possible solutions, please read the following articles:
[ERROR] [Help 1] http://cwiki.apache.org/confluence/display/MAVEN/DependencyResolutionException
"""


def free_ports(count: int) -> list[int]:
    """Ports nobody listens on; held open together so they are distinct."""
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def parse_properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


@pytest.fixture
def local_broker(tmp_path: Path) -> LocalBroker:
    port, controller_port = free_ports(2)
    return LocalBroker(
        home=tmp_path / "home",
        cache_dir=tmp_path / "cache",
        port=port,
        controller_port=controller_port,
    )


@pytest.fixture
def no_tools(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A PATH on which neither java nor mvn can be found."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))


def fake_fetched_cache(broker: LocalBroker) -> None:
    broker.libs_dir.mkdir(parents=True)
    broker.fetched_marker.write_text("fake\n")


# -- pure tests ----------------------------------------------------------------------


def test_server_properties_fill_ports_and_data_dir(local_broker: LocalBroker) -> None:
    text = local_broker.server_properties()
    props = parse_properties(text)

    p, c = local_broker.port, local_broker.controller_port
    assert "${" not in text
    assert props["listeners"] == f"PLAINTEXT://127.0.0.1:{p},CONTROLLER://127.0.0.1:{c}"
    assert props["advertised.listeners"] == f"PLAINTEXT://127.0.0.1:{p}"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{c}"
    assert props["log.dirs"] == str(local_broker.data_dir)
    assert Path(props["log.dirs"]).is_absolute()
    assert props["process.roles"] == "broker,controller"
    assert props["offsets.topic.replication.factor"] == "1"


def test_render_refuses_an_unfilled_placeholder() -> None:
    assert render_server_properties("a=${host}:${port}", host="h", port=1) == "a=h:1"
    with pytest.raises(KeyError):
        render_server_properties("a=${unknown}", host="h")


def test_paths_live_under_home_and_cache(tmp_path: Path) -> None:
    broker = LocalBroker(home=tmp_path / "h", cache_dir=tmp_path / "c", version="4.0.0")

    assert broker.bootstrap == "127.0.0.1:9092"
    assert broker.pid_file.parent == broker.data_dir.parent == tmp_path / "h" / "broker"
    assert broker.libs_dir == tmp_path / "c" / "kafka-4.0.0" / "libs"


def test_contract_topics_are_copartitioned() -> None:
    settings = Settings(input_partitions=4)
    topics = {t.name: t for t in contract_topics(settings)}
    names = settings.topics

    keyed = [names.transactions, names.complaints, names.merchants, names.warnings, names.feedback]
    assert {topics[name].partitions for name in keyed} == {4}
    assert topics[names.deadletter].partitions == 1
    assert topics[names.merchants].config["cleanup.policy"] == "compact"
    for name in (names.transactions, names.complaints, names.merchants):
        assert topics[name].config["retention.ms"] == "-1"


def test_contract_topics_follow_configured_names() -> None:
    settings = Settings(topics=TopicNames(transactions="t.tx", deadletter="t.dlq", feedback="t.fb",
                                          merchant_days="t.days"))
    names = [t.name for t in contract_topics(settings)]
    assert names[0] == "t.tx" and "t.dlq" in names and names[-3:-1] == ["t.fb", "t.days"]


def test_broker_from_settings(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        cache_dir=tmp_path / "c",
        kafka_version="4.0.1",
        broker_port=1234,
        controller_port=1235,
    )
    broker = broker_from_settings(settings)
    assert (broker.home, broker.version, broker.bootstrap) == (tmp_path, "4.0.1", "127.0.0.1:1234")
    assert broker.controller_port == 1235


def test_cluster_id_looks_like_kafkas() -> None:
    cluster_id = new_cluster_id()
    assert len(cluster_id) == 22 and not cluster_id.startswith("-")
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16


def test_java_missing_is_one_clear_line(
    local_broker: LocalBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    with pytest.raises(BrokerError) as caught:
        local_broker.start()
    message = str(caught.value)
    assert message.startswith("java not found on PATH: install OpenJDK 17")
    assert "\n" not in message


@pytest.mark.usefixtures("no_tools")
def test_mvn_missing_is_one_clear_line(local_broker: LocalBroker) -> None:
    with pytest.raises(BrokerError, match=r"^mvn not found on PATH: install Maven"):
        local_broker.fetch()


@pytest.mark.usefixtures("no_tools")
def test_cached_jars_need_no_maven(local_broker: LocalBroker) -> None:
    fake_fetched_cache(local_broker)
    assert local_broker.fetch() == local_broker.libs_dir


@pytest.mark.usefixtures("no_tools")
def test_half_finished_fetch_is_redone(local_broker: LocalBroker) -> None:
    local_broker.libs_dir.mkdir(parents=True)  # jars copied, marker never written
    assert not local_broker.is_fetched
    with pytest.raises(BrokerError, match="^mvn not found"):
        local_broker.fetch()


def test_maven_failure_names_the_cause(
    local_broker: LocalBroker, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    mvn = bin_dir / "mvn"
    mvn.write_text(f"#!{sys.executable}\nimport sys\nprint({MAVEN_NOT_FOUND!r})\nsys.exit(1)\n")
    mvn.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))

    with pytest.raises(BrokerError) as caught:
        local_broker.fetch()
    assert str(caught.value) == (
        "Maven could not fetch org.apache.kafka:kafka_2.13:4.1.1: Could not find artifact "
        "org.apache.kafka:kafka_2.13:jar:9.9.9 in central (https://repo.maven.apache.org/maven2)"
    )
    assert not local_broker.is_fetched
    assert not list(local_broker.dist_dir.glob("libs*"))


def test_maven_failure_reason_without_output() -> None:
    assert maven_failure_reason("\x1b[0m\n\n") == "no output from Maven"


def test_probe_rejects_closed_ports_and_non_kafka_servers() -> None:
    (closed,) = free_ports(1)
    assert not kafka_responds("127.0.0.1", closed, timeout=0.3)
    assert not port_in_use("127.0.0.1", closed)
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        assert port_in_use("127.0.0.1", port)
        assert not kafka_responds("127.0.0.1", port, timeout=0.3)


def test_stopped_broker_status_and_stop(local_broker: LocalBroker) -> None:
    assert local_broker.stop() is False
    status = local_broker.status()
    assert (status.running, status.reachable, status.pid, status.topics) == (False, False, None, ())


def test_stale_pid_file_is_ignored_and_removed(local_broker: LocalBroker) -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    local_broker.broker_dir.mkdir(parents=True)
    local_broker.pid_file.write_text(f"{dead.pid}\n")

    assert not local_broker.status().running
    assert local_broker.stop() is False
    assert not local_broker.pid_file.exists()


def test_a_foreign_process_is_not_taken_for_the_broker(local_broker: LocalBroker) -> None:
    # A recycled pid must not be signalled: this sleep is not Kafka.
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        local_broker.broker_dir.mkdir(parents=True)
        local_broker.pid_file.write_text(f"{other.pid}\n")
        assert local_broker.stop() is False
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_startup_failure_names_the_exception(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text(
        "[2026-01-01T00:00:00,000] ERROR an older failure (k.Kafka$)\n"
        "[2026-01-01T00:00:01,000] INFO  Registered MBean (k.u.Log4jControllerRegistration$)\n"
    )
    offset = log.stat().st_size
    with log.open("a") as f:
        f.write(
            "[2026-01-01T00:00:02,000] ERROR Exiting Kafka due to fatal exception (k.Kafka$)\n"
            "java.lang.RuntimeException: Stored node id 7 doesn't match previous node id 1\n"
            "\tat kafka.Kafka.main(Kafka.scala)\n"
            "[2026-01-01T00:00:02,100] INFO  shutting down (k.Kafka$)\n"
        )
    assert last_logged_error(log, offset) == (
        "Exiting Kafka due to fatal exception: "
        "RuntimeException: Stored node id 7 doesn't match previous node id 1"
    )
    assert last_logged_error(log, 0).startswith("Exiting Kafka")
    assert last_logged_error(tmp_path / "missing.log", 0) == ""


def test_tail_lines(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    assert tail_lines(log, 3) == ["line 4997", "line 4998", "line 4999"]
    assert tail_lines(log, 0) == []


# -- the CLI ---------------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    port, controller_port = free_ports(2)
    monkeypatch.setenv("YUJING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("YUJING_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("YUJING_BROKER_PORT", str(port))
    monkeypatch.setenv("YUJING_CONTROLLER_PORT", str(controller_port))
    settings_module.get_settings.cache_clear()
    yield
    settings_module.get_settings.cache_clear()


@pytest.mark.usefixtures("cli_env", "no_tools")
def test_cli_error_is_one_red_line_without_traceback() -> None:
    result = CliRunner().invoke(broker_app, ["start"])
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: mvn not found on PATH")
    assert "Traceback" not in result.output


@pytest.mark.usefixtures("cli_env")
def test_cli_on_a_stopped_broker() -> None:
    runner = CliRunner()
    status = runner.invoke(broker_app, ["status"])
    assert status.exit_code == 1 and "not running" in status.stdout
    stop = runner.invoke(broker_app, ["stop"])
    assert stop.exit_code == 0 and "not running" in stop.stdout
    logs = runner.invoke(broker_app, ["logs"])
    assert logs.exit_code == 1 and logs.stderr.startswith("error: no broker log")


# -- against a real broker ---------------------------------------------------------------


@pytest.mark.kafka
@pytest.mark.timeout(600)  # the first run on a machine also downloads ~55 MB of jars
def test_local_broker_lifecycle(tmp_path: Path) -> None:
    from kafka import KafkaAdminClient
    from kafka.admin import ConfigResource, ConfigResourceType

    port, controller_port = free_ports(2)
    settings = Settings(
        home=tmp_path / "home",
        broker_port=port,
        controller_port=controller_port,
        input_partitions=3,
    )  # cache_dir stays the machine's shared one
    broker = broker_from_settings(settings)
    names = settings.topics
    broker.fetch()
    try:
        first = broker.start(timeout=60)
        assert first.running and first.reachable and not first.already_running
        assert first.pid is not None and pid_alive(first.pid)

        again = broker.start()
        assert again.already_running and again.pid == first.pid
        assert again.elapsed is not None and again.elapsed < 2
        # Another invocation (a fresh manager on the same home) finds it too.
        assert broker_from_settings(settings).start().pid == first.pid

        specs = contract_topics(settings)
        assert broker.ensure_topics(specs) == [spec.name for spec in specs]
        assert broker.ensure_topics(specs) == []
        with pytest.raises(BrokerError, match="has 3 partitions, expected 5"):
            broker.ensure_topics([TopicSpec(names.transactions, 5)])

        with KafkaAdminClient(bootstrap_servers=broker.bootstrap) as admin:
            resources = [
                ConfigResource(ConfigResourceType.TOPIC, name)
                for name in (names.merchants, names.transactions)
            ]
            configs = admin.describe_configs(resources)["topic"]
            described = admin.describe_topics([spec.name for spec in specs])
        assert configs[names.merchants]["cleanup.policy"]["value"] == "compact"
        assert configs[names.transactions]["retention.ms"]["value"] == "-1"
        assert {t["name"]: len(t["partitions"]) for t in described} == {
            spec.name: spec.partitions for spec in specs
        }
        assert set(broker.status().topics) == {spec.name for spec in specs}
        assert "Kafka Server started" in broker.log_path.read_text()  # log4j2 really logs

        assert broker.stop() is True
        assert not pid_alive(first.pid)
        assert not broker.pid_file.exists()
        assert not port_in_use(broker.host, port)
        assert not port_in_use(broker.host, controller_port)
        assert broker.stop() is False

        # A restart keeps the topics; a wipe (`broker start --fresh`) starts empty, same cluster.
        cluster_id = broker.cluster_id_file.read_text()
        restarted = broker.start(timeout=60)
        assert {spec.name for spec in specs} <= set(broker.list_topics())
        broker.wipe()
        assert not pid_alive(restarted.pid or 0) and not broker.data_dir.exists()
        broker.start(timeout=60)
        assert not {spec.name for spec in specs} & set(broker.list_topics())
        assert broker.cluster_id_file.read_text() == cluster_id
    finally:
        broker.stop()
