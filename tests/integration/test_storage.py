"""The server's storage layer on both databases it supports: SQLite (the default) and PostgreSQL (a real server,
tests/support/postgres.py), with the same behaviour, migrations applied on open, and the server running on either."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from server.db import Database, format_time, utc_now
from server.openapi import SCHEMAS
from server.records import AnalysisRecord, AnalysisSummary, ApiKey, Job, VerdictCount


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return Database(tmp_path / "deepfake.sqlite3")
    return Database(request.getfixturevalue("postgres").new_database())


def analysis(id_: str, verdict: str, client: str, created_at: str, **extra) -> AnalysisRecord:
    return AnalysisRecord(
        id=id_, created_at=created_at, source=f"{id_}.jpg", source_type="upload", model="default", frames=0,
        verdict=verdict, fake_probability=0.9 if verdict == "fake" else 0.1, confidence=0.9, client=client,
        content_sha256=f"sha-{id_}", **extra,
    )  # fmt: skip


def job(id_: str, status: str = "queued", **extra) -> Job:
    now = utc_now()
    return Job(
        id=id_, created_at=now, updated_at=now, status=status, source_type="url", source="https://example.com/p/1",
        options={"frames": 8}, **extra,
    )  # fmt: skip


def test_the_schema_is_at_the_newest_revision_and_writable(database):
    assert database.revision() == "0004" and database.check_writable() is None
    assert Database(database.url).revision() == "0004"  # opening again migrates nothing and keeps the data


def test_history_filters_pages_stats_and_cache(database):
    day = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for n, verdict in enumerate(["fake", "real", "uncertain", "fake", "real"]):
        database.insert_analysis(analysis(f"a{n}", verdict, "key:alice" if n % 2 else "key:bob", format_time(day + timedelta(days=n))))
    rows, total = database.list_analyses(limit=2)
    assert total == 5 and [r.id for r in rows] == ["a4", "a3"]
    rows, total = database.list_analyses(verdicts=["fake", "uncertain"], since="2025-01-02", until="2025-01-05")
    assert total == 2 and [r.id for r in rows] == ["a3", "a2"]
    rows, total = database.list_analyses(client="key:alice", offset=1)
    assert total == 2 and [r.id for r in rows] == ["a1"]
    stats = database.stats(since="2025-01-02")
    assert stats == [
        VerdictCount("2025-01-02", "real", 1),
        VerdictCount("2025-01-03", "uncertain", 1),
        VerdictCount("2025-01-04", "fake", 1),
        VerdictCount("2025-01-05", "real", 1),
    ]
    database.insert_analysis(analysis("recent", "fake", "key:bob", utc_now()))
    assert database.find_cached("content_sha256", "sha-recent", "default", 0, 60).id == "recent"
    assert database.find_cached("content_sha256", "sha-a0", "default", 0, 60) is None  # older than the TTL
    assert database.find_cached("content_sha256", "sha-recent", "default", 8, 60) is None  # another frame count
    database.insert_job(job("j-recent", "done", analysis_id="recent"))
    assert database.delete_analysis("recent") and not database.delete_analysis("recent")
    assert database.get_analysis("recent") is None and database.get_job("j-recent") is None


def test_every_read_answers_typed_rows_that_read_back_as_written(database):
    # db.py hands its callers the records of server/records.py, never a dict; the HTTP layer makes the JSON
    stored = analysis(
        "t1", "fake", "key:alice", utc_now(), job_id="j-t1", url_key="u1", media_kind="image", duration_s=0.0,
        model_id="default", model_revision="abc", fetch_json='{"title": "a post"}', artefacts_json='[{"name": "frame_0.jpg"}]',
    )  # fmt: skip
    database.insert_analysis(stored)
    assert database.get_analysis("t1") == stored and database.analysis_for_job("j-t1") == stored
    assert database.find_cached("url_key", "u1", "default", 0, 60) == stored
    assert stored.fetch == {"title": "a post"} and stored.artefacts == [{"name": "frame_0.jpg"}]
    rows, total = database.list_analyses()
    assert total == 1 and rows == [AnalysisSummary.from_row(stored.to_row())]
    # a listing answers these columns, in this order, then its two links (the OpenAPI AnalysisSummary)
    listed = list(SCHEMAS["AnalysisSummary"]["properties"])
    assert [*rows[0].to_dict(), "report_url", "api_url"] == listed
    assert rows[0].to_dict()["fake_probability"] == 0.9 and rows[0].to_dict()["model_revision"] == "abc"
    (count,) = database.stats()
    assert isinstance(count, VerdictCount) and (count.verdict, count.n) == ("fake", 1)

    queued = job("j-t1", cache_key="k1", client="key:alice", fetch_url="https://example.com/p/1")
    database.insert_job(queued)
    assert database.get_job("j-t1") == queued and database.active_job_for("k1") == queued
    assert database.jobs_with_status("queued") == [queued] and queued.needs_fetch
    database.update_job("j-t1", status="failed", retryable=True, error_code="fetch_failed")
    failed = database.get_job("j-t1")
    assert isinstance(failed, Job) and failed.retryable is True and failed.error_code == "fetch_failed"

    database.insert_api_key("id1", "extension", "hash1", "dfk_ab")
    key = database.api_key_by_hash("hash1")
    assert isinstance(key, ApiKey) and (key.id, key.name, key.prefix, key.client) == ("id1", "extension", "dfk_ab", "key:id1")
    assert database.list_api_keys() == [key] and not hasattr(key, "key_hash")  # the hash stays in the database


def test_jobs_change_state_once_and_expire(database):
    database.insert_job(job("j1", client="ip:1", cached=False))
    assert database.get_job("j1").options == {"frames": 8}
    assert database.active_job_for("k") is None and database.url_jobs_before_analysis("ip:1") == 1
    claimed = []

    def claim(worker: int) -> None:  # workers race for one queued job: the conditional update lets one win
        if database.update_job("j1", only_if_status="queued", status="running", worker=f"w{worker}", cached=True):
            claimed.append(worker)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stored = database.get_job("j1")
    assert len(claimed) == 1 and stored.status == "running" and stored.worker == f"w{claimed[0]}"
    assert stored.cached is True  # a flag stored as 0/1 on both databases, read back as a bool
    assert not database.update_job("j1", only_if_status=("queued",), status="failed")
    assert database.update_job("j1", only_if_status=("queued", "running"), status="done", upload_path="/tmp/up/j1")
    assert [j.id for j in database.jobs_with_status("done")] == ["j1"]
    assert database.upload_paths_in_use() == {"/tmp/up/j1"}
    assert database.expire_jobs(format_time(datetime.now(timezone.utc) + timedelta(seconds=1))) == ["/tmp/up/j1"]
    assert database.get_job("j1") is None


def test_api_keys(database):
    database.insert_api_key("id1", "extension", "hash1", "dfk_ab")
    database.touch_api_key("id1")
    assert database.api_key_by_hash("hash1").last_used_at and database.active_api_key_count() == 1
    assert database.revoke_api_key("dfk_ab") == 1 and database.revoke_api_key("dfk_ab") == 0
    assert database.api_key_by_hash("hash1") is None and database.active_api_key_count() == 0
    assert [k.name for k in database.list_api_keys()] == ["extension"]


def test_the_server_keeps_its_history_in_postgresql(start_server, postgres, face_photo, fake_video, tmp_path):
    url, data = postgres.new_database(), str(tmp_path / "shared-data")  # the pictures and reports: local files here
    live = start_server(DATABASE_URL=url, DATA_DIR=data)
    assert live.get("/readyz").status_code == 200
    image = live.upload(face_photo)
    assert image.status_code == 200, image.text
    queued = live.upload(fake_video, frames="4")
    assert queued.status_code == 202, queued.text
    done = live.get(f"/api/v1/jobs/{queued.json()['job_id']}?wait=60").json()  # the long-poll, on PostgreSQL
    assert done["status"] == "done" and done["report"]["verdict"] == "fake"
    listed = live.get("/api/v1/analyses").json()
    assert listed["total"] == 2 and {i["id"] for i in listed["items"]} == {image.json()["id"], done["id"]}
    live.close()
    again = start_server(DATABASE_URL=url, DATA_DIR=data)  # a new process on the same database sees the history
    assert again.get(f"/api/v1/analyses/{done['id']}").json()["report"]["verdict"] == "fake"
    assert again.get(f"/api/v1/jobs/{queued.json()['job_id']}").json()["status"] == "done"
    assert again.get("/api/v1/stats").json()["total"] == 2
