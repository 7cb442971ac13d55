"""The pure floors (contract, models, alerts, engine) type-check under ``mypy --strict``.

The configuration is ``[tool.mypy]`` in pyproject.toml (third-party packages without type hints
are named there, one by one). mypy's cache goes to the system's temporary directory, not the
working tree, so a second run takes seconds instead of half a minute.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PURE = ("contract", "models", "alerts", "engine")


def test_the_pure_packages_type_check_strictly() -> None:
    cache = Path(tempfile.gettempdir()) / "yujing-mypy-cache"
    run = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", str(ROOT / "pyproject.toml"), "--strict",
         "--cache-dir", str(cache), *PURE],
        cwd=ROOT, capture_output=True, text=True, check=False,
    )
    assert run.returncode == 0, f"mypy --strict {' '.join(PURE)}:\n{run.stdout}{run.stderr}"
