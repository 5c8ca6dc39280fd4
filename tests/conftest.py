"""Shared fixtures (the third-party media under $DEEPFAKE_SHARED_DIR, default ../shared; a loaded detector; the real
servers of tests/support/), the tier markers given by folder, and the check that the session left no process behind.

Tiers, one folder each: unit (in-process, no server, model, PostgreSQL, Redis, Chromium, node or torch: `scripts/test
--fast`), integration (real servers over HTTP, PostgreSQL, S3, the models, torch), browser (Chromium, node),
distributed (Celery workers, Redis and PostgreSQL in several processes).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from detector.settings import CoreSettings  # noqa: E402
from tests.support.leftovers import SessionMark  # noqa: E402

SHARED = CoreSettings.from_env().shared_folder()
TIERS = ("unit", "integration", "browser", "distributed")
SESSION = SessionMark()  # set now, before any fixture starts a process, so that every process started inherits it


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(config, items):
    """Every test gets the marker of its folder's tier (unless it names its tier itself), so `-m unit` works."""
    tests = Path(__file__).resolve().parent
    for item in items:
        if any(item.get_closest_marker(tier) for tier in TIERS):
            continue
        folder = Path(str(item.path)).resolve().relative_to(tests).parts[0]
        if folder in TIERS:
            item.add_marker(folder)


@pytest.hookimpl(trylast=True)  # after the session's fixtures are torn down
def pytest_sessionfinish(session, exitstatus):
    """A process the session started that is still running fails the session (and is stopped): fixtures stop what
    they start, on success, failure and Ctrl-C."""
    leftovers = SESSION.leftovers()
    if not leftovers:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = ["", "processes started by the tests are still running (a fixture did not stop them); stopping them:"]
    lines += [f"  pid {process.pid}: {process.command}" for process in leftovers]
    for line in lines:
        reporter.write_line(line, red=True) if reporter else print(line)
    SESSION.stop(leftovers)
    if session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def shared_file(relative: str) -> Path:
    path = SHARED / relative
    if not path.exists():
        pytest.fail(f"test data {path} is missing: point DEEPFAKE_SHARED_DIR at the shared data folder")
    return path


@pytest.fixture(scope="session")
def fake_video() -> Path:
    return shared_file("data/media/videos/fake_ffpp_000_003.mp4")


@pytest.fixture(scope="session")
def real_video() -> Path:
    return shared_file("data/media/seed/real.mp4")


@pytest.fixture(scope="session")
def full_frame() -> Path:
    return shared_file("data/media/frames/real_real_frame_8.png")


@pytest.fixture(scope="session")
def face_photo() -> Path:
    return shared_file("data/media/seed/real.jpg")


@pytest.fixture(scope="session")
def yunet_model() -> Path:
    return shared_file("models/face_detection_yunet.onnx")


@pytest.fixture(scope="session")
def detector(yunet_model):
    from detector import Detector

    return Detector.load("default", yunet_path=str(yunet_model))


@pytest.fixture(scope="session")
def media_root(tmp_path_factory, fake_video, face_photo) -> Path:
    """A folder of real media as a site would serve it: an mp4, an HLS playlist made with ffmpeg, an image (also
    under a misleading name), a page without media."""
    import shutil

    from tests.support.mediafactory import ffmpeg

    root = tmp_path_factory.mktemp("site")
    shutil.copy(fake_video, root / "video.mp4")
    shutil.copy(face_photo, root / "photo.jpg")
    shutil.copy(face_photo, root / "photo.bin")  # served as application/octet-stream: an image by content only
    (root / "hls").mkdir()
    ffmpeg("-i", str(fake_video), "-c", "copy", "-f", "hls", "-hls_time", "4", "-hls_playlist_type", "vod",
           "-hls_segment_filename", str(root / "hls" / "seg%03d.ts"), str(root / "hls" / "index.m3u8"))  # fmt: skip
    (root / "empty.html").write_text("<!doctype html><html><head><title>Nothing here</title></head><body>text</body></html>")
    (root / "notes.txt").write_text("not media\n" * 100)
    return root


@pytest.fixture(scope="session")
def authority():
    """A throwaway certificate authority that signs files with Content Credentials (tests/support/credentials.py)."""
    from tests.support.credentials import ThrowawayCA

    return ThrowawayCA()


@pytest.fixture(scope="session")
def signed_photo(tmp_path_factory, authority, face_photo) -> Path:
    """The face photo signed with Content Credentials that say a trained algorithm made it."""
    from tests.support.credentials import AI

    target = tmp_path_factory.mktemp("signed") / "signed.jpg"
    authority.sign(face_photo, target, "image/jpeg", AI)
    return target


@pytest.fixture
def media_server(media_root):
    """A real HTTP server on 127.0.0.1 serving `media_root` (see tests/support/mediaserver.py for its routes)."""
    from tests.support.mediaserver import MediaServer

    with MediaServer(media_root, slow_chunk=2048, slow_pause_s=0.25) as server:
        yield server


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL server on 127.0.0.1 for the session (tests/support/postgres.py); `postgres.new_database()` gives a URL."""
    from tests.support.postgres import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture
def s3_server():
    """moto's S3-compatible server on 127.0.0.1, with a bucket."""
    import boto3
    from moto.server import ThreadedMotoServer

    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        settings = {
            "S3_BUCKET": "deepfake-artefacts",
            "S3_PREFIX": "checker/",
            "S3_ENDPOINT_URL": f"http://{host}:{port}",
            "S3_REGION": "us-east-1",
            "S3_ACCESS_KEY_ID": "testing",
            "S3_SECRET_ACCESS_KEY": "testing",
        }
        client = boto3.client(
            "s3",
            endpoint_url=settings["S3_ENDPOINT_URL"],
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        client.create_bucket(Bucket=settings["S3_BUCKET"])
        yield settings, client
    finally:
        moto.stop()


@pytest.fixture
def redis_server():
    """A Redis server on 127.0.0.1 for one test (tests/support/redisserver.py)."""
    from tests.support.redisserver import RedisServer

    with RedisServer() as server:
        yield server


@pytest.fixture
def start_server(tmp_path, detector):
    """Start a real server (tests/support/liveserver.py) with BASE_CONFIG plus overrides; all are stopped at the end of
    the test."""
    from server import create_app
    from tests.support.liveserver import BASE_CONFIG, LiveServer

    started: list = []

    def start(**overrides):
        config = {**BASE_CONFIG, "DATA_DIR": str(tmp_path / f"data{len(started)}"), "DETECTORS": {"default": detector}}
        live = LiveServer(create_app({**config, **overrides}))
        started.append(live)
        return live

    try:
        yield start
    finally:
        for live in started:
            with contextlib.suppress(Exception):  # one that fails to close must not keep the others running
                live.close()


@pytest.fixture
def live(start_server):
    return start_server()


def run_extension_label(function: str, value) -> subprocess.CompletedProcess:
    """Call `function` of extension/lib/labels.js under node with `value` (as JSON): what the badge's tooltip says."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: scripts/setup --dev installs it (Debian package nodejs)")
    script = (
        f"import {{ {function} }} from './extension/lib/labels.js';"
        "let input = ''; process.stdin.on('data', (c) => (input += c));"
        f"process.stdin.on('end', () => console.log({function}(JSON.parse(input))));"
    )
    return subprocess.run(
        [node, "--input-type=module", "-e", script], cwd=ROOT, input=json.dumps(value), capture_output=True, text=True, timeout=60
    )
