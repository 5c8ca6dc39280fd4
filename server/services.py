"""The server's services built from its settings, without the web app: the database, the artefact store, the model
pool, the webhook notifier and the analysis service with its job queue.

An API process (`create_app`) builds them and adds its HTTP parts (rate limiter, waiting room); a Celery worker
(server/celeryapp.py) builds the same and runs jobs on them, with no Flask app at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.errors import DetectorError

from .config import ConfigError, ServerSettings, database_target


@dataclass
class Services:
    """Everything one process holds on to; an app's are found under `app.extensions["deepfake"]`."""

    settings: ServerSettings
    db: Any
    store: Any
    models: Any
    analyses: Any
    notifier: Any
    limiter: Any = None  # the HTTP layer's parts: None in a worker
    waiting: Any = None

    def start(self) -> None:
        if self.settings.queue == "local" or self.settings.worker_process:
            self.models.start()  # an API process in front of Celery workers runs no model
        self.notifier.start()
        self.analyses.start()

    def stop(self) -> None:
        self.analyses.stop()
        self.notifier.stop()


def build_services(settings: ServerSettings, preloaded: dict | None = None) -> Services:
    """The services of `settings` (checked, data folder resolved), not started; `preloaded`: detectors already
    loaded, by model name (tests)."""
    from detector.pool import ModelPool

    from .alerts import WebhookNotifier
    from .analysis import AnalysisService
    from .artefacts import make_store
    from .db import Database

    data_dir = Path(settings.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    db = Database(database_target(settings, data_dir), timeout_s=float(settings.db_timeout_s))
    store = make_store(settings, data_dir)
    models = ModelPool(
        settings.model,
        settings.models,
        face_detector=settings.face_detector,
        threads=settings.model_threads(),
        preloaded=preloaded,
    )
    try:
        notifier = WebhookNotifier(
            settings.webhook_urls,
            settings.webhook_secret,
            settings.webhook_retries,
            settings.webhook_backoff_s,
            settings.webhook_timeout_s,
            allow_private=bool(settings.webhook_allow_private),
        )
    except DetectorError as exc:
        raise ConfigError(f"DEEPFAKE_WEBHOOK_URLS: {exc.message}") from None
    (data_dir / "tmp").mkdir(exist_ok=True)
    analyses = AnalysisService(settings, db, store, models, notifier, data_dir / "uploads", data_dir / "tmp")
    return Services(settings, db, store, models, analyses, notifier)
