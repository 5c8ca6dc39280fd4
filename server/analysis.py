"""What the server does with a URL or an upload: cache lookups, jobs, and turning a core `Analysis` into stored
history (a database row, the Report JSON and pictures for the HTML report). No detection logic lives here: the
core fetches (`detector.fetch`), analyses (`Detector.inspect`) and draws (`detector.render`).

A URL is looked up in the cache by its normalised form before anything is fetched; fetched media and uploads are
looked up by the SHA-256 of their content. Either hit answers the earlier analysis with `cached: true`, as long
as it used the same model and frame count and is younger than `CACHE_TTL_S`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from werkzeug.datastructures import FileStorage
from werkzeug.utils import secure_filename

from detector import MediaLimits
from detector.errors import DetectorError
from detector.fetch import FetchedMedia, FetchLimits, MediaFetcher
from detector.media import open_media
from detector.render import draw_faces, encode_jpeg, overlay_heatmap, timeline_png
from detector.urlguard import UrlPolicy, check_url

from .alerts import WebhookNotifier, should_alert
from .artefacts import ArtefactStore
from .db import Database, utc_now
from .errors import ApiError
from .jobs import JobProgress, JobQueue
from .models import ModelRegistry

log = logging.getLogger(__name__)

# Query parameters that only track who shared a link: dropped so that shares of one post hit the same cache entry.
TRACKING_PARAMETERS = {"fbclid", "gclid", "igshid", "igsh", "mc_cid", "mc_eid", "si"}
# pyplot keeps global state: one figure at a time across worker threads.
_PLOT_LOCK = threading.Lock()
THUMBNAIL_SIDE = 640


def normalize_url(url: str) -> str:
    """The cache key of a URL: scheme and host lower-cased, default port, fragment and tracking parameters dropped,
    remaining query parameters sorted."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    netloc = host if port is None or (scheme, port) in (("http", 80), ("https", 443)) else f"{host}:{port}"
    query = sorted(
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if k.lower() not in TRACKING_PARAMETERS and not k.lower().startswith("utm_")
    )
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


@dataclass
class Submission:
    """What a POST /analyze produced: a finished analysis from the cache, or a job (new or shared)."""

    analysis: dict | None = None
    job: dict | None = None


class AnalysisService:
    def __init__(
        self,
        config: Mapping,
        db: Database,
        store: ArtefactStore,
        models: ModelRegistry,
        notifier: WebhookNotifier,
        uploads_dir: Path,
        temp_dir: Path,
    ):
        self.config = config
        self.db, self.store, self.models, self.notifier = db, store, models, notifier
        self.uploads_dir = uploads_dir
        self.policy = UrlPolicy(
            allow_private=bool(config["ALLOW_PRIVATE_URLS"]),
            trusted_endpoints=frozenset((str(ip), int(port)) for ip, port in config["URL_TRUSTED_ENDPOINTS"]),
        )
        self.fetcher = MediaFetcher(
            self.policy,
            FetchLimits(config["MAX_FETCH_BYTES"], config["MAX_DURATION_S"], config["FETCH_TIMEOUT_S"]),
            temp_dir=temp_dir,
        )
        self.jobs = JobQueue(db, self.run_job, config["WORKERS"], config["QUEUE_SIZE"], config["RETRY_AFTER_S"])

    def start(self) -> None:
        self.uploads_dir.mkdir(parents=True, exist_ok=True)
        self._remove_stale_downloads()
        self.jobs.start()

    def _remove_stale_downloads(self) -> None:
        """Fetch folders left by a process that was killed mid-download (live fetches are far younger)."""
        cutoff = time.time() - max(3600.0, 2 * float(self.config["FETCH_TIMEOUT_S"]))
        temp_dir = Path(self.fetcher.temp_dir)
        for folder in temp_dir.glob("fetch-*") if temp_dir.is_dir() else []:
            if folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)

    def stop(self) -> None:
        self.jobs.stop()
        self.fetcher.close()

    # -------------------------------------------------------------------------------------------- options

    def options(self, raw: Mapping, base_url: str) -> dict:
        """Validated per-request options: model name and frame count (0 = the checkpoint's default)."""
        model = self.models.check_name(raw.get("model") or None)
        frames = raw.get("frames")
        if frames in (None, ""):
            frames = 0
        else:
            try:
                frames = int(frames)
            except (TypeError, ValueError):
                raise ApiError(400, "bad_option", f"frames must be a whole number, not {frames!r}") from None
            if not 1 <= frames <= self.config["MAX_FRAMES"]:
                raise ApiError(400, "bad_option", f"frames must be between 1 and {self.config['MAX_FRAMES']}")
        return {"model": model, "frames": frames, "base_url": base_url}

    def limits(self, max_bytes: int) -> MediaLimits:
        return MediaLimits(
            max_bytes=max_bytes, max_pixels=self.config["MAX_PIXELS"], max_duration_s=self.config["MAX_DURATION_S"]
        )

    # --------------------------------------------------------------------------------------------- submit

    def submit_url(self, url: str, options: dict) -> Submission:
        if not isinstance(url, str):
            raise ApiError(400, "bad_request", "url must be a string")
        check_url(url, self.policy)  # a clear 400 now for bad schemes and forbidden hosts, before any job
        url_key = normalize_url(url)
        cached = self.db.find_cached("url_key", url_key, options["model"], options["frames"], self.config["CACHE_TTL_S"])
        if cached:
            return Submission(analysis=cached)
        job = {
            "id": uuid.uuid4().hex,
            "source_type": "url",
            "source": url.strip(),
            "options_json": options,
            "cache_key": f"url:{url_key}:{options['model']}:{options['frames']}",
        }
        return Submission(job=self.jobs.submit(job)[0])

    def submit_upload(self, upload: FileStorage, options: dict) -> Submission:
        name = secure_filename(upload.filename or "") or "upload"
        # A folder per upload keeps the user's file name, which the core's error messages show.
        path = self.uploads_dir / uuid.uuid4().hex / name
        path.parent.mkdir(parents=True)
        try:
            upload.save(path)
            digest = sha256_of(path)
            cached = self.db.find_cached(
                "content_sha256", digest, options["model"], options["frames"], self.config["CACHE_TTL_S"]
            )
            if cached:
                remove_upload(path)
                return Submission(analysis=cached)
            # What the upload is gets decided by its content, now: a wrong type, damage or a limit answers at once.
            with open_media(path, self.limits(self.config["MAX_UPLOAD_BYTES"])) as media:
                kind = media.kind
            job = {
                "id": uuid.uuid4().hex,
                "source_type": "upload",
                "source": name,
                "upload_path": str(path),
                "options_json": {**options, "sha256": digest},
                "cache_key": f"sha:{digest}:{options['model']}:{options['frames']}",
                "media_kind": kind,
            }
            job, shared = self.jobs.submit(job)
        except BaseException:
            remove_upload(path)
            raise
        if shared:
            remove_upload(path)  # the job already running has its own copy
        return Submission(job=job)

    # ------------------------------------------------------------------------------------------------ work

    def run_job(self, job: dict, progress: JobProgress) -> tuple[str, bool]:
        """Run one job (in a worker thread); return (analysis id, cached)."""
        options = job["options"]
        if job["source_type"] == "url":
            with self.fetcher.fetch(job["source"], progress=progress) as fetched:
                return self._analyze_file(job, fetched.path, progress, fetched, self.config["MAX_FETCH_BYTES"])
        path = Path(job["upload_path"] or "")
        if not path.is_file():
            raise ApiError(410, "upload_gone", "the uploaded file is no longer available; upload it again")
        try:
            result = self._analyze_file(job, path, progress, None, self.config["MAX_UPLOAD_BYTES"], options.get("sha256"))
        except DetectorError as exc:
            if exc.http_status < 500:  # final: keep nothing; a retryable failure keeps the file for the retry
                remove_upload(path)
            raise
        remove_upload(path)
        return result

    def _analyze_file(
        self,
        job: dict,
        path: Path,
        progress: JobProgress,
        fetched: FetchedMedia | None,
        max_bytes: int,
        digest: str | None = None,
    ) -> tuple[str, bool]:
        options = job["options"]
        digest = digest or sha256_of(path)
        cached = self.db.find_cached("content_sha256", digest, options["model"], options["frames"], self.config["CACHE_TTL_S"])
        if cached:
            return cached["id"], True
        limits = self.limits(max_bytes)
        if not job.get("media_kind"):
            with open_media(path, limits) as media:
                progress.media_kind(media.kind)
        detector = self.models.get(options["model"])
        analysis = detector.inspect(
            path,
            explain=bool(self.config["HEATMAPS"]),
            source_name=job["source"],
            progress=progress,
            limits=limits,
            **({"frames": options["frames"]} if options["frames"] else {}),
        )
        report = analysis.report
        if fetched is not None:
            report.timings_ms["fetch"] = round(fetched.fetch_ms, 1)
            report.timings_ms["total"] = round(report.timings_ms["total"] + fetched.fetch_ms, 1)
        progress("render", 0, 1)
        report_dict = report.to_dict()
        analysis_id = uuid.uuid4().hex
        artefacts = self._store_artefacts(analysis_id, analysis, report_dict, path if self.config["KEEP_MEDIA"] else None)
        record = {
            "id": analysis_id,
            "created_at": utc_now(),
            "source": job["source"],
            "source_type": job["source_type"],
            "url_key": normalize_url(job["source"]) if job["source_type"] == "url" else None,
            "content_sha256": digest,
            "model": options["model"],
            "frames": options["frames"],
            "verdict": report.verdict,
            "fake_probability": report.fake_probability,
            "confidence": report.confidence,
            "media_kind": report.media.get("kind"),
            "duration_s": report.media.get("duration_s"),
            "model_id": report.model.get("id"),
            "model_revision": report.model.get("revision"),
            "fetch_json": json.dumps(fetched.to_dict()) if fetched else None,
            "artefacts_json": json.dumps(artefacts),
        }
        self.db.insert_analysis(record)
        progress("render", 1, 1)
        self._alert(record, report_dict, options.get("base_url", ""))
        return analysis_id, False

    def _store_artefacts(self, analysis_id: str, analysis, report: dict, media_path: Path | None) -> list[dict]:
        files: list[tuple[dict, bytes, str]] = []
        if report["media"]["kind"] == "video":
            with _PLOT_LOCK:
                files.append(({"name": "timeline.png", "kind": "timeline"}, timeline_png(report), "image/png"))
        for position, (key_frame, frame, heatmap) in enumerate(zip(analysis.key_frames, report["frames"], analysis.heatmaps)):
            boxed = encode_jpeg(draw_faces(key_frame.image, frame, report), max_side=THUMBNAIL_SIDE)
            files.append(({"name": f"frame_{position:02d}.jpg", "kind": "frame", "position": position}, boxed, "image/jpeg"))
            if heatmap is not None and float(heatmap.max()) > 0:
                overlay = encode_jpeg(overlay_heatmap(key_frame.image, heatmap), max_side=THUMBNAIL_SIDE)
                files.append(
                    ({"name": f"heatmap_{position:02d}.jpg", "kind": "heatmap", "position": position}, overlay, "image/jpeg")
                )
        if media_path is not None:
            files.append(({"name": "media.bin", "kind": "media"}, media_path.read_bytes(), "application/octet-stream"))
        for entry, data, content_type in files:
            self.store.put(f"{analysis_id}/{entry['name']}", data, content_type)
        # The Report last: its presence means the analysis is complete in the store.
        self.store.put(f"{analysis_id}/report.json", json.dumps(report).encode(), "application/json")
        return [entry for entry, _, _ in files]

    def _alert(self, record: dict, report: dict, base_url: str) -> None:
        if not should_alert(report, self.config["ALERT_VERDICTS"], self.config["ALERT_MIN_PROBABILITY"]):
            return
        self.notifier.notify(
            f"analysis.{report['verdict']}",
            {
                "analysis_id": record["id"],
                "created_at": record["created_at"],
                "source": record["source"],
                "verdict": report["verdict"],
                "fake_probability": report["fake_probability"],
                "confidence": report["confidence"],
                "media_kind": record["media_kind"],
                "model": report["model"],
                "report_url": f"{base_url.rstrip('/')}/analyses/{record['id']}" if base_url else None,
                "api_url": f"{base_url.rstrip('/')}/api/v1/analyses/{record['id']}" if base_url else None,
            },
        )

    # ------------------------------------------------------------------------------------------- reading

    def report(self, analysis_id: str) -> dict | None:
        data = self.store.get(f"{analysis_id}/report.json")
        return json.loads(data) if data else None

    def delete(self, analysis_id: str) -> bool:
        if not self.db.delete_analysis(analysis_id):
            return False
        self.store.delete_prefix(f"{analysis_id}/")
        return True


def remove_upload(path: Path) -> None:
    shutil.rmtree(path.parent, ignore_errors=True)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()
