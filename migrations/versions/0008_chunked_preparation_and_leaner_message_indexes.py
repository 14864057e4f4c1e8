"""chunked preparation and leaner message indexes

Every message row is inserted once (prepare) and updated twice (claim, record); none of those
updates can be HOT (status is indexed), so each writes a new entry into every index of the
table. Two of the six indexes were not worth that:

- ix_messages_contact_id duplicated what a unique key on (contact_id, blast_id) gives: the
  (blast_id, contact_id) key turns around to serve lookups by contact (the contacts foreign
  key's ON DELETE SET NULL, a contact's history) and still holds one message per blast and
  contact. Queries by blast alone use (blast_id, status) or (blast_id, address).
- ix_messages_provider_id indexed the NULL provider id of every queued and claimed row: it is
  now partial (provider_id IS NOT NULL), which every lookup by provider id implies.

blasts.prepared_through: a preparation writes its messages in committed chunks of contacts and
the workers send each chunk while the next is written; this marks how far it got.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 09:55:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('blasts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('prepared_through', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_provider_id')
        batch_op.drop_index('ix_messages_contact_id')
        batch_op.drop_constraint('uq_messages_blast_id_contact_id', type_='unique')
        batch_op.create_unique_constraint('uq_messages_contact_id_blast_id',
                                          ['contact_id', 'blast_id'])
        batch_op.create_index('ix_messages_provider_id', ['provider_id'], unique=False,
                              postgresql_where=sa.text('provider_id IS NOT NULL'),
                              sqlite_where=sa.text('provider_id IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_provider_id')
        batch_op.drop_constraint('uq_messages_contact_id_blast_id', type_='unique')
        batch_op.create_unique_constraint('uq_messages_blast_id_contact_id',
                                          ['blast_id', 'contact_id'])
        batch_op.create_index('ix_messages_contact_id', ['contact_id'], unique=False)
        batch_op.create_index('ix_messages_provider_id', ['provider_id'], unique=False)
    with op.batch_alter_table('blasts', schema=None) as batch_op:
        batch_op.drop_column('prepared_through')
