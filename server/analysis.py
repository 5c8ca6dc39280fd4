"""What the server does with a URL or an upload: cache lookups, jobs, and turning a core `Analysis` into stored
history (a database row, the Report JSON and pictures for the HTML report). No detection logic lives here: the
core's pipeline fetches, analyses and draws (`detector.pipeline`, in its two steps: the fetch pool, then the
analysis pool).

Verdicts are cached by content: fetched media and uploads are looked up by the SHA-256 of their bytes, and a hit
answers an earlier analysis with `cached: true`, as long as it used the same model and frame count and is younger
than `CACHE_TTL_S`. A URL (its normalised form, `urls.url_key`) may only spare a fetch: the same client's analysis
of it younger than `URL_CACHE_TTL_S` answers at once, since what a link serves may change and another client's
request must not decide what this one is told. The cache
shares verdicts between clients, never what another client submitted: a hit on another client's analysis (or on a
different source) is answered with a copy of it that carries the requester's own source.

URL jobs are fetched by the job queue's fetch pool (`fetch_job`) and analysed by its analysis pool
(`analyze_job`); uploads go straight to analysis. Sources are stored and shown with credentials redacted
(`urls.redact_url`); the URL as given stays with its job only until the job ends.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from detector import MediaLimits
from detector.errors import DetectorError
from detector.fetching.fetch import abandoned_fetch_folders
from detector.fetching.urlguard import precheck_url
from detector.media import probe_media
from detector.paths import sha256_file
from detector.pipeline import Analysis, Artefact, Pipeline, frame_count, pictures, report_json
from detector.pool import ModelPool
from detector.report import Report

from .alerts import WebhookNotifier, should_alert
from .artefacts import ArtefactStore
from .brokerqueue import BrokerJobQueue
from .config import ServerSettings
from .db import Database, utc_now
from .jobqueue import JobQueue
from .jobs import Fetched, Finished, Job, JobProgress, remove_upload
from .memory import Memory
from .metrics import Metrics
from .records import AnalysisRecord
from .serviceerrors import BadOption, BadRequest, CacheMiss, UploadGone, may_succeed_later
from .urls import redact_fetch, redact_url, url_key

log = logging.getLogger(__name__)

THUMBNAIL_SIDE = 640
STORED = "store:"  # an upload_path in the object store (DEEPFAKE_QUEUE=celery with S3), not on this host
# Artefacts not copied when a cache hit becomes another client's analysis: the kept media stays with the original.
NOT_COPIED = ("media.bin", "report.json")


@dataclass
class Submission:
    """What a POST /analyze produced: a finished analysis from the cache, or a job (new or shared); `source` is
    what the requester submitted, as shown back (credentials redacted)."""

    source: str
    analysis: AnalysisRecord | None = None
    job: Job | None = None


class AnalysisService:
    def __init__(
        self,
        settings: ServerSettings,
        db: Database,
        store: ArtefactStore,
        models: ModelPool,
        notifier: WebhookNotifier,
        uploads_dir: Path,
        temp_dir: Path,
    ):
        self.settings = settings
        self.db, self.store, self.models, self.notifier = db, store, models, notifier
        self.memory = Memory(db)
        # workers on other hosts read uploads from the object store; one host (or a shared data folder) uses files
        self.uploads_in_store = settings.queue == "celery" and getattr(store, "kind", "") == "s3"
        self.uploads_dir = uploads_dir
        self.policy = self.settings.url_policy
        fetch_limits = replace(self.settings.fetch_limits, max_page_bytes=self.settings.max_page_bytes)
        self.pipeline = Pipeline(self.policy, fetch_limits, temp_dir=temp_dir)
        queue_class, distributed = JobQueue, {}
        if settings.queue == "celery":
            from .celeryapp import Broker

            queue_class = BrokerJobQueue
            distributed = {"broker": Broker(settings), "heartbeat_s": settings.job_heartbeat_s}
        self.jobs = queue_class(
            db,
            self.fetch_job,
            self.analyze_job,
            **distributed,
            workers=settings.workers,
            fetch_workers=settings.fetch_workers,
            client_fetches=settings.client_fetches,
            client_analyses=settings.client_analyses,
            client_url_jobs=settings.client_url_jobs,
            queue_size=settings.queue_size,
            retry_after_s=settings.retry_after_s,
            analysis_stuck_after_s=settings.job_timeout_s,
            fetch_stuck_after_s=float(settings.fetch_timeout_s) + 30.0,
            fetch_queue_wait_s=float(settings.fetch_queue_wait_s),
            retention_s=settings.job_retention_s,
            uploads_dir=uploads_dir,
            delete_upload=self.remove_upload,
            on_finish=lambda job, status, when: self.metrics.job_finished(job, status, when),
        )
        self.metrics = Metrics(db, self.jobs)

    def start(self) -> None:
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_downloads()
        self.jobs.start()

    def _remove_stale_downloads(self) -> None:
        """Fetch folders left by a process that was killed mid-download: at once when it ran on this host, after an
        hour (no live fetch lasts that long) when another host shares the folder."""
        older_than_s = max(3600.0, 2 * float(self.settings.fetch_timeout_s))
        for folder in abandoned_fetch_folders(Path(self.pipeline.temp_dir), older_than_s):
            shutil.rmtree(folder, ignore_errors=True)

    def low_disk(self) -> str | None:
        """Why this process should take no work for want of disk space (None when it has enough): the folders that
        uploads and fetches are written to must each keep MIN_FREE_DISK_MB free."""
        floor_mb = float(self.settings.min_free_disk_mb)
        for name, folder in (("uploads", self.uploads_dir), ("temporary", Path(self.pipeline.temp_dir))):
            try:
                free_mb = shutil.disk_usage(folder).free / 1024**2
            except OSError:
                continue  # not made yet: the data folder's own check is the database's
            if free_mb < floor_mb:
                return f"the {name} folder has {free_mb:.0f} MB free, under the {floor_mb:g} MB floor (DEEPFAKE_MIN_FREE_DISK_MB)"
        return None

    def stop(self) -> None:
        self.jobs.stop(interrupt=self.pipeline.close)  # fetches end at once; analyses get a few seconds

    # -------------------------------------------------------------------------------------------- options

    def options(self, raw: Mapping, base_url: str) -> dict:
        """Validated per-request options: model name and frame count (0 = the checkpoint's default)."""
        model = raw.get("model")
        if model is not None and not isinstance(model, str):  # true, {}, [] and 5 are no names, not the default
            raise BadOption(f"model must be a name (a string), not {model!r}")
        model = self.models.check_name(model or None)
        frames = frame_count(raw.get("frames"), self.settings.max_frames)
        return {"model": model, "frames": frames, "base_url": base_url}

    def limits(self, max_bytes: int) -> MediaLimits:
        limits = self.settings.media_limits(max_bytes)
        bounds = {"max_decoded_pixels": self.settings.max_decoded_pixels, "max_decoded_bytes": self.settings.max_decoded_bytes}
        return replace(limits, **bounds)

    # --------------------------------------------------------------------------------------------- submit

    def submit_url(self, url: str, options: dict, client: str) -> Submission:
        """A cached analysis, or a job queued for the fetch pool. Nothing here waits for the network: the host is
        looked up by the fetch, so a URL whose name server never answers holds a fetch thread, not this request."""
        if not isinstance(url, str):
            raise BadRequest("url must be a string")
        url = url.strip()
        precheck_url(url, self.policy)  # a clear 400 now for bad schemes, malformed URLs, forbidden addresses
        source, key = redact_url(url), url_key(url)
        ttl_s = min(self.settings.url_cache_ttl_s, self.settings.cache_ttl_s)
        cached = self.db.find_cached("url_key", key, options["model"], options["frames"], ttl_s, client=client)
        if cached:
            return Submission(source, analysis=self._answer_cached(cached, source, "url", client, key, cached.fetch_json))
        job = Job(
            id=uuid.uuid4().hex,
            source_type="url",
            source=source,
            fetch_url=url,
            options=options,
            cache_key=f"url:{key}:{options['model']}:{options['frames']}:{client}",
            client=client,
        )
        return Submission(source, job=self.jobs.submit(job)[0])

    def submit_upload(self, upload: FileStorage, options: dict, client: str) -> Submission:
        name = secure_filename(upload.filename or "") or "upload"
        # A folder per upload keeps the user's file name, which the core's error messages show.
        path = self.uploads_dir / uuid.uuid4().hex / name
        path.parent.mkdir(parents=True)
        stored: str | None = None  # where the upload waits for its worker, once handed over
        try:
            upload.save(path)
            digest = sha256_file(path)
            cached = self.db.find_cached(
                "content_sha256", digest, options["model"], options["frames"], self.settings.cache_ttl_s
            )
            if cached:
                remove_upload(path)
                return Submission(name, analysis=self._answer_cached(cached, name, "upload", client, None, None))
            # What the upload is gets decided by its content, now: a wrong type or a limit answers at once. Only
            # headers are read here; pixels are decoded by the analysis pool, whose size bounds their memory.
            kind = probe_media(path, self.limits(self.settings.max_upload_bytes))
            stored = self._hand_over(path)
            job = Job(
                id=uuid.uuid4().hex,
                source_type="upload",
                source=name,
                upload_path=stored,
                options={**options, "sha256": digest},
                cache_key=f"sha:{digest}:{options['model']}:{options['frames']}:{client}",
                media_kind=kind,
                client=client,
            )
            job, shared = self.jobs.submit(job)
        except BaseException:
            remove_upload(path)
            self.remove_upload(stored)
            raise
        if shared:
            self.remove_upload(stored)  # the job already running has its own copy
        return Submission(name, job=job)

    def _hand_over(self, path: Path) -> str:
        """Where the upload waits for its worker: here, or, when workers run on other hosts (Celery and S3), in the
        object store (`store:uploads/<folder>/<name>`), the local copy then removed."""
        if not self.uploads_in_store:
            return str(path)
        key = f"uploads/{path.parent.name}/{path.name}"
        self.store.put(key, path.read_bytes(), "application/octet-stream")
        remove_upload(path)
        return STORED + key

    def remove_upload(self, where: str | None) -> None:
        """Remove a waiting upload (or a fetched file), here or in the object store."""
        if not where:
            return
        if where.startswith(STORED):
            self.store.delete_prefix(where[len(STORED) :].rsplit("/", 1)[0] + "/")
        else:
            remove_upload(Path(where))

    def _local_copy(self, job: Job) -> Path:
        """The job's media as a file on this host (fetched from the object store when it waits there)."""
        where = job.upload_path or ""
        if not where.startswith(STORED):
            return Path(where)
        data = self.store.get(where[len(STORED) :])
        path = self.uploads_dir / f"{job.id}-{uuid.uuid4().hex[:8]}" / where.rsplit("/", 1)[1]
        if data is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return path

    # ------------------------------------------------------------------------------------------------ work

    def fetch_job(self, job: Job, progress: JobProgress) -> Finished | Fetched:
        """Fetch pool: download a URL job's media into its own upload folder, or answer it from the cache."""
        options = job.options
        with self.pipeline.fetched_media(job.fetch_url or job.source, progress=progress) as fetched:
            digest = sha256_file(fetched.path)
            details = {**redact_fetch(fetched.to_dict()), "sha256": digest}
            cached = self.db.find_cached("content_sha256", digest, options["model"], options["frames"], self.settings.cache_ttl_s)
            if cached:
                where = url_key(job.fetch_url or job.source)
                record = self._answer_cached(cached, job.source, "url", job.client, where, json.dumps(details))
                return Finished(record.id, True)
            # unreadable media fails here, before it waits for an analysis worker (pixels are decoded there)
            kind = probe_media(fetched.path, self.limits(self.settings.max_fetch_bytes))
            folder = self.uploads_dir / job.id
            folder.mkdir(parents=True, exist_ok=True)
            path = folder / fetched.path.name
            shutil.move(fetched.path, path)
        return Fetched(path, details, kind)

    def analyze_job(self, job: Job, progress: JobProgress) -> Finished:
        """Analysis pool: run the model on an upload or on a fetched URL job's media."""
        path = self._local_copy(job)
        if not path.is_file():
            raise UploadGone("the media of this job is no longer available; send it again")
        fetched = FetchRecord.read(job.fetch_json)
        max_bytes = self.settings.max_fetch_bytes if job.source_type == "url" else self.settings.max_upload_bytes
        try:
            outcome = self._analyze_file(job, path, progress, fetched, max_bytes)
        except DetectorError as exc:
            if not may_succeed_later(exc):  # final: keep nothing; a retryable failure keeps the file for the retry
                self.remove_upload(job.upload_path)
            raise
        finally:
            if str(path) != job.upload_path:
                remove_upload(path)  # this host's copy of a stored upload
        self.remove_upload(job.upload_path)
        return outcome

    def _analyze_file(self, job: Job, path: Path, progress: JobProgress, fetched: FetchRecord | None, max_bytes: int) -> Finished:
        options = job.options
        made = self.db.analysis_for_job(job.id)
        if made:  # this job ran before and stored its analysis, but its end was not written: no second analysis
            return Finished(made.id, False)
        digest = (fetched and fetched.sha256) or options.get("sha256") or sha256_file(path)
        source_url_key = url_key(job.fetch_url or job.source) if job.source_type == "url" else None
        cached = self.db.find_cached("content_sha256", digest, options["model"], options["frames"], self.settings.cache_ttl_s)
        if cached:  # an identical job finished while this one waited
            record = self._answer_cached(cached, job.source, job.source_type, job.client, source_url_key, fetched and fetched.json)
            return Finished(record.id, True)
        limits = self.limits(max_bytes)
        if not job.media_kind:
            progress.media_kind(probe_media(path, limits))
        analysis = self.pipeline.analyse(
            self.models.get(options["model"]),
            path,
            source=job.source,
            progress=progress,
            explain=bool(self.settings.heatmaps),
            frames=options["frames"],
            limits=limits,
            fetch_ms=fetched.fetch_ms if fetched else None,
        )
        report = analysis.report
        self.metrics.analysed(report)
        progress("render", 0, 1)
        analysis_id = uuid.uuid4().hex
        artefacts = self._store_artefacts(analysis_id, analysis, path if self.settings.keep_media else None)
        record = AnalysisRecord(
            id=analysis_id,
            job_id=job.id,
            created_at=utc_now(),
            source=job.source,
            source_type=job.source_type,
            url_key=source_url_key,
            content_sha256=digest,
            model=options["model"],
            frames=options["frames"],
            verdict=report.verdict,
            fake_probability=report.fake_probability,
            confidence=report.confidence,
            media_kind=report.media.kind,
            duration_s=report.media.duration_s,
            model_id=report.model.id,
            model_revision=report.model.revision,
            fetch_json=fetched.json if fetched else None,
            artefacts_json=json.dumps(artefacts),
            client=job.client,
        )
        self._insert(record)
        self.memory.remember(analysis_id, job.client, [key_frame.image for key_frame in analysis.key_frames], report)
        progress("render", 1, 1)
        self._alert(record, report, options.get("base_url", ""))
        return Finished(analysis_id, False)

    def _insert(self, record: AnalysisRecord) -> None:
        """Store the history row of artefacts already stored; when that fails, the artefacts go too."""
        try:
            self.db.insert_analysis(record)
        except BaseException:
            self.store.delete_prefix(f"{record.id}/")
            raise

    def _answer_cached(
        self, cached: AnalysisRecord, source: str, source_type: str, client: str, source_url_key: str | None, fetch_json: str | None
    ) -> AnalysisRecord:
        """The analysis that answers a cache hit: `cached` itself when it is the same client's (the answer then shows
        the source just submitted), else a copy of it (verdict, Report, pictures) that carries the requester's own
        source and fetch details: another client's URL, file name or page title is never shown."""
        if cached.client == client:
            return cached
        report = self.report(cached.id)
        if report is None:  # its Report was deleted meanwhile: nothing to copy
            raise CacheMiss("the earlier analysis of this media is gone; send the request again")
        report.source = source
        record = replace(
            cached,
            id=uuid.uuid4().hex,
            job_id=None,  # a copy for a cache hit: no job made it
            created_at=utc_now(),
            source=source,
            source_type=source_type,
            url_key=source_url_key,
            fetch_json=fetch_json,
            client=client,
            artefacts_json=json.dumps([a for a in cached.artefacts if a["name"] not in NOT_COPIED]),
        )
        self.store.copy_prefix(f"{cached.id}/", f"{record.id}/", skip=NOT_COPIED)
        self.store.put(f"{record.id}/report.json", report.to_json().encode(), "application/json")
        self._insert(record)
        self.memory.copy(cached.id, record.id, client)
        return record

    def _store_artefacts(self, analysis_id: str, analysis: Analysis, media_path: Path | None) -> list[dict]:
        files = pictures(analysis, max_side=THUMBNAIL_SIDE)
        if media_path is not None:
            files.append(Artefact("media.bin", "media", media_path.read_bytes(), "application/octet-stream"))
        for artefact in files:
            self.store.put(f"{analysis_id}/{artefact.name}", artefact.data, artefact.content_type)
        # The Report last: its presence means the analysis is complete in the store.
        stored = report_json(analysis.report)
        self.store.put(f"{analysis_id}/{stored.name}", stored.data, stored.content_type)
        return [artefact.entry() for artefact in files]

    def _alert(self, record: AnalysisRecord, report: Report, base_url: str) -> None:
        if not should_alert(report, self.settings.alert_verdicts, self.settings.alert_min_probability):
            return
        self.notifier.notify(
            f"analysis.{report.verdict}",
            {
                "analysis_id": record.id,
                "created_at": record.created_at,
                "source": record.source,
                "verdict": report.verdict,
                "fake_probability": report.fake_probability,
                "confidence": report.confidence,
                "media_kind": record.media_kind,
                "model": report.model.to_dict(),
                "report_url": f"{base_url.rstrip('/')}/analyses/{record.id}" if base_url else None,
                "api_url": f"{base_url.rstrip('/')}/api/v1/analyses/{record.id}" if base_url else None,
            },
        )

    # ------------------------------------------------------------------------------------------- reading

    def report(self, analysis_id: str) -> Report | None:
        """The stored Report of an analysis, typed again (`Report.from_dict` gives back exactly what was stored)."""
        data = self.store.get(f"{analysis_id}/report.json")
        return Report.from_dict(json.loads(data)) if data else None

    def delete(self, analysis_id: str) -> bool:
        if not self.db.delete_analysis(analysis_id):
            return False
        self.store.delete_prefix(f"{analysis_id}/")
        return True


@dataclass(frozen=True)
class FetchRecord:
    """A URL job's fetch details as its row keeps them (JSON: final_url, title, method, fetch_ms, sha256...): read
    once for what the analysis needs, the JSON itself carried to the analysis's row as it is."""

    json: str
    fetch_ms: float | None
    sha256: str | None

    @classmethod
    def read(cls, text: str | None) -> FetchRecord | None:
        if not text:
            return None
        details = json.loads(text)
        return cls(text, details.get("fetch_ms"), details.get("sha256"))
