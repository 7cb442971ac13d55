"""The project's Kafka topics: their names, partition counts and configs, and creating the missing ones.

Every topic name is made here from the settings (the wire contract's topics, the worker's internal
and changelog topics), so the local broker, the worker and the tools agree on them. The local
broker (``yujing.services.broker``) and the worker (``yujing worker``) both create what is missing
through :func:`create_missing_topics`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kafka.errors import KafkaError

from streams.security import PLAINTEXT, KafkaRefused, KafkaSecurity, refusals_explained

if TYPE_CHECKING:
    from kafka import KafkaAdminClient

    from streams.config import KafkaSettings


class TopicError(Exception):
    """A topic cannot be created or has the wrong shape; the message is one line for a human."""


TOPIC_EXISTS = 36  # Kafka error code TOPIC_ALREADY_EXISTS


STATE_TABLES = ("yujing-day-buckets", "yujing-merchants", "yujing-partition-clocks", "yujing-chains")


@dataclass
class TopicSpec:
    """A topic the project needs: name, partition count and topic-level configs."""

    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)


def contract_topics(settings: KafkaSettings) -> list[TopicSpec]:
    """The wire contract's topics with the partition counts and configs the worker needs.

    The three inputs and the warnings topic share one partition count because they
    are co-partitioned by the ``merchant_id`` key. Inputs keep their history forever
    so it can be replayed; merchants is compacted (latest profile per merchant wins).
    """
    names = settings.topics
    partitions = settings.input_partitions
    # Record timestamps are event times, which in a replay are months old. Kafka rolls a segment
    # once its first timestamp is older than segment.ms, so old timestamps would roll a new
    # segment file per batch; and a compacted topic would then compact a replayed profile
    # history down to its last record before the worker has read it. Roll by size only, and keep
    # profile updates uncompacted for 30 days of record time.
    keep_forever = {"retention.ms": "-1", "segment.ms": str(100 * 365 * 86_400_000)}
    profiles = {
        "cleanup.policy": "compact",
        "segment.bytes": str(64 * 1024 * 1024),
        "min.compaction.lag.ms": str(30 * 86_400_000),
        **keep_forever,
    }
    return [
        TopicSpec(names.transactions, partitions, dict(keep_forever)),
        TopicSpec(names.complaints, partitions, dict(keep_forever)),
        TopicSpec(names.merchants, partitions, profiles),
        TopicSpec(names.warnings, partitions, {"segment.ms": keep_forever["segment.ms"]}),
        TopicSpec(names.deadletter, 1, {}),
        # Co-partitioned with the inputs: a merchant's feedback reaches the partition scoring it.
        TopicSpec(names.feedback, partitions, dict(keep_forever)),
        # Keyed by merchant and day, compacted: the drill-down history can always be rebuilt.
        TopicSpec(names.merchant_days, partitions, {"cleanup.policy": "compact", "retention.ms": "-1"}),
        # One partition: every worker reads all of it, in publication order.
        TopicSpec(names.thresholds, 1, {"cleanup.policy": "compact", "retention.ms": "-1"}),
    ]


def worker_topics(settings: KafkaSettings) -> list[TopicSpec]:
    """The worker's own topics: the chain stage's two internal topics and the state tables'
    compacted changelogs (co-partitioned with the inputs), and Faust's assignor topic. Created
    before Faust starts: a topic Faust declares itself can be missing from the metadata its
    first assignment sees, and then stays unassigned ("Ignoring missing topic": the chain stage
    stalls) or fails the table's partition check (``PartitionsMismatch``).

    The case feedback topic is here too (as in :func:`contract_topics`), and the merchant-day
    history topic the worker writes: the worker subscribes to feedback with the inputs, and a broker set up before it existed would otherwise leave it missing
    (the agent would never hear of feedback) or auto-create it with the wrong partition count."""
    partitions = settings.input_partitions
    compacted = {"cleanup.policy": "compact"}
    ours = {settings.topics.feedback, settings.topics.merchant_days, settings.topics.thresholds}
    return [
        *(t for t in contract_topics(settings) if t.name in ours),
        *(TopicSpec(t, partitions) for t in internal_topics(settings)),
        *(TopicSpec(t, partitions, compacted) for t in changelog_topics(settings)),
        TopicSpec(f"{settings.app_id}-__assignor-__leader", 1),
    ]


def internal_topics(settings: KafkaSettings) -> list[str]:
    """The worker's own topics between its agents (the chain stage), co-partitioned with the inputs."""
    return [chain_notices_topic(settings), chain_signals_topic(settings)]


def chain_notices_topic(settings: KafkaSettings) -> str:
    """Chain notices and each partition's heartbeats, from the scoring agent to the chain stage."""
    return f"{settings.app_id}-chain-notices"


def chain_signals_topic(settings: KafkaSettings) -> str:
    """Chain levels and watermarks, from the chain stage back to the partitions."""
    return f"{settings.app_id}-chain-signals"


def changelog_topics(settings: KafkaSettings) -> list[str]:
    """The changelog topics of the worker's state tables (named as Faust names them)."""
    return [f"{settings.app_id}-{table}-changelog" for table in STATE_TABLES]


def input_topics(settings: KafkaSettings) -> dict[str, str]:
    """The topics the worker's scoring agent reads, by record kind: the contract's three inputs
    and the case feedback (``feedback.jsonl`` in an events directory)."""
    t = settings.topics
    return {"transactions": t.transactions, "complaints": t.complaints, "merchants": t.merchants,
            "feedback": t.feedback}




def create_missing_topics(
    admin: KafkaAdminClient, topics: Sequence[TopicSpec], bootstrap: str, timeout: float = 30
) -> list[str]:
    """Create the topics that do not exist yet; return the names created.

    An existing topic with another partition count is an error rather than
    silently accepted: co-partitioned topics must have equal counts.
    """
    wanted = {t.name: t for t in topics}
    try:
        existing = set(admin.list_topics())
        _check_partitions(admin, [t for t in topics if t.name in existing])
        missing = [t for t in topics if t.name not in existing]
        if not missing:
            return []
        result = admin.create_topics(
            {t.name: _topic_request(t) for t in missing},
            timeout_ms=int(timeout * 1000),
            raise_errors=False,
        )
        created = _created_topics(result, wanted)
        admin.wait_for_topics(created, timeout_ms=int(timeout * 1000))
    except KafkaError as exc:
        raise TopicError(f"could not create topics on {bootstrap}: {exc}") from exc
    return created


def _check_partitions(admin: KafkaAdminClient, present: Sequence[TopicSpec]) -> None:
    if not present:
        return
    described = admin.describe_topics([spec.name for spec in present])
    counts = {t["name"]: len(t["partitions"]) for t in described}
    for spec in present:
        if counts.get(spec.name, spec.partitions) != spec.partitions:
            raise TopicError(
                f"topic {spec.name} has {counts[spec.name]} partitions, expected "
                f"{spec.partitions}: delete it or reset the broker's data"
            )


def _topic_request(spec: TopicSpec) -> dict[str, Any]:
    # One node, so one replica; partitions are explicit because co-partitioning depends on it.
    return {
        "num_partitions": spec.partitions,
        "replication_factor": 1,
        "configs": dict(spec.config),
    }


def _created_topics(result: Mapping[str, Any], wanted: Mapping[str, TopicSpec]) -> list[str]:
    created = []
    for topic in result["topics"]:
        if topic["error_code"] == TOPIC_EXISTS:
            continue  # created meanwhile (e.g. by a worker): fine, it exists
        if topic["error_code"] != 0:
            raise TopicError(f"could not create topic {topic['name']}: {topic['error_message']}")
        created.append(topic["name"])
    return [name for name in wanted if name in created]


def create_when_ready(settings: KafkaSettings, timeout: float) -> tuple[list[str], int]:
    """Create the contract's and the worker's topics that are missing on ``settings.bootstrap`` (any
    Kafka: Compose, Kubernetes), waiting up to ``timeout`` seconds for a broker still starting;
    returns (the names created, how many were wanted). Raises :class:`TopicError`."""
    from kafka import KafkaAdminClient
    from tenacity import (
        Retrying,
        retry_if_exception_type,
        retry_if_not_exception_type,
        stop_after_delay,
        wait_fixed,
    )

    wanted = {t.name: t for t in [*contract_topics(settings), *worker_topics(settings)]}
    try:
        # A broker still starting refuses connections: wait for it rather than fail the deployment.
        # A refused login or certificate will not get better by waiting: no retry for those.
        retry = retry_if_exception_type(KafkaError) & retry_if_not_exception_type(KafkaRefused)
        for attempt in Retrying(retry=retry, stop=stop_after_delay(timeout), wait=wait_fixed(2), reraise=True):
            with attempt, refusals_explained(settings.bootstrap, settings.kafka_security):
                admin = KafkaAdminClient(bootstrap_servers=settings.bootstrap, client_id="yujing-topics",
                                         **settings.kafka_security.client_options())
    except KafkaRefused as exc:
        raise TopicError(str(exc)) from exc
    except KafkaError as exc:
        raise TopicError(f"no broker answers at {settings.bootstrap} after {timeout:.0f} s: {exc}") from exc
    try:
        created = create_missing_topics(admin, list(wanted.values()), settings.bootstrap, timeout=60)
    finally:
        admin.close()
    return created, len(wanted)


@contextmanager
def admin_client(
    bootstrap: str, client_id: str, security: KafkaSecurity = PLAINTEXT
) -> Iterator[KafkaAdminClient]:
    """A Kafka admin client, closed after the ``with`` block; :class:`TopicError` if none can be had."""
    from kafka import KafkaAdminClient

    try:
        with refusals_explained(bootstrap, security):
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id=client_id, bootstrap_timeout_ms=10_000,
                                     **security.client_options())
    except KafkaRefused as exc:
        raise TopicError(str(exc)) from exc
    except KafkaError as exc:
        raise TopicError(f"cannot talk to the broker at {bootstrap}: {exc}") from exc
    try:
        yield admin
    finally:
        admin.close()
