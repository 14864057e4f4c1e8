"""import staging without per-row checks: no foreign key, no match columns

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 05:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('import_rows', schema=None) as batch_op:
        batch_op.drop_constraint('fk_import_rows_import_id_imports', type_='foreignkey')
        batch_op.drop_column('contact_id')
        batch_op.drop_column('is_new')


def downgrade() -> None:
    with op.batch_alter_table('import_rows', schema=None) as batch_op:
        batch_op.add_column(sa.Column('is_new', sa.Boolean(), server_default=sa.true(),
                                      nullable=False))
        batch_op.add_column(sa.Column('contact_id', sa.Integer(), nullable=True))
        batch_op.create_foreign_key('fk_import_rows_import_id_imports', 'imports',
                                    ['import_id'], ['id'], ondelete='CASCADE')
