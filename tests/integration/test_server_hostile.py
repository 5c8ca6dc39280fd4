"""The backend under slow, hostile and broken conditions: long-polls and Retry-After, sources that never answer,
clients that flood, a database that fails, other clients' secrets, oversized or malformed requests, webhooks
aimed at this machine. Real server on 127.0.0.1 (werkzeug in a thread), real HTTP, real SQLite; hostile sources
run in processes of their own (tests/support/hostile.py). All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from server.auth import create_key
from server.db import Database, format_time
from server.records import Job
from tests.support.hostile import HostileSource
from tests.support.liveserver import assert_error
from tests.support.waiting import wait_for as wait_until
from tests.support.webhooks import WebhookReceiver

SECRET = "SECRET-TOKEN"


def services(live_server):
    return live_server.app.extensions["deepfake"]


# --------------------------------------------------------------------------------------- Retry-After, long-poll


def test_retry_after_only_on_429_and_503(start_server, media_server, face_photo):
    live = start_server(RATE_LIMIT="3/minute")
    answers = [live.upload(face_photo), live.analyze_url(media_server.url("/files/video.mp4"))]
    answers.append(live.get(f"/api/v1/jobs/{answers[1].json()['job_id']}"))
    assert [a.status_code for a in answers] == [200, 202, 200]
    for answer in answers:
        assert "Retry-After" not in answer.headers, answer.request.url  # clients would wait that long to poll
        assert "X-RateLimit-Remaining" in answer.headers  # the limiter's own figures stay
    live.analyze_url(media_server.url("/files/photo.jpg"))
    limited = live.analyze_url(media_server.url("/files/photo.jpg?again=1"))
    assert_error(limited, 429, "rate_limited")
    assert 0 < int(limited.headers["Retry-After"]) <= 60  # when the window really resets


def test_a_job_poll_waits_until_the_job_ends_or_the_wait_runs_out(start_server, media_server):
    live = start_server(MAX_POLL_WAIT_S=1.5)
    slow = live.analyze_url(media_server.url("/slow/video.mp4")).json()  # a download that takes minutes
    started = time.monotonic()
    polled = live.get(f"/api/v1/jobs/{slow['job_id']}?wait=30")  # capped at MAX_POLL_WAIT_S
    assert polled.status_code == 200 and polled.json()["status"] in ("queued", "running")
    assert 1.4 <= time.monotonic() - started < 10
    live = start_server()
    accepted = live.analyze_url(media_server.url("/files/video.mp4"), frames=4).json()
    done = live.get(f"/api/v1/jobs/{accepted['job_id']}?wait=60").json()
    assert done["status"] == "done" and done["report"]["media"]["frames_analyzed"] == 4


def test_retry_honours_wait(start_server, media_server):
    live = start_server(FETCH_TIMEOUT_S=1)
    with HostileSource("silent") as source:
        failed = assert_error(live.analyze_url(source.url("/clip.mp4"), wait=30), 504, "fetch_timeout")
        assert failed["retryable"] is True
        again = live.post(f"/api/v1/jobs/{failed['job_id']}/retry?wait=30")
        assert_error(again, 504, "fetch_timeout")  # waited for the retried job's end, not answered 202


# ------------------------------------------------------------------------------------ slow and flooding links


def test_links_that_never_answer_do_not_delay_an_upload(start_server, face_photo):
    live = start_server(CLIENT_URL_JOBS=20, FETCH_TIMEOUT_S=30)
    with HostileSource("silent") as source:
        with ThreadPoolExecutor(max_workers=20) as pool:
            answers = list(pool.map(lambda n: live.analyze_url(source.url(f"/never/{n}.mp4")), range(20)))
        assert [a.status_code for a in answers] == [202] * 20  # no request waited for its fetch
        started = time.monotonic()
        upload = live.upload(face_photo)
        elapsed = time.monotonic() - started
        assert upload.status_code == 200 and upload.json()["report"]["media"]["kind"] == "image"
        assert elapsed < 5, f"the upload waited {elapsed:.1f} s behind links that never answer"
        pools = live.get("/readyz").json()["jobs"]
        assert pools["fetch"]["busy"] >= 1 and pools["analysis"]["busy"] == 0


def test_one_client_cannot_take_every_fetch(start_server, media_server):
    live = start_server(FETCH_WORKERS=2, CLIENT_FETCHES=1, CLIENT_URL_JOBS=3, FETCH_TIMEOUT_S=30, RETRY_AFTER_S=9)
    db = services(live).db
    flooder, other = (create_key(db, name)[1] for name in ("flooder", "other"))
    with HostileSource("silent") as source:
        for n in range(3):
            accepted = live.analyze_url_as(flooder, source.url(f"/never/{n}.mp4"))
            assert accepted.status_code == 202
        refused = live.analyze_url_as(flooder, source.url("/never/3.mp4"))
        assert_error(refused, 429, "too_many_jobs")
        assert refused.headers["Retry-After"] == "9"
        # Another client's link is fetched at once: the flooder holds one fetch at a time, and the others take turns.
        answer = live.analyze_url_as(other, media_server.url("/files/photo.jpg"), wait=20)
        assert answer.status_code == 200, answer.text


def test_a_link_waits_a_bounded_time_behind_many_clients_links_that_hang(start_server, media_server):
    live = start_server(FETCH_WORKERS=8, CLIENT_FETCHES=2, FETCH_TIMEOUT_S=60, FETCH_QUEUE_WAIT_S=3, RETRY_AFTER_S=7)
    db = services(live).db
    keys = [create_key(db, f"client-{n}")[1] for n in range(31)]
    with HostileSource("silent", hosts=30) as hosts:  # 30 hosts, 127.0.0.2 ... 127.0.0.31, that never answer
        with ThreadPoolExecutor(max_workers=10) as pool:
            hanging = list(pool.map(lambda n: live.analyze_url_as(keys[n], hosts.url(f"/clip{n}.mp4", n)), range(30)))
        assert [a.status_code for a in hanging] == [202] * 30
        started = time.monotonic()
        answer = live.analyze_url_as(keys[30], media_server.url("/files/photo.jpg"), wait=60)
        print(f"another client's link answered {answer.status_code} after {time.monotonic() - started:.1f} s")
        if answer.status_code != 200:  # no fetch worker came free within the bound: a clear, retryable refusal
            body = assert_error(answer, 503, "fetch_queue_timeout")
            assert body["retryable"] is True and answer.headers["Retry-After"] == "7"
        # The hanging links that never got a worker were refused too, instead of waiting up to a minute each.
        refused = [live.get(f"/api/v1/jobs/{a.json()['job_id']}", headers={"X-API-Key": keys[n]}).json() for n, a in enumerate(hanging)]
        assert sum(job.get("error", {}).get("code") == "fetch_queue_timeout" for job in refused) >= 30 - 8


# -------------------------------------------------------------------------------------------------- database


def test_workers_survive_a_locked_database_and_readiness_reports_it(start_server, fake_video, real_video, face_photo):
    live = start_server(WORKERS=1, HEATMAPS=True, DB_TIMEOUT_S=0.3)
    first = live.upload(fake_video, frames="32").json()
    second = live.upload(real_video, frames="8").json()  # waits behind the first
    wait_until(lambda: live.get(f"/api/v1/jobs/{first['job_id']}").json()["status"] == "running", what="the first job's start")
    lock = sqlite3.connect(services(live).db.path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # another process holds the write lock: every write of the server fails
    try:
        ready = live.get("/readyz")
        assert_error(ready, 503, "unhealthy")
        assert "database" in ready.json()["error"]["message"] and "locked" in ready.json()["database"]
        wait_until(lambda: live.get("/readyz").json().get("unwritten_outcomes", 0) >= 1, what="a job outcome held back")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_until(lambda: live.get("/readyz").status_code == 200, what="readiness after the lock")
    ended = {}
    for job in (first, second):
        ended[job["job_id"]] = wait_until(
            lambda job=job: (body := live.get(f"/api/v1/jobs/{job['job_id']}").json())["status"] in ("done", "failed") and body,
            what="the end of each job",
        )
    for job_id, body in ended.items():
        assert body["status"] == "done" or body["retryable"] is True, body
        if body["status"] == "failed":
            assert live.post(f"/api/v1/jobs/{job_id}/retry?wait=120").status_code == 200
    assert live.upload(face_photo).status_code == 200  # the worker is alive and takes new jobs


# --------------------------------------------------------------------------------------- other clients' data


def test_a_cache_hit_never_shows_another_clients_source(start_server, media_server, face_photo):
    live = start_server()
    db = services(live).db
    alice, bob = (create_key(db, name)[1] for name in ("alice", "bob"))
    signed = media_server.url(f"/files/photo.jpg?signature={SECRET}&w=640")
    first = live.analyze_url_as(alice, signed, wait=60).json()
    assert first["status"] == "done" and first["cached"] is False
    assert SECRET not in json.dumps(first) and "signature=REDACTED" in first["source"]

    with open(face_photo, "rb") as handle:  # the same bytes, uploaded by someone else
        hit = live.post("/api/v1/analyze", files={"file": ("mine.jpg", handle)}, headers={"X-API-Key": bob}).json()
    assert hit["cached"] is True and hit["id"] != first["id"]
    assert hit["source"] == hit["report"]["source"] == "mine.jpg"
    assert hit["report"]["verdict"] == first["report"]["verdict"]
    page = live.get(f"/analyses/{hit['id']}").text
    assert "photo.jpg" not in page and "signature" not in page and "mine.jpg" in page
    stored = live.get(f"/api/v1/analyses/{hit['id']}", headers={"X-API-Key": bob}).json()
    assert stored["fetch"] is None and stored["source"] == "mine.jpg"
    assert live.get(f"/analyses/{hit['id']}/files/frame_00.jpg").status_code == 200  # its own copy of the pictures

    listed = {key: live.get("/api/v1/analyses", headers={"X-API-Key": key}).json()["items"] for key in (alice, bob)}
    assert [item["id"] for item in listed[alice]] == [first["id"]] and [item["id"] for item in listed[bob]] == [hit["id"]]
    assert SECRET not in json.dumps(listed) and SECRET not in live.get(f"/analyses/{first['id']}").text
    assert_error(requests.delete(live.url(f"/api/v1/analyses/{first['id']}"), headers={"X-API-Key": bob}, timeout=30), 404)
    with contextlib.closing(sqlite3.connect(db.path)) as connection:  # the job kept the URL as given only until it ended
        assert connection.execute("SELECT COUNT(*) FROM jobs WHERE fetch_url IS NOT NULL").fetchone()[0] == 0
        sources = [row[0] for row in connection.execute("SELECT source FROM analyses UNION ALL SELECT source FROM jobs")]
    assert sources and not [s for s in sources if SECRET in s]


# -------------------------------------------------------------------------------------------- bad requests


def test_json_bodies_are_capped_and_any_malformed_json_is_a_400(start_server):
    live = start_server(MAX_JSON_BYTES=1024)
    big = json.dumps({"url": "https://example.com/" + "a" * 2000})
    body = assert_error(live.post("/api/v1/analyze", data=big, headers={"Content-Type": "application/json"}), 413, "request_too_large")
    assert "1 KiB" in body["error"]["message"]

    def chunks():
        yield big.encode()

    chunked = live.post("/api/v1/analyze", data=chunks(), headers={"Content-Type": "application/json"})  # no length
    assert_error(chunked, 413, "request_too_large")
    live = start_server()  # the default cap, 64 KiB, with room for very deep nesting
    for text in ("[" * 30_000 + "]" * 30_000, "[" * 60_000, '{"url": ' * 7_000, "[1, 2]", "null"):
        answer = live.post("/api/v1/analyze", data=text, headers={"Content-Type": "application/json"})
        assert_error(answer, 400, "bad_request")
    assert_error(live.post("/api/v1/analyze", data="x" * 100_000, headers={"Content-Type": "application/json"}), 413)


@pytest.mark.parametrize("frames", [1.5, "1.5", True, "two", -1, 0, 65])
def test_frames_must_be_a_whole_number_in_range(live, media_server, frames):
    body = assert_error(live.analyze_url(media_server.url("/files/video.mp4"), frames=frames), 400, "bad_option")
    assert "frames" in body["error"]["message"]


def test_a_malformed_host_name_is_the_users_error_not_the_sources(live):
    # A label over 63 characters cannot be looked up (refused before any DNS query: nothing leaves the machine).
    body = assert_error(live.analyze_url(f"http://{'a' * 64}.example/clip.mp4", wait=30), 400, "host_not_found")
    assert "check the link" in body["error"]["message"] and body["retryable"] is False


def test_report_pages_send_security_headers_and_cors_answers_vary_by_origin(start_server, face_photo):
    extension = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"
    live = start_server(CORS_ORIGINS=[extension])
    done = live.upload(face_photo).json()
    page = live.get(f"/analyses/{done['id']}")
    assert page.status_code == 200
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["Referrer-Policy"] == "no-referrer"
    picture = live.get(f"/analyses/{done['id']}/files/frame_00.jpg")
    assert picture.headers["X-Content-Type-Options"] == "nosniff"
    for origin in (extension, "https://evil.example", None):
        answer = live.get("/api/v1/models", headers={"Origin": origin} if origin else {})
        assert "Origin" in answer.headers["Vary"]


# ------------------------------------------------------------------------------------------------- webhooks


ALERT_ALWAYS = {"ALERT_VERDICTS": ["fake", "real", "uncertain"], "ALERT_MIN_PROBABILITY": 0.0, "WEBHOOK_BACKOFF_S": 0.05}


def test_webhooks_to_private_addresses_need_the_operators_consent(start_server, face_photo):
    receiver = WebhookReceiver()
    try:
        live = start_server(WEBHOOK_URLS=[receiver.url], **ALERT_ALWAYS)
        assert live.upload(face_photo).status_code == 200
        notifier = services(live).notifier
        wait_until(lambda: notifier.failed == 1, 15, "the refused delivery")
        assert receiver.received == []  # refused before any connection, and not retried
    finally:
        receiver.close()


def test_webhooks_do_not_follow_redirects(start_server, face_photo):
    elsewhere = WebhookReceiver()
    redirecting = WebhookReceiver(status=307, location=elsewhere.url)
    try:
        live = start_server(WEBHOOK_URLS=[redirecting.url], WEBHOOK_ALLOW_PRIVATE=True, **ALERT_ALWAYS)
        assert live.upload(face_photo).status_code == 200
        notifier = services(live).notifier
        wait_until(lambda: notifier.failed == 1, 15, "the failed delivery")
        assert len(redirecting.received) == 1 and elsewhere.received == []  # the signed body went nowhere else
    finally:
        redirecting.close()
        elsewhere.close()


# ------------------------------------------------------------------------------------------------ retention


def test_uploads_of_jobs_nobody_retried_expire_with_the_job_retention(start_server, tmp_path, face_photo):
    data = tmp_path / "kept"
    start_server(DATA_DIR=str(data)).close()  # makes the database and folders
    db = Database(data / "deepfake.sqlite3")
    long_ago = format_time(datetime.now(timezone.utc) - timedelta(days=30))
    recently = format_time(datetime.now(timezone.utc) - timedelta(minutes=5))
    uploads = data / "uploads"
    paths = {}
    for name, when in (("old", long_ago), ("new", recently)):
        path = uploads / f"{name}-job" / "clip.mp4"
        path.parent.mkdir(parents=True)
        path.write_bytes(face_photo.read_bytes())
        paths[name] = path
        db.insert_job(
            Job(
                id=f"{name:0<32}",
                created_at=when,
                updated_at=when,
                status="failed",
                source_type="upload",
                source="clip.mp4",
                upload_path=str(path),
                error_code="interrupted",
                retryable=True,
            )
        )
    orphan = uploads / "orphan" / "left.jpg"
    orphan.parent.mkdir()
    orphan.write_bytes(b"left by a process that died")
    old_time = time.time() - 30 * 86400
    import os

    os.utime(orphan.parent, (old_time, old_time))

    live = start_server(DATA_DIR=str(data), JOB_RETENTION_S=86400)
    wait_until(lambda: not paths["old"].exists() and not orphan.exists(), 10, "the expiry of old uploads")
    assert paths["new"].exists()
    assert_error(live.get(f"/api/v1/jobs/{'old':0<32}"), 404)
    assert live.get(f"/api/v1/jobs/{'new':0<32}").json()["retryable"] is True


def test_ipv6_hosts_are_bracketed_in_bind_addresses_and_urls():
    from server.cli import url_host

    assert url_host("::") == "[::]" and url_host("::1") == "[::1]" and url_host("[::1]") == "[::1]"
    assert url_host("127.0.0.1") == "127.0.0.1" and url_host("checker.example") == "checker.example"


def test_data_folders_from_before_get_the_new_columns(tmp_path):
    """A database made by the first release (no client, fetch_url, fetch_json columns) opens and keeps its rows."""
    path = tmp_path / "old.sqlite3"
    connection = sqlite3.connect(path)
    connection.executescript(
        """
        CREATE TABLE analyses (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, source TEXT NOT NULL,
            source_type TEXT NOT NULL, url_key TEXT, content_sha256 TEXT, model TEXT NOT NULL,
            frames INTEGER NOT NULL DEFAULT 0, verdict TEXT NOT NULL, fake_probability REAL, confidence REAL,
            media_kind TEXT, duration_s REAL, model_id TEXT, model_revision TEXT, fetch_json TEXT,
            artefacts_json TEXT NOT NULL DEFAULT '[]');
        CREATE TABLE jobs (id TEXT PRIMARY KEY, created_at TEXT NOT NULL, updated_at TEXT NOT NULL, status TEXT NOT NULL,
            source_type TEXT NOT NULL, source TEXT NOT NULL, upload_path TEXT, options_json TEXT NOT NULL,
            cache_key TEXT, stage TEXT NOT NULL DEFAULT 'queued', fraction REAL NOT NULL DEFAULT 0, media_kind TEXT,
            analysis_id TEXT, cached INTEGER NOT NULL DEFAULT 0, error_code TEXT, error_message TEXT,
            error_status INTEGER, retryable INTEGER NOT NULL DEFAULT 0, worker TEXT, attempts INTEGER NOT NULL DEFAULT 0);
        INSERT INTO analyses (id, created_at, source, source_type, model, verdict)
            VALUES ('a1', '2025-01-01T00:00:00.000Z', 'photo.jpg', 'upload', 'default', 'real');
        """
    )
    connection.commit()
    connection.close()
    db = Database(path)
    assert db.revision() == "0004"  # brought to the first revision, stamped, then the later migrations applied
    rows, total = db.list_analyses()
    assert total == 1 and rows[0].id == "a1"
    assert db.get_analysis("a1").client is None and db.get_analysis("a1").job_id is None
    assert Path(path).stat().st_size > 0


def test_an_analysis_over_the_job_time_limit_is_stopped_and_the_worker_goes_on(start_server, fake_video):
    live = start_server(WORKERS=1, JOB_TIMEOUT_S=0.3)
    slow = live.upload(fake_video, frames="64").json()  # 64 key frames take longer than 0.3 s here
    job = live.get(f"/api/v1/jobs/{slow['job_id']}?wait=60").json()
    assert job["status"] == "failed" and job["error"]["code"] == "job_timeout" and job["retryable"] is True, job
    assert "0.3 s" in job["error"]["message"]
    # the worker goes on (it is free a moment after the outcome is written)
    health = wait_until(lambda: (r := live.get("/readyz")).status_code == 200 and r.json(), 10, "readiness after the stop")
    assert health["jobs"]["analysis"]["dead"] == 0 and health["jobs"]["analysis"]["busy"] == 0


def test_a_job_run_again_after_its_analysis_was_stored_makes_no_second_analysis(start_server, fake_video):
    # A worker that dies between storing the analysis and writing the job's end: the job runs again (its message is
    # delivered again) and must answer with the analysis it made, not make another (nor send a second webhook).
    live = start_server(WORKERS=1, CACHE_TTL_S=0)  # no cache: only the job's own record can stop a second analysis
    first = live.get(f"/api/v1/jobs/{live.upload(fake_video, frames='4').json()['job_id']}?wait=60").json()
    assert first["status"] == "done"
    jobs = services(live).analyses.jobs
    stored = jobs.get(first["job_id"])
    upload = jobs.uploads_dir / "again" / "clip.mp4"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(fake_video.read_bytes())
    services(live).db.update_job(first["job_id"], status="queued", analysis_id=None, upload_path=str(upload))
    jobs._enqueue(stored)
    again = wait_until(lambda: (j := live.get(f"/api/v1/jobs/{first['job_id']}").json())["status"] == "done" and j, 60, "the re-run")
    assert again["id"] == first["id"] and live.get("/api/v1/analyses").json()["total"] == 1
