"""contacts, lists, segments, consent, imports

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 03:41:59.514447
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import outreach.db

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('first_name', sa.String(length=200), nullable=True),
    sa.Column('last_name', sa.String(length=200), nullable=True),
    sa.Column('postal_code', sa.String(length=20), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('region', sa.String(length=8), nullable=True),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('email_consent', sa.String(length=10), nullable=False),
    sa.Column('sms_consent', sa.String(length=10), nullable=False),
    sa.Column('last_opened_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('last_clicked_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('last_acted_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', outreach.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('email', name=op.f('uq_contacts_email')),
    sa.UniqueConstraint('phone', name=op.f('uq_contacts_phone'))
    )
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contacts_created_at'), ['created_at'], unique=False)

    op.create_table('lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lists')),
    sa.UniqueConstraint('name', name=op.f('uq_lists_name'))
    )
    op.create_table('segments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', outreach.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_segments')),
    sa.UniqueConstraint('name', name=op.f('uq_segments_name'))
    )
    op.create_table('stored_files',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('content_type', sa.String(length=100), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stored_files'))
    )
    op.create_table('tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tags')),
    sa.UniqueConstraint('name', name=op.f('uq_tags_name'))
    )
    op.create_table('tombstones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tombstones')),
    sa.UniqueConstraint('digest', name=op.f('uq_tombstones_digest'))
    )
    op.create_table('consent_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('source', sa.String(length=20), nullable=False),
    sa.Column('evidence', sa.JSON(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_consent_events_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_consent_events_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_events'))
    )
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.create_index('ix_consent_events_contact_channel', ['contact_id', 'channel', 'id'], unique=False)

    op.create_table('contact_tags',
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_tags_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_contact_tags_tag_id_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('contact_id', 'tag_id', name=op.f('pk_contact_tags'))
    )
    with op.batch_alter_table('contact_tags', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_contact_tags_tag_id'), ['tag_id'], unique=False)

    op.create_table('exports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=True),
    sa.Column('segment_id', sa.Integer(), nullable=True),
    sa.Column('file_id', sa.Integer(), nullable=True),
    sa.Column('rows', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('finished_at', outreach.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_exports_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['file_id'], ['stored_files.id'], name=op.f('fk_exports_file_id_stored_files'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['list_id'], ['lists.id'], name=op.f('fk_exports_list_id_lists'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['segment_id'], ['segments.id'], name=op.f('fk_exports_segment_id_segments'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_exports'))
    )
    op.create_table('file_chunks',
    sa.Column('file_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['file_id'], ['stored_files.id'], name=op.f('fk_file_chunks_file_id_stored_files'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('file_id', 'seq', name=op.f('pk_file_chunks'))
    )
    op.create_table('imports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('filename', sa.String(length=255), nullable=False),
    sa.Column('file_id', sa.Integer(), nullable=True),
    sa.Column('list_id', sa.Integer(), nullable=True),
    sa.Column('mode', sa.String(length=10), nullable=False),
    sa.Column('consent', sa.String(length=20), nullable=False),
    sa.Column('consent_source', sa.Text(), nullable=False),
    sa.Column('column_map', sa.JSON(), nullable=True),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('phase', sa.String(length=20), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('skipped', sa.Integer(), nullable=False),
    sa.Column('rows_total', sa.Integer(), nullable=False),
    sa.Column('rows_processed', sa.Integer(), nullable=False),
    sa.Column('created', sa.Integer(), nullable=False),
    sa.Column('updated', sa.Integer(), nullable=False),
    sa.Column('rejected', sa.Integer(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('started_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('finished_at', outreach.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_imports_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['file_id'], ['stored_files.id'], name=op.f('fk_imports_file_id_stored_files'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['list_id'], ['lists.id'], name=op.f('fk_imports_list_id_lists'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_imports'))
    )
    op.create_table('list_members',
    sa.Column('list_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_list_members_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['list_id'], ['lists.id'], name=op.f('fk_list_members_list_id_lists'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('list_id', 'contact_id', name=op.f('pk_list_members'))
    )
    with op.batch_alter_table('list_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_list_members_contact_id'), ['contact_id'], unique=False)

    op.create_table('suppression_removals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('original_reason', sa.String(length=20), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('removed_by_id', sa.Integer(), nullable=True),
    sa.Column('removed_at', outreach.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['removed_by_id'], ['users.id'], name=op.f('fk_suppression_removals_removed_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppression_removals'))
    )
    op.create_table('suppressions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel', sa.String(length=10), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('reason', sa.String(length=20), nullable=False),
    sa.Column('note', sa.Text(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_suppressions_created_by_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_suppressions')),
    sa.UniqueConstraint('channel', 'address', name=op.f('uq_suppressions_channel_address'))
    )
    op.create_table('import_rejections',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('values', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_import_rejections_import_id_imports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_rejections'))
    )
    with op.batch_alter_table('import_rejections', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_import_rejections_import_id'), ['import_id'], unique=False)

    op.create_table('import_rows',
    sa.Column('import_id', sa.Integer(), nullable=False),
    sa.Column('line', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=True),
    sa.Column('phone', sa.String(length=20), nullable=True),
    sa.Column('first_name', sa.String(length=200), nullable=True),
    sa.Column('last_name', sa.String(length=200), nullable=True),
    sa.Column('postal_code', sa.String(length=20), nullable=True),
    sa.Column('timezone', sa.String(length=64), nullable=True),
    sa.Column('region', sa.String(length=8), nullable=True),
    sa.Column('fields', sa.Text(), nullable=True),
    sa.Column('tags', sa.Text(), nullable=True),
    sa.Column('raw', sa.Text(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('is_new', sa.Boolean(), server_default=sa.true(), nullable=False),
    sa.ForeignKeyConstraint(['import_id'], ['imports.id'], name=op.f('fk_import_rows_import_id_imports'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('import_id', 'line', name=op.f('pk_import_rows'))
    )


def downgrade() -> None:
    op.drop_table('import_rows')
    with op.batch_alter_table('import_rejections', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_import_rejections_import_id'))

    op.drop_table('import_rejections')
    op.drop_table('suppressions')
    op.drop_table('suppression_removals')
    with op.batch_alter_table('list_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_list_members_contact_id'))

    op.drop_table('list_members')
    op.drop_table('imports')
    op.drop_table('file_chunks')
    op.drop_table('exports')
    with op.batch_alter_table('contact_tags', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contact_tags_tag_id'))

    op.drop_table('contact_tags')
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.drop_index('ix_consent_events_contact_channel')

    op.drop_table('consent_events')
    op.drop_table('tombstones')
    op.drop_table('tags')
    op.drop_table('stored_files')
    op.drop_table('segments')
    op.drop_table('lists')
    with op.batch_alter_table('contacts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_contacts_created_at'))

    op.drop_table('contacts')
