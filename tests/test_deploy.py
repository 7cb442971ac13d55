"""The deployment in deploy/: the Compose file passes `docker compose config` with the example
settings and has the services, health checks, volumes and start-up order it promises; the
Kubernetes manifests pass the Kubernetes schemas (offline, kubernetes-validate); the worker's
replica cap equals the input partition count; the Prometheus configs pass `promtool check config`.

`docker compose` needs no Docker engine for `config`: deploy/local/setup.sh installs the Compose
CLI (built from its Go module) where the machine has none, and Debian's prometheus package for
promtool."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from yujing.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
ENV_EXAMPLE = DEPLOY / ".env.example"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES_DIR = DEPLOY / "prometheus" / "rules"
K8S = DEPLOY / "k8s"

YUJING_SERVICES = {"topics", "migrate", "worker", "cases"}
LONG_RUNNING = {"kafka", "postgres", "worker", "cases", "prometheus", "grafana"}
DEFAULT_PARTITIONS = Settings.model_fields["input_partitions"].default
# The oldest Kubernetes minor still commonly run, and the newest schemas the validator bundles.
K8S_VERSIONS = ("1.30.0", "latest")


# -- Compose --------------------------------------------------------------------------------


def _compose_command() -> list[str]:
    """`docker compose` if the docker client has the plugin, else the standalone binary that
    deploy/local/setup.sh links into .venv/bin."""
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    standalone = shutil.which("docker-compose", path=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    if standalone:
        return [standalone]
    pytest.fail("no `docker compose` (nor docker-compose): run `bash deploy/local/setup.sh`, which builds it")


def _clean_env() -> dict[str, str]:
    """No YUJING_* or other settings of the test run may leak into Compose's interpolation."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root")}
    if "DOCKER_CONFIG" in os.environ:
        env["DOCKER_CONFIG"] = os.environ["DOCKER_CONFIG"]
    return env


def _compose(*args: str, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_compose_command(), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        capture_output=True, text=True, env=_clean_env(), cwd=ROOT, timeout=120,
    )


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The Compose model as `docker compose config` resolves it with the example settings."""
    result = _compose("config", "--format", "json", env_file=ENV_EXAMPLE)
    assert result.returncode == 0, f"docker compose config failed:\n{result.stderr}"
    return json.loads(result.stdout)


def _env_example() -> dict[str, str]:
    pairs = (line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
             if line.strip() and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def test_compose_config_has_every_service_with_health_checks(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == LONG_RUNNING | {"topics", "migrate"}
    for name in LONG_RUNNING:
        check = services[name].get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no health check"
    assert services["kafka"]["image"] == "apache/kafka:4.1.1"
    assert services["postgres"]["image"] == "postgres:16"
    assert services["grafana"]["image"] == "grafana/grafana:11.6.0"
    assert services["prometheus"]["image"].startswith("prom/prometheus:")
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert "/healthz" in " ".join(services["cases"]["healthcheck"]["test"])
    assert "9464/metrics" in " ".join(services["worker"]["healthcheck"]["test"])


def test_compose_yujing_services_run_the_repository_image(compose: dict[str, Any]) -> None:
    services = compose["services"]
    commands = {name: services[name]["command"] for name in YUJING_SERVICES}
    assert commands["worker"] == ["yujing", "worker"]
    assert commands["cases"] == ["yujing", "cases", "serve"]
    assert commands["migrate"] == ["yujing", "cases", "migrate"]
    for name in YUJING_SERVICES:
        build = services[name]["build"]
        assert Path(build["context"]) == ROOT and (ROOT / build["dockerfile"]).is_file()
        assert services[name]["image"] == services["worker"]["image"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", dockerfile, re.M)
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.M)
    assert users and not users[-1].startswith(("root", "0")), "the image must not run as root"
    assert "pip install ." in dockerfile


def test_compose_volumes_and_mounts(compose: dict[str, Any]) -> None:
    assert {"kafka-data", "postgres-data", "prometheus-data", "grafana-data"} <= set(compose["volumes"])

    def mounts(service: str) -> dict[str, str]:
        return {m["target"]: m["source"] for m in compose["services"][service].get("volumes", [])}

    assert mounts("kafka")["/var/lib/kafka/data"] == "kafka-data"
    assert mounts("postgres")["/var/lib/postgresql/data"] == "postgres-data"
    assert mounts("prometheus")["/prometheus"] == "prometheus-data"
    assert mounts("grafana")["/var/lib/grafana"] == "grafana-data"
    binds = {
        ("prometheus", "/etc/prometheus/prometheus.yml"): PROMETHEUS_CONFIG,
        ("prometheus", "/etc/prometheus/rules"): RULES_DIR,
        ("grafana", "/etc/grafana/provisioning"): DEPLOY / "grafana" / "provisioning",
        ("grafana", "/var/lib/grafana/dashboards"): DEPLOY / "grafana" / "dashboards",
    }
    for (service, target), source in binds.items():
        assert Path(mounts(service)[target]) == source
        # Docker would silently create a missing source as an empty directory.
        assert source.exists(), f"{source} is mounted into {service} but does not exist"


def test_compose_start_up_order(compose: dict[str, Any]) -> None:
    def needs(service: str) -> dict[str, str]:
        return {dep: spec["condition"] for dep, spec in compose["services"][service].get("depends_on", {}).items()}

    assert needs("topics") == {"kafka": "service_healthy"}
    assert needs("migrate") == {"postgres": "service_healthy"}
    assert needs("worker")["topics"] == "service_completed_successfully"
    assert needs("cases")["migrate"] == "service_completed_successfully"
    assert needs("cases")["topics"] == "service_completed_successfully"
    assert needs("grafana") == {"prometheus": "service_healthy", "postgres": "service_healthy"}


def test_compose_worker_scales_and_services_listen_on_every_interface(compose: dict[str, Any]) -> None:
    services = compose["services"]
    worker = services["worker"]
    # `--scale worker=N` needs neither a fixed container name nor a published host port.
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["environment"]["YUJING_METRICS_HOST"] == "0.0.0.0"
    assert worker["environment"]["YUJING_METRICS_PORT"] == "9464"
    assert services["cases"]["environment"]["YUJING_CASES_HOST"] == "0.0.0.0"
    published = {(p["target"], str(p["published"])) for s in services.values() for p in s.get("ports", [])}
    assert {(8470, "8470"), (3000, "3000"), (9090, "9090")} <= published
    kafka = services["kafka"]["environment"]
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"
    assert "PLAINTEXT://kafka:9092" in kafka["KAFKA_ADVERTISED_LISTENERS"]
    for name in ("topics", "worker", "cases"):
        assert services[name]["environment"]["YUJING_BOOTSTRAP_SERVERS"] == "kafka:9092"


def test_compose_secrets_come_from_the_env_file(compose: dict[str, Any]) -> None:
    example = _env_example()
    services = compose["services"]
    password = example["YUJING_DB_PASSWORD"]
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD"] == password
    assert services["grafana"]["environment"]["YUJING_DB_PASSWORD"] == password
    assert f":{password}@postgres:5432/yujing" in services["cases"]["environment"]["YUJING_DATABASE_URL"]
    assert services["migrate"]["environment"]["YUJING_DATABASE_URL"] == services["cases"]["environment"]["YUJING_DATABASE_URL"]
    raw = COMPOSE_FILE.read_text()
    assert password not in raw, "secrets belong in the env file, not in compose.yaml"


def test_compose_refuses_to_run_without_the_secrets(tmp_path: Path) -> None:
    empty = tmp_path / "empty.env"
    empty.write_text("")
    result = _compose("config", env_file=empty)
    assert result.returncode != 0
    assert "YUJING_DB_PASSWORD" in result.stderr


def test_compose_topics_service_creates_every_topic_with_yujing_topic_logic(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The topics service (and the Kubernetes worker's init container) run `yujing broker
    create-topics`; run here with the Kafka admin client replaced, the topics it asks for are
    checked against yujing's own topic logic without a broker."""
    import kafka
    from typer.testing import CliRunner

    import streams.topics
    from streams.topics import TopicSpec, contract_topics, worker_topics
    from yujing.cli.broker import broker_app
    from yujing.settings import get_settings

    service = compose["services"]["topics"]
    assert service["command"] == ["yujing", "broker", "create-topics"]
    asked: dict[str, Any] = {}

    class FakeAdmin:
        def __init__(self, bootstrap_servers: str, client_id: str) -> None:
            asked["bootstrap"] = bootstrap_servers

        def close(self) -> None:
            asked["closed"] = True

    def fake_create(admin: object, topics: list[TopicSpec], bootstrap: str, timeout: float) -> list[str]:
        asked["topics"] = topics
        return [t.name for t in topics]

    monkeypatch.setattr(kafka, "KafkaAdminClient", FakeAdmin)
    monkeypatch.setattr(streams.topics, "create_missing_topics", fake_create)
    for key in [k for k in os.environ if k.startswith("YUJING_")]:
        monkeypatch.delenv(key)
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, str(value))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(broker_app, ["create-topics"])
        settings = get_settings()
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 0, result.output
    assert asked["bootstrap"] == "kafka:9092" and asked["closed"]
    created = {t.name: t for t in asked["topics"]}
    assert len(created) == len(asked["topics"]), "a topic is asked for twice"
    expected = {t.name: t for t in [*contract_topics(settings), *worker_topics(settings)]}
    assert created.keys() == expected.keys()
    assert all(created[name].partitions == expected[name].partitions for name in expected)
    assert created[settings.topics.transactions].partitions == int(service["environment"]["YUJING_INPUT_PARTITIONS"])

    # The Kubernetes worker's init container runs the same command.
    worker = _k8s_by_kind_name()[("Deployment", "yujing-worker")]
    init = worker["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"] == service["command"]


# -- Prometheus -----------------------------------------------------------------------------


def test_prometheus_scrapes_every_worker_replica_and_the_case_service() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["global"]["scrape_interval"] == "15s"
    assert config["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"yujing-worker", "yujing-cases"}
    assert jobs["yujing-worker"]["dns_sd_configs"] == [
        {"names": ["worker"], "type": "A", "port": 9464, "refresh_interval": "15s"}
    ]
    assert jobs["yujing-cases"]["static_configs"] == [{"targets": ["cases:8470"]}]


def _promtool() -> str:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: `bash deploy/local/setup.sh` installs Debian's prometheus package")
    return promtool


def _check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_promtool(), "check", "config", str(path)], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_compose_prometheus_config() -> None:
    result = _check_config(PROMETHEUS_CONFIG)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_accepts_the_config_with_the_mounted_rules(tmp_path: Path) -> None:
    """The same config with rule_files pointing where Compose mounts them from, so promtool also
    checks the alert rules the container will load."""
    config = PROMETHEUS_CONFIG.read_text().replace("/etc/prometheus/rules/", f"{RULES_DIR}/")
    path = tmp_path / "prometheus.yml"
    path.write_text(config)
    result = _check_config(path)
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = sorted(RULES_DIR.glob("*.yml"))
    for rule_file in rule_files:
        assert str(rule_file) in result.stdout + result.stderr, f"promtool did not check {rule_file}"


def test_promtool_accepts_the_kubernetes_prometheus_config(tmp_path: Path) -> None:
    config = _k8s_by_kind_name()[("ConfigMap", "prometheus-config")]["data"]["prometheus.yml"]
    parsed = yaml.safe_load(config)
    jobs = {job["job_name"]: job for job in parsed["scrape_configs"]}
    assert set(jobs) == {"yujing-worker", "yujing-cases"}
    for job in jobs.values():
        assert job["kubernetes_sd_configs"] == [{"role": "pod", "namespaces": {"names": ["yujing"]}}]
    path = tmp_path / "prometheus.yml"
    path.write_text(config)
    result = _check_config(path)
    if "field kubernetes_sd_configs not found" in result.stdout + result.stderr:
        # Debian builds Prometheus without Kubernetes discovery: check everything else (rule
        # files, relabelling) with a static target in its place.
        for job in jobs.values():
            del job["kubernetes_sd_configs"]
            job["static_configs"] = [{"targets": ["pod:9464"]}]
        path.write_text(yaml.safe_dump(parsed))
        result = _check_config(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_rejects_a_broken_config(tmp_path: Path) -> None:
    """The check above can fail: a config with an unknown field does."""
    path = tmp_path / "prometheus.yml"
    path.write_text(PROMETHEUS_CONFIG.read_text().replace("scrape_interval: 15s", "scrape_intervall: 15s", 1))
    assert _check_config(path).returncode != 0


# -- Kubernetes -----------------------------------------------------------------------------


def _k8s_files() -> list[Path]:
    return sorted(p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")


def _k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in _k8s_files() for doc in yaml.safe_load_all(path.read_text()) if doc]


def _k8s_by_kind_name() -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for _, doc in _k8s_documents()}


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_pass_the_schemas(version: str) -> None:
    import kubernetes_validate

    wanted = kubernetes_validate.latest_version() if version == "latest" else version
    documents = _k8s_documents()
    assert len(documents) >= 15
    failures = []
    for path, doc in documents:
        try:
            kubernetes_validate.validate(doc, wanted, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {exc.message} at {list(exc.path)}")
    assert not failures, "\n".join(failures)


def test_the_schema_validator_rejects_a_broken_manifest() -> None:
    import kubernetes_validate

    worker = _k8s_by_kind_name()[("Deployment", "yujing-worker")]
    broken = json.loads(json.dumps(worker))
    broken["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["cpu"] = {"cores": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)
    broken = json.loads(json.dumps(worker))
    broken["spec"]["template"]["spec"]["containers"][0]["livenessProbes"] = []  # typo'd field
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, kubernetes_validate.latest_version(), strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    assert sorted(kustomization["resources"]) == sorted(p.name for p in _k8s_files())
    assert kustomization["namespace"] == "yujing"


def test_kubernetes_workloads_have_probes_resources_and_the_namespace() -> None:
    resources = _k8s_by_kind_name()
    for (kind, name), doc in resources.items():
        if kind != "Namespace":
            assert doc["metadata"].get("namespace") == "yujing", f"{kind}/{name} has no namespace"
    workloads = {key: doc for key, doc in resources.items() if key[0] in {"Deployment", "StatefulSet", "Job"}}
    assert {
        ("StatefulSet", "kafka"), ("StatefulSet", "postgres"), ("Job", "yujing-migrate"),
        ("Deployment", "yujing-worker"), ("Deployment", "yujing-cases"), ("Deployment", "prometheus"),
    } <= set(workloads)
    for (kind, name), doc in workloads.items():
        pod = doc["spec"]["template"]["spec"]
        for container in [*pod.get("initContainers", []), *pod["containers"]]:
            limits = container.get("resources", {})
            assert limits.get("requests") and limits.get("limits"), f"{kind}/{name}/{container['name']}: resources"
        if kind != "Job":
            for container in pod["containers"]:
                assert container.get("livenessProbe") and container.get("readinessProbe"), f"{kind}/{name}: probes"
    assert resources[("StatefulSet", "kafka")]["spec"]["template"]["spec"]["containers"][0]["image"] == "apache/kafka:4.1.1"
    cases = resources[("Deployment", "yujing-cases")]["spec"]["template"]["spec"]["containers"][0]
    assert cases["command"] == ["yujing", "cases", "serve"]
    assert cases["readinessProbe"]["httpGet"]["path"] == "/healthz"
    migrate = resources[("Job", "yujing-migrate")]["spec"]["template"]["spec"]["containers"][0]
    assert migrate["command"] == ["yujing", "cases", "migrate"]


def test_worker_replicas_are_capped_by_the_partition_count(compose: dict[str, Any]) -> None:
    resources = _k8s_by_kind_name()
    partitions = int(resources[("ConfigMap", "yujing-config")]["data"]["YUJING_INPUT_PARTITIONS"])
    assert partitions == DEFAULT_PARTITIONS
    assert int(_env_example()["YUJING_INPUT_PARTITIONS"]) == DEFAULT_PARTITIONS
    assert f"${{YUJING_INPUT_PARTITIONS:-{DEFAULT_PARTITIONS}}}" in COMPOSE_FILE.read_text()
    assert compose["services"]["worker"]["environment"]["YUJING_INPUT_PARTITIONS"] == str(DEFAULT_PARTITIONS)

    hpa = resources[("HorizontalPodAutoscaler", "yujing-worker")]["spec"]
    assert hpa["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "yujing-worker"}
    assert hpa["maxReplicas"] == partitions, "more workers than input partitions would sit idle"
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"]
    worker = resources[("Deployment", "yujing-worker")]
    assert worker["spec"].get("replicas", 1) <= partitions
    container = worker["spec"]["template"]["spec"]["containers"][0]
    assert container["command"] == ["yujing", "worker"]
    assert {"configMapRef": {"name": "yujing-config"}} in container["envFrom"]
