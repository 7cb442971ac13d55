"""``yujing thresholds show|validate|diff|publish|history``: the operator's side of threshold tuning.

A *source* names a threshold set: a file path (``.yaml``/``.yml``/``.toml``), ``builtin`` (the
code's own), ``current`` (the newest published version; the base set if none) or a published
version id (``t-…``). Only ``current``, version ids, ``publish`` and ``history`` need Kafka.
"""

from __future__ import annotations

import getpass
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from alerts.threshold_history import Publication, ThresholdSchedule, publication
from alerts.threshold_set import diff
from alerts.thresholds import (
    ThresholdsError,
    ThresholdSet,
    builtin_thresholds,
    load_thresholds,
    render_yaml,
)
from models.calendar import SHANGHAI
from yujing.settings import Settings, get_settings

thresholds_app = typer.Typer(
    help="Threshold versions: check a file, compare, publish to running workers, list what was published.",
    no_args_is_help=True,
)
out = Console(highlight=False)
err = Console(stderr=True, highlight=False, soft_wrap=True)

Source = Annotated[str, typer.Argument(help="A file, builtin, current, or a published version id (t-…).")]


def _fail(message: str) -> NoReturn:
    err.print(f"[red]error: {escape(message)}[/red]")
    raise typer.Exit(1)


def _history(settings: Settings) -> tuple[list[Publication], list[tuple[int, str]]]:
    from streams.clients import KafkaUnavailable, PublicationReader

    try:
        reader = PublicationReader(settings)
        try:
            items = reader.read_all()
        finally:
            reader.close()
    except KafkaUnavailable as exc:
        _fail(str(exc))
    return [i for i in items if isinstance(i, Publication)], [i for i in items if isinstance(i, tuple)]


def _current(settings: Settings) -> tuple[ThresholdSet, Publication | None]:
    """The newest valid publication (as a worker would hold it), else the base set."""
    published, _ = _history(settings)
    schedule = ThresholdSchedule(settings.base_thresholds())
    schedule.extend(published)
    return schedule.latest, (schedule.applied[-1] if schedule.applied else None)


def resolve(source: str, settings: Settings) -> tuple[ThresholdSet, str]:
    """The set a source names, and a label for it."""
    try:
        if source == "builtin":
            return builtin_thresholds(), "builtin"
        if source == "current":
            thresholds, latest = _current(settings)
            return thresholds, f"current ({latest.publication_id if latest else 'nothing published: base set'})"
        if source.startswith("t-") and not Path(source).exists():
            published, _ = _history(settings)
            for item in reversed(published):
                if item.version == source:
                    return item.threshold_set(), f"{source} (published {item.published_at:%Y-%m-%d %H:%M})"
            _fail(f"no published version {source} (see `yujing thresholds history`)")
        return load_thresholds(source), source
    except ThresholdsError as exc:
        _fail(f"{source}: " + "; ".join(exc.problems))
    except OSError as exc:
        _fail(f"cannot read {source}: {exc.strerror or exc}")


@thresholds_app.command("show")
def show_command(source: Source = "current") -> None:
    """Print a threshold set as a thresholds file (YAML), with its version."""
    thresholds, label = resolve(source, get_settings())
    # Plain stdout, not rich: the file must come out unwrapped, ready to save and edit.
    sys.stdout.write(f"# {label}: version {thresholds.version}\n{render_yaml(thresholds)}")


@thresholds_app.command("validate")
def validate_command(path: Annotated[Path, typer.Argument(help="Thresholds file (.yaml, .yml, .toml).")]) -> None:
    """Check a thresholds file: every problem with its key and allowed range (exit 1), or its version."""
    try:
        thresholds = load_thresholds(path)
    except ThresholdsError as exc:
        for problem in exc.problems:
            err.print(f"[red]{escape(str(path))}: {escape(problem)}[/red]")
        raise typer.Exit(1) from None
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror or exc}")
    changes = diff(builtin_thresholds(), thresholds)
    out.print(f"{path}: valid, version [bold]{thresholds.version}[/bold] "
              f"({len(changes)} value(s) differ from the built-in set)")


def _diff_table(old: ThresholdSet, new: ThresholdSet, old_label: str, new_label: str) -> Table:
    table = Table(title=f"{old.version} → {new.version}", title_justify="left")
    table.add_column("key")
    table.add_column(old_label, justify="right")
    table.add_column(new_label, justify="right")
    for change in diff(old, new):
        table.add_row(change.key, "(none)" if change.old is None else f"{change.old:g}",
                      "(none)" if change.new is None else f"{change.new:g}")
    return table


@thresholds_app.command("diff")
def diff_command(old: Source, new: Source) -> None:
    """What changes from OLD to NEW, key by key (exit 0 either way)."""
    settings = get_settings()
    (old_set, old_label), (new_set, new_label) = resolve(old, settings), resolve(new, settings)
    changes = diff(old_set, new_set)
    if not changes:
        out.print(f"no difference: both are version {old_set.version}")
        return
    out.print(_diff_table(old_set, new_set, old_label, new_label))
    out.print(f"{len(changes)} value(s) change")


def _moment(text: str) -> datetime:
    """A date (the start of that Shanghai day) or an RFC 3339 time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        _fail(f"--effective-from {text!r}: not a date (2026-03-01) or a time (2026-03-01T00:00:00+08:00)")
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


@thresholds_app.command("publish")
def publish_command(
    path: Annotated[Path, typer.Argument(help="Thresholds file to publish.")],
    reason: Annotated[str, typer.Option(help="Why (kept with the version, shown in Grafana).")],
    author: Annotated[str | None, typer.Option(help="Who; default: the login name.")] = None,
    effective_from: Annotated[str | None, typer.Option(
        help="Event time from which days are scored with it: a date (Shanghai day) or an RFC 3339 "
             "time. Default: the start of tomorrow (Shanghai), so live and replays agree.")] = None,
) -> None:
    """Publish a validated file to the thresholds topic; running workers take it in without a restart."""
    from streams.clients import KafkaUnavailable, publish_thresholds

    settings = get_settings()
    thresholds, _ = resolve(str(path), settings)
    current, latest = _current(settings)
    if latest is not None and current.version == thresholds.version:
        out.print(f"{thresholds.version} is already the current version (published {latest.published_at:%Y-%m-%d %H:%M}"
                  f" by {latest.author}); nothing published")
        return
    published = publication(
        thresholds, author=author or getpass.getuser(), reason=reason, published_at=datetime.now(UTC),
        effective_from=_moment(effective_from) if effective_from else None,
    )
    try:
        offset = publish_thresholds(settings, published)
    except KafkaUnavailable as exc:
        _fail(str(exc))
    changes = diff(current, thresholds)
    out.print(f"published [bold]{thresholds.version}[/bold] to {settings.topics.thresholds} (offset {offset}); "
              f"days from {published.effective_from.astimezone(SHANGHAI):%Y-%m-%d %H:%M} (Shanghai, event time) on "
              f"are scored with it; {len(changes)} value(s) change from {current.version}")


@thresholds_app.command("history")
def history_command() -> None:
    """Every publication, oldest first, with what it changed; refused records marked."""
    settings = get_settings()
    published, unreadable = _history(settings)
    table = Table(title=f"{settings.topics.thresholds}", title_justify="left")
    for column in ("published (UTC)", "version", "author", "reason", "effective from", "changes", "status"):
        table.add_column(column)
    schedule = ThresholdSchedule(settings.base_thresholds())
    for item in published:
        applied, changed, refusal = schedule.judge(item)
        status, changes = ("applied", str(len(changed))) if applied else (f"refused: {refusal.problems[0]}", "–")
        table.add_row(f"{item.published_at.astimezone(UTC):%Y-%m-%d %H:%M}", item.version, item.author, item.reason,
                      f"{item.effective_from.astimezone(SHANGHAI):%Y-%m-%d %H:%M}", changes, status)
    out.print(table)
    for offset, error in unreadable:
        out.print(f"[yellow]offset {offset}: {escape(error)}[/yellow]")
    if not published:
        out.print(f"nothing published yet: workers score with {schedule.latest.version} (the base set)")
