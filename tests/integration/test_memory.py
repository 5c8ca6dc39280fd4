"""Memory of media judged: the real server recognises a video it analysed once when it comes back re-encoded
(CRF 32), rescaled to 480 px, trimmed by 1 s or as a screenshot-like crop of a key frame; unrelated media is not
matched; another key sees only verdict, time and count; a key can opt out; deleting an analysis forgets it.
Run on SQLite and on PostgreSQL (tests/support/postgres.py)."""

from __future__ import annotations

import subprocess

import jsonschema
import pytest
import requests
from PIL import Image
from sqlalchemy import text

from detector.memory import Match, seen_before
from tests.conftest import run_extension_label
from tests.distributed.test_distributed import cluster, finish, wait_ready  # noqa: F401 (cluster: the Celery fixture, used by name)
from tests.support.liveserver import assert_error

FRAMES = "8"


# --------------------------------------------------------------------------------------------- real media


@pytest.fixture(scope="module")
def copies(tmp_path_factory, fake_video):
    """The fake video as it circulates: re-encoded at CRF 32, rescaled to 480 px high, its first second cut."""
    folder = tmp_path_factory.mktemp("copies")
    made = {
        "crf32": ["-c:v", "libx264", "-crf", "32"],
        "480p": ["-vf", "scale=-2:480", "-c:v", "libx264", "-crf", "23"],
        "trim1s": ["-ss", "1", "-c:v", "libx264", "-crf", "23"],
    }
    paths = {}
    for name, args in made.items():
        target = folder / f"{name}.mp4"
        head, tail = (args[:2], args[2:]) if args[0] == "-ss" else ([], args)
        command = ["ffmpeg", "-v", "error", "-y", *head, "-i", str(fake_video), *tail, "-an", str(target)]
        subprocess.run(command, check=True, timeout=120)
        paths[name] = target
    return paths


def screenshot_of(video, timestamp_s: float, target):
    """A screenshot-like picture of one key frame: 5 % cut from each side, saved as a JPEG."""
    raw = target.with_suffix(".png")
    command = ["ffmpeg", "-v", "error", "-y", "-ss", f"{timestamp_s:.3f}", "-i", str(video), "-frames:v", "1", str(raw)]
    subprocess.run(command, check=True, timeout=60)
    with Image.open(raw) as image:
        width, height = image.size
        image.crop((width // 20, height // 20, width - width // 20, height - height // 20)).convert("RGB").save(
            target, quality=85
        )
    return target


def extension_line(matches: list[dict]) -> str:
    return run_extension_label("seenBeforeLine", matches).stdout.strip()


def analysed(live, path, key: str | None = None) -> dict:
    """The finished answer for an upload (a video's job polled to its end)."""
    headers = {"X-API-Key": key} if key else {}
    with open(path, "rb") as handle:
        response = live.post(
            "/api/v1/analyze?wait=120", files={"file": (path.name, handle)}, data={"frames": FRAMES}, headers=headers
        )
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture(params=["sqlite", "postgresql"])
def memory_server(request, start_server):
    if request.param == "sqlite":
        return start_server()
    return start_server(DATABASE_URL=request.getfixturevalue("postgres").new_database())


def test_copies_are_recognised_and_unrelated_media_is_not(memory_server, fake_video, real_video, face_photo, copies, tmp_path):
    live = memory_server
    first = analysed(live, fake_video)
    assert first["matches"] == []
    judged_at = live.get(f"/api/v1/analyses/{first['id']}").json()["created_at"]  # the analysis's time, not the job's
    key_frame = first["report"]["frames"][len(first["report"]["frames"]) // 2]["timestamp_s"]
    shot = screenshot_of(fake_video, key_frame, tmp_path / "screenshot.jpg")
    documented_match = live.get("/api/v1/openapi.json").json()["components"]["schemas"]["Match"]
    copy_ids = []
    for name, path in [*copies.items(), ("screenshot", shot)]:
        answer = analysed(live, path)
        copy_ids.append(answer["id"])
        assert answer["id"] != first["id"] and not answer["cached"], name  # new bytes: a new analysis
        # the first analysis among the matches (an earlier copy may be nearer still: 480p is nearest the CRF 32 one)
        best = next((m for m in answer["matches"] if m["analysis_id"] == first["id"]), None)
        assert best is not None and {m["analysis_id"] for m in answer["matches"]} <= {first["id"], *copy_ids}, (
            name,
            answer["matches"],
        )
        assert best["verdict"] == first["report"]["verdict"] and best["fake_probability"] == first["report"]["fake_probability"]
        assert best["first_seen"] == judged_at and best["times_seen"] == 1 and 0.8 < best["similarity"] <= 1.0
        for match in answer["matches"]:  # as the OpenAPI document (generated from detector.memory.Match) says
            jsonschema.validate(match, documented_match, cls=jsonschema.Draft202012Validator)
    for unrelated in (real_video, face_photo):
        answer = analysed(live, unrelated)
        assert answer["matches"] == [], (unrelated.name, answer["matches"])

    later = live.get(f"/api/v1/analyses/{first['id']}").json()  # the first one now knows its copies
    assert sorted(m["analysis_id"] for m in later["matches"]) == sorted(copy_ids)
    page = live.get(f"/analyses/{first['id']}").text  # a server without keys: the page links them
    line = seen_before([Match(**m) for m in later["matches"]])
    assert (
        line.startswith("Seen before: 4 times since") and line in page and all(f'href="/analyses/{i}"' in page for i in copy_ids)
    )
    assert extension_line(later["matches"]) == line  # the badge's tooltip says the same


def test_privacy_opt_out_and_deletion(start_server, fake_video, copies):
    from server.auth import create_key

    live = start_server()
    db = live.app.extensions["deepfake"].db
    _, alice = create_key(db, "alice")
    _, bob = create_key(db, "bob")
    original = analysed(live, fake_video, alice)
    seen = analysed(live, copies["crf32"], bob)
    # another key's analysis: verdict, time and count only; nothing that leads to it
    assert seen["matches"] == [
        {
            "analysis_id": None,
            "verdict": original["report"]["verdict"],
            "fake_probability": None,
            "similarity": seen["matches"][0]["similarity"],
            "first_seen": live.get(f"/api/v1/analyses/{original['id']}", headers={"X-API-Key": alice}).json()["created_at"],
            "times_seen": 1,
        }
    ]
    page = live.get(f"/analyses/{seen['id']}").text
    assert "Seen before: 1 time since" in page and original["id"] not in page and fake_video.name not in page
    # alice sees bob's copy the same way, never his file name
    mine = live.get(f"/api/v1/analyses/{original['id']}", headers={"X-API-Key": alice}).json()
    assert [m["analysis_id"] for m in mine["matches"]] == [None] and "crf32" not in str(mine["matches"])

    assert live.get("/api/v1/memory", headers={"X-API-Key": alice}).json() == {"opt_out": False}
    assert requests.put(live.url("/api/v1/memory"), json={"opt_out": True}, headers={"X-API-Key": alice}, timeout=30).json() == {
        "opt_out": True
    }
    assert_error(
        requests.put(live.url("/api/v1/memory"), json={"opt_out": "yes"}, headers={"X-API-Key": alice}), 400, "bad_option"
    )
    assert_error(live.get("/api/v1/memory"), 401)
    again = analysed(live, copies["480p"], bob)
    assert [m["analysis_id"] for m in again["matches"]] == [seen["id"]]  # his own copy, named; alice's no more
    # alice, opted out of being matched, still sees what her media matched
    assert len(live.get(f"/api/v1/analyses/{original['id']}", headers={"X-API-Key": alice}).json()["matches"]) == 1

    assert requests.delete(live.url(f"/api/v1/analyses/{seen['id']}"), headers={"X-API-Key": bob}, timeout=30).status_code == 204
    assert requests.delete(live.url(f"/api/v1/analyses/{again['id']}"), headers={"X-API-Key": bob}, timeout=30).status_code == 204
    with db.engine.connect() as connection:
        left = connection.execute(text("SELECT DISTINCT analysis_id FROM fingerprints")).scalars().all()
    assert left == [original["id"]]  # deleting an analysis deleted its fingerprints
    assert live.get(f"/api/v1/analyses/{original['id']}", headers={"X-API-Key": alice}).json()["matches"] == []


@pytest.mark.slow
@pytest.mark.distributed  # Celery workers, Redis and PostgreSQL: the distributed tier, beside its fixtures here
def test_celery_workers_remember_and_the_api_answers_matches(cluster, fake_video, copies):  # noqa: F811
    """DEEPFAKE_QUEUE=celery: a `python -m server worker` stores the fingerprints in PostgreSQL, the API process
    that only accepts and answers finds the match."""
    _, start_api, start_worker = cluster
    api = start_api("api")
    start_worker("worker").wait_started()
    wait_ready(api)
    answers = []
    for path in (fake_video, copies["crf32"]):
        with open(path, "rb") as handle:
            accepted = requests.post(
                api.url("/api/v1/analyze"), files={"file": (path.name, handle)}, data={"frames": FRAMES}, timeout=60
            )
        assert accepted.status_code == 202, accepted.text
        done = finish(api, accepted.json()["job_id"])
        assert done["status"] == "done", done
        answers.append(done)
    first, copy = answers
    assert first["matches"] == [] and [m["analysis_id"] for m in copy["matches"]] == [first["id"]]
