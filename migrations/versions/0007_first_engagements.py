"""first engagements: the key that decides unique counts without a lock

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 06:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import outreach.db

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('first_engagements',
    sa.Column('message_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
              autoincrement=False, nullable=False),
    sa.Column('kind', sa.String(length=20), nullable=False),
    sa.Column('link_position', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('occurred_at', outreach.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'],
                            name=op.f('fk_first_engagements_message_id_messages'),
                            ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('message_id', 'kind', 'link_position',
                            name=op.f('pk_first_engagements'))
    )
    # What was already counted stays counted once: the keys seen so far, from the events.
    op.execute("""
        INSERT INTO first_engagements (message_id, kind, link_position, occurred_at)
        SELECT message_id, kind,
               CASE WHEN kind = 'click' THEN COALESCE(link_position, -1) ELSE -1 END,
               MIN(occurred_at)
        FROM events
        WHERE message_id IS NOT NULL AND NOT machine
        GROUP BY 1, 2, 3
        UNION ALL
        SELECT message_id, 'clicker', -1, MIN(occurred_at)
        FROM events
        WHERE message_id IS NOT NULL AND NOT machine AND kind = 'click'
        GROUP BY 1
    """)


def downgrade() -> None:
    op.drop_table('first_engagements')
