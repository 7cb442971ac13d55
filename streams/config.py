"""What the Kafka layer and the case desk need to know of the configuration, and nothing more.

The shell builds its settings from ``YUJING_*`` variables (``yujing/settings.py``,
pydantic-settings) and passes them down; the lower packages only describe the attributes they
read, as protocols, so they never import the shell (``tests/test_layering.py``). The shell's
``Settings`` satisfies both protocols structurally, which mypy checks where it passes them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from alerts.thresholds import ThresholdSet
from streams.security import KafkaSecurity


class TopicNames(Protocol):
    """The topic names: the wire contract's five and the project's own three."""

    @property
    def transactions(self) -> str: ...
    @property
    def complaints(self) -> str: ...
    @property
    def merchants(self) -> str: ...
    @property
    def warnings(self) -> str: ...
    @property
    def deadletter(self) -> str: ...
    @property
    def feedback(self) -> str: ...
    @property
    def merchant_days(self) -> str: ...
    @property
    def thresholds(self) -> str: ...


class KafkaSettings(Protocol):
    """What a Kafka client of the project reads: where the broker is and how to log in, the topics,
    the worker's group and partitioning, and what the scoring worker needs to run."""

    @property
    def bootstrap(self) -> str: ...
    @property
    def kafka_security(self) -> KafkaSecurity:
        """TLS and SASL of every client (``streams.security``); PLAINTEXT gives no options."""
        ...
    @property
    def topics(self) -> TopicNames: ...
    @property
    def app_id(self) -> str: ...
    @property
    def input_partitions(self) -> int: ...
    @property
    def allowed_lateness_hours(self) -> float: ...
    @property
    def stall_seconds(self) -> float: ...
    @property
    def online_learning(self) -> bool: ...
    @property
    def producer_linger_ms(self) -> float: ...
    @property
    def commit_every(self) -> int: ...
    @property
    def home(self) -> Path: ...

    def base_thresholds(self) -> ThresholdSet:
        """The thresholds before any publication."""
        ...
