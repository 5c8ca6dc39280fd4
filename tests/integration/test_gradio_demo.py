"""The Gradio demo, launched for real on 127.0.0.1 and driven with gradio_client the way a visitor's code would.

One app serves the module (private addresses allowed, so that links can reach the local media server); the
assembled Space is also started as its own process with `python app.py` (the Space's launcher), with default settings.
All traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import os
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from detector.report import SCHEMA_VERSION

ROOT = Path(__file__).resolve().parents[2]
FRAMES = 8


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def launched_demo(detector, results: Path, frames: int, allow_private_urls: bool):
    """The real demo app on a free loopback port, with `detector` as its `default` model: yields its URL."""
    from gradio_demo.analysis import DemoAnalyzer, model_pool
    from gradio_demo.app import build_demo
    from gradio_demo.settings import DemoSettings

    settings = DemoSettings(
        allow_private_urls=allow_private_urls, frames=frames, example_links=(), memory_file=results / "memory.sqlite"
    )
    analyzer = DemoAnalyzer(settings, model_pool(settings, preloaded={"default": detector}), results)
    demo = build_demo(settings, analyzer)
    port = free_port()
    demo.queue().launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()
        analyzer.close()


@pytest.fixture(scope="module")
def demo_url(detector, tmp_path_factory):
    with launched_demo(detector, tmp_path_factory.mktemp("results"), FRAMES, allow_private_urls=True) as url:
        yield url


@pytest.fixture(scope="module")
def client(demo_url, tmp_path_factory):
    return Client(demo_url, verbose=False, analytics_enabled=False, download_files=tmp_path_factory.mktemp("client"))


@pytest.fixture(scope="module")
def video_answer(client, fake_video):
    """What analyze_file answers for the FaceForensics++ video (shared by the tests that read it)."""
    return client.predict(handle_file(str(fake_video)), "default", FRAMES, api_name="/analyze_file")


def zip_entries(path: str) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as archive:
        return {name.split("/", 1)[1]: archive.read(name) for name in archive.namelist()}


def downloaded(downloads: list[str], suffix: str) -> str:
    (path,) = [p for p in downloads if p.endswith(suffix)]
    return path


# ------------------------------------------------------------------------------------------------- analyze_file


def test_an_image_gives_a_verdict_with_probability_and_confidence(client, face_photo):
    report, verdict, summary, timeline, key_frames, downloads = client.predict(
        handle_file(str(face_photo)), "default", FRAMES, api_name="/analyze_file"
    )
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["provenance"] == {"c2pa": None, "iptc_digital_source_type": None, "ai_generated": None}
    assert "Content Credentials: none found (many platforms strip them)" in summary
    assert report["source"] == face_photo.name
    assert report["media"]["kind"] == "image"
    assert report["verdict"] in ("real", "fake", "uncertain")  # a face was found and judged
    # The label is headed by the verdict and shows the calibrated probabilities of both classes.
    assert verdict["label"] == report["verdict"]
    confidences = {c["label"]: c["confidence"] for c in verdict["confidences"]}
    assert confidences["fake"] == pytest.approx(report["fake_probability"])
    assert confidences["real"] == pytest.approx(1 - report["fake_probability"])
    assert report["confidence"] in (pytest.approx(report["fake_probability"]), pytest.approx(1 - report["fake_probability"]))
    # The summary says the fake probability as a whole percentage, and no "confidence" (see detector.render).
    assert f"fake probability {report['fake_probability']:.0%}" in summary and "confidence" not in summary
    assert len(key_frames) == 1 and "frame score" in key_frames[0]["caption"]
    assert json.loads(Path(downloaded(downloads, "-report.json")).read_text()) == report


@pytest.mark.slow
def test_the_faceforensics_video_gives_a_timeline_with_one_point_per_analysed_frame(video_answer):
    report, verdict, summary, timeline, key_frames, downloads = video_answer
    assert report["media"]["kind"] == "video"
    assert report["media"]["frames_analyzed"] == FRAMES == len(report["frames"])
    probabilities = [f["fake_probability"] for f in report["frames"]]
    assert all(p is not None for p in probabilities), "every key frame of this video shows a face"
    times = [f["timestamp_s"] for f in report["frames"]]
    assert times == sorted(times) and len(set(times)) == FRAMES
    # The plot is the core's matplotlib figure, sent as a picture.
    assert timeline["type"] == "matplotlib"
    header, data = timeline["plot"].split(",", 1)
    assert header.startswith("data:image/")
    assert Image.open(io.BytesIO(base64.b64decode(data))).size[0] > 400
    # The same points, as data: one row per analysed frame in the zip's timeline.csv.
    rows = list(csv.DictReader(io.StringIO(zip_entries(downloaded(downloads, ".zip"))["timeline.csv"].decode())))
    assert [float(r["fake_probability"]) for r in rows] == pytest.approx(probabilities)
    assert [float(r["timestamp_s"]) for r in rows] == pytest.approx(times)
    # One key frame picture per analysed frame, with its time and score.
    assert len(key_frames) == FRAMES
    assert key_frames[1]["caption"] == f"frame {report['frames'][1]['index']} · {times[1]:.2f} s · frame score {probabilities[1]:.0%}"


@pytest.mark.slow
def test_the_heatmap_has_the_frame_size_and_is_not_constant(video_answer):
    report, *_, key_frames, downloads = video_answer
    entries = zip_entries(downloaded(downloads, ".zip"))
    heatmaps = sorted(name for name in entries if name.startswith("heatmap_") and name.endswith(".png"))
    assert len(heatmaps) == FRAMES
    for name in heatmaps:
        heatmap = np.asarray(Image.open(io.BytesIO(entries[name])))
        assert heatmap.shape == (report["media"]["height"], report["media"]["width"])
        assert heatmap.std() > 1 and heatmap.max() > 128, f"{name} is (nearly) constant"
        # Hot where the face is: the mean inside the analysed face box beats the mean outside it.
        frame = report["frames"][int(name[8:10])]
        x, y, w, h = (int(v) for v in frame["faces"][0]["box"])
        inside = heatmap[y : y + h, x : x + w]
        assert inside.mean() > heatmap.mean()
    # The page shows the overlay: a picture of the frame's proportions (scaled down for the page).
    shown = Image.open(key_frames[0]["image"])
    assert shown.size[0] / shown.size[1] == pytest.approx(report["media"]["width"] / report["media"]["height"], rel=0.01)
    assert "index.html" in entries and "report.json" in entries


def test_the_synthetic_example_shows_what_no_face_means(client, tmp_path):
    from gradio_demo.examples import synthetic_no_face

    picture = synthetic_no_face(tmp_path / "synthetic-no-face.png")
    report, verdict, summary, timeline, key_frames, downloads = client.predict(
        handle_file(str(picture)), "default", FRAMES, api_name="/analyze_file"
    )
    assert report["verdict"] == "no_face" and report["fake_probability"] is None
    assert verdict == {"label": "no face", "confidences": None}
    assert "no face was found" in summary
    assert key_frames[0]["caption"] == "frame 0 · image · no face"


def test_a_text_file_gives_an_error_message_not_a_traceback(client, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not media\n" * 100)
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(notes)), "default", FRAMES, api_name="/analyze_file")
    message = str(caught.value)
    # The core's own message for this file (it names the file and says what it is not), and nothing more.
    from detector import DetectorError
    from detector.media import open_media

    with pytest.raises(DetectorError) as expected, open_media(notes):
        pass
    assert message == expected.value.message
    assert message.startswith("notes.txt: ") and " not " in message
    assert "Traceback" not in message and 'File "' not in message


def test_bad_choices_are_explained(client, face_photo):
    with pytest.raises(AppError, match="greater than maximum value 64"):  # the slider's own check
        client.predict(handle_file(str(face_photo)), "default", 65, api_name="/analyze_file")
    with pytest.raises(AppError, match="is not offered here"):
        client.predict(handle_file(str(face_photo)), "/etc", FRAMES, api_name="/analyze_file")
    with pytest.raises(AppError, match="paste at least one link"):
        client.predict("  \n# only a comment\n", "default", FRAMES, api_name="/analyze_links")


def test_a_hub_model_missing_from_the_offline_cache_says_so(client, face_photo):
    with pytest.raises(AppError) as caught:
        client.predict(handle_file(str(face_photo)), "nobody/no-such-model", FRAMES, api_name="/analyze_file")
    assert "nobody/no-such-model" in str(caught.value) and "Traceback" not in str(caught.value)


# ------------------------------------------------------------------------------------------------ analyze_links


def test_a_link_to_a_video_gives_a_report(client, media_server):
    url = media_server.url("/files/video.mp4")
    table, reports, verdict, summary, timeline, key_frames, downloads = client.predict(
        url, "default", 4, api_name="/analyze_links"
    )
    assert "/files/video.mp4" in media_server.requests
    (report,) = reports
    assert report["source"] == url
    assert report["media"]["kind"] == "video" and report["media"]["frames_analyzed"] == 4
    assert report["verdict"] in ("real", "fake", "uncertain")
    assert report["timings_ms"]["fetch"] > 0
    assert table["headers"] == ["link", "verdict", "fake probability", "frames", "error"]
    assert table["data"] == [[url, report["verdict"], f"{report['fake_probability']:.0%}", 4, ""]]
    assert verdict["label"] == report["verdict"] and len(key_frames) == 4
    assert json.loads(Path(downloaded(downloads, "-report.json")).read_text()) == report


@pytest.mark.slow
def test_several_links_give_one_row_per_link_with_errors_in_their_rows(client, media_server):
    links = [media_server.url("/files/photo.jpg"), media_server.url("/files/notes.txt"), media_server.url("/status/404")]
    table, reports, verdict, summary, timeline, key_frames, downloads = client.predict(
        "\n".join([links[0], "", *links[1:], links[0]]), "default", FRAMES, api_name="/analyze_links"
    )
    assert [row[0] for row in table["data"]] == links  # blank lines and repeats dropped
    photo, notes, missing = table["data"]
    assert photo[1] in ("real", "fake", "uncertain") and photo[4] == ""
    assert notes[1] == "" and notes[4], "the error says why"
    assert missing[1] == "" and "404" in missing[4]
    assert reports[0]["source"] == links[0] and reports[0]["media"]["kind"] == "image"
    assert reports[1]["error"]["message"] == notes[4] and reports[2]["error"]["code"] == "fetch_failed"
    assert verdict["label"] == reports[0]["verdict"]  # the details are the first link that was analysed
    assert json.loads(Path(downloaded(downloads, "links-reports.json")).read_text()) == reports


def test_a_single_link_that_cannot_be_fetched_gives_an_error_message(client):
    with pytest.raises(AppError) as caught:
        client.predict("file:///etc/passwd", "default", FRAMES, api_name="/analyze_links")
    assert "file: URLs are not supported" in str(caught.value)


@pytest.mark.slow
def test_progress_goes_through_fetch_decode_faces_and_model(detector, media_server, tmp_path):
    from gradio_demo.analysis import DemoAnalyzer, model_pool
    from gradio_demo.settings import DemoSettings

    settings = DemoSettings(allow_private_urls=True)
    analyzer = DemoAnalyzer(settings, model_pool(settings, preloaded={"default": detector}), tmp_path)
    seen: list[tuple[float, str]] = []
    try:
        analyzer.analyze_links(media_server.url("/files/video.mp4"), "default", 4, lambda f, text: seen.append((f, text)))
    finally:
        analyzer.close()
    stages = list(dict.fromkeys(text.split(" (")[0] for _, text in seen))
    assert stages == ["fetching the media", "decoding key frames", "finding faces", "running the model", "drawing the report"]
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] < 0.3 and fractions[-1] == 1.0


def connect(process: subprocess.Popen, port: int, log: Path, downloads: Path, timeout_s: float = 180) -> Client:
    """A client of the demo that `process` starts on `port`, once it answers (its log tells why it did not)."""
    deadline = time.monotonic() + timeout_s
    while True:
        assert process.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the app did not start in time:\n" + log.read_text()
        try:
            return Client(f"http://127.0.0.1:{port}/", verbose=False, analytics_enabled=False, download_files=downloads)
        except Exception:
            time.sleep(1)


@pytest.mark.slow
def test_the_assembled_space_starts_with_python_app_py_and_refuses_private_links(tmp_path, media_server, face_photo):
    from gradio_demo.build_space import build_space

    space = build_space(tmp_path / "space", allow_untrained=True)
    port = free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        "HF_HUB_OFFLINE": "1",
        "DEEPFAKE_SHARED_DIR": str(tmp_path / "no-shared-data"),  # a Space has none
        "DEEPFAKE_THREADS": "1",
        "DEEPFAKE_DEMO_MEMORY_FILE": str(tmp_path / "memory.sqlite"),  # not the user's cache
        "PYTHONPATH": "",
    }
    env.pop("DEEPFAKE_ALLOW_PRIVATE_URLS", None)
    log = open(tmp_path / "app.log", "w")
    process = subprocess.Popen([sys.executable, "app.py"], cwd=space, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = connect(process, port, tmp_path / "app.log", tmp_path)
        report, verdict, *_ = client.predict(handle_file(str(face_photo)), "default", FRAMES, api_name="/analyze_file")
        assert verdict["label"] == report["verdict"] and report["model"]["id"] in ("default", "untrained")
        assert (tmp_path / "memory.sqlite").is_file()  # the Space remembers what it judged
        with pytest.raises(AppError, match="private addresses are not allowed"):
            client.predict(media_server.url("/files/video.mp4"), "default", FRAMES, api_name="/analyze_links")
        assert "/files/video.mp4" not in media_server.requests
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()
    # A quiet start (one line when ready, no request logs) and a clean stop on SIGTERM: no traceback.
    output = (tmp_path / "app.log").read_text()
    assert process.returncode == 0 and "Traceback" not in output, output
    assert f"deepfake demo serving on http://127.0.0.1:{port}/ (model " in output and "HTTP Request" not in output, output
