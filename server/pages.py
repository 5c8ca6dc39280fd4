"""Pages for people and probes: the HTML report of an analysis, its pictures, /healthz, /readyz and /metrics.

A report page is reachable by anyone who has its link (analysis ids are 128-bit random): the browser extension
opens it in a new tab, where no API key can be sent. Listing analyses needs the API (and a key, when set).
"""

from __future__ import annotations

import re

from flask import Blueprint, Response, jsonify, url_for

from detector.pipeline import report_html

from .context import current_services, current_settings
from .errors import ApiError, error_response
from .memory import seen_before
from .services import Services

bp = Blueprint("pages", __name__)

ARTEFACT_NAME = re.compile(r"^[a-z0-9_]+\.(jpg|png|json|bin)$")
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png", "json": "application/json", "bin": "application/octet-stream"}


def services() -> Services:
    return current_services()


@bp.get("/healthz")
def healthz():
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Ready when the default model is loaded, every job worker is alive and none is stuck on one job, the
    database can be written and the folders uploads and fetches go to have MIN_FREE_DISK_MB free; otherwise 503
    with what is wrong."""
    registry = services().models
    distributed = current_settings().queue == "celery"  # the workers run the model, not this process
    if not distributed and not registry.is_ready():
        error = registry.default_error()
        if error is not None:
            return error_response(503, "model_unavailable", f"the model could not be loaded: {error.message}")
        return error_response(503, "not_ready", "the model is still loading", {"Retry-After": "5"})
    jobs = services().analyses.jobs
    health = jobs.health()
    details = {
        "jobs": health["pools"],
        "database": health["database"],
        "unwritten_outcomes": health["unwritten_outcomes"],
        "queued_jobs": jobs.queued_count(),
    }
    if not health["ok"]:
        return error_response(503, "unhealthy", "; ".join(health["problems"]), {"Retry-After": "5"}, **details)
    low_disk = services().analyses.low_disk()
    if low_disk:
        return error_response(503, "low_disk_space", low_disk, {"Retry-After": "60"}, **details)
    model = {"queue": "celery"} if distributed else {"model": registry.get().model_info.to_dict()}
    return jsonify({"status": "ready", **model, **details})


@bp.get("/metrics")
def metrics():
    """Prometheus metrics (server/metrics.py)."""
    exporter = services().analyses.metrics
    return Response(exporter.render(), mimetype=None, content_type=exporter.content_type)


@bp.get("/analyses/<analysis_id>")
def report_page(analysis_id: str):
    record = services().db.get_analysis(analysis_id)
    report = services().analyses.report(analysis_id) if record else None
    if record is None or report is None:
        raise ApiError(404, "not_found", f"no analysis {analysis_id}")
    names = {entry["name"] for entry in record.artefacts}

    def link(name: str) -> str | None:
        if name == "report.json":
            return url_for("api.get_analysis", analysis_id=analysis_id)
        return url_for("pages.artefact", analysis_id=analysis_id, name=name) if name in names else None

    # the page is public to whoever has its link: on a server with API keys it names no other analysis
    viewer = None if services().db.active_api_key_count() == 0 else "page-viewer"
    matches = services().analyses.memory.matches(analysis_id, viewer)
    page = report_html(
        report,
        link,
        source_is_url=record.source_type == "url",
        created_at=record.created_at,
        fetch=record.fetch,
        seen_before=seen_before(matches),
        matches=[{**m.to_dict(), "url": url_for("pages.report_page", analysis_id=m.analysis_id) if m.analysis_id else None} for m in matches],
    )
    return Response(page, mimetype="text/html")


@bp.get("/analyses/<analysis_id>/files/<name>")
def artefact(analysis_id: str, name: str):
    if not ARTEFACT_NAME.match(name) or services().db.get_analysis(analysis_id) is None:
        raise ApiError(404, "not_found", "no such file")
    data = services().store.get(f"{analysis_id}/{name}")
    if data is None:
        raise ApiError(404, "not_found", "no such file")
    response = Response(data, mimetype=CONTENT_TYPES[name.rsplit(".", 1)[1]])
    response.headers["Cache-Control"] = "private, max-age=86400, immutable"
    return response
