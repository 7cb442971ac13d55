"""The case desk's tables (SQLAlchemy Core). The schema itself is created and changed only by
the Alembic migrations in ``cases/migrations``; these objects describe it for queries,
and a test checks that they match what the migrations build."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()
TS = DateTime(timezone=True)

users = Table(
    "users",
    metadata,
    Column("username", String(64), primary_key=True),
    Column("display_name", Text, nullable=False),
    Column("role", String(16), nullable=False),  # viewer | handler | supervisor
    Column("password_hash", Text, nullable=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the API token
    Column("active", Boolean, nullable=False, server_default=text("true")),
    Column("created_at", TS, nullable=False, server_default=text("now()")),
)

cases = Table(
    "cases",
    metadata,
    Column("case_id", String(40), primary_key=True),
    Column("group_key", Text, nullable=False),  # merchant:<id> | chain:<chain_id>
    Column("title", Text, nullable=False),
    Column("status", String(16), nullable=False),
    Column("level", String(8)),  # highest current level of its merchants (None: all cleared)
    Column("max_level", String(8), nullable=False),  # highest level it ever reached
    Column("district", Text),
    Column("industry", Text),
    Column("assignee", String(64), ForeignKey("users.username")),
    Column("disposition", String(32)),
    Column("resolution", Text),
    Column("opened_at", TS, nullable=False),  # wall clock
    Column("first_raised_at", TS, nullable=False),  # event time of its first warning
    Column("last_raised_at", TS, nullable=False),
    Column("due_at", TS),  # response deadline; cleared once taken up
    Column("pushed_level", String(8)),  # highest level pushed to outside systems
    Column("resolved_at", TS),
    Column("closed_at", TS),
    Column("updated_at", TS, nullable=False),
    Column("resolutions", Integer, nullable=False, server_default=text("0")),
)
# One open case per merchant or chain: the database enforces it, not only the code.
Index(
    "one_open_case_per_group",
    cases.c.group_key,
    unique=True,
    postgresql_where=text("status IN ('new', 'assigned', 'in_progress')"),
)
Index("cases_by_status", cases.c.status, cases.c.level)

case_merchants = Table(
    "case_merchants",
    metadata,
    Column("case_id", String(40), ForeignKey("cases.case_id"), primary_key=True),
    Column("merchant_id", Text, primary_key=True),
    Column("merchant_name", Text),
    Column("district", Text),
    Column("industry", Text),
    Column("level", String(8)),  # its current level (None once cleared)
    Column("last_transition", String(16), nullable=False),
    Column("last_raised_at", TS, nullable=False),
    Column("last_warning_id", Text, nullable=False),
)

# Every warning read from the disposal queue, once (idempotent on warning_id), with what the
# alert policy did with it.
warnings = Table(
    "warnings",
    metadata,
    Column("warning_id", Text, primary_key=True),
    Column("merchant_id", Text, nullable=False),
    Column("case_id", String(40), ForeignKey("cases.case_id")),
    Column("level", String(8), nullable=False),
    Column("previous_level", String(8)),
    Column("transition", String(16), nullable=False),
    Column("score", Float, nullable=False),
    Column("raised_at", TS, nullable=False),
    Column("emitted_at", TS, nullable=False),
    Column("received_at", TS, nullable=False),
    Column("thresholds_version", Text, nullable=False),
    Column("chain_id", Text),
    Column("action", String(16), nullable=False),  # open | append | escalate | record | duplicate | silenced
    Column("reason", Text, nullable=False),
    Column("payload", JSONB, nullable=False),  # the whole warning as received
    Column("source_partition", Integer),
    Column("source_offset", BigInteger),
)
Index("warnings_by_merchant", warnings.c.merchant_id, warnings.c.raised_at)
Index("warnings_by_case", warnings.c.case_id, warnings.c.raised_at)

# The level each merchant holds according to the warnings read so far (for deduplication and for
# opening a case when a silence ends).
merchant_levels = Table(
    "merchant_levels",
    metadata,
    Column("merchant_id", Text, primary_key=True),
    Column("level", String(8)),
    Column("chain_id", Text),
    Column("merchant_name", Text),
    Column("district", Text),
    Column("industry", Text),
    Column("last_warning_id", Text, nullable=False),
    Column("last_raised_at", TS, nullable=False),
    Column("silenced", Boolean, nullable=False, server_default=text("false")),
)

# The audit trail: who did what to a case, and when.
case_events = Table(
    "case_events",
    metadata,
    Column("event_id", BigInteger, primary_key=True, autoincrement=True),
    Column("case_id", String(40), ForeignKey("cases.case_id"), nullable=False),
    Column("at", TS, nullable=False),
    Column("actor", String(64), nullable=False),  # a username, or "system"
    Column("action", String(32), nullable=False),
    Column("from_status", String(16)),
    Column("to_status", String(16)),
    Column("note", Text),
    Column("detail", JSONB),
)
Index("case_events_by_case", case_events.c.case_id, case_events.c.event_id)

silences = Table(
    "silences",
    metadata,
    Column("silence_id", Integer, primary_key=True, autoincrement=True),
    Column("target_kind", String(16), nullable=False),  # merchant | chain
    Column("target_id", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
    Column("starts_at", TS, nullable=False),
    Column("ends_at", TS, nullable=False),  # always set: no silence without an expiry
    Column("cancelled_at", TS),
    Column("cancelled_by", String(64)),
    Column("expiry_handled", Boolean, nullable=False, server_default=text("false")),
)

routing_rules = Table(
    "routing_rules",
    metadata,
    Column("rule_id", Integer, primary_key=True, autoincrement=True),
    Column("district", Text),  # None matches any town
    Column("industry", Text),  # None matches any industry
    Column("assignee", String(64), ForeignKey("users.username"), nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", TS, nullable=False),
)

# Outgoing messages, written in the same transaction as the case change that causes them, and
# delivered afterwards (transactional outbox): webhooks to outside systems and the feedback
# topic. Nothing is deleted; failed ones stay visible and can be retried.
outbox = Table(
    "outbox",
    metadata,
    Column("message_id", BigInteger, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # webhook | feedback
    Column("target", Text, nullable=False),  # webhook name, or the feedback topic
    Column("dedup_key", Text, nullable=False, unique=True),
    Column("case_id", String(40), ForeignKey("cases.case_id")),
    Column("payload", JSONB, nullable=False),
    Column("status", String(16), nullable=False),  # pending | delivered | failed
    Column("attempts", Integer, nullable=False, server_default=text("0")),
    Column("next_attempt_at", TS, nullable=False),
    Column("last_error", Text),
    Column("created_at", TS, nullable=False),
    Column("delivered_at", TS),
)
Index("outbox_due", outbox.c.status, outbox.c.next_attempt_at)

# The drill-down history (issue 5): every scored merchant-day as the worker saw it, from the
# ``merchant_days`` topic (engine.merchant_days.MerchantDay). Event-time days; upserted, so a replay
# of the topic rewrites the same rows. Grafana's merchant dashboard charts these.
merchant_days = Table(
    "merchant_days",
    metadata,
    Column("merchant_id", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("merchant_name", Text),
    Column("chain_id", Text),
    Column("district", Text),
    Column("industry", Text),
    Column("score", Float, nullable=False),
    Column("level", String(8)),  # level held after the day (None: no warning level)
    Column("sales", Float, nullable=False),  # that day's card sales, paid (yuan)
    Column("complaints", Integer, nullable=False),  # that day's complaints
    Column("prepaid_balance", Float),
    Column("sales_28d", Float),
    Column("redeemed_28d", Float),
    Column("refunds_28d", Float),
    Column("complaints_28d", Float),
    Column("custody_balance", Float),
    Column("custody_required", Float),
    Column("thresholds_version", Text, nullable=False),
    Column("recorded_at", TS, nullable=False),
)
Index("merchant_days_day", merchant_days.c.day)

merchant_indicator_days = Table(
    "merchant_indicator_days",
    metadata,
    Column("merchant_id", Text, primary_key=True),
    Column("day", Date, primary_key=True),
    Column("code", String(40), primary_key=True),
    Column("value", Float),  # None: not finite
    Column("threshold", Float),
    Column("reading", Float, nullable=False),  # 0 (fine) .. 1 (fully alarming)
    Column("contribution", Float, nullable=False),  # weight x reading
)

# Published threshold versions (issue 6), from the thresholds topic: Grafana marks them on the
# overview's charts (when published, and the event time they apply from).
threshold_versions = Table(
    "threshold_versions",
    metadata,
    Column("publication_id", Text, primary_key=True),
    Column("version", Text, nullable=False),
    Column("author", Text, nullable=False),
    Column("reason", Text, nullable=False),
    Column("published_at", TS, nullable=False),  # wall clock
    Column("effective_from", TS, nullable=False),  # event time
    Column("status", String(16), nullable=False),  # applied | refused (as the workers judge it)
    Column("detail", Text, nullable=False),  # what changed, or why it was refused
    Column("recorded_at", TS, nullable=False),
)

# The compliance findings register (issue 14, item 4; cases/findings.py): one row per
# merchant and compliance code, kept from the merchant-day history apart from the risk level.
compliance_findings = Table(
    "compliance_findings",
    metadata,
    Column("merchant_id", Text, primary_key=True),
    Column("code", String(40), primary_key=True),
    Column("status", String(16), nullable=False),  # open | acknowledged | resolved | cleared
    Column("merchant_name", Text),
    Column("chain_id", Text),
    Column("district", Text),
    Column("industry", Text),
    Column("first_day", Date, nullable=False),  # event-time days
    Column("opened_day", Date, nullable=False),  # first day of the current episode
    Column("last_day", Date, nullable=False),
    Column("cleared_day", Date),
    Column("value", Float),  # as of last_day
    Column("threshold", Float),
    Column("reading", Float, nullable=False),
    Column("days_seen", Integer, nullable=False),
    Column("episodes", Integer, nullable=False),
    Column("handling", String(16)),  # acknowledged | resolved, by staff
    Column("handled_by", String(64), ForeignKey("users.username")),
    Column("handled_at", TS),
    Column("handled_through", Date),  # the finding's last_day when it was handled: its episode
    Column("handling_note", Text),
    Column("recorded_at", TS, nullable=False),  # wall clock
    Column("updated_at", TS, nullable=False),
)
Index("compliance_findings_by_status", compliance_findings.c.status, compliance_findings.c.code)

# Every acknowledgement and resolution of a finding, with its note (the audit trail).
compliance_finding_notes = Table(
    "compliance_finding_notes",
    metadata,
    Column("note_id", BigInteger, primary_key=True, autoincrement=True),
    Column("merchant_id", Text, nullable=False),
    Column("code", String(40), nullable=False),
    Column("opened_day", Date, nullable=False),  # the episode it was about
    Column("at", TS, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # acknowledged | resolved
    Column("note", Text, nullable=False),
)
Index("compliance_finding_notes_by_finding", compliance_finding_notes.c.merchant_id,
      compliance_finding_notes.c.code, compliance_finding_notes.c.note_id)

# How far (event-time day) the register has read each merchant's history.
compliance_merchants = Table(
    "compliance_merchants",
    metadata,
    Column("merchant_id", Text, primary_key=True),
    Column("observed_through", Date, nullable=False),
    Column("updated_at", TS, nullable=False),
)

# Failed logins by who tried (a username, a client address), for the login's lockout. Kept in
# the database so that every replica of the desk counts the same failures. The key is an HMAC
# (with the session secret) of "user:<name>" or "addr:<address>": neither a mistyped password in
# the username field nor a client address is stored readable.
login_failures = Table(
    "login_failures",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("window_started_at", TS, nullable=False),
    Column("locked_until", TS),
)
