"""The reliability diagram of the learned fusion (PNG, matplotlib)."""

from __future__ import annotations

from pathlib import Path

from engine.training import Reliability


def reliability_plot(curve: Reliability, path: Path) -> Path:
    """Predicted probability against observed frequency per bin, with the diagonal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    points = [(p, o, n) for p, o, n in zip(curve.predicted, curve.observed, curve.counts, strict=True) if p is not None]
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="perfectly calibrated")
    ax.plot([p for p, _, _ in points], [o for _, o, _ in points], marker="o", label="held-out worlds")
    for p, o, n in points:
        ax.annotate(f"{n:,}", (p, o), fontsize=7, textcoords="offset points", xytext=(4, -10))
    ax.set_xlabel("predicted P(collapse within 90 days)")
    ax.set_ylabel("observed share of merchant-days")
    ax.set_title("Reliability of the learned fusion (each world held out)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
