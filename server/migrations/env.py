"""Alembic's environment for the server's database: run by `server.db.Database` on open (upgrade to head), or by
`alembic -c server/migrations/alembic.ini upgrade head` with `DEEPFAKE_DATABASE_URL` set."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

connection = context.config.attributes.get("connection")
if connection is None:  # the alembic command line: a URL from the environment
    url = os.environ.get("DEEPFAKE_DATABASE_URL") or context.config.get_main_option("sqlalchemy.url")
    with create_engine(url).connect() as connection:
        context.configure(connection=connection, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
