"""The JSON API under /api/v1: analyse, jobs, history, stats, exports, models, the OpenAPI document.

Response shapes the browser extension depends on (extend, never change):
    200 {"id", "status": "done", "cached", "report_url", "report"}
    202 {"job_id", "status": "queued"|"running", "status_url"}
    GET /jobs/<id>[?wait=N] {"job_id", "status", "progress": {"stage", "fraction"}, + "id", "report_url", "report",
                    "cached" when done, + "error", "retryable" when failed}

A request waits for a job only when it asks to (`?wait=`) or uploads an image, and only while the waiting room
(`server.waiting`) has a seat for it; a URL is never fetched while its request waits unless it asked to wait.
Listings (history, export, stats) made with an API key show that key's analyses only.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone

from flask import Blueprint, Response, jsonify, request, url_for

from detector.report import VERDICTS, Report

from .auth import client_identity, current_key
from .context import current_services, current_settings
from .db import format_time
from .errors import ApiError, error_response, failed_job_status
from .jobs import Job
from .openapi import openapi_document
from .records import AnalysisRecord, AnalysisSummary
from .services import Services

bp = Blueprint("api", __name__, url_prefix="/api/v1")

PUBLIC_ENDPOINTS = {"api.openapi"}
EXPORT_COLUMNS = [
    "id",
    "created_at",
    "source",
    "source_type",
    "verdict",
    "fake_probability",
    "confidence",
    "media_kind",
    "duration_s",
    "model",
    "model_id",
    "model_revision",
    "report_url",
]


def services() -> Services:
    return current_services()


def absolute_url(endpoint: str, **values) -> str:
    public = current_settings().public_url
    if public:
        return public.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def base_url() -> str:
    return current_settings().public_url or request.host_url


@bp.before_request
def require_api_key():
    if request.method == "OPTIONS" or request.endpoint in PUBLIC_ENDPOINTS:
        return None
    db = services().db
    if db.active_api_key_count() == 0:
        return None
    key = current_key(db)
    if key is None:
        return error_response(
            401,
            "unauthorized",
            "an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'",
            {"WWW-Authenticate": 'Bearer realm="deepfake-checker"'},
        )
    if not key.last_used_at or key.last_used_at < format_time(datetime.now(timezone.utc) - timedelta(minutes=1)):
        db.touch_api_key(key.id)
    return None


# ------------------------------------------------------------------------------------------------- bodies


def done_body(record: AnalysisRecord, report: Report | None, cached: bool, source: str | None = None) -> dict:
    """A finished analysis as answered; `source`: what this request submitted, when a cache hit answers it."""
    source = source or record.source
    data = report.to_dict() if report is not None else None
    if data is not None:
        data["source"] = source
    return {
        "id": record.id,
        "status": "done",
        "cached": bool(cached),
        "report_url": absolute_url("pages.report_page", analysis_id=record.id),
        "api_url": absolute_url("api.get_analysis", analysis_id=record.id),
        "created_at": record.created_at,
        "source": source,
        "report": data,
        # earlier analyses of the same media (re-encoded, rescaled, trimmed, screenshotted): server/memory.py
        "matches": [match.to_dict() for match in services().analyses.memory.matches(record.id, own_client())],
    }


def stored_analysis(analysis_id: str) -> AnalysisRecord | None:
    return services().db.get_analysis(analysis_id)


def job_body(job: Job) -> dict:
    body = {
        "job_id": job.id,
        "status": job.status,
        "progress": {"stage": job.stage, "fraction": float(job.fraction)},
        "status_url": absolute_url("api.get_job", job_id=job.id),
        "created_at": job.created_at,
        "source": job.source,
        "media_kind": job.media_kind,
    }
    if job.status == "done":
        record = stored_analysis(job.analysis_id) if job.analysis_id else None
        if record is not None:
            body.update(done_body(record, services().analyses.report(record.id), bool(job.cached), job.source))
            # A job's answers name the job's creation, as its 202 did; the analysis's own time is on its report page.
            body.update(status="done", created_at=job.created_at)
    elif job.status == "failed":
        body["error"] = {"code": job.error_code, "message": job.error_message}
        body["retryable"] = bool(job.retryable)
    return body


def job_answer(job: Job):
    """A job as the answer to POST /analyze or /jobs/<id>/retry: 200 when done, the error when failed, else 202."""
    if job.status == "done":
        return jsonify(job_body(job)), 200
    if job.status == "failed":
        status = failed_job_status(job.error_code, job.error_status)
        return error_response(
            status,
            job.error_code,
            job.error_message,
            {"Retry-After": str(current_settings().retry_after_s)} if status == 503 else None,
            job_id=job.id,
            retryable=bool(job.retryable),
        )
    body = job_body(job)
    response = jsonify({key: body[key] for key in ("job_id", "status", "status_url", "progress", "created_at", "source")})
    response.status_code = 202
    response.headers["Location"] = body["status_url"]
    return response


# ------------------------------------------------------------------------------------------------ analyse


def parse_wait(limit: float) -> float:
    raw = request.args.get("wait")
    if raw in (None, ""):
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise ApiError(400, "bad_option", f"wait must be a number of seconds, not {raw!r}") from None
    if not wait >= 0:  # also NaN
        raise ApiError(400, "bad_option", "wait must be a number of seconds, not negative")
    return min(wait, limit)


def json_body() -> dict:
    """The request's JSON object; a 413 over MAX_JSON_BYTES, a 400 for anything that is not a JSON object."""
    limit = current_settings().max_json_bytes
    if (request.content_length or 0) > limit:
        raise ApiError(413, "request_too_large", f"the JSON body is over the {limit / 1024:.0f} KiB limit")
    data = request.stream.read(limit + 1)  # also bounds a chunked body, whose length nobody declared
    if len(data) > limit:
        raise ApiError(413, "request_too_large", f"the JSON body is over the {limit / 1024:.0f} KiB limit")
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the parser goes
        body = None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", 'send JSON {"url": "https://..."} or a multipart upload with a "file" field')
    return body


def wait_for(job: Job, seconds: float) -> Job:
    """The job once it finished, or as it is after `seconds` (at once when the waiting room is full)."""
    if seconds <= 0 or job.status in ("done", "failed"):
        return job
    with services().waiting.seat(client_identity(services().db)) as seated:
        if not seated:
            return job
        return services().analyses.jobs.wait(job.id, lambda j: False, seconds) or job


@bp.post("/analyze")
def analyze():
    service = services().analyses
    client = client_identity(services().db)
    wait = parse_wait(current_settings().max_wait_s)
    if request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "bad_request", "a multipart upload needs its media in a field named 'file'")
        submission = service.submit_upload(upload, service.options(request.form, base_url()), client)
    else:
        body = json_body()
        if not body.get("url"):
            raise ApiError(400, "bad_request", 'the JSON body needs a "url"')
        submission = service.submit_url(body["url"], service.options(body, base_url()), client)

    if submission.analysis is not None:
        record = submission.analysis
        return jsonify(done_body(record, service.report(record.id), True, submission.source)), 200

    job = submission.job
    # An uploaded image answers with its Report (no fetch to wait for, a fraction of a second of analysis);
    # anything else answers 202 at once unless the request asked to wait.
    if not wait and job.source_type == "upload" and job.media_kind == "image":
        wait = current_settings().max_wait_s
    return job_answer(wait_for(job, wait))


# --------------------------------------------------------------------------------------------------- jobs


def owned(record: Job | AnalysisRecord | None, what: str, record_id: str):
    """`record` (a job or an analysis) when the requester may see it: with an API key, only that key's own; another
    key's is answered 404, as if it did not exist."""
    owner = own_client()
    if record is None or (owner and record.client != owner):
        raise ApiError(404, "not_found", f"no {what} {record_id}")
    return record


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    wait = parse_wait(current_settings().max_poll_wait_s)
    job = owned(services().analyses.jobs.get(job_id), "job", job_id)
    return jsonify(job_body(wait_for(job, wait)))


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str):
    wait = parse_wait(current_settings().max_wait_s)
    owned(services().analyses.jobs.get(job_id), "job", job_id)
    return job_answer(wait_for(services().analyses.jobs.retry(job_id), wait))


# ---------------------------------------------------------------------------------------------- analyses


def parse_time(name: str, end: bool = False) -> str | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        if len(raw) == 10:
            day = date.fromisoformat(raw)
            moment = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + (timedelta(days=1) if end else timedelta())
        else:
            moment = datetime.fromisoformat(raw.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
    except ValueError:
        raise ApiError(400, "bad_option", f"{name} must be a date (2025-01-31) or an ISO 8601 time, not {raw!r}") from None
    return format_time(moment)


def parse_verdicts() -> list[str] | None:
    raw = request.args.get("verdict")
    if not raw:
        return None
    verdicts = [v.strip() for v in raw.split(",") if v.strip()]
    unknown = [v for v in verdicts if v not in VERDICTS]
    if unknown:
        raise ApiError(400, "bad_option", f"unknown verdict {unknown[0]!r}; use {', '.join(VERDICTS)}")
    return verdicts


def parse_int(name: str, default: int, low: int, high: int) -> int:
    raw = request.args.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, "bad_option", f"{name} must be a whole number") from None
    if not low <= value <= high:
        raise ApiError(400, "bad_option", f"{name} must be between {low} and {high}")
    return value


def summary(row: AnalysisSummary) -> dict:
    """An analysis as a listing or an export answers it: its columns and its two links."""
    return {
        **row.to_dict(),
        "report_url": absolute_url("pages.report_page", analysis_id=row.id),
        "api_url": absolute_url("api.get_analysis", analysis_id=row.id),
    }


def own_client() -> str | None:
    """Whose analyses a listing shows: the API key's, when the request carries one; all of them on a server
    without keys (open, and then only reachable from this machine)."""
    key = current_key(services().db)
    return key.client if key else None


@bp.get("/analyses")
def list_analyses():
    limit = parse_int("limit", 50, 1, 500)
    offset = parse_int("offset", 0, 0, 10**9)
    verdicts, since, until = parse_verdicts(), parse_time("since"), parse_time("until", end=True)
    rows, total = services().db.list_analyses(verdicts, since, until, limit, offset, client=own_client())
    next_url = None
    if offset + len(rows) < total:
        args = {**request.args.to_dict(), "offset": offset + limit, "limit": limit}
        next_url = absolute_url("api.list_analyses", **args)
    return jsonify({"items": [summary(r) for r in rows], "total": total, "limit": limit, "offset": offset, "next_url": next_url})


@bp.get("/analyses/export")
def export_analyses():
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        raise ApiError(400, "bad_option", "format must be csv or json")
    verdicts, since, until = parse_verdicts(), parse_time("since"), parse_time("until", end=True)
    rows, _ = services().db.list_analyses(verdicts, since, until, limit=1_000_000, offset=0, client=own_client())
    items = [{column: summary(row).get(column) for column in EXPORT_COLUMNS} for row in rows]
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    if fmt == "json":
        response = Response(json.dumps(items, indent=1), mimetype="application/json")
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(items)
        response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="analyses-{stamp}.{fmt}"'
    return response


@bp.get("/analyses/<analysis_id>")
def get_analysis(analysis_id: str):
    record = owned(stored_analysis(analysis_id), "analysis", analysis_id)
    report = services().analyses.report(analysis_id)
    if report is None:
        raise ApiError(404, "not_found", f"the report of analysis {analysis_id} is missing from storage")
    body = done_body(record, report, cached=False)
    body.pop("cached")
    body.pop("status")
    body["source_type"] = record.source_type
    body["fetch"] = record.fetch
    body["artefacts"] = [
        {**entry, "url": absolute_url("pages.artefact", analysis_id=analysis_id, name=entry["name"])}
        for entry in record.artefacts
    ]
    return jsonify(body)


@bp.delete("/analyses/<analysis_id>")
def delete_analysis(analysis_id: str):
    owned(stored_analysis(analysis_id), "analysis", analysis_id)
    if not services().analyses.delete(analysis_id):
        raise ApiError(404, "not_found", f"no analysis {analysis_id}")
    return "", 204


@bp.get("/memory")
def get_memory():
    return jsonify({"opt_out": services().db.memory_opt_out(memory_client())})


@bp.put("/memory")
def set_memory():
    """An API key's choice: `{"opt_out": true}` keeps its analyses out of other keys' matches (its own answers still
    show what others' analyses matched)."""
    opt_out = json_body().get("opt_out")
    if not isinstance(opt_out, bool):
        raise ApiError(400, "bad_option", "send {\"opt_out\": true} or {\"opt_out\": false}")
    services().db.set_memory_opt_out(memory_client(), opt_out)
    return jsonify({"opt_out": opt_out})


def memory_client() -> str:
    client = own_client()
    if client is None:
        raise ApiError(400, "no_api_key", "matching is chosen per API key: this request carries none")
    return client


# ------------------------------------------------------------------------------------------ stats, models


@bp.get("/stats")
def stats():
    since, until = parse_time("since"), parse_time("until", end=True)
    days: dict[str, dict] = {}
    totals = dict.fromkeys(VERDICTS, 0)
    for count in services().db.stats(since, until, client=own_client()):
        day = days.setdefault(count.day, {"day": count.day, **dict.fromkeys(VERDICTS, 0), "total": 0})
        day[count.verdict] = day.get(count.verdict, 0) + count.n
        day["total"] += count.n
        totals[count.verdict] = totals.get(count.verdict, 0) + count.n
    return jsonify({"total": sum(totals.values()), "by_verdict": totals, "by_day": list(days.values())})


@bp.get("/models")
def models():
    registry = services().models
    return jsonify({"default": registry.default, "models": registry.describe()})


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(request.host_url.rstrip("/")))
