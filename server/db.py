"""Storage of analyses (the history), jobs and API keys: SQLite by default (one file in the data folder), or
PostgreSQL (`DEEPFAKE_DATABASE_URL=postgresql+psycopg://user:password@host/db`) for several API processes and hosts.

SQLAlchemy runs the same SQL on both; the schema is versioned with Alembic (server/migrations/) and upgraded when a
`Database` opens, so a data folder keeps its history across upgrades: a file made before migrations existed gets
the columns added since the first release, then is stamped at the first revision. Any thread may call any method
(a connection per operation; on SQLite one writer at a time per process, WAL so readers never wait). Times are ISO
8601 UTC strings ("2025-01-31T12:00:00.123Z"), which sort and compare as text on both.

`client` (jobs and analyses) is who asked: `key:<API key id>`, or `ip:<address>` without a key. Listings made
with an API key show that key's entries only.

Rows come and go as the typed records of server/records.py (`AnalysisRecord`, `AnalysisSummary`, `VerdictCount`,
`Job`, `ApiKey`); the fingerprint rows of server/memory.py stay plain.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, inspect, make_url, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from detector.memory import Fingerprint, bands, fine_text, fine_value, to_signed, to_unsigned

from .records import AnalysisRecord, AnalysisSummary, ApiKey, Job, VerdictCount, column_list

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Columns the first release's files lack, added before such a file is stamped at revision 0001 (which has them).
LEGACY_COLUMNS = (
    ("analyses", "client", "TEXT"),
    ("jobs", "client", "TEXT"),
    ("jobs", "fetch_json", "TEXT"),
    ("jobs", "fetch_url", "TEXT"),
)
LEGACY_INDEXES = (
    "CREATE INDEX IF NOT EXISTS analyses_by_client ON analyses (client, created_at)",
    "CREATE INDEX IF NOT EXISTS jobs_by_client ON jobs (client, status)",
)
_MIGRATION_LOCK = 7_366_231  # PostgreSQL advisory lock: one process migrates at a time

ANALYSIS_SUMMARY_COLUMNS = column_list(AnalysisSummary)
API_KEY_COLUMNS = column_list(ApiKey)


def utc_now() -> str:
    return format_time(datetime.now(timezone.utc))


def format_time(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def database_url(target: str | Path) -> URL:
    """A database URL (`sqlite:///...`, `postgresql+psycopg://...`), or the path of a SQLite file."""
    if isinstance(target, Path) or "://" not in str(target):
        return URL.create("sqlite", database=str(Path(target).expanduser()))
    return make_url(str(target))


class Database:
    def __init__(self, target: str | Path, timeout_s: float = 30.0):
        self.url = database_url(target)
        self.timeout_s = timeout_s  # how long a write waits for another writer before failing
        self.sqlite = self.url.get_backend_name() == "sqlite"
        self.path = Path(self.url.database) if self.sqlite else None
        if self.sqlite:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # a connection per operation, as sqlite3 is cheap to open and its connections are not shared by threads
            self.engine = create_engine(self.url, poolclass=NullPool, connect_args={"timeout": timeout_s})
            event.listen(self.engine, "connect", self._sqlite_pragmas)
        else:
            ms = int(timeout_s * 1000)
            self.engine = create_engine(
                self.url, pool_pre_ping=True, connect_args={"connect_timeout": max(1, int(timeout_s)), "options": f"-c lock_timeout={ms}"}
            )
        self._write_lock = threading.Lock() if self.sqlite else contextlib.nullcontext()
        self.migrate()

    def _sqlite_pragmas(self, dbapi_connection, _record) -> None:
        dbapi_connection.execute(f"PRAGMA busy_timeout={int(self.timeout_s * 1000)}")

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    # ------------------------------------------------------------------------------------------- migrations

    def migrate(self) -> None:
        """Bring the schema to the newest revision (a file from before migrations first gets the columns added
        since the first release, then is stamped at revision 0001)."""
        from alembic import command
        from alembic.config import Config

        if self.sqlite:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                connection.exec_driver_sql("PRAGMA journal_mode=WAL")
        with self.engine.begin() as connection:
            if not self.sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            config = Config()
            config.set_main_option("script_location", str(MIGRATIONS_DIR))
            config.attributes["connection"] = connection
            tables = set(inspect(connection).get_table_names())
            if "analyses" in tables and "alembic_version" not in tables:
                self._bring_legacy_file_to_first_revision(connection)
                command.stamp(config, "0001")
            command.upgrade(config, "head")

    @staticmethod
    def _bring_legacy_file_to_first_revision(connection: Connection) -> None:
        inspector = inspect(connection)
        for table, column, declaration in LEGACY_COLUMNS:
            if column not in {c["name"] for c in inspector.get_columns(table)}:
                connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
        for statement in LEGACY_INDEXES:
            connection.exec_driver_sql(statement)

    def revision(self) -> str | None:
        with self.engine.connect() as connection:
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()

    # ----------------------------------------------------------------------------------------------- basics

    def check_writable(self, timeout_s: float = 1.0) -> str | None:
        """None when a write could start now, else why not (locked, read-only, unreachable...): for readiness."""
        try:
            with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                if self.sqlite:
                    connection.exec_driver_sql(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                    connection.exec_driver_sql("ROLLBACK")
                elif connection.exec_driver_sql("SHOW transaction_read_only").scalar() == "on":
                    return "the database is read-only"
        except SQLAlchemyError as exc:
            return database_failure(exc)
        return None

    def _write(self, sql: str, params: Mapping[str, Any] | None = None) -> int:
        with self._write_lock, self.engine.begin() as connection:
            return connection.execute(text(sql), _plain(params or {})).rowcount

    def _write_many(self, sql: str, rows: list[Mapping[str, Any]]) -> None:
        with self._write_lock, self.engine.begin() as connection:
            connection.execute(text(sql), [_plain(row) for row in rows])

    def _one(self, sql: str, params: Mapping[str, Any] | None = None) -> dict | None:
        with self.engine.connect() as connection:
            row = connection.execute(text(sql), _plain(params or {})).mappings().first()
        return dict(row) if row else None

    def _all(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict]:
        with self.engine.connect() as connection:
            return [dict(row) for row in connection.execute(text(sql), _plain(params or {})).mappings()]

    # -------------------------------------------------------------------------------------------- analyses

    def insert_analysis(self, record: AnalysisRecord) -> None:
        row = record.to_row()
        columns = ", ".join(row)
        values = ", ".join(f":{key}" for key in row)
        self._write(f"INSERT INTO analyses ({columns}) VALUES ({values})", row)

    def get_analysis(self, analysis_id: str) -> AnalysisRecord | None:
        return _analysis(self._one("SELECT * FROM analyses WHERE id = :id", {"id": analysis_id}))

    def analysis_for_job(self, job_id: str) -> AnalysisRecord | None:
        """The analysis a job made, if it made one (a job run again must not make a second)."""
        return _analysis(self._one("SELECT * FROM analyses WHERE job_id = :job ORDER BY created_at LIMIT 1", {"job": job_id}))

    def delete_analysis(self, analysis_id: str) -> bool:
        with self._write_lock, self.engine.begin() as connection:
            deleted = connection.execute(text("DELETE FROM analyses WHERE id = :id"), {"id": analysis_id}).rowcount
            connection.execute(text("DELETE FROM jobs WHERE analysis_id = :id"), {"id": analysis_id})
            connection.execute(text("DELETE FROM fingerprints WHERE analysis_id = :id"), {"id": analysis_id})
        return bool(deleted)

    def find_cached(
        self, column: str, value: str, model: str, frames: int, ttl_s: float, client: str | None = None
    ) -> AnalysisRecord | None:
        """The newest analysis with the same URL or content, model and frame count, younger than `ttl_s` (and, with
        `client`, made for that client)."""
        if ttl_s <= 0 or column not in ("url_key", "content_sha256"):
            return None
        since = format_time(datetime.now(timezone.utc) - timedelta(seconds=ttl_s))
        mine = " AND client = :client" if client is not None else ""
        return _analysis(
            self._one(
                f"SELECT * FROM analyses WHERE {column} = :value AND model = :model AND frames = :frames "
                f"AND created_at >= :since{mine} ORDER BY created_at DESC LIMIT 1",
                {"value": value, "model": model, "frames": frames, "since": since, "client": client},
            )
        )

    @staticmethod
    def _filters(
        verdicts: list[str] | None, since: str | None, until: str | None, client: str | None = None
    ) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        if client:
            clauses.append("client = :client")
            params["client"] = client
        if verdicts:
            names = [f"verdict{n}" for n in range(len(verdicts))]
            clauses.append(f"verdict IN ({', '.join(':' + name for name in names)})")
            params.update(zip(names, verdicts))
        if since:
            clauses.append("created_at >= :since")
            params["since"] = since
        if until:
            clauses.append("created_at < :until")
            params["until"] = until
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def list_analyses(
        self,
        verdicts: list[str] | None = None,
        since: str | None = None,
        until: str | None = None,
        limit: int = 50,
        offset: int = 0,
        client: str | None = None,
    ) -> tuple[list[AnalysisSummary], int]:
        """A page of analyses, newest first, and how many match; only `client`'s when given."""
        where, params = self._filters(verdicts, since, until, client)
        total = self._one(f"SELECT COUNT(*) AS n FROM analyses{where}", params)["n"]
        rows = self._all(
            f"SELECT {ANALYSIS_SUMMARY_COLUMNS} FROM analyses{where} ORDER BY created_at DESC, id LIMIT :limit OFFSET :offset",
            {**params, "limit": limit, "offset": offset},
        )
        return [AnalysisSummary.from_row(row) for row in rows], total

    def stats(self, since: str | None = None, until: str | None = None, client: str | None = None) -> list[VerdictCount]:
        where, params = self._filters(None, since, until, client)
        rows = self._all(
            f"SELECT substr(created_at, 1, 10) AS day, verdict, COUNT(*) AS n FROM analyses{where} "
            "GROUP BY substr(created_at, 1, 10), verdict ORDER BY day, verdict",
            params,
        )
        return [VerdictCount(**row) for row in rows]

    # ---------------------------------------------------------------------------------------- fingerprints

    def insert_fingerprints(self, analysis_id: str, client: str | None, rows: list[Fingerprint]) -> None:
        """The fingerprints of one analysis (detector/memory.py): each 64-bit hash signed, with its four bands."""
        if not rows:
            return
        params = [
            {"analysis": analysis_id, "client": client, "position": row.position, "variant": row.variant,
             "hash": to_signed(row.hash), "fine": fine_text(row.fine),
             **{f"band{n}": band for n, band in enumerate(bands(row.hash))}}
            for row in rows
        ]
        self._write_many(
            "INSERT INTO fingerprints (analysis_id, client, position, variant, hash, fine, band0, band1, band2, band3) "
            "VALUES (:analysis, :client, :position, :variant, :hash, :fine, :band0, :band1, :band2, :band3)",
            params,
        )

    def copy_fingerprints(self, source_id: str, target_id: str, client: str | None) -> None:
        """Give a cache hit's copy of an analysis the fingerprints of the original (the same media, seen again)."""
        self._write(
            "INSERT INTO fingerprints (analysis_id, client, position, variant, hash, fine, band0, band1, band2, band3) "
            "SELECT :target, :client, position, variant, hash, fine, band0, band1, band2, band3 FROM fingerprints "
            "WHERE analysis_id = :source",
            {"target": target_id, "client": client, "source": source_id},
        )

    def fingerprints_of(self, analysis_id: str) -> list[Fingerprint]:
        """Every fingerprint of one analysis."""
        rows = self._all(
            "SELECT position, variant, hash, fine FROM fingerprints WHERE analysis_id = :id ORDER BY position, variant",
            {"id": analysis_id},
        )
        return [Fingerprint(row["position"], row["variant"], to_unsigned(row["hash"]), fine_value(row["fine"])) for row in rows]

    def fingerprint_candidates(self, probes: list[set[int]], exclude: str, requester: str | None) -> list[dict]:
        """Stored fingerprints with a band among `probes` (one set per band), of analyses other than `exclude`, not
        of a key that opted out of being matched (unless it is the requester's): each band is an indexed equality
        lookup, and the database unions them (PostgreSQL: a BitmapOr of four index scans; SQLite: its OR optimiser)."""
        # the probes are integers made here, written into the SQL: a thousand bound parameters cost more to compile
        # than the lookup itself
        params = {"exclude": exclude, "requester": requester or ""}
        clauses = [f"band{n} IN ({', '.join(str(int(value)) for value in sorted(values))})" for n, values in enumerate(probes)]
        return self._all(
            f"SELECT analysis_id, client, position, variant, hash, fine FROM fingerprints WHERE ({' OR '.join(clauses)}) "
            "AND analysis_id <> :exclude AND (client IS NULL OR client = :requester OR client NOT IN "
            "(SELECT client FROM memory_opt_outs))",
            params,
        )

    def fingerprinted_frames(self, analysis_ids: list[str]) -> dict[str, int]:
        """How many key frames of each analysis have fingerprints."""
        if not analysis_ids:
            return {}
        names = {f"a{i}": analysis_id for i, analysis_id in enumerate(analysis_ids)}
        rows = self._all(
            f"SELECT analysis_id, COUNT(DISTINCT position) AS n FROM fingerprints WHERE analysis_id IN "
            f"({', '.join(':' + name for name in names)}) GROUP BY analysis_id",
            names,
        )
        return {row["analysis_id"]: row["n"] for row in rows}

    def analyses_by_id(self, analysis_ids: list[str]) -> list[dict]:
        if not analysis_ids:
            return []
        names = {f"a{i}": analysis_id for i, analysis_id in enumerate(analysis_ids)}
        return self._all(
            f"SELECT id, client, created_at, verdict, fake_probability FROM analyses WHERE id IN "
            f"({', '.join(':' + name for name in names)})",
            names,
        )

    def memory_opt_out(self, client: str) -> bool:
        return self._one("SELECT client FROM memory_opt_outs WHERE client = :client", {"client": client}) is not None

    def set_memory_opt_out(self, client: str, opt_out: bool) -> None:
        with self._write_lock, self.engine.begin() as connection:
            connection.execute(text("DELETE FROM memory_opt_outs WHERE client = :client"), {"client": client})
            if opt_out:
                connection.execute(
                    text("INSERT INTO memory_opt_outs (client, created_at) VALUES (:client, :now)"), {"client": client, "now": utc_now()}
                )

    # ------------------------------------------------------------------------------------------------ jobs

    def insert_job(self, job: Job) -> None:
        row = job.to_row()
        columns = ", ".join(row)
        self._write(f"INSERT INTO jobs ({columns}) VALUES ({', '.join(f':{k}' for k in row)})", row)

    def get_job(self, job_id: str) -> Job | None:
        row = self._one("SELECT * FROM jobs WHERE id = :id", {"id": job_id})
        return Job.from_row(row) if row else None

    def update_job(
        self, job_id: str, only_if_status: str | tuple[str, ...] | None = None, only_if_updated: str | None = None, **fields: Any
    ) -> bool:
        """Set `fields` of a job (only while its status is `only_if_status`, or one of them, and, with
        `only_if_updated`, only if nobody changed it since that `updated_at`); whether it was set."""
        fields["updated_at"] = utc_now()
        assignments = ", ".join(f"{key} = :{key}" for key in fields)
        statuses = (only_if_status,) if isinstance(only_if_status, str) else tuple(only_if_status or ())
        condition = f" AND status IN ({', '.join(f':_status{n}' for n in range(len(statuses)))})" if statuses else ""
        if only_if_updated is not None:
            condition += " AND updated_at = :_updated"
        params = {**fields, "_id": job_id, "_updated": only_if_updated, **{f"_status{n}": status for n, status in enumerate(statuses)}}
        return self._write(f"UPDATE jobs SET {assignments} WHERE id = :_id{condition}", params) == 1

    def active_job_for(self, cache_key: str) -> Job | None:
        row = self._one(
            "SELECT id FROM jobs WHERE cache_key = :key AND status IN ('queued', 'running') ORDER BY created_at LIMIT 1",
            {"key": cache_key},
        )
        return self.get_job(row["id"]) if row else None

    def jobs_with_status(self, status: str) -> list[Job]:
        rows = self._all("SELECT id FROM jobs WHERE status = :status ORDER BY created_at", {"status": status})
        return [self.get_job(row["id"]) for row in rows]

    def url_jobs_before_analysis(self, client: str) -> int:
        """How many of `client`'s URL jobs wait for a fetch or are being fetched."""
        return self._one(
            "SELECT COUNT(*) AS n FROM jobs WHERE client = :client AND source_type = 'url' "
            "AND status IN ('queued', 'running') AND upload_path IS NULL",
            {"client": client},
        )["n"]

    def expire_jobs(self, before: str) -> list[str]:
        """Delete jobs that ended (done, or failed and nobody retried them) before `before`; their upload paths."""
        with self._write_lock, self.engine.begin() as connection:
            rows = connection.execute(
                text("SELECT id, upload_path FROM jobs WHERE status IN ('done', 'failed') AND updated_at < :before"),
                {"before": before},
            ).all()
            if rows:
                connection.execute(text("DELETE FROM jobs WHERE id = :id"), [{"id": row.id} for row in rows])
        return [row.upload_path for row in rows if row.upload_path]

    def count_jobs_by_status(self) -> dict[str, int]:
        return {row["status"]: row["n"] for row in self._all("SELECT status, COUNT(*) AS n FROM jobs GROUP BY status")}

    def upload_paths_in_use(self) -> set[str]:
        return {row["upload_path"] for row in self._all("SELECT upload_path FROM jobs WHERE upload_path IS NOT NULL")}

    # -------------------------------------------------------------------------------------------- API keys

    def insert_api_key(self, key_id: str, name: str, key_hash: str, prefix: str) -> None:
        self._write(
            "INSERT INTO api_keys (id, name, key_hash, prefix, created_at) VALUES (:id, :name, :hash, :prefix, :now)",
            {"id": key_id, "name": name, "hash": key_hash, "prefix": prefix, "now": utc_now()},
        )

    def api_key_by_hash(self, key_hash: str) -> ApiKey | None:
        row = self._one(f"SELECT {API_KEY_COLUMNS} FROM api_keys WHERE key_hash = :hash AND revoked_at IS NULL", {"hash": key_hash})
        return ApiKey.from_row(row) if row else None

    def touch_api_key(self, key_id: str) -> None:
        self._write("UPDATE api_keys SET last_used_at = :now WHERE id = :id", {"now": utc_now(), "id": key_id})

    def list_api_keys(self) -> list[ApiKey]:
        return [ApiKey.from_row(row) for row in self._all(f"SELECT {API_KEY_COLUMNS} FROM api_keys ORDER BY created_at")]

    def revoke_api_key(self, key_id_or_prefix: str) -> int:
        return self._write(
            "UPDATE api_keys SET revoked_at = :now WHERE (id = :key OR prefix = :key) AND revoked_at IS NULL",
            {"now": utc_now(), "key": key_id_or_prefix},
        )

    def active_api_key_count(self) -> int:
        return self._one("SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL")["n"]


def _analysis(row: dict | None) -> AnalysisRecord | None:
    return AnalysisRecord.from_row(row) if row else None


def _plain(params: Mapping[str, Any]) -> dict[str, Any]:
    """Parameters as every database takes them: booleans as 0/1 (the flag columns are integers)."""
    return {key: int(value) if isinstance(value, bool) else value for key, value in params.items()}


def database_failure(exc: BaseException) -> str:
    """What went wrong with the database, fit to show (readiness): the driver's error and the first line of its
    message, never the SQL statement or its parameters, which SQLAlchemy's own message carries."""
    cause = getattr(exc, "orig", None) or exc
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".split(" [SQL:")[0]
