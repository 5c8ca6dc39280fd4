"""The server's storage layer on both databases it supports: SQLite (the default) and PostgreSQL (a real server,
tests/support/postgres.py), with the same behaviour, migrations applied on open, and the server running on either."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest

from server.db import Database, format_time, utc_now


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path):
    if request.param == "sqlite":
        return Database(tmp_path / "deepfake.sqlite3")
    return Database(request.getfixturevalue("postgres").new_database())


def analysis(id_: str, verdict: str, client: str, created_at: str, **extra) -> dict:
    return {
        "id": id_, "created_at": created_at, "source": f"{id_}.jpg", "source_type": "upload", "model": "default",
        "frames": 0, "verdict": verdict, "fake_probability": 0.9 if verdict == "fake" else 0.1, "confidence": 0.9,
        "client": client, "content_sha256": f"sha-{id_}", **extra,
    }  # fmt: skip


def job(id_: str, status: str = "queued", **extra) -> dict:
    now = utc_now()
    return {
        "id": id_, "created_at": now, "updated_at": now, "status": status, "source_type": "url",
        "source": "https://example.com/p/1", "options_json": {"frames": 8}, **extra,
    }  # fmt: skip


def test_the_schema_is_at_the_newest_revision_and_writable(database):
    assert database.revision() == "0004" and database.check_writable() is None
    assert Database(database.url).revision() == "0004"  # opening again migrates nothing and keeps the data


def test_history_filters_pages_stats_and_cache(database):
    day = datetime(2025, 1, 1, tzinfo=timezone.utc)
    for n, verdict in enumerate(["fake", "real", "uncertain", "fake", "real"]):
        database.insert_analysis(analysis(f"a{n}", verdict, "key:alice" if n % 2 else "key:bob", format_time(day + timedelta(days=n))))
    rows, total = database.list_analyses(limit=2)
    assert total == 5 and [r["id"] for r in rows] == ["a4", "a3"]
    rows, total = database.list_analyses(verdicts=["fake", "uncertain"], since="2025-01-02", until="2025-01-05")
    assert total == 2 and [r["id"] for r in rows] == ["a3", "a2"]
    rows, total = database.list_analyses(client="key:alice", offset=1)
    assert total == 2 and [r["id"] for r in rows] == ["a1"]
    stats = database.stats(since="2025-01-02")
    assert stats == [
        {"day": "2025-01-02", "verdict": "real", "n": 1},
        {"day": "2025-01-03", "verdict": "uncertain", "n": 1},
        {"day": "2025-01-04", "verdict": "fake", "n": 1},
        {"day": "2025-01-05", "verdict": "real", "n": 1},
    ]
    database.insert_analysis(analysis("recent", "fake", "key:bob", utc_now()))
    assert database.find_cached("content_sha256", "sha-recent", "default", 0, 60)["id"] == "recent"
    assert database.find_cached("content_sha256", "sha-a0", "default", 0, 60) is None  # older than the TTL
    assert database.find_cached("content_sha256", "sha-recent", "default", 8, 60) is None  # another frame count
    database.insert_job(job("j-recent", "done", analysis_id="recent"))
    assert database.delete_analysis("recent") and not database.delete_analysis("recent")
    assert database.get_analysis("recent") is None and database.get_job("j-recent") is None


def test_jobs_change_state_once_and_expire(database):
    database.insert_job(job("j1", client="ip:1", cached=False))
    assert database.get_job("j1")["options"] == {"frames": 8}
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
    assert len(claimed) == 1 and stored["status"] == "running" and stored["worker"] == f"w{claimed[0]}"
    assert stored["cached"] == 1  # a flag stored as 0/1 on both databases
    assert not database.update_job("j1", only_if_status=("queued",), status="failed")
    assert database.update_job("j1", only_if_status=("queued", "running"), status="done", upload_path="/tmp/up/j1")
    assert [j["id"] for j in database.jobs_with_status("done")] == ["j1"]
    assert database.upload_paths_in_use() == {"/tmp/up/j1"}
    assert database.expire_jobs(format_time(datetime.now(timezone.utc) + timedelta(seconds=1))) == ["/tmp/up/j1"]
    assert database.get_job("j1") is None


def test_api_keys(database):
    database.insert_api_key("id1", "extension", "hash1", "dfk_ab")
    database.touch_api_key("id1")
    assert database.api_key_by_hash("hash1")["last_used_at"] and database.active_api_key_count() == 1
    assert database.revoke_api_key("dfk_ab") == 1 and database.revoke_api_key("dfk_ab") == 0
    assert database.api_key_by_hash("hash1") is None and database.active_api_key_count() == 0
    assert [k["name"] for k in database.list_api_keys()] == ["extension"]


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
