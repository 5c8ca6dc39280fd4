"""Memory of media judged: perceptual fingerprints of every analysis, indexed for near-duplicate lookup, and a
per-key opt-out of being matched (server/memory.py, docs/server.md "Memory").

Each 64-bit hash is also stored as four 16-bit bands, each with its own index (multi-index hashing): two hashes
within Hamming distance d share at least one band exactly when d < 4, and a band within one bit when d < 8, so a
lookup is a handful of indexed equality probes rather than a scan.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

BANDS = ("band0", "band1", "band2", "band3")


def upgrade() -> None:
    op.create_table(
        "fingerprints",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("analysis_id", sa.Text, nullable=False),
        sa.Column("client", sa.Text),
        sa.Column("position", sa.Integer, nullable=False),  # the key frame it was taken from
        sa.Column("variant", sa.Integer, nullable=False),  # 0: the whole frame, 1: its centre
        sa.Column("hash", sa.BigInteger, nullable=False),  # the 64-bit pHash as a signed integer
        *(sa.Column(band, sa.Integer, nullable=False) for band in BANDS),
    )
    op.create_index("fingerprints_by_analysis", "fingerprints", ["analysis_id"])
    for band in BANDS:
        op.create_index(f"fingerprints_by_{band}", "fingerprints", [band])
    # the clients (`key:<id>`) whose analyses other clients are not matched with
    op.create_table(
        "memory_opt_outs", sa.Column("client", sa.Text, primary_key=True), sa.Column("created_at", sa.Text, nullable=False)
    )


def downgrade() -> None:
    op.drop_table("memory_opt_outs")
    op.drop_table("fingerprints")
