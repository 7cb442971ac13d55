"""The dependency audit (deploy/audit.py) without the network: what it counts as applying, what
it accepts, how it fails."""

from __future__ import annotations

import doctest
import urllib.error
from pathlib import Path

import pytest

from deploy import audit


def test_its_doctests() -> None:
    assert doctest.testmod(audit, optionflags=doctest.NORMALIZE_WHITESPACE).failed == 0


def test_the_closure_holds_what_yujing_needs_and_not_its_extras() -> None:
    needed = audit.installed_closure(["yujing"])
    assert {"faust-streaming", "river", "pydantic", "pydantic-core", "aiokafka"} <= set(needed)
    assert "hypothesis" not in needed  # test extra


def _registry(advisories: dict[str, list[dict]]) -> audit.Fetch:
    from importlib import metadata

    def fetch(name: str) -> dict:
        return {"info": {"version": metadata.version(name)}, "vulnerabilities": advisories.get(name, [])}

    return fetch


@pytest.mark.parametrize(("advisories", "accepted", "code"), [
    ({}, "", 0),
    ({"orjson": [{"id": "GHSA-aaaa", "fixed_in": []}]}, "", 1),
    ({"orjson": [{"id": "GHSA-aaaa", "fixed_in": []}]}, "GHSA-aaaa  # reviewed: not reachable\n", 0),
    ({"orjson": [{"id": "PYSEC-1", "fixed_in": ["0.1"]}]}, "", 0),  # fixed long before ours
    ({"orjson": [{"id": "PYSEC-2", "fixed_in": [], "withdrawn": "2026-01-01"}]}, "", 0),
])
def test_an_advisory_that_applies_fails_unless_accepted(
    advisories: dict, accepted: str, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "accepted.txt").write_text(accepted)
    monkeypatch.setattr(audit, "ACCEPTED", tmp_path / "accepted.txt")
    monkeypatch.setattr(audit, "fetch_project", _registry(advisories))
    assert audit.main([]) == code
    table = capsys.readouterr().out
    assert "orjson" in table and "faust-streaming" in table
    if code:
        assert "GHSA-aaaa" in table


def test_an_unreachable_registry_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    def unreachable(name: str) -> dict:
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(audit, "fetch_project", unreachable)
    assert audit.main([]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
