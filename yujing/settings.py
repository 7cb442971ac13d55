"""Configuration: ``YUJING_*`` environment variables, built once through :func:`get_settings`.

Tests and tools build their own :class:`Settings` instead of using the cached one.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.security import KafkaSecurity

if TYPE_CHECKING:
    from alerts.thresholds import ThresholdSet

class TopicNames(BaseSettings):
    """Topic names of the wire contract (``../shared/CONTRACT.md``); all configurable."""

    model_config = SettingsConfigDict(env_prefix="YUJING_TOPIC_", frozen=True)

    transactions: str = "prepaid.transactions"
    complaints: str = "prepaid.complaints"
    merchants: str = "prepaid.merchants"
    warnings: str = "prepaid.warnings"
    deadletter: str = "prepaid.deadletter"
    # Beyond the contract: case dispositions flowing back to the scoring side (keyed by merchant).
    feedback: str = "prepaid.feedback"
    # Beyond the contract: every scored merchant-day (indicators, score, level), worker -> case
    # service, which keeps it in PostgreSQL for Grafana's drill-down. Compacted per merchant-day.
    merchant_days: str = "yujing.merchant-days"
    # Beyond the contract: published threshold versions (one partition, compacted, kept forever).
    thresholds: str = "prepaid.thresholds"


class Settings(BaseSettings):
    """Everything an operator can set. Every field maps to ``YUJING_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="YUJING_", frozen=True)

    home: Path = Field(
        default=Path(".yujing"),
        description="Working directory for the local broker's and PostgreSQL's data and logs, "
        "and the worker's state.",
    )
    cache_dir: Path = Field(
        default=Path.home() / ".cache" / "yujing",
        description="Where fetched Kafka jars and what-if checkpoints are kept, shared by every checkout on the machine.",
    )
    kafka_version: str = Field(default="4.1.1", description="Apache Kafka broker version (Maven).")
    broker_host: str = "127.0.0.1"
    broker_port: int = 9092
    controller_port: int = 9093
    bootstrap_servers: str | None = Field(
        default=None,
        description="Kafka bootstrap servers; defaults to the local broker's address.",
    )
    postgres_port: int = Field(
        default=5532,
        description="Port of the local PostgreSQL cluster (`yujing db start`) on 127.0.0.1; "
        "5532, not 5432, so it never collides with the machine's own PostgreSQL.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL of the case service's database; defaults to the local "
        "cluster's (postgresql+psycopg://yujing@127.0.0.1:<postgres_port>/yujing).",
    )
    input_partitions: int = Field(
        default=6,
        ge=1,
        description="Partitions of the three input topics and the warnings topic. They must be "
        "equal: the worker relies on a merchant's events landing in the same partition number.",
    )
    app_id: str = Field(default="yujing-worker", description="Faust app id (consumer group).")
    metrics_host: str = Field(
        default="127.0.0.1", description="Interface of the worker's Prometheus endpoint (0.0.0.0 in containers)."
    )
    metrics_port: int = Field(
        default=9464, ge=0, le=65535, description="Port of the worker's /metrics endpoint; 0 turns it off."
    )
    allowed_lateness_hours: float = Field(
        default=6.0,
        ge=0,
        description="How far behind the partition's newest transaction time an event may arrive "
        "and still be counted in its own day; a day is scored once the watermark passes it.",
    )
    stall_seconds: float = Field(
        default=120.0,
        ge=0,
        description="A worker partition whose committed offset has not moved (or crawled under "
        "one record a second) for this long while records wait (and its streams are idle) is reported and read again from that offset "
        "(streams.watchdog); 0 turns the watchdog off.",
    )
    thresholds_file: Path | None = Field(
        default=None,
        description="Thresholds file (YAML/TOML, alerts.thresholds) in force before any version "
        "published on the thresholds topic; unset: the built-in thresholds.",
    )
    producer_linger_ms: float = Field(
        default=50.0,
        ge=0,
        description="How long the worker's producer gathers records into one request (changelogs, "
        "warnings, history): more events per second for at most this much added latency.",
    )
    commit_every: int = Field(
        default=10_000,
        ge=1,
        description="The worker commits its input offsets after this many events (and every 2.8 s), "
        "writing its changed state to the changelogs just before: each commit stalls reading for a "
        "producer flush and a broker round trip; a crash reads at most this many events again.",
    )
    replay_workers: int = Field(
        default=0,
        ge=0,
        description="Processes `yujing backtest` replays the input partitions in (0: one per core, at most "
        "the partitions); the warnings are the same with any number (engine/parallel_replay.py).",
    )
    online_learning: bool = Field(
        default=True,
        description="Case outcomes (false alarms, confirmed risks) correct the learned fusion's weights, "
        "per input partition, within +-2 log-odds (models/online.py); false: the learned weights alone.",
    )
    topics: TopicNames = Field(default_factory=TopicNames)
    # How every Kafka client connects (streams/security.py); docs/running.md, "Turning on SASL_SSL".
    kafka_security_protocol: str = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."
    )
    kafka_sasl_mechanism: str = Field(default="SCRAM-SHA-512", description="SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN.")
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: Path | None = Field(default=None, description="PEM CA the broker's certificate is checked "
                                          "against; unset: the system's CAs.")
    kafka_ssl_certfile: Path | None = Field(default=None, description="PEM client certificate (mutual TLS), if the broker asks.")
    kafka_ssl_keyfile: Path | None = Field(default=None, description="Its private key, if not in the certificate file.")
    kafka_ssl_check_hostname: bool = Field(default=True, description="Check the broker's certificate names its host.")

    @model_validator(mode="after")
    def _kafka_security_fits(self) -> Settings:
        self.kafka_security  # noqa: B018 -- raises KafkaSecurityError (a ValueError) on a bad combination
        return self

    @property
    def kafka_security(self) -> KafkaSecurity:
        password = self.kafka_sasl_password.get_secret_value() if self.kafka_sasl_password else None
        return KafkaSecurity(
            self.kafka_security_protocol.upper(), self.kafka_sasl_mechanism.upper(), self.kafka_sasl_username, password,
            self.kafka_ssl_cafile, self.kafka_ssl_certfile, self.kafka_ssl_keyfile, self.kafka_ssl_check_hostname,
        )

    def base_thresholds(self) -> ThresholdSet:
        """The thresholds before any publication (raises ``ThresholdsError`` for a bad file)."""
        from alerts.thresholds import builtin_thresholds, load_thresholds

        return load_thresholds(self.thresholds_file) if self.thresholds_file else builtin_thresholds()

    @property
    def bootstrap(self) -> str:
        return self.bootstrap_servers or f"{self.broker_host}:{self.broker_port}"

    @property
    def database(self) -> str:
        return (
            self.database_url
            or f"postgresql+psycopg://yujing@127.0.0.1:{self.postgres_port}/yujing"
        )


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
