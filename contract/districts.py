"""Fengxian's towns and sub-districts: the bounded set of ``town`` metric label values.

A profile's ``district`` is free text on the wire; metrics label it with one of these names or
``其他`` (other), so a typo in one profile cannot grow a new time series.

>>> town_label("南桥镇"), town_label("南桥"), town_label(None)
('南桥镇', '其他', '其他')
"""

from __future__ import annotations

#: Fengxian district's towns (镇), sub-districts (街道) and the Haiwan tourist zone.
FENGXIAN_TOWNS: tuple[str, ...] = (
    "南桥镇", "奉城镇", "庄行镇", "金汇镇", "四团镇", "青村镇", "柘林镇", "海湾镇",
    "西渡街道", "奉浦街道", "金海街道", "海湾旅游区",
)
OTHER_TOWN = "其他"
TOWN_LABELS: tuple[str, ...] = (*FENGXIAN_TOWNS, OTHER_TOWN)

#: The contract's industries plus ``unknown`` (no profile yet).
INDUSTRY_LABELS: tuple[str, ...] = ("beauty", "hairdressing", "fitness", "other", "unknown")


def town_label(district: str | None) -> str:
    return district if district in FENGXIAN_TOWNS else OTHER_TOWN


def industry_label(industry: str | None) -> str:
    return industry if industry in INDUSTRY_LABELS else "unknown"
