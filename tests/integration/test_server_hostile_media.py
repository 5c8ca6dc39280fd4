"""The backend against hostile media and hostile clients, round three (issue 25): pictures that grow mid-stream,
images that cost far more memory than their bytes, verdicts laundered through the URL cache, slow clients.
Real server on 127.0.0.1 over real HTTP, media made here with Pillow, PyAV and ffmpeg; everything stays on
loopback and every loop is bounded.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.liveserver import assert_error
from tests.support.mediafactory import concatenated_ts, mjpeg_avi
from tests.support.waiting import wait_for


def upload(live, path: Path, wait: float = 120, **form):
    with open(path, "rb") as handle:
        return live.post(f"/api/v1/analyze?wait={wait}", files={"file": (path.name, handle)}, data=form)


# ----------------------------------------------------------------------------------- picture size mid-stream


def test_a_frame_over_the_pixel_limit_mid_stream_is_refused(start_server, tmp_path):
    """Only the first frame is small: the container declares 320x320, the frames after it are 1500x1500."""
    live = start_server(MAX_PIXELS=1_000_000)
    growing = mjpeg_avi(tmp_path / "growing.avi", [(320, 320)] + [(1500, 1500)] * 5)
    body = assert_error(upload(live, growing), 413, "media_too_large")
    assert body["retryable"] is False
    within = mjpeg_avi(tmp_path / "within.avi", [(320, 320)] + [(900, 900)] * 5)  # 0.81 MP: allowed
    assert upload(live, within).status_code == 200


@pytest.mark.parametrize("kind", ["avi", "ts"])
def test_a_clip_whose_picture_size_changes_is_analysed(start_server, tmp_path, fake_video, kind):
    """Two sizes of two shapes in one stream (MJPEG frames of two sizes; `cat a.ts b.ts`): every frame is taken at
    the stream's first size, never a 500."""
    live = start_server()
    if kind == "avi":
        clip = mjpeg_avi(tmp_path / "two-sizes.avi", [(320, 240)] * 10 + [(640, 360)] * 10)
    else:
        clip = concatenated_ts(tmp_path / "two-sizes.ts", fake_video, [(320, 240), (640, 360)])
    answer = upload(live, clip, frames=8)
    assert answer.status_code == 200, answer.text
    report = answer.json()["report"]
    assert (report["media"]["width"], report["media"]["height"]) == (320, 240)
    assert report["media"]["frames_analyzed"] >= 1


# ---------------------------------------------------------------------------------- memory of decoding images


class RssWatch:
    """The highest resident memory of this process (the server's: tests/support/liveserver.py serves in it) above where it
    stood when the watch started, sampled every 20 ms from /proc until `stop`."""

    def __init__(self):
        import threading

        self.baseline = self.now()
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    @staticmethod
    def now() -> int:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc/self/status")

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self.now())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join(5)
        return self.peak - self.baseline


def test_concurrent_uploads_of_a_large_png_decode_in_the_bounded_pool_and_downscaled(start_server, tmp_path):
    """A 5000x5000 PNG is ~100 KB on disk and 75 MB as RGB (several times that while Pillow and NumPy convert it):
    six at once must not all be decoded in request threads, nor at full size."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image, ImageDraw

    picture = Image.new("RGB", (5000, 5000), (200, 180, 160))
    ImageDraw.Draw(picture).ellipse((1500, 1200, 3500, 3800), fill=(120, 90, 70))
    paths = []
    for number in range(6):  # distinct bytes: no cache hit, no shared job
        picture.putpixel((number, 0), (number, number, number))
        paths.append(tmp_path / f"large-{number}.png")
        picture.save(paths[-1], optimize=False)
    del picture
    live = start_server(WORKERS=2, MAX_DECODED_PIXELS=4_000_000)
    watch = RssWatch()
    with ThreadPoolExecutor(len(paths)) as pool:
        answers = list(pool.map(lambda path: upload(live, path), paths))
    growth = watch.stop()
    print(f"server RSS growth: {growth / 1024**2:.0f} MB")
    assert growth < 800 * 1024**2, f"the server grew by {growth / 1024**2:.0f} MB"
    assert [a.status_code for a in answers] == [200] * len(paths), [a.text[:200] for a in answers]
    media = answers[0].json()["report"]["media"]
    assert media["width"] * media["height"] <= 4_000_000  # analysed scaled down (by 3: 1666x1666)


# ------------------------------------------------------------------------------------ verdicts by content, not URL


def test_a_link_is_answered_by_what_it_serves_now_not_by_an_earlier_answer(start_server, tmp_path, face_photo):
    """Alice's link served one picture; it now serves another. Bob (even with `utm_source` added) is answered by
    the picture it serves now; Alice's own repeat within the short URL TTL is spared the fetch."""
    from PIL import Image

    from server.auth import create_key
    from tests.support.mediaserver import MediaServer

    first = Image.open(face_photo).convert("RGB")
    (tmp_path / "post.jpg").write_bytes(face_photo.read_bytes())
    live = start_server(URL_CACHE_TTL_S=300)
    alice, bob = (create_key(live.app.extensions["deepfake"].db, name)[1] for name in ("alice", "bob"))
    with MediaServer(tmp_path) as site:
        link = site.url("/files/post.jpg")
        before = live.analyze_url_as(alice, link, wait=60).json()
        assert before["status"] == "done" and before["cached"] is False
        first.resize((first.width // 2, first.height // 2)).save(tmp_path / "post.jpg", quality=90)  # other bytes now
        fetched = len(site.requests)
        after = live.analyze_url_as(bob, link + "?utm_source=x", wait=60).json()
        assert len(site.requests) > fetched  # fetched again, not answered by Alice's URL
        assert after["cached"] is False and after["id"] != before["id"]
        assert after["report"]["media"]["width"] == first.width // 2  # the picture served now
        fetched = len(site.requests)
        again = live.analyze_url_as(alice, link, wait=60).json()
        assert again["cached"] is True and again["id"] == before["id"] and len(site.requests) == fetched
        other = start_server(URL_CACHE_TTL_S=0)
        carol = create_key(other.app.extensions["deepfake"].db, "carol")[1]
        for _ in range(2):  # no URL short-cut at all: fetched each time, answered from the content cache
            answer = other.analyze_url_as(carol, link, wait=60).json()
        assert answer["cached"] is True and len(site.requests) == fetched + 2


# ------------------------------------------------------------------------------------------ smaller holes


def test_credentials_of_every_common_kind_never_reach_storage(start_server, media_server):
    live = start_server()
    secrets = {name: f"S3CRET{number}" for number, name in enumerate(("__token__", "hdnts", "jwt", "authkey", "accesskey", "pass"))}
    query = "&".join(f"{name}={value}" for name, value in secrets.items())
    answer = live.analyze_url(media_server.url(f"/files/photo.jpg?{query}"), wait=60).json()
    assert answer["status"] == "done"
    stored = live.get(f"/api/v1/analyses/{answer['id']}").text + live.get("/api/v1/analyses").text + json.dumps(answer)
    assert not [value for value in secrets.values() if value in stored]


def test_a_key_sees_and_retries_only_its_own_jobs_and_analyses(start_server, media_server):
    from server.auth import create_key

    live = start_server(FETCH_TIMEOUT_S=1)
    alice, bob = (create_key(live.app.extensions["deepfake"].db, name)[1] for name in ("alice", "bob"))
    done = live.analyze_url_as(alice, media_server.url("/files/photo.jpg"), wait=60).json()
    failed = live.analyze_url_as(alice, media_server.url("/status/503"), wait=60).json()
    assert failed["retryable"] is True, failed
    as_bob = {"X-API-Key": bob}
    assert_error(live.get(f"/api/v1/jobs/{done['job_id']}", headers=as_bob), 404, "not_found")
    assert_error(live.get(f"/api/v1/analyses/{done['id']}", headers=as_bob), 404, "not_found")
    assert_error(live.post(f"/api/v1/jobs/{failed['job_id']}/retry", headers=as_bob), 404, "not_found")
    as_alice = {"X-API-Key": alice}
    assert live.get(f"/api/v1/jobs/{done['job_id']}", headers=as_alice).json()["status"] == "done"
    assert live.get(f"/api/v1/analyses/{done['id']}", headers=as_alice).status_code == 200
    assert live.post(f"/api/v1/jobs/{failed['job_id']}/retry", headers=as_alice).status_code in (202, 502)


def test_readiness_names_a_database_fault_without_its_sql(start_server, face_photo):
    """The database itself refuses every change to jobs (a trigger): outcomes wait in memory, /readyz says why."""
    live = start_server(MAX_WAIT_S=1)  # the upload's answer would wait for an outcome that is never written
    db = live.app.extensions["deepfake"].db
    with contextlib.closing(sqlite3.connect(db.path, isolation_level=None)) as connection:
        connection.execute("CREATE TRIGGER refuse BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'jobs are frozen'); END")
        try:
            live.upload(face_photo)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and live.get("/readyz").status_code == 200:
                time.sleep(0.1)
            ready = live.get("/readyz")
            assert_error(ready, 503, "unhealthy")
            assert "jobs are frozen" in ready.text
            assert "UPDATE" not in ready.text and "SQL" not in ready.text and "SET" not in ready.text, ready.text
        finally:
            connection.execute("DROP TRIGGER refuse")


@pytest.mark.parametrize("model", [5, True, {}, [], 1.5])
def test_a_model_that_is_not_a_name_is_a_400(live, media_server, model):
    answer = live.post("/api/v1/analyze", json={"url": media_server.url("/files/photo.jpg"), "model": model})
    assert_error(answer, 400)


@pytest.mark.parametrize("frames", ["٣", "１", "1_0", "²"])
def test_frames_are_ascii_digits_only(live, face_photo, frames):
    assert_error(live.upload(face_photo, frames=frames), 400, "bad_option")


def test_a_matroska_file_with_damaged_track_headers_is_damaged_media(live, tmp_path, fake_video):
    from tests.support.mediafactory import ffmpeg

    clip = tmp_path / "clip.mkv"
    ffmpeg("-i", str(fake_video), "-t", "1", "-c", "copy", str(clip))
    data = bytearray(clip.read_bytes())
    data[100:300] = bytes((index * 37 + 11) % 256 for index in range(200))  # the Tracks element, overwritten
    damaged = tmp_path / "damaged.mkv"
    damaged.write_bytes(bytes(data))
    assert_error(live.upload(damaged), 422, "corrupt_media")


def test_fetch_folders_of_a_killed_process_are_removed_at_start(start_server, tmp_path):
    from detector.fetching.fetch import fetch_folder_prefix

    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True)
    left = tmp_path / "data0" / "tmp" / f"{fetch_folder_prefix(int(gone.stdout))}abc"
    left.mkdir(parents=True)
    (left / "half.mp4").write_bytes(b"\0" * 1024)
    mine = tmp_path / "data0" / "tmp" / f"{fetch_folder_prefix()}def"  # a live process's (this one's): kept
    mine.mkdir()
    start_server()
    assert not left.exists() and mine.exists()


# ------------------------------------------------------------------------------------------------ slow clients


@pytest.mark.slow
def test_gunicorn_sheds_slow_clients_and_health_checks_keep_answering(tmp_path):
    """Eight clients send a request head a byte every half second (their reconnects included) at a gunicorn with
    four request threads; health checks are answered meanwhile, and the slow clients are cut off."""
    import socket
    import threading
    from urllib.parse import urlsplit

    import requests

    from tests.integration.test_server_process import VENV_BIN, ServerProcess, server_env

    env = server_env(tmp_path / "data", HTTP_THREADS=4, HTTP_HEAD_TIMEOUT_S=2)
    command = [str(VENV_BIN / "gunicorn"), "server:create_app()", "-c", "server/gunicorn.conf.py", "-b", "127.0.0.1:0"]
    server = ServerProcess(command, env, tmp_path / "gunicorn.log")
    address = urlsplit(server.base)
    stop = threading.Event()
    shed = []

    def slow_client() -> None:
        while not stop.is_set():
            try:
                with socket.create_connection((address.hostname, address.port), timeout=5) as sock:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                    for _ in range(60):  # 30 s at most
                        if stop.wait(0.5):
                            return
                        sock.sendall(b"a")
            except OSError:
                shed.append(1)  # the server closed the connection: come back, as an attacker would

    try:
        assert requests.get(server.url("/healthz"), timeout=30).status_code == 200
        clients = [threading.Thread(target=slow_client, daemon=True) for _ in range(8)]
        for client in clients:
            client.start()
        time.sleep(1.0)  # every thread now reads a slow head
        answered = 0
        for _ in range(12):
            try:
                answered += requests.get(server.url("/healthz"), timeout=4).status_code == 200
            except requests.RequestException:
                pass
            time.sleep(0.5)
    finally:
        stop.set()
        returncode = server.stop()
    print(f"{answered} of 12 health checks answered, slow clients cut off {len(shed)} times")
    assert answered >= 10, f"{answered} of 12 health checks answered"
    assert len(shed) >= 8  # every slow client was cut off at least once
    assert returncode == 0


# --------------------------------------------------------------------------------------------- inflating pages


class GzipPageSite:
    """A site on 127.0.0.1 whose page is `decoded_bytes` of HTML sent gzip-encoded (a few hundred KB on the wire)."""

    def __init__(self, decoded_bytes: int):
        import gzip
        import http.server
        import threading

        buffer = io.BytesIO()
        with gzip.GzipFile(fileobj=buffer, mode="wb", compresslevel=9) as out:
            out.write(b"<!doctype html><html><head><title>big</title></head><body>")
            block = b" " * (1024 * 1024)
            for _ in range(decoded_bytes // len(block)):
                out.write(block)
            out.write(b"</body></html>")
        self.body = buffer.getvalue()
        self.requests = 0
        site = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                site.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(site.body)))
                self.end_headers()
                self.wfile.write(site.body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


def test_a_gzip_page_is_counted_as_decoded_and_refused_past_the_page_limit(start_server):
    live = start_server(MAX_PAGE_BYTES=4 * 1024**2)
    with GzipPageSite(64 * 1024**2) as site:  # 64 MiB of HTML in ~64 KB
        watch = RssWatch()
        answer = live.analyze_url(site.url("/post/1"), wait=120)
        growth = watch.stop()
    print(f"gzip page: {len(site.body) // 1024} KB on the wire; server RSS growth {growth / 1024**2:.0f} MB")
    body = assert_error(answer, 413, "media_too_large")
    assert "page" in body["error"]["message"]
    assert site.requests == 1  # refused after our own look at it; yt-dlp never read it


def extraction_processes() -> dict[int, str]:
    """The yt-dlp extraction children on this host (pid -> state letter, Z for a zombie), read from /proc."""
    found = {}
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and b"detector.fetching.extraction" in (entry / "cmdline").read_bytes():
                found[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
    return found


def test_a_page_that_costs_minutes_of_cpu_is_stopped_at_the_fetch_deadline(start_server, media_server):
    import threading

    from server.auth import create_key

    live = start_server(FETCH_WORKERS=1, CLIENT_FETCHES=1, FETCH_TIMEOUT_S=4)
    db = live.app.extensions["deepfake"].db
    heavy_client, other_client = (create_key(db, name)[1] for name in ("heavy", "other"))
    threads_before = {t.name for t in threading.enumerate()}
    # 12000 <meta> tags (408 KB, within the page limit): about a minute of yt-dlp's CPU in one process.
    heavy = live.analyze_url_as(heavy_client, media_server.url("/meta-page/12000"))
    assert heavy.status_code == 202, heavy.text
    children = wait_for(lambda: extraction_processes(), 30, "an extraction child")
    other = live.analyze_url_as(other_client, media_server.url("/files/photo.jpg"), wait=60)
    assert other.status_code == 200, other.text  # the one fetch worker was given back at the heavy link's deadline
    ended = live.get(f"/api/v1/jobs/{heavy.json()['job_id']}?wait=30", headers={"X-API-Key": heavy_client}).json()
    assert ended["status"] == "failed" and ended["error"]["code"] == "fetch_timeout", ended
    # The child was killed and reaped (no zombie), and nothing it started is left.
    assert not set(children) & set(extraction_processes())
    # Only the guard proxy's own two threads, started with the first fetch, are new: no thread of the fetch is left.
    lasting = {"guard-proxy", "guard-proxy-deadlines"}
    wait_for(lambda: {t.name for t in threading.enumerate()} - threads_before <= lasting, 30, "the fetch's threads to end")
    assert not list(Path(live.app.extensions["deepfake"].analyses.pipeline.temp_dir).glob("fetch-*"))


# ------------------------------------------------------------------------------------------------- a full disk


def test_readiness_says_not_ready_while_free_disk_space_is_under_its_floor(start_server):
    assert start_server().get("/readyz").status_code == 200
    live = start_server(MIN_FREE_DISK_MB=1e12)  # a floor above any disk's free space
    body = assert_error(live.get("/readyz"), 503, "low_disk_space")
    assert "DEEPFAKE_MIN_FREE_DISK_MB" in body["error"]["message"] and "jobs" in body


def mount_namespaces_work() -> bool:
    """Whether this user may mount a tmpfs in a user namespace of its own (no root needed where it is allowed)."""
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "mount -t tmpfs tmpfs /mnt"]
    return shutil.which("unshare") is not None and subprocess.run(command, capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not mount_namespaces_work(), reason="needs unprivileged user namespaces to mount a small tmpfs")
def test_a_full_disk_is_a_507_that_blames_neither_the_upload_nor_the_source(tmp_path, media_server, fake_video):
    """A real server whose uploads and temporary folders are 512 KiB filesystems of their own (tmpfs, mounted in a
    user namespace) takes an 870 KB upload and a link to the same clip: the disk fills (ENOSPC) on both."""
    import requests

    from tests.integration.test_server_process import ServerProcess, server_env

    data = tmp_path / "data"
    mounts = " && ".join(f"mkdir -p {data / name} && mount -t tmpfs -o size=512k tmpfs {data / name}" for name in ("uploads", "tmp"))
    command = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", f'{mounts} && exec "$0" -m server --port 0', sys.executable]
    server = ServerProcess(command, server_env(data, ALLOW_PRIVATE_URLS=1, MIN_FREE_DISK_MB=1), tmp_path / "server.log")
    try:
        def readiness():
            answer = requests.get(server.url("/readyz"), timeout=10)
            return [answer] if answer.json().get("error", {}).get("code") != "not_ready" else None  # loaded

        body = assert_error(wait_for(readiness, 120, "the model")[0], 503, "low_disk_space")  # 0.5 MB free, 1 MB floor
        assert "uploads folder" in body["error"]["message"]
        with open(fake_video, "rb") as handle:
            upload = requests.post(server.url("/api/v1/analyze"), files={"file": ("clip.mp4", handle)}, timeout=60)
        assert_error(upload, 507, "insufficient_storage")
        link = requests.post(server.url("/api/v1/analyze?wait=60"), json={"url": media_server.url("/files/video.mp4")}, timeout=90)
        failed = assert_error(link, 507, "insufficient_storage")
        assert failed["retryable"] is True
        assert requests.get(server.url("/healthz"), timeout=10).status_code == 200
    finally:
        assert server.stop() == 0, server.log.read_text()[-2000:]


# ------------------------------------------------------------------------------------ one client, every worker


def test_a_clip_with_a_single_key_frame_is_decoded_once_not_once_per_target(tmp_path, fake_video):
    """300 frames at 1 fps and one key frame: targets lie seconds apart, and each seek would land back on the
    first frame. The decoder must work through the clip once, whatever the number of targets."""
    from detector.keyframes import select_key_frames
    from detector.media import open_media
    from tests.support.mediafactory import read_frames, write_video

    frames = read_frames(fake_video, 300)
    options = {"g": "100000", "keyint_min": "100000", "sc_threshold": "0"}
    clip = write_video(tmp_path / "one-key-frame.mp4", frames, fps=1, options=options)
    with open_media(clip) as video:
        assert len(video.keyframe_times()) == 1
        kept = select_key_frames(video, 16)
        assert len(kept) == 16
        assert video.frames_decoded <= video.info.frame_count  # was 4926 for these 300 frames


def test_one_clients_jobs_never_hold_every_analysis_worker(start_server, tmp_path, fake_video, face_photo):
    from server.auth import create_key

    live = start_server(WORKERS=2)
    db = live.app.extensions["deepfake"].db
    flooder, other = (create_key(db, name)[1] for name in ("flooder", "other"))
    jobs = []
    for number in range(3):  # distinct bytes: no shared job, no cache hit
        clip = tmp_path / f"clip-{number}.mp4"
        clip.write_bytes(fake_video.read_bytes() + bytes(number + 1))
        with open(clip, "rb") as handle:
            answer = live.post("/api/v1/analyze", files={"file": (clip.name, handle)}, data={"frames": "64"}, headers={"X-API-Key": flooder})
        assert answer.status_code == 202, answer.text
        jobs.append(answer.json()["job_id"])
    running = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not running:
        states = [live.get(f"/api/v1/jobs/{job}", headers={"X-API-Key": flooder}).json()["status"] for job in jobs]
        running = [s for s in states if s == "running"]
        time.sleep(0.05)
    assert states.count("running") == 1 and states.count("queued") == 2, states  # one worker stays free
    with open(face_photo, "rb") as handle:
        image = live.post("/api/v1/analyze?wait=60", files={"file": ("mine.jpg", handle)}, headers={"X-API-Key": other})
    assert image.status_code == 200 and image.json()["status"] == "done", image.text
    states = [live.get(f"/api/v1/jobs/{job}", headers={"X-API-Key": flooder}).json()["status"] for job in jobs]
    assert "queued" in states  # the other client's image went past the flooder's queue


def test_a_job_that_cannot_be_claimed_while_the_database_refuses_writes_stays_queued(start_server, face_photo):
    """The database refuses every change to jobs (a trigger) when an upload arrives: the job cannot be marked
    running, so it never started; once the database accepts writes again it runs, instead of being failed."""
    live = start_server(MAX_WAIT_S=1)
    db = live.app.extensions["deepfake"].db
    with contextlib.closing(sqlite3.connect(db.path, isolation_level=None)) as connection:
        connection.execute("CREATE TRIGGER refuse BEFORE UPDATE ON jobs BEGIN SELECT RAISE(ABORT, 'jobs are frozen'); END")
        try:
            accepted = live.upload(face_photo).json()
            assert accepted["status"] == "queued", accepted
            time.sleep(3)  # a worker tried to claim it (and will again)
        finally:
            connection.execute("DROP TRIGGER refuse")
    ended = live.poll(accepted["job_id"], timeout_s=60)
    assert ended["status"] == "done", ended


def test_media_fetched_while_the_database_refuses_to_record_it_is_not_left_behind(start_server, media_server):
    live = start_server()
    db = live.app.extensions["deepfake"].db
    uploads = Path(live.app.extensions["deepfake"].settings.data_dir) / "uploads"
    with contextlib.closing(sqlite3.connect(db.path, isolation_level=None)) as connection:
        connection.execute(
            "CREATE TRIGGER refuse BEFORE UPDATE OF upload_path ON jobs BEGIN SELECT RAISE(ABORT, 'no room'); END"
        )
        try:
            answer = live.analyze_url(media_server.url("/files/photo.jpg"), wait=60)
            assert answer.status_code >= 500, answer.text
        finally:
            connection.execute("DROP TRIGGER refuse")
    assert not [path for path in uploads.rglob("*") if path.is_file()]  # was: kept for the 7-day retention
