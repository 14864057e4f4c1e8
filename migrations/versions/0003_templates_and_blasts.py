"""templates and blasts

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 04:23:10.871986
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import outreach.db

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', outreach.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_templates')),
    sa.UniqueConstraint('name', name=op.f('uq_templates_name'))
    )

    op.create_table('template_versions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('html', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('from_name', sa.String(length=200), nullable=False),
    sa.Column('reply_to', sa.String(length=320), nullable=True),
    sa.Column('append_stop', sa.Boolean(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_template_versions_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['template_id'], ['templates.id'], name=op.f('fk_template_versions_template_id_templates'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_template_versions')),
    sa.UniqueConstraint('template_id', 'version', name=op.f('uq_template_versions_template_id_version'))
    )
    op.create_table('blasts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('template_id', sa.Integer(), nullable=False),
    sa.Column('template_version_id', sa.Integer(), nullable=True),
    sa.Column('list_ids', sa.JSON(), nullable=False),
    sa.Column('segment_id', sa.Integer(), nullable=True),
    sa.Column('exclude_list_ids', sa.JSON(), nullable=False),
    sa.Column('send_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('window_start', sa.String(length=5), nullable=True),
    sa.Column('window_end', sa.String(length=5), nullable=True),
    sa.Column('throttle_per_minute', sa.Integer(), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('status_reason', sa.Text(), nullable=True),
    sa.Column('total', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('launched_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('finished_at', outreach.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_blasts_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_blasts_segment_id_segments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['template_id'], ['templates.id'], name=op.f('fk_blasts_template_id_templates')),
    sa.ForeignKeyConstraint(['template_version_id'], ['template_versions.id'], name=op.f('fk_blasts_template_version_id_template_versions')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_blasts'))
    )
    with op.batch_alter_table('blasts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_blasts_status'), ['status'], unique=False)

    op.create_table('links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('blast_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('url', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['blast_id'], ['blasts.id'], name=op.f('fk_links_blast_id_blasts'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_links')),
    sa.UniqueConstraint('blast_id', 'position', name=op.f('uq_links_blast_id_position'))
    )
    op.create_table('messages',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('blast_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('provider_id', sa.String(length=100), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('error_code', sa.String(length=20), nullable=True),
    sa.Column('segments', sa.Integer(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('not_before', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('not_after', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('claimed_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('sent_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('delivered_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('updated_at', outreach.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['blast_id'], ['blasts.id'], name=op.f('fk_messages_blast_id_blasts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_messages_contact_id_contacts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_messages')),
    sa.UniqueConstraint('blast_id', 'address', name=op.f('uq_messages_blast_id_address')),
    sa.UniqueConstraint('blast_id', 'contact_id', name=op.f('uq_messages_blast_id_contact_id'))
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_blast_status', ['blast_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_messages_provider_id'), ['provider_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_messages_provider_id'))
        batch_op.drop_index(batch_op.f('ix_messages_contact_id'))
        batch_op.drop_index('ix_messages_blast_status')

    op.drop_table('messages')
    op.drop_table('links')
    with op.batch_alter_table('blasts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_blasts_status'))

    op.drop_table('blasts')
    op.drop_table('template_versions')

    op.drop_table('templates')
