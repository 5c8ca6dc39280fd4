"""Memory of media judged: the fine hash of face close-ups (detector/memory.py, the close-up guard).

A key frame whose largest face covers a tenth of it or more also stores a 256-bit DCT hash (64 hex digits) beside its
64-bit pHash; two close-ups match only when these agree too. Rows stored before have none, and are matched on their
64-bit hashes alone.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("fingerprints", sa.Column("fine", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("fingerprints") as batch:  # SQLite drops a column by copying the table
        batch.drop_column("fine")
