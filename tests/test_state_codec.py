"""The compact merchant-state codec (engine/state_codec.py): every state of a real replay comes
back exactly, detectors included; a replay resumed from decoded states warns as the uninterrupted
one; unknown versions and damaged bytes are clear errors; pickled states of older changelogs
still load; and the size grows by a bounded amount per day of history.

Replays use the set whose fusion ``tests/stated_fusion.py`` states, so that they raise warnings
(and staff answer them) whatever ``yujing train`` last learned."""

from __future__ import annotations

import base64
import pickle
import random
import zlib
from dataclasses import fields, replace
from datetime import timedelta
from pathlib import Path

import orjson
import pytest

from alerts.threshold_history import ThresholdSchedule
from contract.records import Feedback, Warning
from engine import state_codec
from engine.replay import Checkpoint, Replay
from engine.state_codec import (
    MAGIC,
    VERSION,
    CodecError,
    _write_moment,
    decode_merchant,
    encode_merchant,
)
from models.calendar import day_start
from models.detectors import AdaptiveBaseline, ScaledHalfSpaceTrees
from models.detectors.forest_packing import encode_forest
from models.packing import Reader, Writer
from models.scoring import joint_features
from models.state import HISTORY_DAYS, DayTotals, MerchantState, id_digest
from tests.stated_fusion import stated_thresholds
from yujing.simulator import SimulationConfig, simulate

SIMULATION = SimulationConfig(merchants=16, days=150, seed=11)
PARTITIONS = 6
LATENESS = timedelta(hours=6)
SINCE = SIMULATION.start + timedelta(days=100)


def staff(warning: Warning) -> list[Feedback]:
    """Staff who answer every raise five days later: a false alarm, or (one in three) a
    confirmed risk, so states carry holds and known anomalies."""
    if warning.transition != "raised":
        return []
    decided = warning.raised_at + timedelta(days=5)
    disposition = "confirmed_risk" if int(warning.warning_id[-4:], 16) % 3 == 0 else "false_alarm"
    return [Feedback(
        feedback_id=f"staff-{warning.warning_id}", merchant_id=warning.merchant_id,
        case_id=f"case-{warning.warning_id}", disposition=disposition, level=warning.level,
        score=warning.score, indicator_codes=[i.code for i in warning.indicators],
        warning_ids=[warning.warning_id], effective_from=decided, decided_at=decided, decided_by_role="simulated",
    )]


def replay(events_dir: Path) -> Replay:
    return Replay(events_dir, partitions=PARTITIONS, allowed_lateness=LATENESS, staff=staff,
                  schedule=ThresholdSchedule(stated_thresholds()))


def comparable(warnings: list[Warning]) -> list[bytes]:
    return [orjson.dumps(w.model_dump(mode="json", exclude={"emitted_at"})) for w in warnings]


@pytest.fixture(scope="module")
def events_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("codec") / "events"
    simulate(SIMULATION).write(target)
    return target


@pytest.fixture(scope="module")
def whole(events_dir: Path) -> Replay:
    run = replay(events_dir)
    run.run()
    return run


@pytest.fixture(scope="module")
def states(whole: Replay) -> dict[str, MerchantState]:
    return dict(whole.engine.merchants)


def packed(detector: AdaptiveBaseline | ScaledHalfSpaceTrees | object) -> bytes | None:
    if detector is None:
        return None
    assert isinstance(detector, AdaptiveBaseline | ScaledHalfSpaceTrees)
    out = Writer()
    detector.pack(out)
    return out.getvalue()


def test_every_merchant_state_of_a_replay_comes_back_field_by_field(states: dict[str, MerchantState]) -> None:
    seen = {f.name: 0 for f in fields(MerchantState)}
    for state in states.values():
        data = encode_merchant(state)
        copy = decode_merchant(data)
        for item in fields(MerchantState):
            mine, theirs = getattr(state, item.name), getattr(copy, item.name)
            if item.name in ("detector", "joint_detector"):
                assert type(mine) is type(theirs) and packed(mine) == packed(theirs), item.name
            else:
                assert mine == theirs, (state.merchant_id, item.name)
            seen[item.name] += bool(mine)
        assert copy.history.maxlen == state.history.maxlen == HISTORY_DAYS
        assert encode_merchant(copy) == data  # and the copy encodes to the very same bytes
    # The world exercised every field (else equality would prove little).
    missing = {name for name, n in seen.items() if not n} - {"partition", "late_profiles", "chain_levels"}
    assert not missing, f"no merchant of the replay has {missing}"


def test_the_trees_grown_again_carry_every_node_and_mass(states: dict[str, MerchantState]) -> None:
    for state in states.values():
        joint = state.joint_detector
        assert isinstance(joint, ScaledHalfSpaceTrees) and joint._hst is not None
        copy = decode_merchant(encode_merchant(state)).joint_detector
        assert isinstance(copy, ScaledHalfSpaceTrees) and copy._hst is not None
        # Node by node: kinds, split features and thresholds, both masses of every node.
        assert encode_forest(list(copy._hst.trees)) == encode_forest(list(joint._hst.trees))
        assert (copy._hst.counter, copy._hst._first_window) == (joint._hst.counter, joint._hst._first_window)


def test_decoded_detectors_score_and_learn_the_next_days_identically(states: dict[str, MerchantState]) -> None:
    rng = random.Random(5)
    for state in states.values():
        copy = decode_merchant(encode_merchant(state))
        x = joint_features(state)
        for _ in range(40):  # past the next window pivot
            point = {name: value * rng.uniform(0.2, 3.0) for name, value in x.items()}
            for original, restored in ((state.joint_detector, copy.joint_detector), (state.detector, copy.detector)):
                assert isinstance(original, ScaledHalfSpaceTrees | AdaptiveBaseline)
                assert isinstance(restored, ScaledHalfSpaceTrees | AdaptiveBaseline)
                assert restored.score_one(point) == original.score_one(point)
                original.learn_one(point)
                restored.learn_one(point)
            assert packed(copy.joint_detector) == packed(state.joint_detector)


def test_a_replay_resumed_from_decoded_states_warns_as_the_uninterrupted_one(events_dir: Path, whole: Replay) -> None:
    warm = replay(events_dir)
    warm.run(day_start(SINCE.toordinal()))
    checkpoint = warm.checkpoint()
    encoded = {merchant_id: encode_merchant(state) for merchant_id, state in checkpoint.merchants.items()}
    rest: Checkpoint = pickle.loads(pickle.dumps(replace(checkpoint, merchants={})))  # as a worker restart
    rest.merchants = {merchant_id: decode_merchant(data) for merchant_id, data in encoded.items()}
    resumed = Replay.resume(rest, staff=staff, schedule=ThresholdSchedule(stated_thresholds())).run()
    assert whole.result.warnings, "the replay must raise warnings to prove anything"
    assert any(w.raised_at.date() >= SINCE for w in whole.result.warnings), "and some after the checkpoint"
    assert comparable(resumed.warnings) == comparable(whole.result.warnings)
    assert [f.feedback_id for f in resumed.feedback] == [f.feedback_id for f in whole.result.feedback]


def test_an_unknown_version_or_damaged_bytes_are_clear_errors(states: dict[str, MerchantState]) -> None:
    data = encode_merchant(next(iter(states.values())))
    assert data.startswith(MAGIC + bytes([VERSION]))
    with pytest.raises(CodecError, match="format version 3: this code reads versions 1 and 2"):
        decode_merchant(MAGIC + bytes([3]) + data[len(MAGIC) + 1:])
    with pytest.raises(CodecError, match="not an encoded merchant state"):
        decode_merchant(b'{"merchant_id": "m1"}')
    with pytest.raises(CodecError, match="corrupt"):
        decode_merchant(data[:-20])
    with pytest.raises(CodecError):  # a body cut short inside: the reader runs out
        decode_merchant(MAGIC + bytes([VERSION]) + zlib.compress(b"\x02m1\x00"))


def test_a_pickled_state_of_an_older_changelog_still_loads(states: dict[str, MerchantState]) -> None:
    state = max(states.values(), key=lambda s: len(s.recent_ids))
    ids = [f"tx-{state.merchant_id}-{i:07d}" for i in range(len(state.recent_ids))]
    old = replace(state, recent_ids=dict(zip(ids, state.recent_ids.values(), strict=True)))  # ids kept whole
    restored = decode_merchant(pickle.dumps(old))
    assert restored.recent_ids == {id_digest(i): day for i, day in old.recent_ids.items()}
    assert restored.history == state.history and packed(restored.joint_detector) == packed(state.joint_detector)


def test_the_worker_tables_codecs_read_what_faust_pickled_before() -> None:
    from faust.serializers import codecs

    from streams.app import MERCHANT_CODEC, PICKLE_CODEC

    state = MerchantState("m1", partition=2, first_day=739311)
    state.fold(739311, DayTotals(redeemed=10.0, redemptions=1, event_ids={"tx-1"}))
    merchants = codecs.get_codec(MERCHANT_CODEC)
    assert merchants.dumps(state).startswith(MAGIC)
    assert merchants.loads(merchants.dumps(state)) == state
    # Faust's own "pickle" codec (base64 of a pickle) wrote the changelogs before this one.
    legacy = replace(state, recent_ids={"tx-1": 739311})
    assert merchants.loads(codecs.dumps("pickle", legacy)) == state
    assert codecs.loads(PICKLE_CODEC, codecs.dumps("pickle", {"a": 1})) == {"a": 1}
    assert codecs.loads(PICKLE_CODEC, codecs.dumps(PICKLE_CODEC, {"a": 1})) == {"a": 1}
    assert base64.b64decode(codecs.dumps("pickle", 1))[:1] == b"\x80"


def _busy(rng: random.Random) -> DayTotals:
    return DayTotals(sales_paid=round(rng.uniform(0, 50_000), 2), sales_face=round(rng.uniform(0, 60_000), 2),
                     card_sales=rng.randrange(0, 100), redeemed=round(rng.uniform(0, 50_000), 2),
                     redemptions=rng.randrange(0, 120), refunded_paid=round(rng.uniform(0, 5_000), 2),
                     refunded_face=round(rng.uniform(0, 6_000), 2), refunds=rng.randrange(0, 10))


def test_a_day_of_history_costs_at_most_one_fixed_width_row() -> None:
    """Amounts under 21 million yuan take 4 bytes, counts under 128 one byte, the day's step one:
    a busy day adds at most 6 x 4 + 9 + 1 = 34 bytes (zlib may only take some away); a quiet day,
    all zeros, next to nothing."""
    rng = random.Random(11)
    first = 739311
    busy, quiet = MerchantState("busy", 0, first), MerchantState("quiet", 0, first)
    empty = len(encode_merchant(busy))
    for day in range(first, first + HISTORY_DAYS):
        busy.fold(day, _busy(rng))
        quiet.fold(day, None)
    assert len(encode_merchant(busy)) <= empty + 34 * HISTORY_DAYS + 16
    assert len(encode_merchant(quiet)) <= empty + 64
    # The rolling history is bounded, so is the size: another half year adds nothing.
    size = len(encode_merchant(busy))
    for day in range(first + HISTORY_DAYS, first + 2 * HISTORY_DAYS):
        busy.fold(day, _busy(rng))
    assert len(encode_merchant(busy)) <= size + 64


def test_an_event_id_costs_eight_bytes_and_a_day_of_them_a_few_more() -> None:
    state = MerchantState("m1", 0, 739311)
    empty = len(encode_merchant(state))
    for day in range(739311, 739311 + 30):
        state.fold(day, DayTotals(event_ids={f"tx-m1-{day}-{i}" for i in range(50)}))
    assert len(state.recent_ids) == 1500
    assert len(encode_merchant(state)) <= empty + 1500 * 8 + 30 * 8 + 30 * 16  # ids, day headers, history rows


def test_an_object_the_codec_does_not_know_is_refused() -> None:
    state = MerchantState("m1", 0, 739311)
    state.alert = {"level": "red"}
    with pytest.raises(TypeError, match="cannot encode a dict"):
        encode_merchant(state)
    with pytest.raises(ValueError, match="unseeded"):
        detector = ScaledHalfSpaceTrees(seed=None)
        detector.learn_one({"a": 1.0})
        detector.pack(Writer())
    assert Reader(b"").end() is None


def test_late_profile_times_and_chain_levels_come_back(states: dict[str, MerchantState]) -> None:
    state = next(iter(states.values()))
    late = state.profiles[-1]._replace(updated_at=day_start(739500), reported_at=state.profiles[-1].updated_at)
    state = replace(state, late_profiles={1_700_000_000.25, 1_690_000_000.0},
                    chain_levels={"chain-1|m2": [(739400, "orange"), (739420, "red")]},
                    profiles=[*state.profiles, late])
    copy = decode_merchant(encode_merchant(state))
    assert (copy.late_profiles, copy.chain_levels) == (state.late_profiles, state.chain_levels)
    assert copy.profiles == state.profiles and copy.profiles[-1].reported_at == late.reported_at


def test_a_version_1_state_still_loads(states: dict[str, MerchantState], monkeypatch: pytest.MonkeyPatch) -> None:
    """A changelog written before version 2 (no refunded stored value per day, no late version
    times) loads; each day's refunds' stored value is taken as the amount refunded."""
    state = max(states.values(), key=lambda s: sum(d.refunds for d in s.history))
    assert any(d.refunds for d in state.history)

    monkeypatch.setattr(state_codec, "VERSION", 1)
    monkeypatch.setattr(state_codec, "_AMOUNTS", state_codec._AMOUNTS_V1)
    monkeypatch.setattr(state_codec, "_write_profiles", _write_profiles_v1)
    old = encode_merchant(state)
    monkeypatch.undo()
    assert old[len(MAGIC)] == 1
    restored = decode_merchant(old)
    assert restored.profiles == state.profiles and restored.prepaid_balance == state.prepaid_balance
    assert [d.refunded_face for d in restored.history] == [d.refunded_paid for d in state.history]
    assert [d._replace(refunded_face=0.0) for d in restored.history] == [
        d._replace(refunded_face=0.0) for d in state.history]


def _write_profiles_v1(out: Writer, profiles: list) -> None:
    """engine.state_codec._write_profiles as version 1 had it (no ``reported_at``)."""
    out.uint(len(profiles))
    for p in profiles:
        _write_moment(out, p.updated_at)
        for text in (p.name, p.industry, p.district):
            out.text(text)
        out.optional_text(p.chain_id)
        out.signed(p.opened_on)
        out.text(p.status)
        out.optional_float(p.custody_balance)
        out.optional_text(p.legal_representative)
        out.optional_float(p.registered_capital)
