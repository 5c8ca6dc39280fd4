"""The demo's memory of media judged: a small SQLite file (the standard library's sqlite3; the demo has no database)
with the fingerprints of every analysis it made, so that it can say "Seen before: N times since <date>, earlier
verdict …". What a fingerprint is and how earlier analyses are scored is the core's (detector/memory.py), as on the
server; the lookup is the same multi-index band probe, each band an indexed column.

A demo has no API keys: every match is its own, and nothing about the visitor or the source is stored (a verdict, a
probability, a time and the hashes).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from detector import Report
from detector.memory import (
    BANDS,
    Candidate,
    Fingerprint,
    Match,
    band_probes,
    bands,
    close_analyses,
    face_shares,
    fine_text,
    fine_value,
    frame_fingerprints,
    matches,
    to_signed,
    to_unsigned,
)

log = logging.getLogger(__name__)

BAND_COLUMNS = [f"band{n}" for n in range(BANDS)]
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS analyses (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, verdict TEXT NOT NULL, "
    "fake_probability REAL)",
    "CREATE TABLE IF NOT EXISTS fingerprints (analysis_id TEXT NOT NULL, position INTEGER NOT NULL, "
    f"variant INTEGER NOT NULL, hash INTEGER NOT NULL, fine TEXT, {', '.join(f'{b} INTEGER NOT NULL' for b in BAND_COLUMNS)})",
    "CREATE INDEX IF NOT EXISTS fingerprints_by_analysis ON fingerprints (analysis_id)",
    *(f"CREATE INDEX IF NOT EXISTS fingerprints_by_{b} ON fingerprints ({b})" for b in BAND_COLUMNS),
]


class DemoMemory:
    """Looks up and stores the fingerprints of each analysed item in the SQLite file `path` (made on first use)."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()  # Gradio answers visitors from several threads
        self._connection: sqlite3.Connection | None = None

    def recall_and_remember(self, report: Report, images: list[np.ndarray]) -> list[Match]:
        """The earlier analyses of the same media as this one (the `matches` of the server's answers, best first),
        then this one stored. A store that cannot be used is logged and the demo goes on without it."""
        rows = frame_fingerprints(images, face_shares(report, images))
        if not rows:
            return []
        try:
            with self._lock:
                connection = self._connect()
                found = self._matches(connection, rows)
                self._store(connection, report, rows)
            return found
        except (sqlite3.Error, OSError):  # a read-only disk, a folder that cannot be made, a damaged file
            log.exception("the demo's memory (%s) cannot be used", self.path)
            return []

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False)
            connection.row_factory = sqlite3.Row
            with connection:
                for statement in SCHEMA:
                    connection.execute(statement)
            self._connection = connection
        return self._connection

    @staticmethod
    def _matches(connection: sqlite3.Connection, query: list[Fingerprint]) -> list[Match]:
        probes = band_probes([row.hash for row in query])
        # the probes are integers made here, written into the SQL (as the server does: cheaper than bound parameters)
        clauses = [f"{b} IN ({', '.join(str(int(v)) for v in sorted(values))})" for b, values in zip(BAND_COLUMNS, probes)]
        found = [
            (row["analysis_id"], Fingerprint(row["position"], row["variant"], to_unsigned(row["hash"]), fine_value(row["fine"])))
            for row in connection.execute(
                f"SELECT analysis_id, position, variant, hash, fine FROM fingerprints WHERE {' OR '.join(clauses)}"
            )
        ]

        def frames_of(analysis_ids: list[str]) -> dict[str, int]:
            marks = ", ".join("?" for _ in analysis_ids)
            rows = connection.execute(
                f"SELECT analysis_id, COUNT(DISTINCT position) FROM fingerprints WHERE analysis_id IN ({marks}) "
                "GROUP BY analysis_id",
                analysis_ids,
            )
            return dict(rows.fetchall())

        close = close_analyses(query, found, frames_of)
        if not close:
            return []
        marks = ", ".join("?" for _ in close)
        earlier = connection.execute(
            f"SELECT id, created_at, verdict, fake_probability FROM analyses WHERE id IN ({marks})", list(close)
        )
        candidates = [
            Candidate(r["id"], None, r["created_at"], r["verdict"], r["fake_probability"], close[r["id"]]) for r in earlier
        ]
        return matches(candidates, None)

    @staticmethod
    def _store(connection: sqlite3.Connection, report: Report, rows: list[Fingerprint]) -> None:
        analysis_id = uuid.uuid4().hex
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        with connection:
            connection.execute(
                "INSERT INTO analyses (id, created_at, verdict, fake_probability) VALUES (?, ?, ?, ?)",
                (analysis_id, now, report.verdict, report.fake_probability),
            )
            connection.executemany(
                f"INSERT INTO fingerprints (analysis_id, position, variant, hash, fine, {', '.join(BAND_COLUMNS)}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (analysis_id, row.position, row.variant, to_signed(row.hash), fine_text(row.fine), *bands(row.hash))
                    for row in rows
                ],
            )
