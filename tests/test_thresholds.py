"""The thresholds file: schema, errors an operator can act on, content version, diff, and that the
built-in set reproduces today's scoring and levels exactly (pure: no Kafka)."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.levels import LEVELS, LevelPolicy
from models.indicators import ALL_INDICATORS
from models.scoring import RiskScorer
from tests.factories import runaway_merchant, steady_merchant, time_ordered
from yujing.cases.config import CaseSettings
from yujing.engine import DayResult, PartitionEngine
from yujing.thresholds import (
    RANGES,
    Change,
    ThresholdsError,
    ThresholdSet,
    builtin_thresholds,
    diff,
    load_thresholds,
    main,
    parse_thresholds,
    render_yaml,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_FILE = ROOT / "deploy" / "thresholds" / "default.yaml"


def builtin_data() -> dict[str, Any]:
    return builtin_thresholds().model_dump()


def with_changes(**changes: Any) -> dict[str, Any]:
    """The built-in set as plain data with dotted keys replaced (``levels__margin=0.1``)."""
    data = builtin_data()
    for dotted, value in changes.items():
        *path, last = dotted.split("__")
        target = data
        for part in path:
            target = target[part]
        target[last] = value
    return data


def problems_of(data: object) -> list[str]:
    with pytest.raises(ThresholdsError) as caught:
        ThresholdSet.from_mapping(data)
    assert str(caught.value) == "\n".join(caught.value.problems)
    return list(caught.value.problems)


def to_toml(data: dict[str, Any]) -> str:
    """The same content as TOML, written by hand (tomllib only reads)."""
    lines = [f"schema_version = {data['schema_version']}"]
    for code, values in data["indicators"].items():
        lines += ["", f"[indicators.{code}]", *(f"{k} = {v!r}" for k, v in values.items())]
    lines += ["", "[scoring]", *(f"{k} = {v!r}" for k, v in data["scoring"].items())]
    levels = data["levels"]
    lines += ["", "[levels]", *(f"{k} = {v!r}" for k, v in levels.items() if k != "cutoffs")]
    lines += ["", "[levels.cutoffs]", *(f"{k} = {v!r}" for k, v in levels["cutoffs"].items())]
    lines += ["", "[response_hours]", *(f"{k} = {v!r}" for k, v in data["response_hours"].items())]
    return "\n".join(lines) + "\n"


# -- the default file ----------------------------------------------------------------------


def test_the_default_file_is_the_built_in_set_and_in_sync() -> None:
    loaded = load_thresholds(DEFAULT_FILE)
    assert loaded == builtin_thresholds()
    assert loaded.version == builtin_thresholds().version
    assert DEFAULT_FILE.read_text(encoding="utf-8") == render_yaml(builtin_thresholds()), (
        "deploy/thresholds/default.yaml is stale: python -m yujing.thresholds --write deploy/thresholds/default.yaml"
    )


def test_the_generator_writes_the_default_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "default.yaml"
    assert main(["--write", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == DEFAULT_FILE.read_text(encoding="utf-8")


def test_the_built_in_set_takes_every_number_from_the_code() -> None:
    ts = builtin_thresholds()
    assert list(ts.indicators) == [c.code for c in ALL_INDICATORS]
    for c in ALL_INDICATORS:
        t = ts.indicators[c.code]
        assert (t.threshold, t.saturation, t.weight) == (c.default_threshold, c.default_saturation, c.default_weight)
    scorer = RiskScorer()
    assert (ts.scoring.detector_weight, ts.scoring.joint_weight) == (scorer.detector_weight, scorer.joint_weight)
    policy = LevelPolicy()
    assert ts.levels.cutoffs == policy.cutoffs and ts.levels.margin == policy.margin
    assert (ts.levels.deescalate_after_days, ts.levels.clear_after_days) == (7, 14)
    case_default = CaseSettings.model_fields["response_hours"].default_factory()  # type: ignore[call-arg,misc]
    assert ts.response_hours == case_default == ts.response_policy().working_hours


def test_every_indicator_has_a_range_and_the_built_in_values_lie_within_it() -> None:
    assert set(RANGES) == {c.code for c in ALL_INDICATORS}
    for c in ALL_INDICATORS:
        allowed = RANGES[c.code]
        assert c.default_threshold in allowed.threshold and c.default_saturation in allowed.saturation, c.code


# -- version -----------------------------------------------------------------------------


def test_the_version_ignores_comments_key_order_formatting_and_format() -> None:
    ts = builtin_thresholds()
    data = builtin_data()
    shuffled = {k: data[k] for k in reversed(list(data))}
    shuffled["indicators"] = {k: dict(reversed(list(v.items()))) for k, v in reversed(list(data["indicators"].items()))}
    flow = yaml.safe_dump(shuffled, default_flow_style=True, sort_keys=False, width=10_000)
    assert "#" not in flow and flow != render_yaml(ts)
    as_ints = render_yaml(ts).replace("threshold: 90.0", "threshold: 90").replace("blue: 75.0", "blue: 75.00")
    variants = {
        "comments": parse_thresholds(render_yaml(ts), "yaml"),
        "flow style, reversed keys, no comments": parse_thresholds(flow, "yaml"),
        "90 for 90.0": parse_thresholds(as_ints, "yaml"),
        "toml": parse_thresholds(to_toml(data), "toml"),
    }
    for name, parsed in variants.items():
        assert parsed == ts and parsed.version == ts.version, name


def test_the_version_is_t_and_twelve_hex_digits_and_any_value_change_changes_it() -> None:
    ts = builtin_thresholds()
    assert ts.version.startswith("t-") and len(ts.version) == 14 and int(ts.version[2:], 16) >= 0
    changed = [
        with_changes(indicators__silence__weight=0.7),
        with_changes(indicators__sales_surge__threshold=2.6),
        with_changes(scoring__joint_weight=0.21),
        with_changes(levels__margin=0.04),
        with_changes(levels__clear_after_days=15),
        with_changes(response_hours__blue=76.0),
    ]
    versions = {ThresholdSet.from_mapping(d).version for d in changed}
    assert ts.version not in versions and len(versions) == len(changed)
    negative_zero = with_changes(indicators__representative_link__threshold=-0.0)
    assert ThresholdSet.from_mapping(negative_zero).version == ts.version


# -- errors ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["indicators"]["silence"].update(weight=1.4),
         "indicators.silence.weight: 1.4 is outside the allowed range 0 to 1"),
        (lambda d: d["indicators"]["silence"].update(weight="heavy"),
         "indicators.silence.weight: 'heavy' is not a number; allowed range 0 to 1"),
        (lambda d: d["indicators"]["deep_discount_share"].update(threshold=40),
         "indicators.deep_discount_share.threshold: 40 is outside the allowed range 0 to 1 (a share)"),
        (lambda d: d["indicators"]["sales_surge"].update(saturation=2.0),
         "indicators.sales_surge.saturation: 2 must be above the threshold (2.5): higher values are worse"),
        (lambda d: d["indicators"]["custody_coverage"].update(saturation=0.95),
         "indicators.custody_coverage.saturation: 0.95 must be below the threshold (0.9): lower values are worse"),
        (lambda d: d["indicators"]["silence"].update(saturation=1.0),
         "indicators.silence.saturation: 1 is outside the allowed range above 1 up to 20 (times the threshold)"),
        (lambda d: d["indicators"]["registry_change"].update(threshold=60.0),
         "indicators.registry_change.saturation: 90 must equal the threshold (60): the indicator scores 1 for any "
         "value within the threshold and has no saturation"),
        (lambda d: d["indicators"]["registry_change"].update(threshold=120.0),
         "indicators.registry_change.threshold: 120 is outside the allowed range 1 to 90 days"),
        (lambda d: d["indicators"]["liability_months"].update(threshold=math.inf),
         "indicators.liability_months.threshold: inf is not a finite number; allowed range above 0 up to 120 months"),
        (lambda d: d["indicators"]["liability_months"].pop("weight"),
         "indicators.liability_months.weight: missing; allowed range 0 to 1"),
        (lambda d: d["indicators"].pop("silence"),
         "indicators.silence: missing; every indicator needs its threshold, saturation and weight"),
        (lambda d: d["indicators"].update(silense=d["indicators"]["silence"]),
         "indicators.silense: unknown indicator; known: sales_surge, peer_sales_surge, deep_discount_share, "
         "liability_months, custody_coverage, complaint_surge, silence, redemption_decline, registry_change, "
         "over_cap_cards, refund_pressure, custody_report_missing, sales_decline, severe_complaints, "
         "chain_contagion, representative_link"),
        (lambda d: d["indicators"]["silence"].update(saturaton=3.0),
         "indicators.silence.saturaton: unknown key; allowed here: threshold, saturation, weight"),
        (lambda d: d.update(comment="tuned for Nanqiao"),
         "comment: unknown key; allowed here: schema_version, indicators, scoring, levels, response_hours"),
        (lambda d: d.update(schema_version=2),
         "schema_version: 2 is not supported; this yujing reads schema_version 1"),
        (lambda d: d.pop("scoring"),
         "scoring: missing; a mapping of detector_weight, joint_weight"),
        (lambda d: d.update(levels=[0.3, 0.45]),
         "levels: expected a mapping of cutoffs, margin, deescalate_after_days, clear_after_days, got a list"),
        (lambda d: d["levels"]["cutoffs"].update(orange=0.4),
         "levels.cutoffs.orange: 0.4 must be above yellow's 0.45 (cut-offs rise strictly from blue to red)"),
        (lambda d: d["levels"]["cutoffs"].update(yellow=0.3),
         "levels.cutoffs.yellow: 0.3 must be above blue's 0.3 (cut-offs rise strictly from blue to red)"),
        (lambda d: d["levels"]["cutoffs"].update(red=0),
         "levels.cutoffs.red: 0 is outside the allowed range above 0 up to 1"),
        (lambda d: d["levels"]["cutoffs"].pop("red"),
         "levels.cutoffs.red: missing; allowed range above 0 up to 1"),
        (lambda d: d["levels"]["cutoffs"].update(purple=0.9),
         "levels.cutoffs.purple: unknown level; the levels are blue, yellow, orange, red"),
        (lambda d: d["levels"].update(margin=0.3),
         "levels.margin: 0.3 is outside the allowed range 0 to 0.2"),
        (lambda d: d["levels"].update(deescalate_after_days=7.5),
         "levels.deescalate_after_days: 7.5 is not a whole number; allowed range 1 to 90 days"),
        (lambda d: d["levels"].update(clear_after_days=5),
         "levels.clear_after_days: 5 must be at least deescalate_after_days (7)"),
        (lambda d: d["levels"].update(clear_after_days=365),
         "levels.clear_after_days: 365 is outside the allowed range 1 to 180 days"),
        (lambda d: d["response_hours"].update(orange=3.0),
         "response_hours.orange: 3 must be at least red's 4 (deadlines may only lengthen from red to blue)"),
        (lambda d: d["response_hours"].update(blue=1000.0),
         "response_hours.blue: 1000 is outside the allowed range above 0 up to 720 working hours"),
        (lambda d: d.pop("schema_version"),
         "schema_version: missing; this yujing reads schema_version 1"),
        (lambda d: d["indicators"].update(silence=None),
         "indicators.silence: expected a mapping of threshold, saturation, weight, got nothing"),
        (lambda d: d.pop("response_hours"),
         "response_hours: missing; a mapping of red, orange, yellow, blue"),
        (lambda d: d["levels"].update(cutoffs=[0.3, 0.45, 0.6, 0.8]),
         "levels.cutoffs: expected a mapping of blue, yellow, orange, red, got a list"),
        (lambda d: d["scoring"].update(joint_weight=True),
         "scoring.joint_weight: True is not a number; allowed range 0 to 1"),
    ],
)
def test_a_problem_names_the_key_and_the_allowed_range(change: Callable[[dict[str, Any]], Any], expected: str) -> None:
    data = builtin_data()
    change(data)
    assert problems_of(data) == [expected]


def test_every_problem_of_a_file_comes_in_one_error_in_the_files_order() -> None:
    text = render_yaml(builtin_thresholds())
    for old, new in [
        ("  silence:\n    threshold: 4.0\n    saturation: 3.0\n    weight: 0.75\n", ""),  # missing indicator
        ("    weight: 0.4\n", "    weight: 1.4\n    colour: red\n"),  # sales_surge: range, extra key
        ("    threshold: 0.4\n", "    threshold: forty\n"),  # deep_discount_share: wrong type
        ("    orange: 0.6\n", "    orange: 0.4\n"),  # non-increasing cut-offs
        ("response_hours:\n", "levels_note: tuned\nresponse_hours:\n"),  # unknown top-level key
        ("indicators:\n", "indicators:\n  silent:\n    threshold: 4.0\n    saturation: 3.0\n    weight: 0.7\n"),
    ]:
        assert old in text
        text = text.replace(old, new, 1)
    with pytest.raises(ThresholdsError) as caught:
        parse_thresholds(text, "yaml")
    assert caught.value.problems == (
        "indicators.sales_surge.weight: 1.4 is outside the allowed range 0 to 1",
        "indicators.sales_surge.colour: unknown key; allowed here: threshold, saturation, weight",
        "indicators.deep_discount_share.threshold: 'forty' is not a number; allowed range 0 to 1 (a share)",
        "indicators.silence: missing; every indicator needs its threshold, saturation and weight",
        "indicators.silent: unknown indicator; known: " + ", ".join(c.code for c in ALL_INDICATORS),
        "levels.cutoffs.orange: 0.4 must be above yellow's 0.45 (cut-offs rise strictly from blue to red)",
        "levels_note: unknown key; allowed here: schema_version, indicators, scoring, levels, response_hours",
    )
    assert str(caught.value).count("\n") == 6 and isinstance(caught.value, ValueError)


def test_a_direct_construction_is_validated_too() -> None:
    good = builtin_thresholds()
    with pytest.raises(ValueError, match="must be above yellow's 0.45"):
        ThresholdSet(
            schema_version=1, indicators=good.indicators, scoring=good.scoring,
            levels=good.levels.model_copy(update={"cutoffs": {**good.levels.cutoffs, "orange": 0.4}}).model_dump(),
            response_hours=good.response_hours,
        )
    with pytest.raises(ValueError):
        good.levels.margin = 0.1  # type: ignore[misc]  # frozen


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ("schema_version: 1\nindicators:\n  silence: {threshold: 4\n", "yaml",
         "(file): not valid YAML at line 4, column 1: expected ',' or '}', but got '<stream end>'"),
        ("schema_version: 1\nlevels:\n  margin: 0.05\n   clear_after_days: 14\n", "yaml",
         "(file): not valid YAML at line 4, column 20: mapping values are not allowed here"),
        ("schema_version: 1\nlevels:\n  margin: 0.05\n  margin: 0.1\n", "yaml",
         "(file): not valid YAML at line 4, column 3: duplicate key 'margin'"),
        ("schema_version = 1\n[levels]\nmargin = \n", "toml",
         "(file): not valid TOML: Invalid value (at line 3, column 10)"),
        ("schema_version = 1\n[levels]\nmargin = 0.05\nmargin = 0.1\n", "toml",
         "(file): not valid TOML: Cannot overwrite a value (at line 4, column 13)"),
        ("", "yaml", "(file): empty; expected schema_version, indicators, scoring, levels, response_hours"),
        ("- 1\n- 2\n", "yaml",
         "(file): expected a mapping of schema_version, indicators, scoring, levels, response_hours, got a list"),
        ("{}", "json", "(file): unknown format 'json'; use yaml or toml"),
    ],
)
def test_a_file_that_is_not_yaml_or_toml_gives_one_line_with_its_position(text: str, fmt: str, expected: str) -> None:
    with pytest.raises(ThresholdsError) as caught:
        parse_thresholds(text, fmt)
    assert caught.value.problems == (expected,)


def test_files_are_read_by_their_suffix(tmp_path: Path) -> None:
    data = builtin_data()
    (tmp_path / "a.yml").write_text(render_yaml(builtin_thresholds()), encoding="utf-8")
    (tmp_path / "a.toml").write_text(to_toml(data), encoding="utf-8")
    (tmp_path / "a.json").write_text("{}", encoding="utf-8")
    assert load_thresholds(tmp_path / "a.yml") == load_thresholds(tmp_path / "a.toml") == builtin_thresholds()
    expected = r"a\.json is neither YAML nor TOML; thresholds files end in \.yaml, \.yml, \.toml"
    with pytest.raises(ThresholdsError, match=expected):
        load_thresholds(tmp_path / "a.json")


def test_an_edited_set_renders_and_reads_back_the_same() -> None:
    data = with_changes(indicators__silence__weight=1e-05, levels__margin=0.0, response_hours__red=0.5)
    ts = ThresholdSet.from_mapping(data)
    text = render_yaml(ts)
    assert "weight: 1.0e-05" in text and "# built in: max(4 d, 4× usual gap) → 3× that, weight 0.75" in text
    assert parse_thresholds(text, "yaml") == ts


# -- diff --------------------------------------------------------------------------------


def test_diff_lists_changed_values_in_the_files_order() -> None:
    old = builtin_thresholds()
    new = ThresholdSet.from_mapping(with_changes(
        response_hours__red=2.0, levels__cutoffs__orange=0.55, indicators__silence__weight=0.8,
        indicators__sales_surge__threshold=3.0, scoring__detector_weight=0.3,
    ))
    changes = diff(old, new)
    assert changes == [
        Change("indicators.sales_surge.threshold", 2.5, 3.0),
        Change("indicators.silence.weight", 0.75, 0.8),
        Change("scoring.detector_weight", 0.25, 0.3),
        Change("levels.cutoffs.orange", 0.6, 0.55),
        Change("response_hours.red", 4.0, 2.0),
    ]
    assert [str(c) for c in changes] == [
        "indicators.sales_surge.threshold: 2.5 → 3",
        "indicators.silence.weight: 0.75 → 0.8",
        "scoring.detector_weight: 0.25 → 0.3",
        "levels.cutoffs.orange: 0.6 → 0.55",
        "response_hours.red: 4 → 2",
    ]
    assert diff(old, old) == [] and diff(new, old)[0] == Change("indicators.sales_surge.threshold", 3.0, 2.5)


# -- the objects it builds -----------------------------------------------------------------


def replay(scorer: RiskScorer | None, policy: LevelPolicy | None) -> tuple[list[tuple], list[dict]]:
    days: list[DayResult] = []
    engine = PartitionEngine(buckets={}, merchants={}, clocks={}, scorer=scorer, policy=policy,
                             allowed_lateness=timedelta(hours=6), on_day_scored=days.append)
    warnings = []
    for event in time_ordered(runaway_merchant("run", 150, collapse_day=120), steady_merchant("ok", 150)):
        warnings.extend(engine.process(event, 0).warnings)
    trajectory = [(d.merchant_id, d.day, d.score.score, d.level,
                   [(c.reading, c.weight) for c in d.score.contributions]) for d in days]
    return trajectory, [w.model_dump(exclude={"emitted_at"}) for w in warnings]


def test_the_built_in_set_scores_and_levels_exactly_like_todays_defaults() -> None:
    ts = builtin_thresholds()
    today = replay(None, None)
    assert today[1], "the runaway merchant raises warnings"
    assert replay(ts.scorer(), ts.level_policy()) == today
    assert ts.level_policy() == LevelPolicy()
    assert [repr(i) for i in ts.scorer().indicators] == [repr(i) for i in RiskScorer().indicators]


def test_other_thresholds_give_other_scores() -> None:
    data = builtin_data()
    for values in data["indicators"].values():
        values["weight"] = values["weight"] / 2
    halved = ThresholdSet.from_mapping(data)
    today, tuned = replay(None, None), replay(halved.scorer(), halved.level_policy())
    assert max(d[2] for d in tuned[0]) < max(d[2] for d in today[0])


def test_a_changed_cut_off_changes_the_level() -> None:
    lowered = ThresholdSet.from_mapping(with_changes(levels__cutoffs__orange=0.55))
    assert LevelPolicy().level_for(0.57) == builtin_thresholds().level_policy().level_for(0.57) == "yellow"
    assert lowered.level_policy().level_for(0.57) == "orange"
    assert list(lowered.level_policy().cutoffs) == list(LEVELS)


def test_the_example_states_of_the_scoring_doctests_score_alike() -> None:
    from datetime import datetime

    from models.state import DayTotals, MerchantState

    def state() -> MerchantState:
        s = MerchantState("m1", partition=0, first_day=1)
        for day in range(1, 31):
            totals = DayTotals()
            totals.add_transaction("redemption", 100.0, 100.0, datetime(2026, 3, day % 28 + 1, 15))
            s.fold(day, totals)
        return s

    today, built = RiskScorer().score(state(), 30), builtin_thresholds().scorer().score(state(), 30)
    assert (built.score, built.contributions) == (today.score, today.contributions)


def test_a_thresholds_set_is_independent_of_the_data_it_was_built_from() -> None:
    data = builtin_data()
    ts = ThresholdSet.from_mapping(data)
    before = ts.version
    data["indicators"]["silence"]["weight"] = 0.1
    assert ts.version == before
