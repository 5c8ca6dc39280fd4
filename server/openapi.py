"""The OpenAPI 3.1 document served at /api/v1/openapi.json, written by hand next to the routes it describes; the
schemas of the Report, of a memory match and of a listing item are generated from their dataclasses
(detector/report.py, detector/memory.py, server/records.py).

tests/integration/test_server.py checks it against the OpenAPI schema and checks that every route of the app is in it and
every path in it is a route, so the two cannot drift apart silently.
"""

from __future__ import annotations

from detector.memory import Match
from detector.report import json_schemas

from .records import ID_PATTERN, AnalysisSummary


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict | str, description: str, headers: dict | None = None) -> dict:
    response = {
        "description": description,
        "content": {"application/json": {"schema": _ref(schema) if isinstance(schema, str) else schema}},
    }
    if headers:
        response["headers"] = headers
    return response


def _error(description: str, headers: dict | None = None) -> dict:
    return _json("Error", description, headers)


RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}
ERRORS = {
    "400": _error("bad request: invalid JSON or options, a URL that is not http(s), a forbidden address"),
    "401": _error("an API key is required (only when keys exist)"),
    "429": _error("rate limited", RETRY_AFTER),
}
WAIT = {
    "name": "wait",
    "in": "query",
    "schema": {"type": "number", "minimum": 0},
    "description": (
        "seconds to hold the request open until the job ends (capped by the server; answered at once when too "
        "many requests already wait)"
    ),
}
ID = {"type": "string", "pattern": ID_PATTERN}
FILTERS = [
    {
        "name": "verdict",
        "in": "query",
        "schema": {"type": "string"},
        "description": "comma-separated verdicts: real, fake, uncertain, no_face",
    },
    {"name": "since", "in": "query", "schema": {"type": "string"}, "description": "from this date (2025-01-31) or ISO time"},
    {"name": "until", "in": "query", "schema": {"type": "string"}, "description": "up to this date (inclusive) or ISO time"},
]

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
            },
            "job_id": {"type": "string", "description": "when a job was made and failed while the request waited"},
            "retryable": {"type": "boolean"},
        },
    },
    "AnalysisDone": {
        "type": "object",
        "required": ["id", "status", "cached", "report_url", "report"],
        "properties": {
            "id": ID,
            "status": {"const": "done"},
            "cached": {"type": "boolean", "description": "true when an earlier analysis of the same URL or content answered"},
            "report_url": {"type": "string", "format": "uri", "description": "the HTML report"},
            "api_url": {"type": "string", "format": "uri"},
            "created_at": {"type": "string"},
            "source": {"type": "string"},
            "report": _ref("Report"),
            "matches": {"type": "array", "items": _ref("Match"), "description": "earlier analyses of the same media, best first"},
        },
    },
    "MemoryChoice": {
        "type": "object",
        "required": ["opt_out"],
        "properties": {"opt_out": {"type": "boolean", "description": "true: this key's analyses are never matched by other keys"}},
    },
    "JobAccepted": {
        "type": "object",
        "required": ["job_id", "status", "status_url"],
        "properties": {
            "job_id": ID,
            "status": {"enum": ["queued", "running"]},
            "status_url": {"type": "string", "format": "uri"},
            "progress": _ref("Progress"),
            "created_at": {"type": "string"},
            "source": {"type": "string"},
        },
    },
    "Progress": {
        "type": "object",
        "required": ["stage", "fraction"],
        "properties": {
            "stage": {"type": "string", "description": "queued, fetch, fetched, decode, faces, model, render, done"},
            "fraction": {"type": "number", "minimum": 0, "maximum": 1},
        },
    },
    "Job": {
        "type": "object",
        "required": ["job_id", "status", "progress"],
        "properties": {
            "job_id": ID,
            "status": {"enum": ["queued", "running", "done", "failed"]},
            "progress": _ref("Progress"),
            "status_url": {"type": "string", "format": "uri"},
            "media_kind": {"type": ["string", "null"]},
            "id": {**ID, "description": "when done: the analysis"},
            "report_url": {"type": "string", "format": "uri"},
            "report": _ref("Report"),
            "matches": {"type": "array", "items": _ref("Match"), "description": "earlier analyses of the same media, best first"},
            "cached": {"type": "boolean"},
            "error": {"type": "object", "properties": {"code": {"type": "string"}, "message": {"type": "string"}}},
            "retryable": {"type": "boolean", "description": "when failed: POST .../retry may succeed"},
        },
    },
    "Analysis": {
        "type": "object",
        "required": ["id", "report_url", "report"],
        "properties": {
            "id": ID,
            "created_at": {"type": "string"},
            "source": {"type": "string"},
            "source_type": {"enum": ["url", "upload"]},
            "report_url": {"type": "string", "format": "uri"},
            "api_url": {"type": "string", "format": "uri"},
            "report": _ref("Report"),
            "matches": {"type": "array", "items": _ref("Match"), "description": "earlier analyses of the same media, best first"},
            "fetch": {"type": ["object", "null"], "description": "final_url, page_url, title, uploader, method, fetch_ms"},
            "artefacts": {"type": "array", "items": {"type": "object"}},
        },
    },
}
# The Report and what else an answer carries as a dataclass (detector/report.py json_schemas): one source for the
# fields and the schema.
SCHEMAS.update(json_schemas(ref_prefix="#/components/schemas/", roots=(Match, AnalysisSummary)))
# a listing item: the summary's columns, then its two links
SCHEMAS["AnalysisSummary"]["properties"].update(
    {"report_url": {"type": "string", "format": "uri"}, "api_url": {"type": "string", "format": "uri"}}
)


def _id_parameter(name: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _analyze_paths() -> dict:
    """POST /analyze: a URL or an upload."""
    analyze_body = {
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {"type": "string", "description": "a post page, a video or image link, an HLS playlist (http/https)"},
            "frames": {"type": "integer", "minimum": 1, "description": "key frames per video (default: the model's)"},
            "model": {"type": "string", "description": "one of GET /api/v1/models (default: the server's)"},
        },
    }
    upload_body = {
        "type": "object",
        "required": ["file"],
        "properties": {
            "file": {"type": "string", "format": "binary"},
            "frames": {"type": "integer", "minimum": 1},
            "model": {"type": "string"},
        },
    }
    return {
        "/api/v1/analyze": {
            "post": {
                "summary": "Analyse the media behind a URL, or an uploaded file",
                "description": (
                    "An uploaded image answers 200 with the Report; a URL or a video answers 202 at once with a job "
                    "to poll (GET status_url?wait=N answers when it ends), unless ?wait=SECONDS lets it finish in "
                    "time. A cached result answers 200 with cached: true. Failures during the wait answer with the "
                    "error's status (400, 413, 415, 422, 502, 504...)."
                ),
                "parameters": [WAIT],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": analyze_body}, "multipart/form-data": {"schema": upload_body}},
                },
                "responses": {
                    "200": _json("AnalysisDone", "the analysis is done"),
                    "202": _json("JobAccepted", "a video is being analysed: poll status_url"),
                    **ERRORS,
                    "413": _error("over a size or duration limit (JSON body, upload, download or media)"),
                    "429": _error("rate limited, or too many of this client's links wait for a fetch", RETRY_AFTER),
                    "415": _error("not an image or video we can read (judged by content)"),
                    "422": _error("damaged or empty media, or no media found at the URL"),
                    "502": _error("the source failed: unreachable, an HTTP error, a broken download"),
                    "503": _error("the job queue is full (queue_full), or no fetch worker came free in time (fetch_queue_timeout)", RETRY_AFTER),
                    "504": _error("fetching took longer than the time limit"),
                    "507": _error("the server's disk is full (insufficient_storage); retry later"),
                },
            }
        },
    }


def _job_paths() -> dict:
    """A job's status, and its retry."""
    return {
        "/api/v1/jobs/{job_id}": {
            "get": {
                "summary": "A job's status, with the Report when done or the error when failed",
                "description": "With ?wait=N (N up to 60 s) the answer comes as soon as the job ends, or after N seconds.",
                "parameters": [_id_parameter("job_id"), WAIT],
                "responses": {"200": _json("Job", "the job"), "404": _error("no such job"), **ERRORS},
            }
        },
        "/api/v1/jobs/{job_id}/retry": {
            "post": {
                "summary": "Queue a failed, retryable job again (e.g. one interrupted by a restart)",
                "parameters": [_id_parameter("job_id"), WAIT],
                "responses": {
                    "200": _json("AnalysisDone", "the retried job ended while the request waited"),
                    "202": _json("JobAccepted", "queued again"),
                    "404": _error("no such job"),
                    "409": _error("the job is not failed or not retryable"),
                    "503": _error("the job queue is full (queue_full), or no fetch worker came free in time (fetch_queue_timeout)", RETRY_AFTER),
                    **ERRORS,
                },
            }
        },
    }


def _history_paths() -> dict:
    """The history: listing, export, one analysis."""
    return {
        "/api/v1/analyses": {
            "get": {
                "summary": "History of analyses, newest first",
                "parameters": [
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0, "default": 0}},
                    *FILTERS,
                ],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "items": {"type": "array", "items": _ref("AnalysisSummary")},
                                "total": {"type": "integer"},
                                "limit": {"type": "integer"},
                                "offset": {"type": "integer"},
                                "next_url": {"type": ["string", "null"]},
                            },
                        },
                        "a page of analyses",
                    ),
                    **ERRORS,
                },
            }
        },
        "/api/v1/analyses/export": {
            "get": {
                "summary": "Export the history (same filters) as CSV or JSON",
                "parameters": [
                    {"name": "format", "in": "query", "schema": {"enum": ["csv", "json"], "default": "json"}},
                    *FILTERS,
                ],
                "responses": {
                    "200": {
                        "description": "the export, as an attachment",
                        "content": {
                            "text/csv": {"schema": {"type": "string"}},
                            "application/json": {"schema": {"type": "array", "items": _ref("AnalysisSummary")}},
                        },
                    },
                    **ERRORS,
                },
            }
        },
        "/api/v1/analyses/{analysis_id}": {
            "get": {
                "summary": "One analysis: the Report, fetch details and links to its pictures",
                "parameters": [_id_parameter("analysis_id")],
                "responses": {"200": _json("Analysis", "the analysis"), "404": _error("no such analysis"), **ERRORS},
            },
            "delete": {
                "summary": "Delete an analysis and its stored artefacts",
                "parameters": [_id_parameter("analysis_id")],
                "responses": {"204": {"description": "deleted"}, "404": _error("no such analysis"), **ERRORS},
            },
        },
    }


def _account_paths() -> dict:
    """The API key's memory choice, counts, the models offered, this document."""
    return {
        "/api/v1/memory": {
            "get": {
                "summary": "Whether this API key's analyses may be matched by other keys",
                "responses": {"200": _json("MemoryChoice", "the key's choice"), "400": _error("no API key was sent"), **ERRORS},
            },
            "put": {
                "summary": "Opt this API key out of (or back into) being matched by other keys",
                "requestBody": {"required": True, "content": {"application/json": {"schema": _ref("MemoryChoice")}}},
                "responses": {"200": _json("MemoryChoice", "the key's choice"), "400": _error("no API key, or not a boolean"), **ERRORS},
            },
        },
        "/api/v1/stats": {
            "get": {
                "summary": "Counts of analyses by verdict and by day",
                "parameters": FILTERS[1:],
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "total": {"type": "integer"},
                                "by_verdict": {"type": "object", "additionalProperties": {"type": "integer"}},
                                "by_day": {"type": "array", "items": {"type": "object"}},
                            },
                        },
                        "the counts",
                    ),
                    **ERRORS,
                },
            }
        },
        "/api/v1/models": {
            "get": {
                "summary": "The models this server offers",
                "responses": {
                    "200": _json(
                        {
                            "type": "object",
                            "properties": {
                                "default": {"type": "string"},
                                "models": {"type": "array", "items": {"type": "object"}},
                            },
                        },
                        "the models",
                    ),
                    **ERRORS,
                },
            }
        },
        "/api/v1/openapi.json": {
            "get": {"summary": "This document", "security": [], "responses": {"200": {"description": "the OpenAPI document"}}}
        },
    }


def _page_paths() -> dict:
    """Pages for people and probes: the HTML report and its pictures, health, metrics, readiness."""
    return {
        "/analyses/{analysis_id}": {
            "get": {
                "summary": "The HTML report: verdict, confidence, timeline, key frames with face boxes and heatmaps",
                "security": [],
                "parameters": [_id_parameter("analysis_id")],
                "responses": {
                    "200": {"description": "an HTML page", "content": {"text/html": {}}},
                    "404": _error("no such analysis"),
                },
            }
        },
        "/analyses/{analysis_id}/files/{name}": {
            "get": {
                "summary": "A picture of the HTML report (key frame, heatmap, timeline)",
                "security": [],
                "parameters": [_id_parameter("analysis_id"), _id_parameter("name")],
                "responses": {
                    "200": {"description": "the file", "content": {"image/jpeg": {}, "image/png": {}}},
                    "404": _error("no such file"),
                },
            }
        },
        "/healthz": {
            "get": {"summary": "The process is up", "security": [], "responses": {"200": _json({"type": "object"}, "ok")}}
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics: jobs by status, queue length, job and stage durations, analyses by verdict",
                "security": [],
                "responses": {"200": {"description": "Prometheus text format", "content": {"text/plain": {}}}},
            }
        },
        "/readyz": {
            "get": {
                "summary": "The default model is loaded, every job worker is alive and none is stuck, the database can be written",
                "security": [],
                "responses": {
                    "200": _json({"type": "object"}, "ready: the model, each worker pool (workers, busy, waiting), the database"),
                    "503": _error("still loading, the model failed, a worker is dead or stuck, the database cannot be written, or the disk is nearly full (low_disk_space)"),
                },
            }
        },
    }


def openapi_document(server_url: str = "") -> dict:
    paths = {**_analyze_paths(), **_job_paths(), **_history_paths(), **_account_paths(), **_page_paths()}
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "Deepfake checker API",
            "version": "1.0.0",
            "description": (
                "Check images and videos from social media posts for deepfaked faces. Send an API key as "
                "'Authorization: Bearer <key>' or 'X-API-Key: <key>' when the server has keys. Every error is "
                'JSON {"error": {"code", "message"}}.'
            ),
        },
        "paths": paths,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}, {}],
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document
