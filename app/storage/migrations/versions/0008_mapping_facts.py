"""mappings.facts: what a remembered match lets a warm execution skip asking QuickBooks

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 05:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('mappings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('facts', sa.JSON(), nullable=True))


def downgrade():
    with op.batch_alter_table('mappings', schema=None) as batch_op:
        batch_op.drop_column('facts')
