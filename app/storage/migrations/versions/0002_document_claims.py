"""document claims: one QuickBooks document per (payment, action, company)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06 02:00:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('document_claims',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal_id', sa.BigInteger(), nullable=False),
    sa.Column('realm_id', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=64), nullable=False),
    sa.Column('object_id', sa.String(length=64), nullable=False),
    sa.Column('execution_id', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('portal_id', 'realm_id', 'action', 'object_type', 'object_id', name='uq_document_claim')
    )


def downgrade():
    op.drop_table('document_claims')
