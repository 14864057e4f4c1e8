"""foundation: staff accounts and the outbox

Revision ID: 0001
Revises:
Create Date: 2026-11-28 03:30:59.641820
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import outreach.db

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('outbox_emails',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('from_email', sa.String(length=400), nullable=False),
    sa.Column('to_email', sa.String(length=400), nullable=False),
    sa.Column('reply_to', sa.String(length=400), nullable=True),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('html', sa.Text(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_emails')),
    sa.UniqueConstraint('provider_id', name=op.f('uq_outbox_emails_provider_id'))
    )
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_emails_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_emails_to_email'), ['to_email'], unique=False)

    op.create_table('outbox_sms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.String(length=64), nullable=False),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('from_number', sa.String(length=64), nullable=False),
    sa.Column('to_number', sa.String(length=32), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('segments', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_sms')),
    sa.UniqueConstraint('provider_id', name=op.f('uq_outbox_sms_provider_id'))
    )
    with op.batch_alter_table('outbox_sms', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_sms_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_sms_to_number'), ['to_number'], unique=False)

    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('role', sa.String(length=20), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('last_login_at', outreach.db.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', outreach.db.UTCDateTime(), nullable=False),
    sa.Column('last_used_at', outreach.db.UTCDateTime(), nullable=True),
    sa.Column('revoked_at', outreach.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('digest', name=op.f('uq_api_tokens_digest'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_table('users')
    with op.batch_alter_table('outbox_sms', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_sms_to_number'))
        batch_op.drop_index(batch_op.f('ix_outbox_sms_created_at'))

    op.drop_table('outbox_sms')
    with op.batch_alter_table('outbox_emails', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_emails_to_email'))
        batch_op.drop_index(batch_op.f('ix_outbox_emails_created_at'))

    op.drop_table('outbox_emails')
