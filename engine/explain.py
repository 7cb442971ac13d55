"""``yujing explain MERCHANT``: one merchant's timeline as the replay engine scored it.

Operations staff ask "why did it go orange that day?" and "why did we miss this one?". The
answer is the merchant's days as ``yujing backtest`` and the live worker score them: the day's
activity, the prepaid balance, complaints, profile records, every indicator's reading, the
fused score and the level with its warnings. Nothing is recomputed here: every figure comes
from :class:`~engine.day_closing.DayResult` and the warnings of a :class:`~engine.replay.Replay`.

Only the partitions that can change the merchant's days are replayed: its own (peer-group norms
are taken over the merchant's partition) and those of the merchants linked to it by a chain or
a legal representative (their levels reach it as chain signals). A linked merchant tells others
its level on its *own* evidence (``engine.day_closing.link_notices``), which needs nothing beyond
its own partition, so one hop is enough; the chain watermark then waits for those partitions
only. ``--full`` replays everything (the tests check both give the backtest's figures).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import orjson

from alerts.chains import ChainDirectory
from alerts.threshold_history import ThresholdSchedule
from contract.partitioning import partition_for
from contract.records import MerchantProfile, Warning, decode
from engine.day_closing import DayResult
from engine.replay import Replay, event_files
from models.calendar import SHANGHAI, day_date, local_day

WEEKLY_AFTER_DAYS = 120  # a longer text table is shown a week per row
TOP_CONTRIBUTIONS = 3


class UnknownMerchant(Exception):
    """The merchant appears in none of the event files."""


@dataclass(frozen=True)
class IndicatorDay:
    """One indicator's reading on one day and what it added to the fused score."""

    code: str
    value: float
    threshold: float
    score: float
    weight: float
    contribution: float
    explanation_zh: str
    explanation_en: str


@dataclass(frozen=True)
class ExplainedDay:
    """One scored day of the merchant, as the engine saw it at the close of the day."""

    day: date
    sales_paid: float
    sales_face: float
    redeemed: float
    refunded: float
    complaints: dict[str, int]
    prepaid_balance: float | None
    custody_balance: float | None
    custody_required: float | None
    score: float
    level: str | None
    thresholds_version: str
    readings: tuple[IndicatorDay, ...]  # strongest contribution first

    @property
    def top(self) -> list[IndicatorDay]:
        """The readings that raised the score, strongest first."""
        return [r for r in self.readings if r.contribution > 0][:TOP_CONTRIBUTIONS]


@dataclass(frozen=True)
class ProfileEvent:
    """A record of the merchant topic worth seeing: status, custody report, registry change."""

    day: date
    kind: str  # registered | status | custody_report | legal_representative | registered_capital | chain
    text_zh: str
    text_en: str


@dataclass
class Timeline:
    merchant_id: str
    days: list[ExplainedDay]
    warnings: list[Warning]
    profile_events: list[ProfileEvent]
    cutoffs: dict[str, float]
    partitions: int
    replayed_partitions: list[int]
    profile: dict[str, Any] = field(default_factory=dict)  # name, industry, district, chain_id (latest)
    label: dict[str, Any] | None = None

    def window(self, since: date | None, until: date | None) -> list[ExplainedDay]:
        return [d for d in self.days if (since is None or d.day >= since) and (until is None or d.day <= until)]

    def zoomed(self, since: date | None, until: date | None) -> Timeline:
        """The same timeline cut to the days from ``since`` to ``until`` (either open)."""
        def inside(day: date) -> bool:
            return (since is None or day >= since) and (until is None or day <= until)

        return replace(
            self, days=self.window(since, until),
            warnings=[w for w in self.warnings if inside(w.raised_at.astimezone(SHANGHAI).date())],
            profile_events=[e for e in self.profile_events if inside(e.day)],
        )


def explained_day(result: DayResult) -> ExplainedDay:
    """A :class:`DayResult` reduced to what people read (only the stable parts of ``MerchantScore``)."""
    totals, figures, score = result.totals, result.figures, result.score
    readings = tuple(
        IndicatorDay(c.reading.code, c.reading.value, c.reading.threshold, c.reading.score, c.weight, c.amount,
                     c.reading.explanation_zh, c.reading.explanation_en)
        for c in sorted(score.contributions, key=lambda c: (-c.amount, c.reading.code))
    )
    return ExplainedDay(
        day=day_date(result.day),
        sales_paid=totals.sales_paid if totals else 0.0,
        sales_face=totals.sales_face if totals else 0.0,
        redeemed=totals.redeemed if totals else 0.0,
        refunded=totals.refunded_paid if totals else 0.0,
        complaints=dict(totals.complaints) if totals else {},
        prepaid_balance=_fen(score.features.get("prepaid_balance")),
        custody_balance=figures.get("custody_balance"),
        custody_required=figures.get("custody_required"),
        score=score.score,
        level=result.level,
        thresholds_version=result.thresholds_version,
        readings=readings,
    )


def _fen(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def yuan(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f}"


def profile_events(profiles: Iterable[MerchantProfile]) -> list[ProfileEvent]:
    """What changed from one profile record to the next (every record is a custody report).

    >>> from datetime import datetime
    >>> base = dict(merchant_id="m1", name="n", industry="fitness", district="南桥镇", opened_on="2024-01-01",
    ...             status="open", custody_balance=80000.0, legal_representative="r1")
    >>> a = MerchantProfile(**base, updated_at=datetime.fromisoformat("2026-03-01T09:00:00+08:00"))
    >>> b = MerchantProfile(**{**base, "status": "suspended", "legal_representative": "r2"},
    ...                     updated_at=datetime.fromisoformat("2026-04-01T09:00:00+08:00"))
    >>> [(e.day.isoformat(), e.kind) for e in profile_events([b, a])]
    [('2026-03-01', 'registered'), ('2026-04-01', 'custody_report'), ('2026-04-01', 'status'), ('2026-04-01', 'legal_representative')]
    """
    events: list[ProfileEvent] = []
    previous: MerchantProfile | None = None
    for p in sorted(profiles, key=lambda p: p.updated_at):
        day = p.updated_at.astimezone(SHANGHAI).date()
        custody = yuan(p.custody_balance) if p.custody_balance is not None else "none"
        if previous is None:
            events.append(ProfileEvent(day, "registered", f"档案: {p.status}, 存管 {custody}",
                                       f"profile: {p.status}, custody {custody}"))
            previous = p
            continue
        events.append(ProfileEvent(day, "custody_report", f"存管报告 {custody}", f"custody report {custody}"))
        if p.status != previous.status:
            events.append(ProfileEvent(day, "status", f"状态 {previous.status}→{p.status}",
                                       f"status {previous.status}→{p.status}"))
        if p.legal_representative != previous.legal_representative:
            events.append(ProfileEvent(day, "legal_representative", "法定代表人变更", "legal representative changed"))
        if p.registered_capital != previous.registered_capital:
            before, after = yuan(previous.registered_capital), yuan(p.registered_capital)
            events.append(ProfileEvent(day, "registered_capital", f"注册资本 {before}→{after}",
                                       f"registered capital {before}→{after}"))
        if p.chain_id != previous.chain_id:
            events.append(ProfileEvent(day, "chain", f"连锁 {previous.chain_id}→{p.chain_id}",
                                       f"chain {previous.chain_id}→{p.chain_id}"))
        previous = p
    return events


@dataclass
class _Scan:
    """What one pass over the event files tells before replaying: who is linked, what to keep."""

    known: bool = False
    profiles: list[MerchantProfile] = field(default_factory=list)
    groups: dict[str, set[str]] = field(default_factory=dict)  # merchant -> its chain / representative groups


def _merchant_of(line: bytes) -> str | None:
    try:
        record = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    merchant = record.get("merchant_id") if isinstance(record, dict) else None
    return merchant if isinstance(merchant, str) else None


def _scan_profiles(path: Path, merchant_id: str, scan: _Scan) -> None:
    """Groups of every merchant (any record, as the engine joins a group on any version) and the
    merchant's own profile records."""
    for line in path.read_bytes().splitlines():
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(record, dict) or not isinstance(record.get("merchant_id"), str):
            continue
        merchant = record["merchant_id"]
        groups = scan.groups.setdefault(merchant, set())
        if record.get("chain_id"):
            groups.add(str(record["chain_id"]))
        if record.get("legal_representative"):
            groups.add(f"rep:{record['legal_representative']}")
        if merchant == merchant_id:
            scan.known = True
            profile = decode("merchants", line)
            if isinstance(profile, MerchantProfile):
                scan.profiles.append(profile)


def linked_merchants(groups: dict[str, set[str]], merchant_id: str) -> set[str]:
    """Merchants sharing a chain or a legal representative with ``merchant_id`` (itself included).

    >>> sorted(linked_merchants({"a": {"c1"}, "b": {"c1", "rep:x"}, "c": {"rep:x"}, "d": set()}, "a"))
    ['a', 'b']
    """
    own = groups.get(merchant_id, set())
    return {m for m, g in groups.items() if g & own} | {merchant_id}


def _filtered(sources: dict[str, Path], keep: set[int], partitions: int, merchant_id: str, target: Path | None,
              scan: _Scan) -> int:
    """Copy the records of the kept partitions into ``target`` (None: only count them), in file
    order; returns how many."""
    copied = 0
    for path in sources.values():
        with path.open("rb") as lines, (target / path.name).open("wb") if target else nullcontext() as out:
            for line in lines:
                merchant = _merchant_of(line)
                if merchant is None:
                    continue  # a dead letter: it changes no state
                scan.known = scan.known or merchant == merchant_id
                if partition_for(merchant, partitions) in keep:
                    if out is not None:
                        out.write(line if line.endswith(b"\n") else line + b"\n")
                    copied += 1
    return copied


def collect(
    events_dir: Path,
    merchant_id: str,
    *,
    partitions: int,
    allowed_lateness: timedelta,
    schedule: ThresholdSchedule,
    full: bool = False,
    on_start: Callable[[int | None], None] | None = None,
    on_event: Callable[[], None] | None = None,
) -> Timeline:
    """Replay ``events_dir`` (the partitions that matter, or all with ``full``) and keep the
    merchant's scored days and warnings. ``on_start`` hears how many records will be replayed."""
    sources = event_files(events_dir)
    scan = _Scan()
    if "merchants" in sources:
        _scan_profiles(sources["merchants"], merchant_id, scan)
    own = partition_for(merchant_id, partitions)
    keep = set(range(partitions)) if full else {partition_for(m, partitions) for m in
                                                linked_merchants(scan.groups, merchant_id)}
    keep.add(own)
    days: list[ExplainedDay] = []

    def keep_day(result: DayResult) -> None:
        if result.merchant_id == merchant_id:
            days.append(explained_day(result))

    with tempfile.TemporaryDirectory(prefix="yujing-explain-") as scratch:
        replay_dir = events_dir if full else Path(scratch)  # everything: no copy needed
        total = _filtered(sources, keep, partitions, merchant_id, None if full else replay_dir, scan)
        if not scan.known:
            raise UnknownMerchant(f"merchant {merchant_id} not found in {events_dir} "
                                  f"({', '.join(p.name for p in sources.values())})")
        if on_start is not None:
            on_start(total)
        replay = Replay(replay_dir, partitions=partitions, allowed_lateness=allowed_lateness, schedule=schedule,
                        on_day_scored=keep_day, on_event=on_event)
        replay.chains = ChainDirectory(partitions=len(keep))  # heartbeats come from the kept partitions only
        result = replay.run()
    latest = max(scan.profiles, key=lambda p: p.updated_at) if scan.profiles else None
    # The cut-offs in force on the last day shown (thresholds may have been published since the start).
    last = days[-1].day.toordinal() if days else local_day(latest.updated_at) if latest else None
    cutoffs = dict(replay.engine.rules(last)[1].cutoffs) if last is not None else {}
    return Timeline(
        merchant_id=merchant_id,
        days=days,
        warnings=[w for w in result.warnings if w.merchant_id == merchant_id],
        profile_events=profile_events(scan.profiles),
        cutoffs=cutoffs,
        partitions=partitions,
        replayed_partitions=sorted(keep),
        profile={"name": latest.name, "industry": latest.industry, "district": latest.district,
                 "chain_id": latest.chain_id} if latest else {},
    )


# -- labels ---------------------------------------------------------------------------------------
def read_label(path: Path, merchant_id: str) -> dict[str, Any] | None:
    """The merchant's label from ``labels.json`` (an object keyed by merchant, as the pilot's) or
    ``labels.jsonl`` (one object per line with ``merchant_id``, as the simulator's), normalised to
    ``kind``, ``group``, ``collapse_date``, ``signal_start`` and ``episode`` ([first, last] or None)."""
    raw = path.read_bytes()
    if path.suffix == ".jsonl":
        rows = [orjson.loads(line) for line in raw.splitlines() if line.strip()]
        found = next((r for r in rows if r.get("merchant_id") == merchant_id), None)
    else:
        data = orjson.loads(raw)
        found = data.get(merchant_id) if isinstance(data, dict) else next(
            (r for r in data if isinstance(r, dict) and r.get("merchant_id") == merchant_id), None)
    if found is None:
        return None
    episode = found.get("episode")
    return {
        "kind": found.get("scenario") or found.get("kind"),
        "group": found.get("group") or found.get("kind"),
        "collapse_date": found.get("collapse_date"),
        "signal_start": found.get("signal_start"),
        "episode": list(episode) if isinstance(episode, list | tuple) and len(episode) == 2 else None,
    }


# -- JSON -----------------------------------------------------------------------------------------
def timeline_json(timeline: Timeline, since: date | None = None, until: date | None = None) -> dict[str, Any]:
    """The timeline as plain JSON (days limited to the window; warnings and profile records all)."""
    def day_json(d: ExplainedDay) -> dict[str, Any]:
        row = asdict(d)
        row["day"] = d.day.isoformat()
        return row

    return {
        "merchant_id": timeline.merchant_id,
        "profile": timeline.profile,
        "label": timeline.label,
        "cutoffs": timeline.cutoffs,
        "partitions": timeline.partitions,
        "replayed_partitions": timeline.replayed_partitions,
        "days": [day_json(d) for d in timeline.window(since, until)],
        "profile_events": [{**asdict(e), "day": e.day.isoformat()} for e in timeline.profile_events],
        "warnings": [w.model_dump(mode="json", exclude={"emitted_at"}) for w in timeline.warnings],
    }


# -- rows of the text table (rendered by yujing.explain_text) ---------------------------------------
LEVEL_ZH = {"blue": "蓝", "yellow": "黄", "orange": "橙", "red": "红"}
LEVEL_RANK = {None: 0, "blue": 1, "yellow": 2, "orange": 3, "red": 4}


@dataclass(frozen=True)
class TableRow:
    """One line of the text table: a day, or a week (sums; balance at its end; its worst day)."""

    first: date
    last: date
    sales_paid: float
    redeemed: float
    refunded: float
    complaints: int
    prepaid_balance: float | None
    profile: str
    worst: ExplainedDay  # the day of the highest score (and its level, the highest of the row)
    level: str | None


def table_rows(days: list[ExplainedDay], events: list[ProfileEvent], weekly: bool) -> list[TableRow]:
    """Days as rows, or weeks (Monday to Sunday) when ``weekly``."""
    by_day: dict[date, list[str]] = {}
    for e in events:
        by_day.setdefault(e.day, []).append(e.text_en)
    groups: dict[date, list[ExplainedDay]] = {}
    for d in days:
        groups.setdefault(d.day - timedelta(days=d.day.weekday()) if weekly else d.day, []).append(d)
    rows = []
    for members in groups.values():
        first, last = members[0].day, members[-1].day
        notes = [text for day, texts in sorted(by_day.items()) if first <= day <= last for text in texts]
        rows.append(TableRow(
            first=first, last=last,
            sales_paid=sum(d.sales_paid for d in members),
            redeemed=sum(d.redeemed for d in members),
            refunded=sum(d.refunded for d in members),
            complaints=sum(sum(d.complaints.values()) for d in members),
            prepaid_balance=members[-1].prepaid_balance,
            profile="; ".join(notes),
            worst=max(members, key=lambda d: d.score),
            level=max((d.level for d in members), key=lambda level: LEVEL_RANK.get(level, 0)),
        ))
    return rows


