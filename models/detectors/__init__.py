"""Online detectors with river's ``learn_one``/``score_one`` API on plain dicts."""

from models.detectors.adaptive_baseline import AdaptiveBaseline
from models.detectors.half_space import ScaledHalfSpaceTrees

__all__ = ["AdaptiveBaseline", "ScaledHalfSpaceTrees"]
