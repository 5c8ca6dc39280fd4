"""The Flask backend, served for real on 127.0.0.1 by werkzeug in a thread, driven with real HTTP requests.

Media comes from `media_server` (tests/support/mediaserver.py), a real HTTP server on 127.0.0.1 serving the shared media.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from datetime import date, timedelta

import pytest
import requests

from tests.integration.test_analyze import check_report_contract
from tests.support.liveserver import assert_error
from tests.support.mediafactory import truncate
from tests.support.mediaserver import MediaServer
from tests.support.webhooks import WebhookReceiver

# ---------------------------------------------------------------------------------------------- the basics


def test_health_ready_models(live):
    assert live.get("/healthz").json() == {"status": "ok"}
    ready = live.get("/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    models = live.get("/api/v1/models").json()
    assert models["default"] == "default" and models["models"][0]["loaded"] is True
    assert "architecture" in models["models"][0]


def test_image_upload_answers_200_with_the_report(live, face_photo):
    response = live.upload(face_photo)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "done" and body["cached"] is False
    assert body["report_url"] == live.url(f"/analyses/{body['id']}")
    check_report_contract(body["report"])
    assert body["report"]["source"] == face_photo.name and body["report"]["media"]["kind"] == "image"
    assert body["report"]["timings_ms"]["fetch"] == 0
    stored = live.get(f"/api/v1/analyses/{body['id']}").json()
    assert stored["report"] == body["report"] and stored["source_type"] == "upload"


def test_upload_type_is_decided_by_content(live, tmp_path, face_photo, fake_video):
    text = tmp_path / "holiday.jpg"
    text.write_text("this is not a picture\n" * 50)
    assert_error(live.upload(text), 415, "unsupported_media")
    disguised = live.upload(face_photo, name="notes.txt")
    assert disguised.status_code == 200 and disguised.json()["report"]["media"]["kind"] == "image"
    cut = truncate(fake_video, tmp_path / "cut.mp4", 0.5)
    assert_error(live.upload(cut), 422, "corrupt_media")
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    assert_error(live.upload(empty), 422, "empty_media")


def test_video_url_answers_202_then_the_job_has_the_report(live, media_server):
    url = media_server.url("/files/video.mp4")
    response = live.analyze_url(url, frames=8)
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["status"] in ("queued", "running")
    assert accepted["status_url"] == live.url(f"/api/v1/jobs/{accepted['job_id']}") == response.headers["Location"]
    seen = live.get(f"/api/v1/jobs/{accepted['job_id']}").json()
    assert 0.0 <= seen["progress"]["fraction"] <= 1.0 and seen["progress"]["stage"]
    done = live.poll(accepted["job_id"])
    assert done["status"] == "done" and done["progress"]["fraction"] == 1.0 and done["cached"] is False
    assert done["created_at"] == seen["created_at"] == accepted["created_at"]  # the job's, in every answer about it
    report = done["report"]
    check_report_contract(report)
    assert report["source"] == url and report["media"]["kind"] == "video" and report["media"]["frames_analyzed"] == 8
    timings = report["timings_ms"]
    assert timings["fetch"] > 0 and timings["total"] >= timings["fetch"] + timings["decode"]
    assert done["report_url"] == live.url(f"/analyses/{done['id']}")
    fetched = live.get(f"/api/v1/analyses/{done['id']}").json()["fetch"]
    assert fetched["final_url"] == url and fetched["method"] == "http"  # a direct file: no yt-dlp process


@pytest.mark.parametrize("path", ["/files/hls/index.m3u8", "/page/video.mp4"])
def test_video_url_with_wait_answers_200(live, media_server, path):
    response = live.analyze_url(media_server.url(path), wait=120, frames=6)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "done" and body["report"]["media"]["kind"] == "video"
    check_report_contract(body["report"])


def test_a_url_answers_202_at_once_and_its_job_answers_the_moment_it_is_done(live, media_server):
    accepted = live.analyze_url(media_server.url("/files/photo.jpg"))
    assert accepted.status_code == 202, accepted.text  # the request never waits for a fetch it did not ask for
    job_id = accepted.json()["job_id"]
    done = live.get(f"/api/v1/jobs/{job_id}?wait=60").json()  # long-poll: answers when the job ends
    assert done["status"] == "done" and done["report"]["media"]["kind"] == "image"
    waited = live.analyze_url(media_server.url("/files/photo.jpg?size=2"), wait=60)
    assert waited.status_code == 200 and waited.json()["report"]["media"]["kind"] == "image"
    assert_error(live.get(f"/api/v1/jobs/{job_id}?wait=soon"), 400, "bad_option")
    assert_error(live.get(f"/api/v1/jobs/{job_id}?wait=-1"), 400, "bad_option")


def test_results_are_cached_by_url_and_by_content(live, media_server, fake_video):
    first = live.analyze_url(media_server.url("/files/video.mp4?b=2&a=1"), wait=120, frames=5).json()
    assert first["cached"] is False
    shared = media_server.url("/files/video.mp4?a=1&b=2&utm_source=feed#t=3")
    again = live.analyze_url(shared, frames=5)
    assert again.status_code == 200 and again.json()["cached"] is True and again.json()["id"] == first["id"]
    assert again.json()["source"] == again.json()["report"]["source"] == shared  # what this request sent
    requests_before = len(media_server.requests)
    # The same bytes uploaded, or behind another URL: the content hash finds the earlier analysis.
    uploaded = live.upload(fake_video, frames="5").json()
    assert uploaded["cached"] is True and uploaded["id"] == first["id"] and uploaded["source"] == fake_video.name
    other_url = live.analyze_url(media_server.url("/chunked/video.mp4"), wait=120, frames=5).json()
    assert other_url["cached"] is True and other_url["id"] == first["id"]
    assert other_url["report"]["source"] == media_server.url("/chunked/video.mp4")
    assert len(media_server.requests) > requests_before  # fetched (to hash it), not analysed again
    different = live.analyze_url(media_server.url("/files/video.mp4?a=1&b=2"), wait=120, frames=6).json()
    assert different["cached"] is False  # other options, other analysis
    stats = live.get("/api/v1/stats").json()
    assert stats["total"] == 2


def test_cache_can_be_turned_off(start_server, face_photo):
    live = start_server(CACHE_TTL_S=0)
    first, second = live.upload(face_photo).json(), live.upload(face_photo).json()
    assert first["id"] != second["id"] and second["cached"] is False


def test_html_report_with_timeline_key_frames_and_heatmaps(start_server, media_server):
    live = start_server(HEATMAPS=True)
    body = live.analyze_url(media_server.url("/files/video.mp4"), wait=120, frames=4).json()
    page = live.get(f"/analyses/{body['id']}")
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    html = page.text
    verdict = body["report"]["verdict"]
    assert f'class="badge {verdict}"' in html and html.count("Timeline") == 1 and "fake probability" in html
    assert "A screening aid, not proof" in html and "Dots are each frame&#39;s own score" in html  # caveat, guide
    assert "confidence" not in html and "verdict rule: uncertain between" in html  # percentages, not decimals
    assert "0." not in html.split("verdict rule:")[1].split("<")[0]
    assert "UNTRAINED" in html or body["report"]["model"]["trained"]
    for name in ["timeline.png", "frame_00.jpg", "frame_03.jpg"]:
        assert f"/analyses/{body['id']}/files/{name}" in html
        picture = live.get(f"/analyses/{body['id']}/files/{name}")
        assert picture.status_code == 200 and picture.headers["Content-Type"] in ("image/png", "image/jpeg")
        assert picture.content[:3] in (b"\x89PN", b"\xff\xd8\xff")
    artefacts = live.get(f"/api/v1/analyses/{body['id']}").json()["artefacts"]
    kinds = {a["kind"] for a in artefacts}
    assert {"timeline", "frame"} <= kinds
    if any(frame["faces"] for frame in body["report"]["frames"]):
        assert "heatmap" in kinds and "heatmap_" in html
    assert_error(live.get(f"/analyses/{body['id']}/files/..%2Freport.json"), 404)
    assert_error(live.get("/analyses/0123456789abcdef0123456789abcdef"), 404, "not_found")


def test_stored_reports_are_served_as_they_were_stored(live, face_photo, tmp_path):
    """The server reads a stored report.json back typed (Report.from_dict) and serves what was stored: a fresh
    Report key for key, and a Report stored by an older version (schema 1.0) without the keys it never had."""
    body = live.upload(face_photo).json()
    stored_path = tmp_path / "data0" / "artefacts" / body["id"] / "report.json"
    stored = json.loads(stored_path.read_text())
    assert live.get(f"/api/v1/analyses/{body['id']}").json()["report"] == stored == body["report"]
    old = {k: v for k, v in stored.items() if k not in ("unfamiliar", "provenance")}
    old.update(schema_version="1.0", tracks=[{k: v for k, v in t.items() if k != "unfamiliar"} for t in stored["tracks"]])
    old["model"] = {k: v for k, v in stored["model"].items() if k != "backend"}
    stored_path.write_text(json.dumps(old))
    assert live.get(f"/api/v1/analyses/{body['id']}").json()["report"] == old
    page = live.get(f"/analyses/{body['id']}")
    assert page.status_code == 200 and "schema 1.0" in page.text


# ------------------------------------------------------------------------------------------------- errors


def test_every_error_is_json(start_server, media_server, detector):
    live = start_server(MODELS=["org/other-model"])

    @live.app.get("/boom")
    def boom():
        raise RuntimeError("a bug")

    assert_error(live.get("/no/such/page"), 404, "not_found")
    assert_error(live.get("/api/v1/analyze"), 405, "method_not_allowed")
    assert_error(live.get("/boom"), 500, "internal_error")
    assert "a bug" not in live.get("/boom").text and "Traceback" not in live.get("/boom").text
    assert_error(live.post("/api/v1/analyze", data="{not json", headers={"Content-Type": "application/json"}), 400)
    assert_error(live.post("/api/v1/analyze", json={"link": "x"}), 400, "bad_request")
    assert_error(live.post("/api/v1/analyze", files={"upload": ("a.jpg", b"x")}), 400, "bad_request")
    assert_error(live.analyze_url(media_server.url("/files/video.mp4"), frames=0), 400, "bad_option")
    assert_error(live.analyze_url(media_server.url("/files/video.mp4"), frames="many"), 400, "bad_option")
    assert_error(live.analyze_url(media_server.url("/files/video.mp4"), model="someone/else"), 400, "unknown_model")
    assert_error(live.post("/api/v1/analyze?wait=soon", json={"url": media_server.url("/files/photo.jpg")}), 400, "bad_option")
    assert_error(live.get("/api/v1/jobs/nope"), 404, "not_found")
    assert_error(live.get("/api/v1/analyses?verdict=maybe"), 400, "bad_option")
    assert_error(live.get("/api/v1/analyses?since=yesterday"), 400, "bad_option")
    for url, code in [
        ("blob:https://www.example.com/0b5c1a52", "unsupported_url_scheme"),
        ("data:video/mp4;base64,AAAA", "unsupported_url_scheme"),
        ("file:///etc/passwd", "unsupported_url_scheme"),
        ("javascript:alert(1)", "unsupported_url_scheme"),
        ("not a url", "invalid_url"),
    ]:
        assert_error(live.analyze_url(url), 400, code)
    # Failures of the source or of its content, found while the request waits
    assert_error(live.analyze_url(media_server.url("/files/missing.mp4"), wait=60), 502, "fetch_failed")
    assert_error(live.analyze_url(media_server.url("/files/empty.html"), wait=60), 422, "no_media_found")
    body = assert_error(live.analyze_url(media_server.url("/files/notes.txt"), wait=60), 415, "unsupported_media")
    failed = live.get(f"/api/v1/jobs/{body['job_id']}").json()
    assert failed["status"] == "failed" and failed["retryable"] is False and failed["error"]["code"] == "unsupported_media"
    assert_error(live.post(f"/api/v1/jobs/{body['job_id']}/retry"), 409, "not_retryable")


# ------------------------------------------------------------------------------------------------- limits


def test_upload_limit_is_413(start_server, fake_video, face_photo):
    live = start_server(MAX_UPLOAD_BYTES=200_000)
    body = assert_error(live.upload(fake_video), 413, "upload_too_large")
    assert "MB" in body["error"]["message"]
    assert live.upload(face_photo).status_code == 200


def test_download_size_limit_is_413(start_server, media_server):
    live = start_server(MAX_FETCH_BYTES=300_000)
    for path in ("/files/video.mp4", "/chunked/video.mp4"):
        body = assert_error(live.analyze_url(media_server.url(path), wait=60), 413, "media_too_large")
        assert live.get(f"/api/v1/jobs/{body['job_id']}").json()["retryable"] is False


def test_duration_limit_is_413(start_server, media_server, fake_video):
    live = start_server(MAX_DURATION_S=5)
    assert_error(live.upload(fake_video), 413, "media_too_long")  # judged before any job is made
    assert_error(live.analyze_url(media_server.url("/files/video.mp4"), wait=60), 413, "media_too_long")
    assert_error(live.analyze_url(media_server.url("/files/hls/index.m3u8"), wait=60), 413, "media_too_long")


@pytest.mark.slow
def test_fetch_time_limit_is_504_and_retryable(start_server, media_server):
    live = start_server(FETCH_TIMEOUT_S=2)
    body = assert_error(live.analyze_url(media_server.url("/slow/video.mp4"), wait=60), 504, "fetch_timeout")
    assert body["retryable"] is True
    retried = live.post(f"/api/v1/jobs/{body['job_id']}/retry")
    assert retried.status_code in (202, 504)


def test_rate_limit_is_429_with_retry_after(start_server):
    live = start_server(RATE_LIMIT="2/minute")
    for _ in range(2):
        assert_error(live.post("/api/v1/analyze", json={}), 400)
    limited = live.post("/api/v1/analyze", json={})
    assert_error(limited, 429, "rate_limited")
    assert int(limited.headers["Retry-After"]) > 0
    assert live.get("/api/v1/stats").status_code == 200  # other routes have their own, larger limit
    assert live.get("/healthz").status_code == 200


@pytest.mark.slow
def test_full_queue_is_503_with_its_own_retry_after(start_server, media_server):
    live = start_server(FETCH_WORKERS=1, CLIENT_FETCHES=1, QUEUE_SIZE=1, FETCH_TIMEOUT_S=6, RETRY_AFTER_S=7)
    running = live.analyze_url(media_server.url("/slow/video.mp4"))  # keeps the only fetch worker busy
    assert running.status_code == 202
    assert "Retry-After" not in running.headers  # only a 429 or a 503 says when to come back
    deadline = time.monotonic() + 30
    while live.get(f"/api/v1/jobs/{running.json()['job_id']}").json()["status"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    queued = live.analyze_url(media_server.url("/slow/photo.jpg"))
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    same = live.analyze_url(media_server.url("/slow/photo.jpg"))  # the same request shares the queued job
    assert same.status_code == 202 and same.json()["job_id"] == queued.json()["job_id"]
    full = live.analyze_url(media_server.url("/files/photo.jpg"))
    assert_error(full, 503, "queue_full")
    assert full.headers["Retry-After"] == "7"  # the configured advice, not the rate limiter's window
    assert live.get(f"/api/v1/jobs/{queued.json()['job_id']}?wait=60").json()["status"] == "done"  # the queue drains


# ------------------------------------------------------------------------------------------ URL safety


def test_private_addresses_are_refused_by_default(start_server, media_server, media_root):
    with MediaServer(media_root) as forbidden:
        trusted = [("127.0.0.1", media_server.port)]  # stands for a public site; nothing else on 127.0.0.1 is
        live = start_server(ALLOW_PRIVATE_URLS=False, TRUSTED_ENDPOINTS=trusted)
        refused = assert_error(live.analyze_url(forbidden.url("/files/photo.jpg")), 400, "unsafe_url")
        assert "DEEPFAKE_ALLOW_PRIVATE_URLS=1" in refused["error"]["message"]  # how a private deployment allows it
        assert_error(live.analyze_url("http://localhost:1/video.mp4"), 400, "unsafe_url")
        assert_error(live.analyze_url("http://169.254.169.254/latest/meta-data/"), 400, "unsafe_url")
        assert_error(live.analyze_url("http://[::ffff:127.0.0.1]:1/x.mp4"), 400, "unsafe_url")
        redirect = media_server.url("/redirect?to=" + forbidden.url("/files/video.mp4"))
        body = assert_error(live.analyze_url(redirect, wait=60), 400, "unsafe_url")
        assert "loopback" in body["error"]["message"]
        assert forbidden.requests == []
        ok = live.analyze_url(media_server.url("/files/photo.jpg"), wait=60)
        assert ok.status_code == 200


# ------------------------------------------------------------------------------------------- auth, CORS


def test_cors_only_for_configured_origins(start_server):
    extension = "chrome-extension://abcdefghijklmnopabcdefghijklmnop"
    live = start_server(CORS_ORIGINS=[extension, "http://127.0.0.1:7860"])
    allowed = live.get("/api/v1/models", headers={"Origin": extension})
    assert allowed.headers["Access-Control-Allow-Origin"] == extension
    preflight = requests.options(
        live.url("/api/v1/analyze"),
        headers={
            "Origin": extension,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
        timeout=30,
    )
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == extension
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    other = live.get("/api/v1/models", headers={"Origin": "https://evil.example"})
    assert other.status_code == 200 and "Access-Control-Allow-Origin" not in other.headers
    no_cors = start_server().get("/api/v1/models", headers={"Origin": extension})
    assert "Access-Control-Allow-Origin" not in no_cors.headers


def test_api_keys(start_server, face_photo):
    from server.auth import create_key

    live = start_server()
    db = live.app.extensions["deepfake"].db
    assert live.get("/api/v1/stats").status_code == 200  # no key exists: open (and loopback only)
    key_id, key = create_key(db, "extension")
    assert key not in json.dumps([asdict(k) for k in db.list_api_keys()]) and db.list_api_keys()[0].prefix == key[:10]
    body = assert_error(live.get("/api/v1/stats"), 401, "unauthorized")
    assert "Bearer" in body["error"]["message"]
    assert_error(live.get("/api/v1/stats", headers={"Authorization": "Bearer dfk_wrong"}), 401)
    assert_error(live.get("/api/v1/stats", headers={"X-API-Key": key + "x"}), 401)
    assert live.get("/api/v1/stats", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert live.get("/api/v1/stats", headers={"X-API-Key": key}).status_code == 200
    with open(face_photo, "rb") as handle:
        done = live.post("/api/v1/analyze", files={"file": handle}, headers={"X-API-Key": key}).json()
    # Public without a key: probes, the API description, and report pages (opened by their unguessable link)
    for path in (
        "/healthz",
        "/readyz",
        "/api/v1/openapi.json",
        f"/analyses/{done['id']}",
        f"/analyses/{done['id']}/files/frame_00.jpg",
    ):
        assert live.get(path).status_code == 200, path
    _, other_key = create_key(db, "demo")
    assert db.revoke_api_key(key_id) == 1
    assert_error(live.get("/api/v1/stats", headers={"X-API-Key": key}), 401)
    assert live.get("/api/v1/stats", headers={"X-API-Key": other_key}).status_code == 200


def test_rate_limits_count_per_key(start_server):
    from server.auth import create_key

    live = start_server(RATE_LIMIT="1/minute")
    db = live.app.extensions["deepfake"].db
    keys = [create_key(db, name)[1] for name in ("a", "b")]
    for key in keys:
        assert_error(live.post("/api/v1/analyze", json={}, headers={"X-API-Key": key}), 400)
    for key in keys:
        assert_error(live.post("/api/v1/analyze", json={}, headers={"X-API-Key": key}), 429)


# --------------------------------------------------------------------------------------- history, exports


def test_history_stats_export_and_delete(live, face_photo, full_frame, media_server):
    ids = [live.upload(path).json()["id"] for path in (face_photo, full_frame)]
    ids.append(live.analyze_url(media_server.url("/files/video.mp4"), wait=120, frames=4).json()["id"])
    page = live.get("/api/v1/analyses?limit=2").json()
    assert page["total"] == 3 and len(page["items"]) == 2 and page["next_url"]
    rest = requests.get(page["next_url"], timeout=30).json()
    assert len(rest["items"]) == 1 and rest["next_url"] is None
    assert {item["id"] for item in page["items"] + rest["items"]} == set(ids)
    item = page["items"][0]
    # a listing item has the documented keys, in the documented order, with the values of the analysis it lists
    documented = live.get("/api/v1/openapi.json").json()["components"]["schemas"]["AnalysisSummary"]["properties"]
    assert list(item) == list(documented)
    full = requests.get(item["api_url"], timeout=30).json()
    assert {key: item[key] for key in ("created_at", "source", "source_type")} == {key: full[key] for key in ("created_at", "source", "source_type")}
    assert (item["verdict"], item["fake_probability"], item["model_id"]) == (
        full["report"]["verdict"], full["report"]["fake_probability"], full["report"]["model"]["id"]
    )  # fmt: skip
    verdict = item["verdict"]
    filtered = live.get(f"/api/v1/analyses?verdict={verdict}").json()
    assert filtered["total"] >= 1 and all(i["verdict"] == verdict for i in filtered["items"])
    today, tomorrow = date.today().isoformat(), (date.today() + timedelta(days=1)).isoformat()
    assert live.get(f"/api/v1/analyses?since={today}&until={today}").json()["total"] == 3
    assert live.get(f"/api/v1/analyses?since={tomorrow}").json()["total"] == 0

    stats = live.get("/api/v1/stats").json()
    assert stats["total"] == 3 and sum(stats["by_verdict"].values()) == 3
    assert list(stats["by_day"][-1]) == ["day", "real", "fake", "uncertain", "no_face", "total"]
    assert stats["by_day"][-1]["day"] == live.get("/api/v1/analyses").json()["items"][0]["created_at"][:10]

    exported = live.get("/api/v1/analyses/export?format=csv")
    assert exported.headers["Content-Type"].startswith("text/csv") and "attachment" in exported.headers["Content-Disposition"]
    header = "id,created_at,source,source_type,verdict,fake_probability,confidence,media_kind,duration_s,model,model_id,model_revision,report_url"
    assert exported.text.splitlines()[0] == header
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {row["id"] for row in rows} == set(ids) and rows[0]["report_url"].startswith("http://127.0.0.1")
    as_json = live.get(f"/api/v1/analyses/export?format=json&verdict={verdict}").json()
    assert all(row["verdict"] == verdict for row in as_json) and len(as_json) == filtered["total"]

    store = live.app.extensions["deepfake"].store
    assert store.get(f"{ids[0]}/report.json") is not None
    deleted = requests.delete(live.url(f"/api/v1/analyses/{ids[0]}"), timeout=30)
    assert deleted.status_code == 204
    assert_error(live.get(f"/api/v1/analyses/{ids[0]}"), 404)
    assert_error(live.get(f"/analyses/{ids[0]}"), 404)
    assert_error(requests.delete(live.url(f"/api/v1/analyses/{ids[0]}"), timeout=30), 404)
    assert store.get(f"{ids[0]}/report.json") is None
    assert live.get("/api/v1/stats").json()["total"] == 2


# ---------------------------------------------------------------------------------------------- webhooks


def test_webhook_reaches_a_local_receiver_with_retries(start_server, face_photo):
    receiver = WebhookReceiver(failures=1)
    try:
        live = start_server(
            WEBHOOK_URLS=[receiver.url],
            WEBHOOK_ALLOW_PRIVATE=True,  # the receiver listens on 127.0.0.1
            WEBHOOK_SECRET="s3cret",
            WEBHOOK_BACKOFF_S=0.1,
            # The untrained default model gives no reliable "fake": alert on any judged face to test delivery.
            ALERT_VERDICTS=["fake", "real", "uncertain"],
            ALERT_MIN_PROBABILITY=0.0,
        )
        done = live.upload(face_photo).json()
        assert done["report"]["verdict"] != "no_face"
        deadline = time.monotonic() + 30
        while len(receiver.received) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(receiver.received) == 2  # one failure (500), one retry that was accepted
        (first_headers, first_body), (headers, body) = receiver.received
        assert body == first_body and headers["X-Deepfake-Delivery"] == first_headers["X-Deepfake-Delivery"]
        assert (first_headers["X-Deepfake-Attempt"], headers["X-Deepfake-Attempt"]) == ("1", "2")
        expected = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
        assert headers["X-Deepfake-Signature"] == expected
        payload = json.loads(body)
        assert payload["event"] == f"analysis.{done['report']['verdict']}" and payload["analysis_id"] == done["id"]
        assert payload["report_url"] == done["report_url"] and payload["fake_probability"] == done["report"]["fake_probability"]
        time.sleep(0.3)
        assert len(receiver.received) == 2  # delivered once, not again
    finally:
        receiver.close()


def test_no_webhook_below_the_threshold(start_server, face_photo):
    receiver = WebhookReceiver(failures=0)
    try:
        live = start_server(WEBHOOK_URLS=[receiver.url], WEBHOOK_ALLOW_PRIVATE=True, ALERT_VERDICTS=["fake"], ALERT_MIN_PROBABILITY=1.01)
        assert live.upload(face_photo).status_code == 200
        time.sleep(0.5)
        assert receiver.received == []
    finally:
        receiver.close()


# ------------------------------------------------------------------------------------------ concurrency


@pytest.mark.slow
def test_16_parallel_requests_all_answered_correctly(start_server, media_server, face_photo, full_frame):
    # One client, 16 requests that all wait: allowed here, above the defaults (8 of each per client).
    live = start_server(WORKERS=2, QUEUE_SIZE=32, CLIENT_URL_JOBS=16, CLIENT_WAITING=16)
    requests_to_make = []
    for n in range(8):  # videos, each with its own frame count so none is a duplicate of another
        path = "/files/video.mp4" if n % 2 else "/files/hls/index.m3u8"
        requests_to_make.append(
            ("video", lambda n=n, path=path: live.analyze_url(media_server.url(path), wait=170, frames=4 + n))
        )
    for n in range(4):
        image = face_photo if n % 2 else full_frame
        requests_to_make.append(("image", lambda n=n, image=image: live.upload(image, frames=str(n + 1))))
    for n in range(4):
        # photo.jpg holds face_photo's bytes: other frame counts, or the content cache would answer
        requests_to_make.append(("image", lambda n=n: live.analyze_url(media_server.url("/files/photo.jpg"), wait=170, frames=n + 5)))
    with ThreadPoolExecutor(max_workers=16) as pool:
        futures = [(kind, pool.submit(call)) for kind, call in requests_to_make]
        answers = [(kind, future.result()) for kind, future in futures]
    ids = set()
    for n, (kind, response) in enumerate(answers):
        assert response.status_code == 200, (n, response.text)
        body = response.json()
        assert body["status"] == "done" and body["report"]["media"]["kind"] == kind
        check_report_contract(body["report"])
        if kind == "video":
            assert body["report"]["media"]["frames_analyzed"] == 4 + n
        ids.add(body["id"])
    assert len(ids) == 16
    assert live.get("/api/v1/stats").json()["total"] == 16


# ----------------------------------------------------------------------------------------------- OpenAPI


def test_openapi_document_is_valid_and_matches_the_routes(live):
    from openapi_spec_validator import validate

    document = live.get("/api/v1/openapi.json").json()
    validate(document)
    documented = {(path, method.upper()) for path, item in document["paths"].items() for method in item}
    routes = set()
    for rule in live.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = rule.rule.replace("<", "{").replace(">", "}")
        routes |= {(path, method) for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert documented == routes


# --------------------------------------------------------------------------------------------------- S3


@pytest.mark.slow
def test_artefacts_in_s3_compatible_storage(start_server, s3_server, media_server, tmp_path):
    settings, client = s3_server
    live = start_server(KEEP_MEDIA=True, **settings)
    body = live.analyze_url(media_server.url("/files/video.mp4"), wait=120, frames=4).json()
    listed = client.list_objects_v2(Bucket=settings["S3_BUCKET"], Prefix=f"checker/{body['id']}/")
    names = {item["Key"].rsplit("/", 1)[1] for item in listed.get("Contents", [])}
    assert {"report.json", "timeline.png", "frame_00.jpg", "frame_03.jpg", "media.bin"} <= names
    stored = json.loads(client.get_object(Bucket=settings["S3_BUCKET"], Key=f"checker/{body['id']}/report.json")["Body"].read())
    assert stored == body["report"]
    assert not (tmp_path / "data0" / "artefacts").exists()  # nothing on local disk
    assert live.get(f"/api/v1/analyses/{body['id']}").json()["report"] == body["report"]
    picture = live.get(f"/analyses/{body['id']}/files/frame_00.jpg")
    assert picture.status_code == 200 and picture.content[:3] == b"\xff\xd8\xff"
    assert requests.delete(live.url(f"/api/v1/analyses/{body['id']}"), timeout=30).status_code == 204
    assert client.list_objects_v2(Bucket=settings["S3_BUCKET"], Prefix=f"checker/{body['id']}/").get("KeyCount") == 0


def scrape(live) -> dict[tuple[str, tuple], float]:
    from prometheus_client.parser import text_string_to_metric_families

    response = live.get("/metrics")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def test_metrics_count_jobs_by_status_and_time_jobs_and_stages(live, face_photo, fake_video, media_server):
    before = scrape(live)
    assert before[("deepfake_jobs", (("status", "done"),))] == 0
    assert before[("deepfake_queue_length", (("pool", "analysis"),))] == 0
    assert live.upload(face_photo).status_code == 200
    queued = live.upload(fake_video, frames="4").json()
    assert live.get(f"/api/v1/jobs/{queued['job_id']}?wait=60").json()["status"] == "done"
    failed = live.analyze_url(media_server.url("/files/no-such-video.mp4")).json()  # the source answers 404
    assert live.get(f"/api/v1/jobs/{failed['job_id']}?wait=60").json()["status"] == "failed"
    after = scrape(live)
    assert after[("deepfake_jobs", (("status", "done"),))] == 2 and after[("deepfake_jobs", (("status", "failed"),))] == 1
    assert after[("deepfake_job_duration_seconds_count", (("kind", "upload"), ("status", "done")))] == 2
    assert after[("deepfake_job_duration_seconds_count", (("kind", "url"), ("status", "failed")))] == 1
    assert after[("deepfake_job_duration_seconds_sum", (("kind", "upload"), ("status", "done")))] > 0
    for stage in ("decode", "faces", "model"):
        assert after[("deepfake_stage_duration_seconds_count", (("stage", stage),))] == 2
    assert ("deepfake_stage_duration_seconds_count", (("stage", "fetch"),)) not in after  # uploads fetch nothing
    assert after[("deepfake_analyses_total", (("verdict", "real"),))] == 1
    assert after[("deepfake_analyses_total", (("verdict", "fake"),))] == 1
