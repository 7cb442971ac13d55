"""``silence``: no redemptions while prepaid balances are outstanding, in event time."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp

MIN_BALANCE = 10_000.0  # yuan outstanding before a silent store matters
NOTICE_DAYS = 30  # Shanghai rules: closing or moving needs 30 days' public notice


class Silence(Indicator):
    """Days without a redemption, against the merchant's usual gap between redemption days;
    a suspension announced at least 30 days before the silence began is honoured.

    >>> Silence().evaluate({"silent_days": 9, "expected_redemption_gap_days": 1.0,
    ...                     "prepaid_balance": 80_000, "observed_days": 60})
    Reading(code='silence', value=9.0, threshold=4.0, score=0.625, ...)
    >>> Silence().evaluate({"silent_days": 40, "expected_redemption_gap_days": 1.0,
    ...    "prepaid_balance": 80_000, "observed_days": 60, "suspended_notice_days": 35}) is None
    True
    """

    code = "silence"
    name_zh = "核销停滞"
    name_en = "Silence with balances outstanding"
    rationale = "A store that goes quiet without notice while holding prepaid money is a run-away."
    rationale_zh = "未经公告停止服务且仍持有预收资金,是系统要发现的典型跑路。"
    formula = (
        "days since the last redemption while ≥ 10,000 yuan is outstanding, in event time; threshold max(4 days, 4 × usual gap before the silence); Spring Festival break and suspensions announced ≥ 30 days ahead excluded"
    )
    default_threshold = 4.0  # times the usual gap, and at least this many days
    default_saturation = 3.0  # times the threshold
    range_text = "max(4 d, 4× usual gap) → 3× that"

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        if features.get("prepaid_balance", 0.0) < MIN_BALANCE or features.get("observed_days", 0) < 14:
            return None
        if features.get("suspended_notice_days", -1.0) >= NOTICE_DAYS:
            return None
        value = features.get("silent_days", 0.0)
        gap = features.get("expected_redemption_gap_days", 1.0)
        threshold = max(self.threshold, self.threshold * gap)
        return self.reading(
            value,
            ramp(value, threshold, threshold * self.saturation),
            f"已连续{value:.0f}天无核销且仍有预收余额,超过{threshold:.0f}天阈值",
            f"no redemptions for {value:.0f} days while prepaid balances are outstanding "
            f"(threshold {threshold:.0f} days)",
            threshold=threshold,
        )
