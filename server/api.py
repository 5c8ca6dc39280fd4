"""The JSON API under /api/v1: analyse, jobs, history, stats, exports, models, the OpenAPI document.

Response shapes the browser extension depends on (extend, never change):
    200 {"id", "status": "done", "cached", "report_url", "report"}
    202 {"job_id", "status": "queued"|"running", "status_url"}
    GET /jobs/<id> {"job_id", "status", "progress": {"stage", "fraction"}, + "id", "report_url", "report", "cached"
                    when done, + "error", "retryable" when failed}
"""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime, timedelta, timezone

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from .auth import current_key
from .db import format_time
from .errors import ApiError, error_response
from .openapi import openapi_document

bp = Blueprint("api", __name__, url_prefix="/api/v1")

VERDICTS = ("real", "fake", "uncertain", "no_face")
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


def services():
    return current_app.extensions["deepfake"]


def absolute_url(endpoint: str, **values) -> str:
    public = current_app.config["PUBLIC_URL"]
    if public:
        return public.rstrip("/") + url_for(endpoint, **values)
    return url_for(endpoint, _external=True, **values)


def base_url() -> str:
    return current_app.config["PUBLIC_URL"] or request.host_url


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
    if not key["last_used_at"] or key["last_used_at"] < format_time(datetime.now(timezone.utc) - timedelta(minutes=1)):
        db.touch_api_key(key["id"])
    return None


# ------------------------------------------------------------------------------------------------- bodies


def done_body(record: dict, report: dict | None, cached: bool) -> dict:
    return {
        "id": record["id"],
        "status": "done",
        "cached": bool(cached),
        "report_url": absolute_url("pages.report_page", analysis_id=record["id"]),
        "api_url": absolute_url("api.get_analysis", analysis_id=record["id"]),
        "created_at": record["created_at"],
        "source": record["source"],
        "report": report,
    }


def job_body(job: dict) -> dict:
    body = {
        "job_id": job["id"],
        "status": job["status"],
        "progress": {"stage": job["stage"], "fraction": float(job["fraction"])},
        "status_url": absolute_url("api.get_job", job_id=job["id"]),
        "created_at": job["created_at"],
        "source": job["source"],
        "media_kind": job["media_kind"],
    }
    if job["status"] == "done":
        record = services().db.get_analysis(job["analysis_id"]) if job["analysis_id"] else None
        if record is not None:
            body.update(done_body(record, services().analyses.report(record["id"]), bool(job["cached"])))
            body["status"] = "done"
    elif job["status"] == "failed":
        body["error"] = {"code": job["error_code"], "message": job["error_message"]}
        body["retryable"] = bool(job["retryable"])
    return body


def job_answer(job: dict):
    """A job as the answer to POST /analyze or /jobs/<id>/retry: 200 when done, the error when failed, else 202."""
    if job["status"] == "done":
        return jsonify(job_body(job)), 200
    if job["status"] == "failed":
        return error_response(
            job["error_status"] or 500,
            job["error_code"],
            job["error_message"],
            job_id=job["id"],
            retryable=bool(job["retryable"]),
        )
    body = job_body(job)
    response = jsonify({key: body[key] for key in ("job_id", "status", "status_url", "progress", "created_at", "source")})
    response.status_code = 202
    response.headers["Location"] = body["status_url"]
    return response


# ------------------------------------------------------------------------------------------------ analyse


def parse_wait() -> float:
    raw = request.args.get("wait")
    if raw in (None, ""):
        return 0.0
    try:
        wait = float(raw)
    except ValueError:
        raise ApiError(400, "bad_option", f"wait must be a number of seconds, not {raw!r}") from None
    if wait < 0:
        raise ApiError(400, "bad_option", "wait must not be negative")
    return min(wait, current_app.config["MAX_WAIT_S"])


@bp.post("/analyze")
def analyze():
    service = services().analyses
    wait = parse_wait()
    if request.files or request.mimetype == "multipart/form-data":
        upload = request.files.get("file")
        if upload is None:
            raise ApiError(400, "bad_request", "a multipart upload needs its media in a field named 'file'")
        submission = service.submit_upload(upload, service.options(request.form, base_url()))
    else:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise ApiError(400, "bad_request", 'send JSON {"url": "https://..."} or a multipart upload with a "file" field')
        if not body.get("url"):
            raise ApiError(400, "bad_request", 'the JSON body needs a "url"')
        submission = service.submit_url(body["url"], service.options(body, base_url()))

    if submission.analysis is not None:
        record = submission.analysis
        return jsonify(done_body(record, service.report(record["id"]), cached=True)), 200

    jobs = services().analyses.jobs
    job = submission.job
    budget = current_app.config["MAX_WAIT_S"]
    # Images answer with their Report; videos answer 202 unless ?wait= gives them time to finish. A URL's media
    # kind is only known once fetched, so wait for that first.
    job = jobs.wait(job["id"], lambda j: j["media_kind"] is not None, budget)
    if job["status"] not in ("done", "failed"):
        if job["media_kind"] == "image":
            job = jobs.wait(job["id"], lambda j: False, budget)
        elif wait:
            job = jobs.wait(job["id"], lambda j: False, wait)
    return job_answer(job)


# --------------------------------------------------------------------------------------------------- jobs


@bp.get("/jobs/<job_id>")
def get_job(job_id: str):
    job = services().analyses.jobs.get(job_id)
    if job is None:
        raise ApiError(404, "not_found", f"no job {job_id}")
    return jsonify(job_body(job))


@bp.post("/jobs/<job_id>/retry")
def retry_job(job_id: str):
    return job_answer(services().analyses.jobs.retry(job_id))


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


def summary(row: dict) -> dict:
    return {
        **row,
        "report_url": absolute_url("pages.report_page", analysis_id=row["id"]),
        "api_url": absolute_url("api.get_analysis", analysis_id=row["id"]),
    }


@bp.get("/analyses")
def list_analyses():
    limit = parse_int("limit", 50, 1, 500)
    offset = parse_int("offset", 0, 0, 10**9)
    verdicts, since, until = parse_verdicts(), parse_time("since"), parse_time("until", end=True)
    rows, total = services().db.list_analyses(verdicts, since, until, limit, offset)
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
    rows, _ = services().db.list_analyses(verdicts, since, until, limit=1_000_000, offset=0)
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
    record = services().db.get_analysis(analysis_id)
    if record is None:
        raise ApiError(404, "not_found", f"no analysis {analysis_id}")
    report = services().analyses.report(analysis_id)
    if report is None:
        raise ApiError(404, "not_found", f"the report of analysis {analysis_id} is missing from storage")
    body = done_body(record, report, cached=False)
    body.pop("cached")
    body.pop("status")
    body["source_type"] = record["source_type"]
    body["fetch"] = json.loads(record["fetch_json"]) if record["fetch_json"] else None
    body["artefacts"] = [
        {**entry, "url": absolute_url("pages.artefact", analysis_id=analysis_id, name=entry["name"])}
        for entry in json.loads(record["artefacts_json"])
    ]
    return jsonify(body)


@bp.delete("/analyses/<analysis_id>")
def delete_analysis(analysis_id: str):
    if not services().analyses.delete(analysis_id):
        raise ApiError(404, "not_found", f"no analysis {analysis_id}")
    return "", 204


# ------------------------------------------------------------------------------------------ stats, models


@bp.get("/stats")
def stats():
    since, until = parse_time("since"), parse_time("until", end=True)
    days: dict[str, dict] = {}
    totals = dict.fromkeys(VERDICTS, 0)
    for row in services().db.stats(since, until):
        day = days.setdefault(row["day"], {"day": row["day"], **dict.fromkeys(VERDICTS, 0), "total": 0})
        day[row["verdict"]] = day.get(row["verdict"], 0) + row["n"]
        day["total"] += row["n"]
        totals[row["verdict"]] = totals.get(row["verdict"], 0) + row["n"]
    return jsonify({"total": sum(totals.values()), "by_verdict": totals, "by_day": list(days.values())})


@bp.get("/models")
def models():
    registry = services().models
    return jsonify({"default": registry.default, "models": registry.describe()})


@bp.get("/openapi.json")
def openapi():
    return jsonify(openapi_document(request.host_url.rstrip("/")))
