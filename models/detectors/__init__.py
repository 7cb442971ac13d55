"""Online detectors with river's ``learn_one``/``score_one`` API on plain dicts."""

from models.detectors.adaptive_baseline import AdaptiveBaseline
from models.detectors.gaussian_surprise import GaussianSurprise
from models.detectors.half_space import ScaledHalfSpaceTrees

__all__ = ["AdaptiveBaseline", "GaussianSurprise", "ScaledHalfSpaceTrees"]
