"""compliance findings register for the compliance desk

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 17:50:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('compliance_findings',
    sa.Column('merchant_id', sa.Text(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('merchant_name', sa.Text(), nullable=True),
    sa.Column('chain_id', sa.Text(), nullable=True),
    sa.Column('district', sa.Text(), nullable=True),
    sa.Column('industry', sa.Text(), nullable=True),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('opened_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('cleared_day', sa.Date(), nullable=True),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('reading', sa.Float(), nullable=False),
    sa.Column('days_seen', sa.Integer(), nullable=False),
    sa.Column('episodes', sa.Integer(), nullable=False),
    sa.Column('handling', sa.String(length=16), nullable=True),
    sa.Column('handled_by', sa.String(length=64), nullable=True),
    sa.Column('handled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('handled_through', sa.Date(), nullable=True),
    sa.Column('handling_note', sa.Text(), nullable=True),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['handled_by'], ['users.username'], ),
    sa.PrimaryKeyConstraint('merchant_id', 'code')
    )
    op.create_index('compliance_findings_by_status', 'compliance_findings', ['status', 'code'], unique=False)
    op.create_table('compliance_finding_notes',
    sa.Column('note_id', sa.BigInteger(), autoincrement=True, nullable=False),
    sa.Column('merchant_id', sa.Text(), nullable=False),
    sa.Column('code', sa.String(length=40), nullable=False),
    sa.Column('opened_day', sa.Date(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('note_id')
    )
    op.create_index('compliance_finding_notes_by_finding', 'compliance_finding_notes',
                    ['merchant_id', 'code', 'note_id'], unique=False)
    op.create_table('compliance_merchants',
    sa.Column('merchant_id', sa.Text(), nullable=False),
    sa.Column('observed_through', sa.Date(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('merchant_id')
    )


def downgrade() -> None:
    op.drop_table('compliance_merchants')
    op.drop_index('compliance_finding_notes_by_finding', table_name='compliance_finding_notes')
    op.drop_table('compliance_finding_notes')
    op.drop_index('compliance_findings_by_status', table_name='compliance_findings')
    op.drop_table('compliance_findings')
