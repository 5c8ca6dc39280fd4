"""Each analysis names the job that made it, so a job run a second time (its message delivered again after a worker
died between storing the analysis and marking the job done) finds its analysis instead of making another.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("analyses") as table:
        table.add_column(sa.Column("job_id", sa.Text))
    op.create_index("analyses_by_job", "analyses", ["job_id"])


def downgrade() -> None:
    op.drop_index("analyses_by_job", table_name="analyses")
    with op.batch_alter_table("analyses") as table:
        table.drop_column("job_id")
