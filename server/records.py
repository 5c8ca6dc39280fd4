"""The rows of the server's storage, typed: what `server.db.Database` reads and writes, and what the layers above
hand on until the HTTP layer turns them into JSON (nothing reads a row by string key). `AnalysisRecord` is a row of
the analyses table (the Report itself is stored apart, report.json in the artefact store, and re-typed with
`Report.from_dict` where it is read); `AnalysisSummary` an analysis as listings and exports show it; `VerdictCount`
a day's count of one verdict; `Job` a row of the jobs table with its options decoded; `ApiKey` a key as listed (its
hash never leaves the database)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, TypeVar

from detector.report import VERDICTS, schema_keywords

Row = TypeVar("Row")
ID_PATTERN = "^[0-9a-f]{32}$"  # an analysis's or a job's id: uuid4().hex


def from_row(cls: type[Row], row: Mapping[str, Any]) -> Row:
    """The dataclass `cls` of a database row (columns it does not name are left out)."""
    names = {f.name for f in fields(cls)}
    return cls(**{key: value for key, value in row.items() if key in names})


def column_list(cls: type) -> str:
    """The columns a SELECT reads for the dataclass `cls`, in its field order."""
    return ", ".join(f.name for f in fields(cls))


@dataclass(frozen=True)
class AnalysisRecord:
    id: str
    created_at: str
    source: str  # as shown: the URL with credentials redacted, or the upload's file name
    source_type: str  # url | upload
    model: str  # the model name asked for
    frames: int  # key frames asked for; 0: the checkpoint's default
    verdict: str
    fake_probability: float | None = None
    confidence: float | None = None
    media_kind: str | None = None
    duration_s: float | None = None
    model_id: str | None = None
    model_revision: str | None = None
    url_key: str | None = None  # the normalised URL's digest, for the cache
    content_sha256: str | None = None
    fetch_json: str | None = None
    artefacts_json: str = "[]"
    client: str | None = None
    job_id: str | None = None  # None for a copy made for a cache hit

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AnalysisRecord:
        return from_row(cls, row)

    def to_row(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def fetch(self) -> dict | None:
        """What the fetch found (final URL, title...), for a URL."""
        return json.loads(self.fetch_json) if self.fetch_json else None

    @property
    def artefacts(self) -> list[dict]:
        """The stored pictures (name, kind, position)."""
        return json.loads(self.artefacts_json or "[]")


@dataclass(frozen=True)
class AnalysisSummary:
    """An analysis as the history's listing and export show it: the columns they read, in the order they answer."""

    id: str = field(metadata=schema_keywords(pattern=ID_PATTERN))
    created_at: str
    source: str
    source_type: str = field(metadata=schema_keywords(enum=["url", "upload"]))
    verdict: str = field(metadata=schema_keywords(enum=list(VERDICTS)))
    fake_probability: float | None
    confidence: float | None
    media_kind: str | None
    duration_s: float | None
    model: str
    model_id: str | None
    model_revision: str | None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> AnalysisSummary:
        return from_row(cls, row)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class VerdictCount:
    """How many analyses of one day (YYYY-MM-DD, UTC) had one verdict."""

    day: str
    verdict: str
    n: int


@dataclass
class Job:
    """A job as the queues hand it to the code that runs it and to the HTTP layer: a row of the jobs table with its
    options decoded. A new job is given the first fields; the queue fills in the rest."""

    id: str
    source_type: str  # url | upload
    source: str  # as shown: the URL with credentials redacted, or the upload's file name
    client: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # model, frames, base_url (+ sha256 of an upload)
    cache_key: str | None = None  # a new job with the key of an active one shares it
    fetch_url: str | None = None  # the URL as given: kept only until the job ends
    upload_path: str | None = None  # where the media waits for its analysis: an upload, or a fetched file
    media_kind: str | None = None
    status: str = "queued"
    stage: str = "queued"
    fraction: float = 0.0
    analysis_id: str | None = None
    cached: bool = False
    error_code: str | None = None
    error_message: str | None = None
    error_status: int | None = None  # only in rows written before server/errors.py mapped the codes
    retryable: bool = False
    worker: str | None = None  # host:pid of the process running it
    attempts: int = 0
    fetch_json: str | None = None  # what the fetch found (final URL, title...), once fetched
    created_at: str = ""
    updated_at: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Job:
        """The job of a row of the jobs table (options stored as JSON, flags as 0/1)."""
        job = from_row(cls, {**row, "options": json.loads(row.get("options_json") or "{}")})
        job.cached, job.retryable = bool(job.cached), bool(job.retryable)
        return job

    def to_row(self) -> dict[str, Any]:
        row = asdict(self)
        row["options_json"] = json.dumps(row.pop("options"))
        return row

    def queued_at(self, now: str) -> Job:
        """This new job as it is stored: queued at `now`."""
        return replace(self, status="queued", stage="queued", created_at=now, updated_at=now)

    @property
    def needs_fetch(self) -> bool:
        return self.source_type == "url" and not self.upload_path

    @property
    def fetch(self) -> dict | None:
        """What the fetch found, once fetched."""
        return json.loads(self.fetch_json) if self.fetch_json else None


@dataclass(frozen=True)
class ApiKey:
    """An API key as stored, less its hash: `prefix` is the key's first characters, to recognise it in lists."""

    id: str
    name: str
    prefix: str
    created_at: str
    revoked_at: str | None = None
    last_used_at: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ApiKey:
        return from_row(cls, row)

    @property
    def client(self) -> str:
        """Who this key is in the `client` column of jobs and analyses."""
        return f"key:{self.id}"
