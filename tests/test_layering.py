"""The scoring core stays pure: models/ and alerts/ import no Kafka, Faust or Prometheus."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("faust", "aiokafka", "kafka", "mode", "prometheus_client", "streams")


@pytest.mark.parametrize("path", sorted((ROOT / "models").rglob("*.py")) + sorted((ROOT / "alerts").rglob("*.py")), ids=str)
def test_pure_packages_do_not_import_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert not imported & set(FORBIDDEN), f"{path} imports {imported & set(FORBIDDEN)}"
