"""``representative_link``: a legal representative, present or past, stands behind merchants already at orange or red."""

from __future__ import annotations

from models.indicators.base import Indicator, Reading, ramp


class RepresentativeLink(Indicator):
    """Other merchants that have reached orange or red, at any time, and have had one of this
    merchant's legal representatives, present or past (a representative's record does not heal,
    and one who handed a store over weeks before it collapsed stays linked to it). Signals come
    from those merchants' own warnings through the link directory (``alerts.chains``, group
    ``rep:<id>``, one per representative a merchant has had).

    Market regulators name a change of legal representative as the usual first move before a
    run-away, and find the same representative behind several gyms that later closed.

    >>> RepresentativeLink().evaluate({"representative_linked_urgent": 1.0})
    Reading(code='representative_link', value=1.0, threshold=0.0, score=1.0, ...)
    >>> RepresentativeLink().evaluate({}) is None
    True
    """

    code = "representative_link"
    name_zh = "法定代表人关联风险"
    name_en = "Representative linked to failing merchants"
    rationale = "The same legal representative turns up behind several prepaid businesses that closed."
    rationale_zh = "同一法定代表人常出现在多家先后关门的商户背后。"
    formula = (
        "other merchants that have had one of its legal representatives (present or past) and have ever "
        "reached orange or red"
    )
    default_threshold = 0.0
    default_saturation = 1.0
    range_text = "0 → 1 merchant"

    def evaluate(self, features: dict[str, float]) -> Reading | None:
        if "representative_linked_urgent" not in features:
            return None
        value = features["representative_linked_urgent"]
        return self.reading(
            value,
            ramp(value, self.threshold, self.saturation),
            f"其现任或前任法定代表人名下另有{value:.0f}家商户曾达橙色或红色预警(阈值{self.threshold:g}家)",
            f"its legal representative, present or past, stands behind {value:.0f} other merchant(s) that reached "
            f"orange or red (threshold {self.threshold:g})",
        )
