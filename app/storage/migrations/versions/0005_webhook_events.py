"""quickbooks_events and quickbooks_reconciliations: Intuit webhooks received, ChangeDataCapture high-water marks

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-06 03:20:00
"""
from alembic import op
import sqlalchemy as sa


revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('quickbooks_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_key', sa.String(length=128), nullable=False),
    sa.Column('realm_id', sa.String(length=64), nullable=False),
    sa.Column('entity', sa.String(length=64), nullable=False),
    sa.Column('entity_id', sa.String(length=64), nullable=False),
    sa.Column('operation', sa.String(length=32), nullable=False),
    sa.Column('occurred_at', sa.String(length=40), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_key', name='uq_quickbooks_event_key')
    )
    with op.batch_alter_table('quickbooks_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quickbooks_events_realm_id'), ['realm_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quickbooks_events_entity_id'), ['entity_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_quickbooks_events_processed_at'), ['processed_at'], unique=False)

    op.create_table('quickbooks_reconciliations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('realm_id', sa.String(length=64), nullable=False),
    sa.Column('changed_since', sa.String(length=40), nullable=True),
    sa.Column('attempted_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('succeeded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('realm_id', name='uq_reconciliation_realm')
    )


def downgrade():
    op.drop_table('quickbooks_reconciliations')
    with op.batch_alter_table('quickbooks_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quickbooks_events_processed_at'))
        batch_op.drop_index(batch_op.f('ix_quickbooks_events_entity_id'))
        batch_op.drop_index(batch_op.f('ix_quickbooks_events_realm_id'))
    op.drop_table('quickbooks_events')
