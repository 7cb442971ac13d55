"""Kafka security (issue 16, item 4): SASL/SCRAM over TLS from the ``YUJING_KAFKA_*`` settings to
every client, and the local broker serving SASL_SSL.

The unit tests need no broker: the settings become kafka-python options and Faust credentials
(:mod:`streams.security`), bad combinations fail with one line, no password shows in a repr, and
the secure broker's ``server.properties``. The ``kafka`` tests start their own broker with only a
SASL_SSL listener (``LocalBroker(secure=True)``: its own CA, SCRAM users made at format time) on
free ports in a temporary home, and prove over it, with the settings an operator loads from the
broker's ``client.env``: topics created by the admin client, records published and read back by
kafka-python, the real ``yujing worker`` (Faust over aiokafka) scoring them into warnings, and a
wrong password, a client without TLS and an untrusted certificate each refused with a line that
names the setting to fix.
"""

from __future__ import annotations

import dataclasses
import re
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import faust
import pytest
from kafka import KafkaAdminClient
from kafka.errors import (
    InvalidReceiveError,
    KafkaError,
    KafkaTimeoutError,
    SaslAuthenticationFailedError,
)
from pydantic import ValidationError
from typer.testing import CliRunner

import yujing.settings as settings_module
from contract.records import Warning
from streams.clients import publish_files, read_records
from streams.security import (
    PLAINTEXT,
    KafkaRefused,
    KafkaSecurity,
    KafkaSecurityError,
    refusal_reason,
    refusals_explained,
)
from streams.topics import (
    TopicError,
    admin_client,
    contract_topics,
    create_when_ready,
    worker_topics,
)
from tests.test_broker import free_ports, parse_properties
from yujing.cli.broker import broker_app
from yujing.services.broker import LocalBroker, broker_from_settings
from yujing.services.kafka_dist import make_tls_material
from yujing.services.processes import start_worker, stop_worker
from yujing.settings import Settings, TopicNames
from yujing.simulator import SimulationConfig, simulate

SECRET = "not-the-password-4711"


@pytest.fixture(autouse=True)
def no_security_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests set what they need; a developer's own YUJING_KAFKA_* must not leak in."""
    for name in ("SECURITY_PROTOCOL", "SASL_MECHANISM", "SASL_USERNAME", "SASL_PASSWORD", "SSL_CAFILE",
                 "SSL_CERTFILE", "SSL_KEYFILE", "SSL_CHECK_HOSTNAME"):
        monkeypatch.delenv(f"YUJING_KAFKA_{name}", raising=False)


@pytest.fixture(scope="module")
def ca_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tls")
    make_tls_material(directory, "127.0.0.1")
    return directory


# -- the settings become client options (no broker) -------------------------------------------


def test_plaintext_is_the_default_and_adds_no_option() -> None:
    settings = Settings()
    assert settings.kafka_security == PLAINTEXT
    assert settings.kafka_security.client_options() == {}
    assert settings.kafka_security.faust_options() == {}
    assert settings.kafka_security.ssl_context() is None


def test_sasl_ssl_from_the_environment(monkeypatch: pytest.MonkeyPatch, ca_dir: Path) -> None:
    monkeypatch.setenv("YUJING_KAFKA_SECURITY_PROTOCOL", "sasl_ssl")  # case does not matter
    monkeypatch.setenv("YUJING_KAFKA_SASL_MECHANISM", "SCRAM-SHA-256")
    monkeypatch.setenv("YUJING_KAFKA_SASL_USERNAME", "yujing")
    monkeypatch.setenv("YUJING_KAFKA_SASL_PASSWORD", SECRET)
    monkeypatch.setenv("YUJING_KAFKA_SSL_CAFILE", str(ca_dir / "ca.crt"))
    security = Settings().kafka_security

    options = security.client_options()
    context = options.pop("ssl_context")
    assert options == {"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-256",
                       "sasl_plain_username": "yujing", "sasl_plain_password": SECRET}
    assert isinstance(context, ssl.SSLContext)
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "yujing local broker CA"),),)]

    credentials = security.faust_options()["broker_credentials"]
    assert isinstance(credentials, faust.SASLCredentials)
    assert credentials.protocol.value == "SASL_SSL" and credentials.mechanism.value == "SCRAM-SHA-256"
    assert (credentials.username, credentials.password) == ("yujing", SECRET)
    assert isinstance(credentials.ssl_context, ssl.SSLContext)


def test_a_child_process_connects_as_its_parent(monkeypatch: pytest.MonkeyPatch, ca_dir: Path) -> None:
    """The worker and the case desk are started with ``settings_env``: it carries the security."""
    from yujing.services.processes import settings_env

    parent = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_mechanism="SCRAM-SHA-256",
                      kafka_sasl_username="yujing", kafka_sasl_password=SECRET,
                      kafka_ssl_cafile=ca_dir / "ca.crt", kafka_ssl_check_hostname=False)
    for name, value in settings_env(parent).items():
        monkeypatch.setenv(name, value)
    assert Settings().kafka_security == parent.kafka_security


def test_tls_without_sasl_and_without_host_name_check(ca_dir: Path) -> None:
    security = KafkaSecurity("SSL", cafile=ca_dir / "ca.crt", check_hostname=False)
    options = security.client_options()
    assert set(options) == {"security_protocol", "ssl_context"}
    assert not options["ssl_context"].check_hostname
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED  # the certificate is still checked
    credentials = security.faust_options()["broker_credentials"]
    assert isinstance(credentials, faust.SSLCredentials) and credentials.protocol.value == "SSL"


def test_sasl_without_tls_gives_faust_sasl_plaintext() -> None:
    credentials = KafkaSecurity("SASL_PLAINTEXT", "PLAIN", "u", "p").faust_options()["broker_credentials"]
    assert credentials.protocol.value == "SASL_PLAINTEXT" and credentials.ssl_context is None


def test_the_password_shows_in_no_repr_and_no_description() -> None:
    settings = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="yujing",
                        kafka_sasl_password=SECRET)
    for text in (repr(settings), str(settings), repr(settings.kafka_security), settings.kafka_security.describe(),
                 repr(settings.kafka_security.faust_options()["broker_credentials"])):
        assert SECRET not in text
    assert settings.kafka_security.describe() == "SASL_SSL (SCRAM-SHA-512 as yujing)"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_security_protocol": "TLS"}, "YUJING_KAFKA_SECURITY_PROTOCOL=TLS is not one of PLAINTEXT, SSL"),
        ({"kafka_security_protocol": "SASL_SSL", "kafka_sasl_username": "yujing"},
         "SASL_SSL needs YUJING_KAFKA_SASL_USERNAME and YUJING_KAFKA_SASL_PASSWORD"),
        ({"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "GSSAPI",
          "kafka_sasl_username": "u", "kafka_sasl_password": "p"}, "YUJING_KAFKA_SASL_MECHANISM=GSSAPI is not one of"),
        ({"kafka_ssl_cafile": "/etc/ca.crt"}, "YUJING_KAFKA_SSL_* files are set but YUJING_KAFKA_SECURITY_PROTOCOL=PLAINTEXT"),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_keyfile": "/k.pem"}, "YUJING_KAFKA_SSL_KEYFILE needs"),
    ],
)
def test_settings_that_do_not_fit_fail_at_start_with_one_line(values: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("*", r"\*")):
        Settings(**values)


def test_an_unreadable_ca_file_is_one_line_naming_it(tmp_path: Path) -> None:
    security = KafkaSecurity("SSL", cafile=tmp_path / "missing.crt")
    with pytest.raises(KafkaSecurityError, match=r"cannot load the TLS files \(.*missing.crt\): No such file"):
        security.client_options()


def test_refusal_reasons_name_the_setting_to_fix() -> None:
    security = KafkaSecurity("SASL_SSL", "SCRAM-SHA-512", "yujing", SECRET)
    login = refusal_reason("b:1", security, [SaslAuthenticationFailedError("invalid credentials")])
    assert login is not None and "refused the SCRAM-SHA-512 login of user 'yujing'" in login
    assert "YUJING_KAFKA_SASL_PASSWORD" in login and SECRET not in login
    untrusted = ssl.SSLCertVerificationError(1, "certificate verify failed")
    untrusted.verify_message = "self-signed certificate in certificate chain"
    wrapped = KafkaError("connect failed")
    wrapped.__cause__ = untrusted  # kafka-python may wrap the ssl error
    cert = refusal_reason("b:1", security, [wrapped])
    assert cert is not None and "not trusted (self-signed certificate" in cert and "YUJING_KAFKA_SSL_CAFILE" in cert
    cut = [KafkaError("socket disconnected")] * 3 + [KafkaTimeoutError("Unable to bootstrap")]
    hung_up = refusal_reason("b:1", PLAINTEXT, cut)
    assert hung_up is not None and "closed every PLAINTEXT connection" in hung_up
    # cut after the broker's ApiVersions answer: only the login lies between (kafka-python may
    # drop the refusal that arrives with the hang-up)
    assert refusal_reason("b:1", security, cut, answered=True) == login
    tls_alert = InvalidReceiveError(f"Invalid frame length: {0x15030300}")  # a TLS alert read as a frame
    in_tls = refusal_reason("b:1", PLAINTEXT, [tls_alert])
    assert in_tls is not None and "answered in TLS to a PLAINTEXT client" in in_tls
    assert refusal_reason("b:1", PLAINTEXT, [InvalidReceiveError("Invalid frame length: 99999999")]) is None
    assert refusal_reason("b:1", security, []) is None  # nobody answered: not a refusal
    assert refusal_reason("b:1", security, [KafkaError("Connection refused")]) is None


def test_the_secure_broker_serves_only_sasl_ssl(tmp_path: Path) -> None:
    plain = LocalBroker(home=tmp_path / "plain", cache_dir=tmp_path / "cache", port=19092, controller_port=19093)
    assert "sasl.enabled.mechanisms" not in parse_properties(plain.server_properties())
    assert plain.client_security() == PLAINTEXT

    broker = dataclasses.replace(plain, home=tmp_path / "secure", secure=True)
    props = parse_properties(broker.server_properties())  # the last value of a key wins, as in Kafka
    assert props["listeners"] == "SASL_SSL://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "SASL_SSL://127.0.0.1:19092"
    assert props["inter.broker.listener.name"] == "SASL_SSL"
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-256,SCRAM-SHA-512"
    assert props["ssl.keystore.type"] == props["ssl.truststore.type"] == "PEM"
    assert props["ssl.keystore.location"] == str(broker.secure_dir / "broker.pem")
    security = broker.client_security()
    assert (security.protocol, security.username, security.cafile) == ("SASL_SSL", "yujing", broker.secure_dir / "ca.crt")
    assert security.password and security.password not in props["listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config"]


def test_the_local_broker_serves_what_the_clients_speak() -> None:
    assert not broker_from_settings(Settings()).secure
    secure = Settings(kafka_security_protocol="SASL_SSL", kafka_sasl_username="u", kafka_sasl_password="p")
    assert broker_from_settings(secure).secure


# -- against a real broker that only speaks SASL_SSL ------------------------------------------


@pytest.fixture(scope="module")
def secure_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    port, controller_port = free_ports(2)
    broker = LocalBroker(home=tmp_path_factory.mktemp("secure-broker"), cache_dir=Settings().cache_dir,
                         port=port, controller_port=controller_port, secure=True)
    broker.start(timeout=90)
    try:
        yield broker
    finally:
        broker.stop()


def load_client_env(broker: LocalBroker, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """What an operator does: ``set -a; . client.env; set +a``."""
    env = dict(line.split("=", 1) for line in broker.client_env.read_text().splitlines()
               if line and not line.startswith("#"))
    env["YUJING_BOOTSTRAP_SERVERS"] = broker.bootstrap
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def secure_settings(secure_broker: LocalBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings from the broker's client.env, with topics and a consumer group of this test alone."""
    load_client_env(secure_broker, monkeypatch)
    run = f"s{uuid.uuid4().hex[:8]}"
    names = {field: f"{run}.{field.replace('_', '-')}" for field in TopicNames.model_fields}
    for field, name in names.items():
        monkeypatch.setenv(f"YUJING_TOPIC_{field.upper()}", name)
    monkeypatch.setenv("YUJING_APP_ID", f"{run}-worker")
    monkeypatch.setenv("YUJING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("YUJING_INPUT_PARTITIONS", "2")
    monkeypatch.setenv("YUJING_METRICS_PORT", "0")
    return Settings()


@pytest.mark.kafka
def test_topics_records_and_the_worker_over_sasl_ssl(
    secure_settings: Settings, secure_broker: LocalBroker, tmp_path: Path, worker_processes: list
) -> None:
    settings = secure_settings
    assert settings.kafka_security.protocol == "SASL_SSL"
    # topics: the admin client (`yujing broker create-topics`)
    created, wanted = create_when_ready(settings, timeout=30)
    assert len(created) == wanted == len({t.name for t in [*contract_topics(settings), *worker_topics(settings)]})
    assert set(created) <= set(secure_broker.list_topics())

    # records: published and read back with kafka-python
    events = tmp_path / "events"
    simulate(SimulationConfig(merchants=4, days=60, seed=11)).write(events)  # warns early
    counts = publish_files(events, settings)
    transactions = list(read_records(settings.topics.transactions, settings, idle_seconds=2))
    assert len(transactions) == counts[settings.topics.transactions] > 500
    assert {"merchant_id", "occurred_at"} <= set(transactions[0])

    # the real worker: Faust (aiokafka) consumes over SASL_SSL and writes warnings
    log = tmp_path / "worker.log"
    worker = start_worker(settings, log)  # inherits the YUJING_KAFKA_* variables, as in production
    worker_processes.append(worker)
    warnings = wait_for_warnings(settings, worker, log)
    assert stop_worker(worker) == 0, log.read_text()[-3000:]
    assert all(Warning.model_validate(w).merchant_id for w in warnings)
    assert settings.kafka_sasl_password is not None
    assert settings.kafka_sasl_password.get_secret_value() not in log.read_text()  # never logged


def wait_for_warnings(
    settings: Settings, worker: subprocess.Popen[bytes], log: Path, timeout: float = 90
) -> list[dict]:
    """The warnings topic's records (read over SASL_SSL) once there is one."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert worker.poll() is None, f"worker exited: {log.read_text()[-3000:]}"
        found = list(read_records(settings.topics.warnings, settings, idle_seconds=2))
        if found:
            return found
    raise AssertionError(f"no warning over SASL_SSL within {timeout} s: {log.read_text()[-3000:]}")


@pytest.mark.kafka
def test_a_wrong_password_is_refused_with_a_clear_line(
    secure_settings: Settings, secure_broker: LocalBroker
) -> None:
    wrong = dataclasses.replace(secure_settings.kafka_security, password="wrong-password")
    with pytest.raises(TopicError) as refused:  # the path of `yujing broker status` and `create-topics`
        with admin_client(secure_broker.bootstrap, "yujing-test", wrong):
            pass
    assert str(refused.value) == (
        f"the broker at {secure_broker.bootstrap} refused the SCRAM-SHA-512 login of user 'yujing': "
        "check YUJING_KAFKA_SASL_USERNAME and YUJING_KAFKA_SASL_PASSWORD")


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"protocol": "PLAINTEXT", "username": None, "password": None, "cafile": None},
         # the broker's TLS alert is read as a bad frame, or the hang-up comes first
         r"answered in TLS to a PLAINTEXT client: set YUJING_KAFKA_SECURITY_PROTOCOL to SSL or SASL_SSL"
         r"|closed every PLAINTEXT connection: does its listener speak PLAINTEXT\? \(YUJING_KAFKA_SECURITY_PROTOCOL\)"),
        ({"cafile": None}, r"is not trusted \(self-signed certificate in certificate chain\): check YUJING_KAFKA_SSL_CAFILE"),
    ],
    ids=["no-tls", "untrusted-certificate"],
)
def test_no_tls_or_an_untrusted_certificate_is_refused(
    secure_settings: Settings, secure_broker: LocalBroker, change: dict, says: str
) -> None:
    security = dataclasses.replace(secure_settings.kafka_security, **change)
    with pytest.raises(KafkaRefused) as refused, refusals_explained(secure_broker.bootstrap, security):
        KafkaAdminClient(bootstrap_servers=secure_broker.bootstrap, bootstrap_timeout_ms=5000,
                         **security.client_options())
    assert secure_broker.bootstrap in str(refused.value)
    assert re.search(says, str(refused.value))


@pytest.mark.kafka
def test_broker_commands_with_the_client_settings(
    secure_broker: LocalBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`yujing broker status` on the secure broker, after loading client.env (and the broker's home)."""
    load_client_env(secure_broker, monkeypatch)
    monkeypatch.setenv("YUJING_HOME", str(secure_broker.home))
    monkeypatch.setenv("YUJING_BROKER_PORT", str(secure_broker.port))
    monkeypatch.setenv("YUJING_CONTROLLER_PORT", str(secure_broker.controller_port))
    settings_module.get_settings.cache_clear()
    try:
        result = CliRunner().invoke(broker_app, ["status"])
    finally:
        settings_module.get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert secure_broker.bootstrap in result.output
