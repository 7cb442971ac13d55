"""Learning from case outcomes: a bounded correction to the learned fusion's weights.

The fusion's weights (:mod:`models.fusion`, learned offline from labelled worlds) are the *base*.
Each case that staff close with a verdict is one labelled example: ``x`` the reading scores of
the merchant on the day of the warning they judged, ``y`` = 1 for ``confirmed_risk`` /
``referred_to_enforcement`` and 0 for ``false_alarm`` (``rectified`` and the rest teach nothing:
the risk was real, or the outcome says nothing about it). :class:`FeedbackLearner` keeps a
*correction* per reading code, starting at 0, so the fused log-odds are
``base(x) + Σ correction_code × x_code``, and takes one step of stochastic gradient descent on the
logistic loss at that margin (river's ``optim.SGD`` and ``optim.losses.Log``) per example.

Bounded on purpose: an L2 penalty pulls each correction back towards 0 (the base weights), and
each is clipped to ``±max_correction`` log-odds, so a handful of dispositions can lower an
indicator's say but never silence it (the base weights came from many more labelled merchants
than any case desk will judge in a year).

The judge reads :attr:`FeedbackLearner.correction`, a plain dict replaced (never changed in place)
only when an example is learned: no model call per merchant-day. Pure and pickle-safe (it lives in
the worker's changelogged partition state).

>>> learner = FeedbackLearner()
>>> x = {"over_cap_cards": 1.0, "complaint_surge": 0.5}
>>> learner.learn_one(x, 0, base_log_odds=0.2)  # a false alarm at about p = 0.55
True
>>> {code: round(w, 3) for code, w in learner.correction.items()}
{'complaint_surge': -0.137, 'over_cap_cards': -0.275}
>>> round(learner.log_odds(x, 0.2), 3)  # the same evidence now reads lower
-0.144
>>> for _ in range(40):  # a desk that calls every such warning a false alarm
...     _ = learner.learn_one(x, 0, base_log_odds=2.5)
>>> learner.correction["over_cap_cards"]  # bounded: lowered, not silenced
-2.0
>>> learner.learn_one({"silence": 0.0}, 1, base_log_odds=-1.0)  # no reading fired: nothing to learn
False
>>> learner.examples
41
"""

from __future__ import annotations

from collections.abc import Mapping

from river import optim

# Dispositions that label the warning they answer: 1 the risk was real, 0 it was not.
OUTCOME_LABELS: dict[str, int] = {"confirmed_risk": 1, "referred_to_enforcement": 1, "false_alarm": 0}
# Small steps: at p ~ 0.5 one false alarm lowers a fully firing indicator by ~0.25 log-odds, so it
# takes several consistent verdicts, not one, to move a weight by a level's width.
LEARNING_RATE = 0.5
L2 = 0.01  # pull towards the base weights (correction 0), applied at each example
MAX_CORRECTION = 2.0  # |correction| per code, in log-odds: about a factor 7.4 on the odds


def outcome_label(disposition: str) -> int | None:
    """The label a disposition gives its warning, or None when it gives none.

    >>> outcome_label("false_alarm"), outcome_label("referred_to_enforcement"), outcome_label("rectified")
    (0, 1, None)
    """
    return OUTCOME_LABELS.get(disposition)


class FeedbackLearner:
    """Online logistic regression of case outcomes on reading scores, as a correction to a base
    model whose log-odds the caller supplies for each example (see the module's doc)."""

    def __init__(
        self, learning_rate: float = LEARNING_RATE, l2: float = L2, max_correction: float = MAX_CORRECTION,
    ) -> None:
        self.learning_rate = learning_rate
        self.l2 = l2
        self.max_correction = max_correction
        self.optimizer = optim.SGD(learning_rate)
        self.loss = optim.losses.Log()
        self.correction: dict[str, float] = {}  # log-odds per unit score, added to the base weight
        self.examples = 0  # examples learned

    def log_odds(self, x: Mapping[str, float], base_log_odds: float) -> float:
        """The corrected log-odds of ``x`` whose base model gives ``base_log_odds``."""
        return base_log_odds + sum(self.correction.get(code, 0.0) * score for code, score in x.items())

    def learn_one(self, x: Mapping[str, float], y: int, base_log_odds: float) -> bool:
        """One SGD step on the log loss of ``y`` (0/1) at the corrected margin; ``False`` when no
        reading of ``x`` fired (no weight to correct)."""
        fired = {code: score for code, score in x.items() if score}
        if not fired:
            return False
        gradient = self.loss.gradient(y_true=y, y_pred=self.log_odds(fired, base_log_odds))
        weights = dict(self.correction)  # a new dict: a judge holding the old one is not disturbed
        for code in fired:
            weights.setdefault(code, 0.0)
        grads = {code: gradient * fired.get(code, 0.0) + self.l2 * w for code, w in weights.items()}
        # dict is invariant, river's SGD takes dict[Hashable, Any]; it only updates the given keys.
        self.optimizer.step(w=weights, g=grads)  # type: ignore[arg-type]
        bound = self.max_correction
        self.correction = {code: min(max(w, -bound), bound) for code, w in sorted(weights.items())}
        self.examples += 1
        return True

    def __repr__(self) -> str:
        return (f"FeedbackLearner(learning_rate={self.learning_rate}, l2={self.l2}, "
                f"max_correction={self.max_correction}, examples={self.examples})")
