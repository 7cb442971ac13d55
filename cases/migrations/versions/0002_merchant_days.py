"""merchant-day history for the drill-down dashboards

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 11:40:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('merchant_days',
    sa.Column('merchant_id', sa.Text(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('merchant_name', sa.Text(), nullable=True),
    sa.Column('chain_id', sa.Text(), nullable=True),
    sa.Column('district', sa.Text(), nullable=True),
    sa.Column('industry', sa.Text(), nullable=True),
    sa.Column('score', sa.Float(), nullable=False),
    sa.Column('level', sa.String(length=8), nullable=True),
    sa.Column('sales', sa.Float(), nullable=False),
    sa.Column('complaints', sa.Integer(), nullable=False),
    sa.Column('prepaid_balance', sa.Float(), nullable=True),
    sa.Column('sales_28d', sa.Float(), nullable=True),
    sa.Column('redeemed_28d', sa.Float(), nullable=True),
    sa.Column('refunds_28d', sa.Float(), nullable=True),
    sa.Column('complaints_28d', sa.Float(), nullable=True),
    sa.Column('custody_balance', sa.Float(), nullable=True),
    sa.Column('custody_required', sa.Float(), nullable=True),
    sa.Column('thresholds_version', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('merchant_id', 'day')
    )
    op.create_index('merchant_days_day', 'merchant_days', ['day'], unique=False)
    op.create_table('merchant_indicator_days',
    sa.Column('merchant_id', sa.Text(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('reading', sa.Float(), nullable=False),
    sa.Column('contribution', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('merchant_id', 'day', 'code')
    )


def downgrade() -> None:
    op.drop_table('merchant_indicator_days')
    op.drop_index('merchant_days_day', table_name='merchant_days')
    op.drop_table('merchant_days')
