"""quickbooks_documents: the documents executions created, and their state in QuickBooks

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 02:40:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('quickbooks_documents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('portal_id', sa.BigInteger(), nullable=False),
    sa.Column('realm_id', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=32), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('quickbooks_id', sa.String(length=64), nullable=False),
    sa.Column('object_type', sa.String(length=64), nullable=False),
    sa.Column('object_id', sa.String(length=64), nullable=False),
    sa.Column('execution_id', sa.Integer(), nullable=True),
    sa.Column('number', sa.String(length=64), nullable=True),
    sa.Column('url', sa.String(length=512), nullable=True),
    sa.Column('payment_id', sa.String(length=64), nullable=True),
    sa.Column('status', sa.String(length=32), nullable=True),
    sa.Column('amount', sa.String(length=32), nullable=True),
    sa.Column('balance', sa.String(length=32), nullable=True),
    sa.Column('currency', sa.String(length=8), nullable=True),
    sa.Column('txn_date', sa.String(length=10), nullable=True),
    sa.Column('quickbooks_updated_at', sa.String(length=40), nullable=True),
    sa.Column('written_back_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('write_back_error', sa.Text(), nullable=True),
    sa.Column('write_back_attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('realm_id', 'entity', 'quickbooks_id', name='uq_document_realm_entity_id')
    )
    with op.batch_alter_table('quickbooks_documents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quickbooks_documents_portal_id'), ['portal_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quickbooks_documents_object_id'), ['object_id'], unique=False)


def downgrade():
    with op.batch_alter_table('quickbooks_documents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quickbooks_documents_object_id'))
        batch_op.drop_index(batch_op.f('ix_quickbooks_documents_portal_id'))
    op.drop_table('quickbooks_documents')
