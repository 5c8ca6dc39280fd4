"""SQLite storage of analyses (the history), jobs and API keys.

One database file in the data folder, WAL mode so readers never wait for the writer; a short-lived connection
per operation, so any thread may call any method. Times are ISO 8601 UTC strings ("2025-01-31T12:00:00.123Z"),
which sort and compare as text. Columns added since the first release are added to older files on open
(`MIGRATIONS`), so a data folder keeps its history across upgrades.

`client` (jobs and analyses) is who asked: `key:<API key id>`, or `ip:<address>` without a key. Listings made
with an API key show that key's entries only.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    source TEXT NOT NULL,                 -- the URL with credentials redacted, or the upload's file name
    source_type TEXT NOT NULL,            -- url | upload
    url_key TEXT,                         -- SHA-256 of the normalised URL, for the cache
    content_sha256 TEXT,
    model TEXT NOT NULL,                  -- the model name asked for
    frames INTEGER NOT NULL DEFAULT 0,    -- 0: the checkpoint's default
    verdict TEXT NOT NULL,
    fake_probability REAL,
    confidence REAL,
    media_kind TEXT,
    duration_s REAL,
    model_id TEXT,
    model_revision TEXT,
    fetch_json TEXT,
    artefacts_json TEXT NOT NULL DEFAULT '[]',
    client TEXT                           -- who asked (see the module's docstring)
);
CREATE INDEX IF NOT EXISTS analyses_by_time ON analyses (created_at);
CREATE INDEX IF NOT EXISTS analyses_by_url ON analyses (url_key, model, frames);
CREATE INDEX IF NOT EXISTS analyses_by_content ON analyses (content_sha256, model, frames);

CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    status TEXT NOT NULL,                 -- queued | running | done | failed
    source_type TEXT NOT NULL,
    source TEXT NOT NULL,                 -- the URL with credentials redacted, or the upload's file name
    fetch_url TEXT,                       -- the URL as given: kept until the job ends (or expires, if retryable)
    upload_path TEXT,                     -- where an upload, or a fetched file, waits for its analysis
    options_json TEXT NOT NULL,
    cache_key TEXT,
    stage TEXT NOT NULL DEFAULT 'queued',
    fraction REAL NOT NULL DEFAULT 0,
    media_kind TEXT,
    analysis_id TEXT,
    cached INTEGER NOT NULL DEFAULT 0,
    error_code TEXT,
    error_message TEXT,
    error_status INTEGER,
    retryable INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    client TEXT,                          -- who asked (see the module's docstring)
    fetch_json TEXT                       -- what the fetch found (final URL, title...), once fetched
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_key ON jobs (cache_key, status);

CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    key_hash TEXT NOT NULL UNIQUE,        -- sha256 of the key; the key itself is never stored
    prefix TEXT NOT NULL,                 -- the key's first characters, to recognise it in lists
    created_at TEXT NOT NULL,
    revoked_at TEXT,
    last_used_at TEXT
);
"""

# Columns added after the first release: (table, column, declaration), added to older database files on open.
MIGRATIONS = (
    ("analyses", "client", "TEXT"),
    ("jobs", "client", "TEXT"),
    ("jobs", "fetch_json", "TEXT"),
    ("jobs", "fetch_url", "TEXT"),
)
INDEXES = """
CREATE INDEX IF NOT EXISTS analyses_by_client ON analyses (client, created_at);
CREATE INDEX IF NOT EXISTS jobs_by_client ON jobs (client, status);
"""

ANALYSIS_SUMMARY_COLUMNS = (
    "id, created_at, source, source_type, verdict, fake_probability, confidence, media_kind, duration_s, "
    "model, model_id, model_revision"
)


def utc_now() -> str:
    return format_time(datetime.now(timezone.utc))


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Database:
    def __init__(self, path: str | Path, timeout_s: float = 30.0):
        self.path = Path(path)
        self.timeout_s = timeout_s  # how long a write waits for another writer before failing
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._write_lock = threading.Lock()  # one writer at a time inside this process; SQLite handles others
        with self.connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)
            for table, column, declaration in MIGRATIONS:
                present = {row["name"] for row in db.execute(f"PRAGMA table_info({table})")}
                if column not in present:
                    db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
            db.executescript(INDEXES)

    @contextlib.contextmanager
    def connect(self, timeout_s: float | None = None) -> Iterator[sqlite3.Connection]:
        timeout_s = self.timeout_s if timeout_s is None else timeout_s
        db = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        try:
            yield db
        finally:
            db.close()

    def check_writable(self, timeout_s: float = 1.0) -> str | None:
        """None when a write could start now, else why not (locked, read-only, missing...): for readiness."""
        try:
            with self.connect(timeout_s) as db:
                db.execute("BEGIN IMMEDIATE")
                db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    def _write(self, sql: str, params: tuple | dict = ()) -> int:
        with self._write_lock, self.connect() as db:
            return db.execute(sql, params).rowcount

    def _one(self, sql: str, params: tuple | dict = ()) -> dict | None:
        with self.connect() as db:
            row = db.execute(sql, params).fetchone()
        return dict(row) if row else None

    def _all(self, sql: str, params: tuple | dict = ()) -> list[dict]:
        with self.connect() as db:
            return [dict(row) for row in db.execute(sql, params).fetchall()]

    # -------------------------------------------------------------------------------------------- analyses

    def insert_analysis(self, record: dict[str, Any]) -> None:
        columns = ", ".join(record)
        values = ", ".join(f":{key}" for key in record)
        self._write(f"INSERT INTO analyses ({columns}) VALUES ({values})", record)

    def get_analysis(self, analysis_id: str) -> dict | None:
        return self._one("SELECT * FROM analyses WHERE id = ?", (analysis_id,))

    def delete_analysis(self, analysis_id: str) -> bool:
        with self._write_lock, self.connect() as db:
            db.execute("BEGIN")
            deleted = db.execute("DELETE FROM analyses WHERE id = ?", (analysis_id,)).rowcount
            db.execute("DELETE FROM jobs WHERE analysis_id = ?", (analysis_id,))
            db.execute("COMMIT")
        return bool(deleted)

    def find_cached(self, column: str, value: str, model: str, frames: int, ttl_s: float) -> dict | None:
        """The newest analysis with the same URL or content, model and frame count, younger than `ttl_s`."""
        if ttl_s <= 0 or column not in ("url_key", "content_sha256"):
            return None
        since = format_time(datetime.now(timezone.utc) - timedelta(seconds=ttl_s))
        return self._one(
            f"SELECT * FROM analyses WHERE {column} = ? AND model = ? AND frames = ? AND created_at >= ? "
            "ORDER BY created_at DESC LIMIT 1",
            (value, model, frames, since),
        )

    @staticmethod
    def _filters(
        verdicts: list[str] | None, since: str | None, until: str | None, client: str | None = None
    ) -> tuple[str, list]:
        clauses, params = [], []
        if client:
            clauses.append("client = ?")
            params.append(client)
        if verdicts:
            clauses.append(f"verdict IN ({', '.join('?' for _ in verdicts)})")
            params += verdicts
        if since:
            clauses.append("created_at >= ?")
            params.append(since)
        if until:
            clauses.append("created_at < ?")
            params.append(until)
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def list_analyses(
        self,
        verdicts: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 50,
        offset: int = 0,
        client: str | None = None,
    ) -> tuple[list[dict], int]:
        """A page of analyses, newest first, and how many match; only `client`'s when given."""
        where, params = self._filters(verdicts, since, until, client)
        total = self._one(f"SELECT COUNT(*) AS n FROM analyses{where}", tuple(params))["n"]
        rows = self._all(
            f"SELECT {ANALYSIS_SUMMARY_COLUMNS} FROM analyses{where} ORDER BY created_at DESC, id LIMIT ? OFFSET ?",
            (*params, limit, offset),
        )
        return rows, total

    def stats(self, since: str | None = None, until: str | None = None, client: str | None = None) -> list[dict]:
        where, params = self._filters(None, since, until, client)
        return self._all(
            f"SELECT substr(created_at, 1, 10) AS day, verdict, COUNT(*) AS n FROM analyses{where} "
            "GROUP BY day, verdict ORDER BY day",
            tuple(params),
        )

    # ------------------------------------------------------------------------------------------------ jobs

    def insert_job(self, job: dict[str, Any]) -> None:
        job = {**job, "options_json": json.dumps(job.get("options_json") or {})}
        columns = ", ".join(job)
        self._write(f"INSERT INTO jobs ({columns}) VALUES ({', '.join(f':{k}' for k in job)})", job)

    def get_job(self, job_id: str) -> dict | None:
        row = self._one("SELECT * FROM jobs WHERE id = ?", (job_id,))
        if row:
            row["options"] = json.loads(row.pop("options_json") or "{}")
        return row

    def update_job(self, job_id: str, only_if_status: str | tuple[str, ...] | None = None, **fields: Any) -> bool:
        """Set `fields` of a job (only while its status is `only_if_status`, or one of them); whether it was set."""
        fields["updated_at"] = utc_now()
        assignments = ", ".join(f"{key} = :{key}" for key in fields)
        statuses = (only_if_status,) if isinstance(only_if_status, str) else tuple(only_if_status or ())
        condition = f" AND status IN ({', '.join(f':_status{n}' for n in range(len(statuses)))})" if statuses else ""
        params = {**fields, "_id": job_id, **{f"_status{n}": status for n, status in enumerate(statuses)}}
        return self._write(f"UPDATE jobs SET {assignments} WHERE id = :_id{condition}", params) == 1

    def active_job_for(self, cache_key: str) -> dict | None:
        row = self._one(
            "SELECT id FROM jobs WHERE cache_key = ? AND status IN ('queued', 'running') ORDER BY created_at LIMIT 1",
            (cache_key,),
        )
        return self.get_job(row["id"]) if row else None

    def jobs_with_status(self, status: str) -> list[dict]:
        return [
            self.get_job(row["id"]) for row in self._all("SELECT id FROM jobs WHERE status = ? ORDER BY created_at", (status,))
        ]

    def url_jobs_before_analysis(self, client: str) -> int:
        """How many of `client`'s URL jobs wait for a fetch or are being fetched."""
        return self._one(
            "SELECT COUNT(*) AS n FROM jobs WHERE client = ? AND source_type = 'url' "
            "AND status IN ('queued', 'running') AND upload_path IS NULL",
            (client,),
        )["n"]

    def expire_jobs(self, before: str) -> list[str]:
        """Delete jobs that ended (done, or failed and nobody retried them) before `before`; their upload paths."""
        with self._write_lock, self.connect() as db:
            db.execute("BEGIN")
            rows = db.execute(
                "SELECT id, upload_path FROM jobs WHERE status IN ('done', 'failed') AND updated_at < ?", (before,)
            ).fetchall()
            db.executemany("DELETE FROM jobs WHERE id = ?", [(row["id"],) for row in rows])
            db.execute("COMMIT")
        return [row["upload_path"] for row in rows if row["upload_path"]]

    def upload_paths_in_use(self) -> set[str]:
        return {row["upload_path"] for row in self._all("SELECT upload_path FROM jobs WHERE upload_path IS NOT NULL")}

    # -------------------------------------------------------------------------------------------- API keys

    def insert_api_key(self, key_id: str, name: str, key_hash: str, prefix: str) -> None:
        self._write(
            "INSERT INTO api_keys (id, name, key_hash, prefix, created_at) VALUES (?, ?, ?, ?, ?)",
            (key_id, name, key_hash, prefix, utc_now()),
        )

    def api_key_by_hash(self, key_hash: str) -> dict | None:
        return self._one("SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL", (key_hash,))

    def touch_api_key(self, key_id: str) -> None:
        self._write("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (utc_now(), key_id))

    def list_api_keys(self) -> list[dict]:
        return self._all("SELECT id, name, prefix, created_at, revoked_at, last_used_at FROM api_keys ORDER BY created_at")

    def revoke_api_key(self, key_id_or_prefix: str) -> int:
        return self._write(
            "UPDATE api_keys SET revoked_at = ? WHERE (id = ? OR prefix = ?) AND revoked_at IS NULL",
            (utc_now(), key_id_or_prefix, key_id_or_prefix),
        )

    def active_api_key_count(self) -> int:
        return self._one("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL")["n"]
