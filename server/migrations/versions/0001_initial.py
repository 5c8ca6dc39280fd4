"""The schema of the first release with a migration history: analyses (the history), jobs and API keys.

Times are ISO 8601 UTC strings ("2025-01-31T12:00:00.123Z"), which sort and compare as text on every database.
`client` is who asked: `key:<API key id>`, or `ip:<address>` without a key.

Revision ID: 0001
Revises:
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "analyses",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),  # the URL with credentials redacted, or the upload's file name
        sa.Column("source_type", sa.Text, nullable=False),  # url | upload
        sa.Column("url_key", sa.Text),  # SHA-256 of the normalised URL, for the cache
        sa.Column("content_sha256", sa.Text),
        sa.Column("model", sa.Text, nullable=False),  # the model name asked for
        sa.Column("frames", sa.Integer, nullable=False, server_default="0"),  # 0: the checkpoint's default
        sa.Column("verdict", sa.Text, nullable=False),
        sa.Column("fake_probability", sa.Float),
        sa.Column("confidence", sa.Float),
        sa.Column("media_kind", sa.Text),
        sa.Column("duration_s", sa.Float),
        sa.Column("model_id", sa.Text),
        sa.Column("model_revision", sa.Text),
        sa.Column("fetch_json", sa.Text),
        sa.Column("artefacts_json", sa.Text, nullable=False, server_default="[]"),
        sa.Column("client", sa.Text),
    )
    op.create_index("analyses_by_time", "analyses", ["created_at"])
    op.create_index("analyses_by_url", "analyses", ["url_key", "model", "frames"])
    op.create_index("analyses_by_content", "analyses", ["content_sha256", "model", "frames"])
    op.create_index("analyses_by_client", "analyses", ["client", "created_at"])

    op.create_table(
        "jobs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),  # queued | running | done | failed
        sa.Column("source_type", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("fetch_url", sa.Text),  # the URL as given: kept until the job ends (or expires, if retryable)
        sa.Column("upload_path", sa.Text),  # where an upload, or a fetched file, waits for its analysis
        sa.Column("options_json", sa.Text, nullable=False),
        sa.Column("cache_key", sa.Text),
        sa.Column("stage", sa.Text, nullable=False, server_default="queued"),
        sa.Column("fraction", sa.Float, nullable=False, server_default="0"),
        sa.Column("media_kind", sa.Text),
        sa.Column("analysis_id", sa.Text),
        sa.Column("cached", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error_code", sa.Text),
        sa.Column("error_message", sa.Text),
        sa.Column("error_status", sa.Integer),
        sa.Column("retryable", sa.Integer, nullable=False, server_default="0"),
        sa.Column("worker", sa.Text),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("client", sa.Text),
        sa.Column("fetch_json", sa.Text),  # what the fetch found (final URL, title...), once fetched
    )
    op.create_index("jobs_by_status", "jobs", ["status", "created_at"])
    op.create_index("jobs_by_key", "jobs", ["cache_key", "status"])
    op.create_index("jobs_by_client", "jobs", ["client", "status"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("key_hash", sa.Text, nullable=False, unique=True),  # sha256 of the key; never the key itself
        sa.Column("prefix", sa.Text, nullable=False),  # the key's first characters, to recognise it in lists
        sa.Column("created_at", sa.Text, nullable=False),
        sa.Column("revoked_at", sa.Text),
        sa.Column("last_used_at", sa.Text),
    )


def downgrade() -> None:
    for table in ("api_keys", "jobs", "analyses"):
        op.drop_table(table)
