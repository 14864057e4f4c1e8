"""action pages

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 05:12:10.356918
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import outreach.db

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('action_pages',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=80), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('title', sa.String(length=200), nullable=False),
    sa.Column('image_url', sa.Text(), nullable=True),
    sa.Column('intro', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=35), nullable=False),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('button_text', sa.String(length=100), nullable=False),
    sa.Column('email_consent_text', sa.Text(), nullable=False),
    sa.Column('sms_consent_text', sa.Text(), nullable=False),
    sa.Column('thank_you_text', sa.Text(), nullable=False),
    sa.Column('redirect_url', sa.Text(), nullable=True),
    sa.Column('share_step', sa.Boolean(), nullable=False),
    sa.Column('list_id', sa.Integer(), nullable=True),
    sa.Column('autoresponse_email_template_id', sa.Integer(), nullable=True),
    sa.Column('autoresponse_sms_template_id', sa.Integer(), nullable=True),
    sa.Column('double_opt_in', sa.Boolean(), nullable=False),
    sa.Column('petition_goal', sa.Integer(), nullable=True),
    sa.Column('letter_subject', sa.Text(), nullable=False),
    sa.Column('letter_body', sa.Text(), nullable=False),
    sa.Column('delivery_mode', sa.String(length=20), nullable=False),
    sa.Column('max_letters_per_target', sa.Integer(), nullable=False),
    sa.Column('keyword', sa.String(length=40), nullable=True),
    sa.Column('welcome_sms', sa.Text(), nullable=False),
    sa.Column('published', sa.Boolean(), nullable=False),
    sa.Column('signature_count', sa.Integer(), nullable=False),
    sa.Column('letters_sent', sa.Integer(), nullable=False),
    sa.Column('created_by_id', sa.Integer(), nullable=True),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('updated_at', outreach.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['autoresponse_email_template_id'], ['templates.id'], name=op.f('fk_action_pages_autoresponse_email_template_id_templates'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['autoresponse_sms_template_id'], ['templates.id'], name=op.f('fk_action_pages_autoresponse_sms_template_id_templates'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['created_by_id'], ['users.id'], name=op.f('fk_action_pages_created_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['list_id'], ['lists.id'], name=op.f('fk_action_pages_list_id_lists'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_pages')),
    sa.UniqueConstraint('keyword', name=op.f('uq_action_pages_keyword')),
    sa.UniqueConstraint('slug', name=op.f('uq_action_pages_slug'))
    )
    op.create_table('action_letter_targets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['action_pages.id'], name=op.f('fk_action_letter_targets_page_id_action_pages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_letter_targets'))
    )
    with op.batch_alter_table('action_letter_targets', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_letter_targets_page_id'), ['page_id'], unique=False)

    op.create_table('action_page_stats',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('source', sa.String(length=60), nullable=False),
    sa.Column('views', sa.Integer(), nullable=False),
    sa.Column('submissions', sa.Integer(), nullable=False),
    sa.Column('new_contacts', sa.Integer(), nullable=False),
    sa.Column('letters', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['page_id'], ['action_pages.id'], name=op.f('fk_action_page_stats_page_id_action_pages'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_page_stats')),
    sa.UniqueConstraint('page_id', 'day', 'source', name=op.f('uq_action_page_stats_page_id_day_source'))
    )
    op.create_table('action_submissions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('ip', sa.String(length=45), nullable=True),
    sa.Column('user_agent_hash', sa.String(length=64), nullable=True),
    sa.Column('source', sa.String(length=60), nullable=False),
    sa.Column('ref', sa.String(length=40), nullable=True),
    sa.Column('referrer_contact_id', sa.Integer(), nullable=True),
    sa.Column('blast_id', sa.Integer(), nullable=True),
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('link_position', sa.Integer(), nullable=True),
    sa.Column('counted', sa.Boolean(), nullable=False),
    sa.Column('new_contact', sa.Boolean(), nullable=False),
    sa.Column('confirmed_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('email_reply_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('sms_reply_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['blast_id'], ['blasts.id'], name=op.f('fk_action_submissions_blast_id_blasts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_action_submissions_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_action_submissions_message_id_messages'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['page_id'], ['action_pages.id'], name=op.f('fk_action_submissions_page_id_action_pages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['referrer_contact_id'], ['contacts.id'], name=op.f('fk_action_submissions_referrer_contact_id_contacts'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_submissions'))
    )
    with op.batch_alter_table('action_submissions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_action_submissions_blast_id'), ['blast_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_submissions_contact_id'), ['contact_id'], unique=False)
        batch_op.create_index('ix_action_submissions_page_contact', ['page_id', 'contact_id', 'created_at'], unique=False)

    op.create_table('action_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('page_id', sa.Integer(), nullable=False),
    sa.Column('submission_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('target_id', sa.Integer(), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('signature', sa.String(length=300), nullable=False),
    sa.Column('reply_to', sa.String(length=320), nullable=True),
    sa.Column('status', sa.String(length=10), nullable=False),
    sa.Column('flagged_words', sa.JSON(), nullable=False),
    sa.Column('moderated_by_id', sa.Integer(), nullable=True),
    sa.Column('moderated_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('provider_id', sa.String(length=100), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('sent_at', outreach.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_action_letters_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['moderated_by_id'], ['users.id'], name=op.f('fk_action_letters_moderated_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['page_id'], ['action_pages.id'], name=op.f('fk_action_letters_page_id_action_pages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['submission_id'], ['action_submissions.id'], name=op.f('fk_action_letters_submission_id_action_submissions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['target_id'], ['action_letter_targets.id'], name=op.f('fk_action_letters_target_id_action_letter_targets'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_action_letters'))
    )
    with op.batch_alter_table('action_letters', schema=None) as batch_op:
        batch_op.create_index('ix_action_letters_contact_target', ['contact_id', 'target_id'], unique=False)
        batch_op.create_index('ix_action_letters_page_status', ['page_id', 'status'], unique=False)
        batch_op.create_index(batch_op.f('ix_action_letters_submission_id'), ['submission_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('action_letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_letters_submission_id'))
        batch_op.drop_index('ix_action_letters_page_status')
        batch_op.drop_index('ix_action_letters_contact_target')

    op.drop_table('action_letters')
    with op.batch_alter_table('action_submissions', schema=None) as batch_op:
        batch_op.drop_index('ix_action_submissions_page_contact')
        batch_op.drop_index(batch_op.f('ix_action_submissions_contact_id'))
        batch_op.drop_index(batch_op.f('ix_action_submissions_blast_id'))

    op.drop_table('action_submissions')
    op.drop_table('action_page_stats')
    with op.batch_alter_table('action_letter_targets', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_action_letter_targets_page_id'))

    op.drop_table('action_letter_targets')
    op.drop_table('action_pages')
