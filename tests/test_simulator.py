"""Tests of ``yujing.simulator``: determinism, the wire contract, invariants and scenarios.

Small configs only; the generation speed is printed, never asserted.
"""

from __future__ import annotations

import collections
import re
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import typer
from typer.testing import CliRunner

from yujing.cli.simulate import simulate_command
from yujing.simulator import (
    COLLAPSE_SCENARIOS,
    LOOKALIKE_SCENARIOS,
    SCENARIOS,
    Simulation,
    SimulationConfig,
    scaled_mix,
    simulate,
)
from yujing.simulator.custody import CUSTODY_TIER, required_custody

RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
CATEGORIES = {
    "refund_refused", "store_closed", "service_unavailable", "false_advertising",
    "service_quality", "contract_dispute", "other",
}
INDUSTRIES = {"beauty", "hairdressing", "fitness", "other"}
STATUSES = {"open", "suspended", "closed"}
FIELDS = {
    "transactions": {"event_id", "type", "merchant_id", "store_id", "card_id", "consumer_id",
                     "amount", "face_value", "occurred_at"},
    "complaints": {"complaint_id", "merchant_id", "store_id", "category", "amount_involved",
                   "channel", "occurred_at"},
    "merchants": {"merchant_id", "name", "industry", "district", "chain_id", "opened_on", "status",
                  "custody_balance", "legal_representative", "registered_capital", "updated_at"},
}
OPTIONAL = {"transactions": {"face_value"}, "complaints": set(),
            "merchants": {"legal_representative", "registered_capital"}}


class World:
    """One simulation materialised for the tests."""

    def __init__(self, config: SimulationConfig) -> None:
        began = time.perf_counter()
        self.sim = simulate(config)
        self.events = list(self.sim.events())
        elapsed = time.perf_counter() - began
        print(  # noqa: T201 - informative speed, no assertion
            f"\n{config.merchants} merchants x {config.days} days: {len(self.events):,} records "
            f"in {elapsed:.2f} s ({len(self.events) / max(elapsed, 1e-9):,.0f} records/s)"
        )
        self.config = config
        self.labels = {label["merchant_id"]: label for label in self.sim.labels}
        self.by_kind: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
        for kind, record in self.events:
            self.by_kind[kind].append(record)
        self.end = config.start + timedelta(days=config.days)

    def of(self, kind: str, merchant_id: str) -> list[dict[str, Any]]:
        return [r for r in self.by_kind[kind] if r["merchant_id"] == merchant_id]

    def merchants_in(self, scenario: str) -> list[str]:
        return [m for m, label in self.labels.items() if label["scenario"] == scenario]


@pytest.fixture(scope="module")
def small() -> World:
    """The 'dozen merchants' case: every scenario once, a 200-day window."""
    return World(SimulationConfig(merchants=12, days=200, seed=11))


@pytest.fixture(scope="module")
def risky() -> World:
    """More collapses and look-alikes than usual, so scenario checks see several of each."""
    return World(SimulationConfig(merchants=60, days=240, seed=5, mix=scaled_mix(0.35, 0.35)))


def _day(timestamp: str) -> date:
    return date.fromisoformat(timestamp[:10])


def _time(record: dict[str, Any]) -> str:
    return record.get("occurred_at") or record["updated_at"]


def _check_timestamp(value: Any) -> None:
    assert isinstance(value, str) and RFC3339.match(value), value
    assert datetime.fromisoformat(value).utcoffset() == timedelta(hours=8)


def _check_money(value: Any, nullable: bool = False) -> None:
    if nullable and value is None:
        return
    assert isinstance(value, int | float) and not isinstance(value, bool), value
    assert value >= 0 and round(value, 2) == value, value


def check_record(kind: str, record: dict[str, Any]) -> None:
    """A small schema check of one record against shared/CONTRACT.md."""
    assert set(record) <= FIELDS[kind], set(record) - FIELDS[kind]
    assert FIELDS[kind] - OPTIONAL[kind] <= set(record), FIELDS[kind] - set(record)
    assert isinstance(record["merchant_id"], str) and record["merchant_id"]
    if kind == "transactions":
        assert 1 <= len(record["event_id"]) <= 64
        assert record["type"] in {"card_sale", "redemption", "refund"}
        for field in ("store_id", "card_id", "consumer_id"):
            assert isinstance(record[field], str) and record[field]
        _check_money(record["amount"])
        if "face_value" in record:
            _check_money(record["face_value"])
        _check_timestamp(record["occurred_at"])
    elif kind == "complaints":
        assert 1 <= len(record["complaint_id"]) <= 64
        assert record["store_id"] is None or isinstance(record["store_id"], str)
        assert record["category"] in CATEGORIES
        _check_money(record["amount_involved"], nullable=True)
        assert record["channel"] in {"12345", "12315", "online"}
        _check_timestamp(record["occurred_at"])
    else:
        assert record["industry"] in INDUSTRIES
        assert record["status"] in STATUSES
        assert isinstance(record["name"], str) and record["name"]
        assert isinstance(record["district"], str) and record["district"]
        assert record["chain_id"] is None or isinstance(record["chain_id"], str)
        date.fromisoformat(record["opened_on"])
        _check_money(record["custody_balance"], nullable=True)
        _check_money(record.get("registered_capital"), nullable=True)
        _check_timestamp(record["updated_at"])


# -- determinism and files ------------------------------------------------------------------------
def test_same_seed_gives_identical_files_and_another_seed_does_not(tmp_path: Path) -> None:
    config = SimulationConfig(merchants=12, days=90, seed=3)
    first = simulate(config).write(tmp_path / "a")
    second = simulate(config).write(tmp_path / "b")
    other = simulate(config.model_copy(update={"seed": 4})).write(tmp_path / "c")
    assert first == second
    names = ["transactions.jsonl", "complaints.jsonl", "merchants.jsonl", "labels.jsonl",
             "labels.json"]
    assert set(first) == set(names)  # no world.json: the classic world
    for name in names:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert (tmp_path / "a" / "transactions.jsonl").read_bytes() != (
        tmp_path / "c" / "transactions.jsonl"
    ).read_bytes()
    assert set(other) == set(first)


def test_iterating_twice_replays_the_same_records(small: World) -> None:
    again = list(small.sim.events())
    assert again == small.events


def test_files_are_json_lines_in_event_time_order(tmp_path: Path) -> None:
    sim = simulate(SimulationConfig(merchants=12, days=60, seed=2))
    counts = sim.write(tmp_path)
    for kind in ("transactions", "complaints", "merchants"):
        lines = (tmp_path / f"{kind}.jsonl").read_bytes().splitlines()
        assert len(lines) == counts[f"{kind}.jsonl"] > 0
        times = [_time(orjson.loads(line)) for line in lines]
        assert times == sorted(times)
    labels = [orjson.loads(line) for line in (tmp_path / "labels.jsonl").read_bytes().splitlines()]
    assert labels == sim.labels


# -- the contract ---------------------------------------------------------------------------------
def test_every_record_follows_the_contract(small: World, risky: World) -> None:
    for world in (small, risky):
        for kind, record in world.events:
            check_record(kind, record)


def test_events_are_in_non_decreasing_time_across_topics(small: World) -> None:
    times = [_time(record) for _, record in small.events]
    assert times == sorted(times)


def test_ids_are_unique(risky: World) -> None:
    events = [r["event_id"] for r in risky.by_kind["transactions"]]
    complaints = [r["complaint_id"] for r in risky.by_kind["complaints"]]
    assert len(events) == len(set(events))
    assert len(complaints) == len(set(complaints))


def test_card_sales_mostly_credit_at_least_what_was_paid(risky: World) -> None:
    sales = [r for r in risky.by_kind["transactions"] if r["type"] == "card_sale"]
    assert all(r["face_value"] >= r["amount"] for r in sales)
    with_bonus = sum(r["face_value"] > r["amount"] for r in sales)
    assert 0.1 < with_bonus / len(sales) < 0.8  # most sales have modest or no bonus


def test_no_redemption_or_refund_exceeds_the_card_balance(risky: World) -> None:
    balance: dict[str, int] = collections.defaultdict(int)
    for record in risky.by_kind["transactions"]:
        cents = round(record.get("face_value", record["amount"]) * 100)
        if record["type"] == "card_sale":
            balance[record["card_id"]] += cents
        else:
            balance[record["card_id"]] -= cents
            assert balance[record["card_id"]] >= 0, record


def test_volume_is_realistic(small: World) -> None:
    in_window = [
        r for r in small.by_kind["transactions"] if r["occurred_at"] >= small.config.start.isoformat()
    ]
    per_merchant_day = len(in_window) / (small.config.merchants * small.config.days)
    assert 2 < per_merchant_day < 20


def test_healthy_merchants_sell_within_the_caps(risky: World) -> None:
    for merchant_id in risky.merchants_in("healthy"):
        industry = risky.labels[merchant_id]["industry"]
        cap = 20_000 if industry == "fitness" else 5_000
        for record in risky.of("transactions", merchant_id):
            if record["type"] == "card_sale":
                assert record["amount"] <= cap, record


def test_compliant_custody_follows_the_shanghai_tiers(risky: World) -> None:
    """Healthy merchants' reports cover 40% (100% when under a year old) above 200,000 yuan."""
    checked = 0
    for merchant_id in risky.merchants_in("healthy"):
        stored = 0.0
        records = [(k, r) for k, r in risky.events if r["merchant_id"] == merchant_id]
        previous: dict[str, Any] | None = None
        for kind, record in records:
            if kind == "transactions":
                sign = 1 if record["type"] == "card_sale" else -1
                stored += sign * record.get("face_value", record["amount"])
            elif kind == "merchants":
                is_report = previous is not None and all(
                    record[f] == previous[f] for f in ("status", "legal_representative",
                                                       "registered_capital")
                )
                if is_report and stored > CUSTODY_TIER * 1.02:
                    age = (_day(record["updated_at"]) - date.fromisoformat(record["opened_on"])).days
                    assert record["custody_balance"] is not None
                    assert record["custody_balance"] >= required_custody(stored, age) * 0.99
                    checked += 1
                previous = record
    assert checked > 0


# -- scenarios and labels -------------------------------------------------------------------------
def test_labels_cover_every_scenario_once_even_for_a_dozen_merchants(small: World) -> None:
    scenarios = collections.Counter(label["scenario"] for label in small.sim.labels)
    assert set(scenarios) == set(SCENARIOS)
    assert len(small.sim.labels) == 12
    for label in small.sim.labels:
        assert set(label) == {"merchant_id", "scenario", "kind", "collapse_date", "signal_start",
                              "chain_id", "industry", "district", "quirks", "episode", "notes",
                              "strength", "has_profile", "custody_enrolled"}
        expected = ("collapse" if label["scenario"] in COLLAPSE_SCENARIOS else
                    "lookalike" if label["scenario"] in LOOKALIKE_SCENARIOS else "healthy")
        assert label["kind"] == expected
        assert (label["collapse_date"] is not None) == (expected == "collapse")
        assert (label["signal_start"] is None) == (expected == "healthy")


def test_scenario_mix_follows_the_config() -> None:
    sim = Simulation(SimulationConfig(merchants=400, days=60, seed=9))
    kinds = collections.Counter(label["kind"] for label in sim.labels)
    assert 0.70 < kinds["healthy"] / 400 < 0.86
    assert 0.05 < kinds["collapse"] / 400 < 0.16
    assert 0.07 < kinds["lookalike"] / 400 < 0.18


def test_a_mix_without_some_scenarios_never_draws_them() -> None:
    sim = Simulation(SimulationConfig(merchants=30, days=60, mix={"healthy": 1.0}))
    assert {label["scenario"] for label in sim.labels} == {"healthy"}
    sim = Simulation(SimulationConfig(merchants=30, days=60, mix={"chain_collapse": 1.0}))
    assert all(label["chain_id"] for label in sim.labels)


@pytest.mark.parametrize("world_name", ["small", "risky"])
def test_collapse_dates_leave_history_and_fall_inside_the_window(
    world_name: str, request: pytest.FixtureRequest
) -> None:
    world: World = request.getfixturevalue(world_name)
    for label in world.labels.values():
        if label["collapse_date"] is None:
            continue
        collapse = date.fromisoformat(label["collapse_date"])
        assert world.config.start + timedelta(days=120) <= collapse
        assert collapse <= world.end - timedelta(days=7)
        assert date.fromisoformat(label["signal_start"]) < collapse


def test_collapsing_chains_go_down_together(risky: World) -> None:
    chains: dict[str, list[date]] = collections.defaultdict(list)
    for merchant_id in risky.merchants_in("chain_collapse"):
        label = risky.labels[merchant_id]
        chains[label["chain_id"]].append(date.fromisoformat(label["collapse_date"]))
    assert chains
    for chain_id, dates in chains.items():
        members = [m for m, lab in risky.labels.items() if lab["chain_id"] == chain_id]
        assert len(members) == len(dates) >= 2  # every member of the chain collapses
        assert (max(dates) - min(dates)).days <= 70


def test_collapsed_merchants_stop_redeeming_while_healthy_ones_go_on(risky: World) -> None:
    last_month = risky.end - timedelta(days=30)
    for merchant_id, label in risky.labels.items():
        redemptions = [_day(r["occurred_at"]) for r in risky.of("transactions", merchant_id)
                       if r["type"] == "redemption"]
        if label["kind"] == "collapse":
            collapse = date.fromisoformat(label["collapse_date"])
            assert sum(d >= collapse + timedelta(days=3) for d in redemptions) == 0
            complaints = [r for r in risky.of("complaints", merchant_id)
                          if _day(r["occurred_at"]) >= collapse]
            assert complaints, merchant_id  # stranded holders complain
        elif label["scenario"] == "healthy":
            assert sum(d >= last_month for d in redemptions) > 0


def test_announced_renovation_is_published_thirty_days_before_the_pause(risky: World) -> None:
    merchants = risky.merchants_in("announced_renovation")
    assert merchants
    for merchant_id in merchants:
        profiles = risky.of("merchants", merchant_id)
        statuses = [(_day(p["updated_at"]), p["status"]) for p in profiles]
        announced = next(d for d, s in statuses if s == "suspended")
        assert announced == date.fromisoformat(risky.labels[merchant_id]["signal_start"])
        reopened = next((d for d, s in statuses if s == "open" and d > announced), None)
        redemptions = sorted({_day(r["occurred_at"]) for r in risky.of("transactions", merchant_id)
                              if r["type"] == "redemption"})
        # still serving for at least 30 days after the notice ...
        assert any(announced + timedelta(days=25) <= d < announced + timedelta(days=30)
                   for d in redemptions)
        # ... then a pause of at least a week (the longest gap after the notice)
        after = [d for d in redemptions if d >= announced]
        gaps = [(b - a).days for a, b in zip(after, after[1:], strict=False)]
        if reopened is not None and reopened < risky.end - timedelta(days=3):
            pause_start = max(zip(gaps, after, strict=False))[1] + timedelta(days=1)
            assert max(gaps) >= 7
            assert (pause_start - announced).days >= 30
            assert any(d >= reopened for d in redemptions)  # resumes after reopening


def test_new_openings_sell_before_they_serve(risky: World) -> None:
    merchants = risky.merchants_in("new_opening")
    assert merchants
    for merchant_id in merchants:
        opened_on = date.fromisoformat(risky.of("merchants", merchant_id)[0]["opened_on"])
        assert risky.config.start < opened_on < risky.end
        records = risky.of("transactions", merchant_id)
        assert all(_day(r["occurred_at"]) >= opened_on for r in records if r["type"] == "redemption")
        first = risky.of("merchants", merchant_id)[0]
        assert _day(first["updated_at"]) < opened_on


def test_ownership_transfers_change_the_registry_before_collapse(risky: World) -> None:
    merchants = risky.merchants_in("ownership_transfer")
    assert merchants
    for merchant_id in merchants:
        label = risky.labels[merchant_id]
        profiles = risky.of("merchants", merchant_id)
        changes = [
            _day(b["updated_at"]) for a, b in zip(profiles, profiles[1:], strict=False)
            if a["legal_representative"] != b["legal_representative"]
            or (b["registered_capital"] or 0) < (a["registered_capital"] or 0)
        ]
        assert date.fromisoformat(label["signal_start"]) in changes
        lead = date.fromisoformat(label["collapse_date"]) - changes[0]
        assert 3 <= lead.days <= 75


def test_runaway_surges_sell_more_with_deeper_bonuses(risky: World) -> None:
    before_bonus, surge_bonus, before_rate, surge_rate = [], [], [], []
    for merchant_id in risky.merchants_in("runaway_after_surge"):
        label = risky.labels[merchant_id]
        signal = date.fromisoformat(label["signal_start"])
        collapse = date.fromisoformat(label["collapse_date"])
        sales = [r for r in risky.of("transactions", merchant_id) if r["type"] == "card_sale"
                 and _day(r["occurred_at"]) >= risky.config.start]
        before = [r for r in sales if _day(r["occurred_at"]) < signal]
        surge = [r for r in sales if signal <= _day(r["occurred_at"]) < collapse]
        before_bonus += [r["face_value"] / r["amount"] for r in before if r["amount"]]
        surge_bonus += [r["face_value"] / r["amount"] for r in surge if r["amount"]]
        before_rate.append(len(before) / max((signal - risky.config.start).days, 1))
        surge_rate.append(len(surge) / max((collapse - signal).days, 1))
    assert surge_bonus
    assert sum(surge_bonus) / len(surge_bonus) > sum(before_bonus) / len(before_bonus) + 0.1
    assert sum(surge_rate) > sum(before_rate)


def test_viral_complaints_come_in_a_burst_while_business_goes_on(risky: World) -> None:
    merchants = risky.merchants_in("viral_complaints")
    assert merchants
    for merchant_id in merchants:
        burst = date.fromisoformat(risky.labels[merchant_id]["signal_start"])
        complaints = [_day(r["occurred_at"]) for r in risky.of("complaints", merchant_id)]
        in_burst = sum(burst <= d < burst + timedelta(days=6) for d in complaints)
        assert in_burst >= 4
        redemptions = [_day(r["occurred_at"]) for r in risky.of("transactions", merchant_id)
                       if r["type"] == "redemption"]
        assert any(d > burst + timedelta(days=10) for d in redemptions)


def test_seasonal_gyms_have_quiet_months(risky: World) -> None:
    merchants = risky.merchants_in("seasonal_gym")
    assert merchants
    for merchant_id in merchants:
        per_month = collections.Counter(
            r["occurred_at"][:7] for r in risky.of("transactions", merchant_id)
            if r["type"] == "redemption" and r["occurred_at"] >= risky.config.start.isoformat()
        )
        full_months = [per_month[m] for m in sorted(per_month)[1:-1]]
        assert min(full_months) < 0.5 * max(full_months)


# -- Kafka and the CLI ----------------------------------------------------------------------------
class _FakeFuture:
    def add_errback(self, callback: Any) -> None:
        pass


class _FakeProducer:
    sent: list[tuple[str, bytes, bytes, int]] = []

    def __init__(self, **config: Any) -> None:
        assert config["acks"] == "all"

    def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3, 4, 5}

    def send(self, topic: str, key: bytes, value: bytes, partition: int,
             timestamp_ms: int) -> _FakeFuture:
        from kafka.partitioner.default import murmur2

        assert partition == (murmur2(key) & 0x7FFFFFFF) % 6  # Kafka's default for keyed records
        self.sent.append((topic, key, value, timestamp_ms))
        return _FakeFuture()

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_produce_sends_keyed_records_in_event_time_order(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.clients

    _FakeProducer.sent = []
    monkeypatch.setattr(streams.clients, "KafkaProducer", _FakeProducer)
    sim = simulate(SimulationConfig(merchants=12, days=40, seed=1))
    topics = {"transactions": "t", "complaints": "c", "merchants": "m"}
    counts = sim.produce("localhost:1", topics, progress=False)
    assert sum(counts.values()) == len(_FakeProducer.sent)
    stamps = [stamp for *_, stamp in _FakeProducer.sent]
    assert stamps == sorted(stamps)
    for topic, key, value, stamp in _FakeProducer.sent[:2000]:
        record = orjson.loads(value)
        assert key == record["merchant_id"].encode()
        assert stamp == int(datetime.fromisoformat(_time(record)).timestamp() * 1000)
        assert topic in topics.values()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command()(simulate_command)
    return app


def test_cli_writes_files_and_summarises(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        _app(), ["--out", str(tmp_path), "--merchants", "12", "--days", "45", "--seed", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "transactions.jsonl" in result.output and "runaway_after_surge" in result.output
    assert (tmp_path / "labels.jsonl").exists()


@pytest.mark.parametrize(
    "args",
    [["--start", "2025-13-01"], ["--days", "3"], ["--merchants", "0"]],
)
def test_cli_rejects_bad_settings_with_one_line(tmp_path: Path, args: list[str]) -> None:
    result = CliRunner().invoke(_app(), ["--out", str(tmp_path), *args])
    assert result.exit_code == 1
    assert len(result.output.strip().splitlines()) == 1


def test_cli_reports_an_unreachable_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("YUJING_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    from yujing.settings import get_settings

    get_settings.cache_clear()
    try:
        import kafka
        from kafka.errors import KafkaTimeoutError

        def refuse(**_: Any) -> None:
            no_brokers = getattr(kafka.errors, "NoBrokersAvailable", None)
            if no_brokers is not None:
                raise no_brokers()
            raise KafkaTimeoutError("Unable to bootstrap from 127.0.0.1:1")

        import streams.clients

        monkeypatch.setattr(streams.clients, "KafkaProducer", refuse)
        result = CliRunner().invoke(_app(), ["--to-kafka", "--merchants", "12", "--days", "30"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 1
    assert "127.0.0.1:1" in result.output
