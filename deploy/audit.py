"""Known vulnerabilities of the installed Python dependencies, from what the package registry serves.

pip-audit asks PyPI for each installed *version* (``/pypi/<name>/<version>/json``) or asks OSV;
the registry this project builds from serves only each project's newest release
(``/pypi/<name>/json``, with its ``vulnerabilities``: PyPA advisory ids, GHSA aliases, the
versions that fix them) and OSV is out of reach. So this audit asks what can be answered:

- a dependency **at the newest release** is audited in full: every advisory against it is listed;
- an **older** one is audited in part: the advisories still open in the newest release are listed
  (they affect the older one too, unless their own text says otherwise), but one fixed in between
  cannot be seen here, and the report says so: upgrade it, or audit where OSV is reachable.

Run: ``.venv/bin/python -m deploy.audit`` (a table; ``--markdown`` for the docs). Exit 1 when an
advisory applies to an installed version and is not accepted in ``deploy/audit-accepted.txt``
(one id per line, with the reason in a comment), 2 when the registry cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import orjson
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

REGISTRY = "https://pypi.org/pypi/{name}/json"
ACCEPTED = Path(__file__).with_name("audit-accepted.txt")
Fetch = Callable[[str], dict]


@dataclass
class Audited:
    name: str
    installed: str
    newest: str
    advisories: list[str] = field(default_factory=list)  # ids (with the fixing versions) that apply

    @property
    def coverage(self) -> str:
        return "full" if self.installed == self.newest else "open advisories only"


def fetch_project(name: str) -> dict:
    with urllib.request.urlopen(REGISTRY.format(name=name), timeout=30) as answer:  # noqa: S310 (fixed https URL)
        return orjson.loads(answer.read())


def _applies(installed: str, advisory: dict) -> bool:
    """An advisory against the newest release applies unless a version it is fixed in is at or
    below the installed one."""
    try:
        mine = Version(installed)
        return not any(Version(fixed) <= mine for fixed in advisory.get("fixed_in") or [])
    except InvalidVersion:
        return True


def audit_one(name: str, installed: str, fetch: Fetch) -> Audited:
    """One distribution against its registry entry.

    >>> project = {"info": {"version": "0.19.2"}, "vulnerabilities": [
    ...     {"id": "GHSA-wj6h-64fc-37mp", "fixed_in": []},
    ...     {"id": "PYSEC-2024-1", "fixed_in": ["0.19.0"]}]}
    >>> audit_one("ecdsa", "0.18.0", lambda _: project)
    Audited(name='ecdsa', installed='0.18.0', newest='0.19.2', advisories=['GHSA-wj6h-64fc-37mp', 'PYSEC-2024-1 (fixed in 0.19.0)'])
    >>> audit_one("ecdsa", "0.19.2", lambda _: project).advisories
    ['GHSA-wj6h-64fc-37mp']
    """
    project = fetch(name)
    found = []
    for advisory in project.get("vulnerabilities") or []:
        if advisory.get("withdrawn") or not _applies(installed, advisory):
            continue
        fixed = ", ".join(advisory.get("fixed_in") or [])
        found.append(advisory["id"] + (f" (fixed in {fixed})" if fixed else ""))
    return Audited(name, installed, project["info"]["version"], found)


def installed_closure(roots: Iterable[str]) -> dict[str, str]:
    """The installed distributions ``roots`` need, transitively (extras' requirements left out):
    name -> version."""
    found: dict[str, str] = {}
    pending = [canonicalize_name(r) for r in roots]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        found[name] = dist.version
        for text in dist.requires or []:
            requirement = Requirement(text)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                pending.append(canonicalize_name(requirement.name))
    return found


def accepted_ids(path: Path) -> set[str]:
    """Advisory ids accepted after review: the first word of each line, ``#`` starts a comment."""
    if not path.exists():
        return set()
    return {line.split("#")[0].split()[0] for line in path.read_text().splitlines() if line.split("#")[0].strip()}


def render(results: list[Audited], markdown: bool) -> str:
    rows = [(r.name, r.installed, r.newest, r.coverage, "; ".join(r.advisories) or "none") for r in results]
    head = ("dependency", "installed", "newest", "audit", "advisories that apply")
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(c)) for c in column) for column in zip(head, *rows, strict=False)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in (head, *rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="a Markdown table (for docs/dependencies.md)")
    parser.add_argument("--root", action="append", default=["yujing"], help="distribution whose needs are audited")
    options = parser.parse_args(argv)
    needed = installed_closure(options.root)
    try:
        results = [audit_one(n, v, fetch_project) for n, v in sorted(needed.items())
                   if n not in {canonicalize_name(r) for r in options.root}]  # the project itself is not on PyPI
    except (urllib.error.URLError, TimeoutError) as exc:
        sys.stderr.write(f"audit: the package registry cannot be reached: {exc}\n")
        return 2
    sys.stdout.write(render(results, options.markdown) + "\n")
    full = sum(r.coverage == "full" for r in results)
    accepted = accepted_ids(ACCEPTED)
    hit = [r for r in results if any(a.split()[0] not in accepted for a in r.advisories)]
    sys.stderr.write(f"\n{len(results)} dependencies: {full} audited in full (newest release), {len(results) - full}"
                     f" for advisories still open upstream only; {len(hit)} with an advisory that applies and is not"
                     " accepted.\n")
    return 1 if hit else 0


if __name__ == "__main__":
    sys.exit(main())
