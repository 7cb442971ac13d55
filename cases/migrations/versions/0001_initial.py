"""cases, warnings, audit trail, silences, routing, outbox, users

Revision ID: 0001
Revises: 
Create Date: 2026-11-27 07:36:12.833836
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('merchant_levels',
    sa.Column('merchant_id', sa.Text(), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=True),
    sa.Column('chain_id', sa.Text(), nullable=True),
    sa.Column('merchant_name', sa.Text(), nullable=True),
    sa.Column('district', sa.Text(), nullable=True),
    sa.Column('industry', sa.Text(), nullable=True),
    sa.Column('last_warning_id', sa.Text(), nullable=False),
    sa.Column('last_raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('silenced', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.PrimaryKeyConstraint('merchant_id')
    )
    op.create_table('silences',
    sa.Column('silence_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('target_kind', sa.String(length=16), nullable=False),
    sa.Column('target_id', sa.Text(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancelled_by', sa.String(length=64), nullable=True),
    sa.Column('expiry_handled', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.PrimaryKeyConstraint('silence_id')
    )
    op.create_table('users',
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.Text(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('password_hash', sa.Text(), nullable=True),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('username'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('cases',
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('group_key', sa.Text(), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=True),
    sa.Column('max_level', sa.String(length=8), nullable=False),
    sa.Column('district', sa.Text(), nullable=True),
    sa.Column('industry', sa.Text(), nullable=True),
    sa.Column('assignee', sa.String(length=64), nullable=True),
    sa.Column('disposition', sa.String(length=32), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('first_raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('pushed_level', sa.String(length=8), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('resolutions', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.ForeignKeyConstraint(['assignee'], ['users.username'], ),
    sa.PrimaryKeyConstraint('case_id')
    )
    op.create_index('cases_by_status', 'cases', ['status', 'level'], unique=False)
    op.create_index('one_open_case_per_group', 'cases', ['group_key'], unique=True, postgresql_where=sa.text("status IN ('new', 'assigned', 'in_progress')"))
    op.create_table('routing_rules',
    sa.Column('rule_id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('district', sa.Text(), nullable=True),
    sa.Column('industry', sa.Text(), nullable=True),
    sa.Column('assignee', sa.String(length=64), nullable=False),
    sa.Column('created_by', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['assignee'], ['users.username'], ),
    sa.PrimaryKeyConstraint('rule_id')
    )
    op.create_table('case_events',
    sa.Column('event_id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=True),
    sa.Column('to_status', sa.String(length=16), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('detail', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.case_id'], ),
    sa.PrimaryKeyConstraint('event_id')
    )
    op.create_index('case_events_by_case', 'case_events', ['case_id', 'event_id'], unique=False)
    op.create_table('case_merchants',
    sa.Column('case_id', sa.String(length=40), nullable=False),
    sa.Column('merchant_id', sa.Text(), nullable=False),
    sa.Column('merchant_name', sa.Text(), nullable=True),
    sa.Column('district', sa.Text(), nullable=True),
    sa.Column('industry', sa.Text(), nullable=True),
    sa.Column('level', sa.String(length=8), nullable=True),
    sa.Column('last_transition', sa.String(length=16), nullable=False),
    sa.Column('last_raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_warning_id', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['case_id'], ['cases.case_id'], ),
    sa.PrimaryKeyConstraint('case_id', 'merchant_id')
    )
    op.create_table('outbox',
    sa.Column('message_id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target', sa.Text(), nullable=False),
    sa.Column('dedup_key', sa.Text(), nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=True),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), server_default=sa.text('0'), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.case_id'], ),
    sa.PrimaryKeyConstraint('message_id'),
    sa.UniqueConstraint('dedup_key')
    )
    op.create_index('outbox_due', 'outbox', ['status', 'next_attempt_at'], unique=False)
    op.create_table('warnings',
    sa.Column('warning_id', sa.Text(), nullable=False),
    sa.Column('merchant_id', sa.Text(), nullable=False),
    sa.Column('case_id', sa.String(length=40), nullable=True),
    sa.Column('level', sa.String(length=8), nullable=False),
    sa.Column('previous_level', sa.String(length=8), nullable=True),
    sa.Column('transition', sa.String(length=16), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('emitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('thresholds_version', sa.Text(), nullable=False),
    sa.Column('chain_id', sa.Text(), nullable=True),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('payload', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('source_partition', sa.Integer(), nullable=True),
    sa.Column('source_offset', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['case_id'], ['cases.case_id'], ),
    sa.PrimaryKeyConstraint('warning_id')
    )
    op.create_index('warnings_by_case', 'warnings', ['case_id', 'raised_at'], unique=False)
    op.create_index('warnings_by_merchant', 'warnings', ['merchant_id', 'raised_at'], unique=False)


def downgrade() -> None:
    op.drop_index('warnings_by_merchant', table_name='warnings')
    op.drop_index('warnings_by_case', table_name='warnings')
    op.drop_table('warnings')
    op.drop_index('outbox_due', table_name='outbox')
    op.drop_table('outbox')
    op.drop_table('case_merchants')
    op.drop_index('case_events_by_case', table_name='case_events')
    op.drop_table('case_events')
    op.drop_table('routing_rules')
    op.drop_index('one_open_case_per_group', table_name='cases', postgresql_where=sa.text("status IN ('new', 'assigned', 'in_progress')"))
    op.drop_index('cases_by_status', table_name='cases')
    op.drop_table('cases')
    op.drop_table('users')
    op.drop_table('silences')
    op.drop_table('merchant_levels')
