"""rate_limit_counters and rate_limit_slots: QuickBooks and HubSpot rate limits shared through the database

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-08 01:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('rate_limit_counters',
    sa.Column('bucket', sa.String(length=200), nullable=False),
    sa.Column('slice', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('bucket', 'slice')
    )
    op.create_table('rate_limit_slots',
    sa.Column('bucket', sa.String(length=200), nullable=False),
    sa.Column('slot', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('holder', sa.String(length=64), nullable=True),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('bucket', 'slot')
    )


def downgrade():
    op.drop_table('rate_limit_slots')
    op.drop_table('rate_limit_counters')
