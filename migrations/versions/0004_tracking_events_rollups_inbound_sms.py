"""tracking: events, rollups, inbound sms

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 04:42:20.731992
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import outreach.db

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('inbound_sms',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_sid', sa.String(length=64), nullable=False),
    sa.Column('from_number', sa.String(length=32), nullable=False),
    sa.Column('to_number', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('keyword', sa.String(length=10), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_inbound_sms_contact_id_contacts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbound_sms')),
    sa.UniqueConstraint('message_sid', name=op.f('uq_inbound_sms_message_sid'))
    )
    with op.batch_alter_table('inbound_sms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_inbound_sms_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_sms_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_inbound_sms_from_number'), ['from_number'], unique=False)

    op.create_table('rollups',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('blast_id', sa.Integer(), nullable=False),
    sa.Column('link_position', sa.Integer(), nullable=False),
    sa.Column('hour', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('machine', sa.Boolean(), nullable=False),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('unique_count', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['blast_id'], ['blasts.id'], name=op.f('fk_rollups_blast_id_blasts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rollups')),
    sa.UniqueConstraint('blast_id', 'link_position', 'hour', 'kind', 'machine', name=op.f('uq_rollups_blast_id_link_position_hour_kind_machine'))
    )
    op.create_table('events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('blast_id', sa.Integer(), nullable=True),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('machine', sa.Boolean(), nullable=False),
    sa.Column('link_position', sa.Integer(), nullable=True),
    sa.Column('provider_event_id', sa.String(length=120), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('occurred_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['blast_id'], ['blasts.id'], name=op.f('fk_events_blast_id_blasts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_events_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_events_message_id_messages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_events')),
    sa.UniqueConstraint('provider_event_id', name=op.f('uq_events_provider_event_id'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_blast_kind_occurred', ['blast_id', 'kind', 'occurred_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_events_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_events_message_kind', ['message_id', 'kind'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_message_kind')
        batch_op.drop_index(batch_op.f('ix_events_contact_id'))
        batch_op.drop_index('ix_events_blast_kind_occurred')

    op.drop_table('events')
    op.drop_table('rollups')
    with op.batch_alter_table('inbound_sms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_inbound_sms_from_number'))
        batch_op.drop_index(batch_op.f('ix_inbound_sms_created_at'))
        batch_op.drop_index(batch_op.f('ix_inbound_sms_contact_id'))

    op.drop_table('inbound_sms')
