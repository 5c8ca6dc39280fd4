"""End to end through the front door and the CLI, on real media."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from detector import SCHEMA_VERSION, CorruptMediaError, EmptyMediaError, UnsupportedMediaError
from tests.conftest import ROOT
from tests.support.mediafactory import truncate

REPORT_KEYS = {
    "schema_version",
    "source",
    "verdict",
    "fake_probability",
    "confidence",
    "threshold",
    "uncertain_band",
    "media",
    "frames",
    "tracks",
    "model",
    "timings_ms",
    "warnings",
    "provenance",
}


def check_report_contract(report: dict) -> None:
    assert REPORT_KEYS <= set(report)
    assert report["schema_version"] == SCHEMA_VERSION
    assert report["verdict"] in ("real", "fake", "uncertain", "no_face")
    if report["verdict"] != "no_face":
        assert 0.0 <= report["fake_probability"] <= 1.0 and 0.0 <= report["confidence"] <= 1.0
    media = report["media"]
    assert {"kind", "width", "height", "duration_s", "fps", "frames_analyzed"} <= set(media)
    assert {"id", "revision", "architecture"} <= set(report["model"])
    assert {"fetch", "decode", "faces", "model", "total"} <= set(report["timings_ms"])
    for frame in report["frames"]:
        assert {"index", "timestamp_s", "fake_probability", "smoothed_probability", "faces"} <= set(frame)
    assert {"c2pa", "iptc_digital_source_type", "ai_generated"} == set(report["provenance"])
    json.dumps(report)  # serialisable


@pytest.mark.parametrize("which", ["fake_video", "real_video"])
def test_video_reports(detector, request, which):
    path = request.getfixturevalue(which)
    report = detector.analyze(path).to_dict()
    check_report_contract(report)
    media = report["media"]
    assert media["kind"] == "video" and media["frames_analyzed"] >= 8
    times = [f["timestamp_s"] for f in report["frames"]]
    assert all(a < b for a, b in zip(times, times[1:]))
    assert 0 <= times[0] and times[-1] <= media["duration_s"]
    assert len(report["tracks"]) == 1
    track = report["tracks"][0]
    assert track["frames"] >= 8
    for frame in report["frames"]:
        for face in frame["faces"]:
            x, y, w, h = face["box"]
            assert face["track"] == 0
            assert 0 <= x and 0 <= y and x + w <= media["width"] and y + h <= media["height"]
            assert 0 <= face["fake_probability"] <= 1


def test_full_frame_image(detector, full_frame):
    report = detector.analyze(full_frame).to_dict()
    check_report_contract(report)
    assert report["media"]["kind"] == "image" and report["media"]["width"] == 1920
    assert report["verdict"] != "no_face" and len(report["frames"][0]["faces"]) == 1


def test_noise_image_has_no_face(detector, tmp_path):
    noise = tmp_path / "noise.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(noise)
    for backend in ("dlib", "yunet"):
        report = detector.analyze(noise, face_detector=backend).to_dict()
        check_report_contract(report)
        assert report["verdict"] == "no_face"
        assert report["fake_probability"] is None and report["tracks"] == []
    # scoring the whole image instead, when asked to
    fallback = detector.analyze(noise, whole_image_fallback=True).to_dict()
    assert fallback["verdict"] != "no_face" and fallback["frames"][0]["faces"][0]["whole_frame"]


def test_same_input_same_report(detector, fake_video):
    first, second = (detector.analyze(fake_video).to_dict() for _ in range(2))
    first.pop("timings_ms"), second.pop("timings_ms")
    assert first == second


def test_frames_option(detector, fake_video):
    report = detector.analyze(fake_video, frames=8).to_dict()
    assert report["media"]["frames_analyzed"] == 8


def test_bad_inputs_raise_typed_errors(detector, tmp_path, fake_video):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("hello\n" * 50)
    cut = truncate(fake_video, tmp_path / "cut.mp4", 0.5)
    with pytest.raises(EmptyMediaError):
        detector.analyze(empty)
    with pytest.raises(UnsupportedMediaError):
        detector.analyze(text)
    with pytest.raises(CorruptMediaError):
        detector.analyze(cut)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "detector", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_json_report(fake_video):
    result = run_cli("analyze", str(fake_video), "--json", "--frames", "8")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    check_report_contract(report)
    assert report["source"] == fake_video.name and report["media"]["frames_analyzed"] == 8


def test_cli_several_paths_give_a_list_and_a_summary(face_photo, full_frame):
    result = run_cli("analyze", str(face_photo), str(full_frame), "--json")
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert [r["source"] for r in reports] == [face_photo.name, full_frame.name]
    human = run_cli("analyze", str(face_photo))
    assert human.returncode == 0 and human.stdout.startswith(f"{face_photo.name}: ")


def test_cli_bad_input_exits_nonzero_without_traceback(tmp_path, fake_video, face_photo):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("not a video\n")
    cut = truncate(fake_video, tmp_path / "cut.mp4", 0.5)
    for path in (empty, text, cut, tmp_path / "missing.jpg"):
        result = run_cli("analyze", str(path))
        assert result.returncode != 0
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and errors[0].startswith(f"error: {path}: ")
        assert errors[0].count(path.name) == 1  # the path once, not the path and then its name again
    # one bad file among good ones: the good one is still reported, the exit status says something failed
    mixed = run_cli("analyze", str(face_photo), str(empty), "--json")
    assert mixed.returncode == 1
    reports = json.loads(mixed.stdout)
    assert reports[0]["verdict"] and reports[1]["error"]["code"] == "empty_media"


def test_cli_tells_a_missing_file_before_loading_any_model(tmp_path):
    code = (
        "import sys\nfrom detector.cli import main\n"
        "status = main(['analyze', sys.argv[1], sys.argv[2]])\n"
        "print(status, 'torch' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "gone.mp4"), str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.stdout.split() == ["1", "False"]  # failed, and PyTorch was never imported
    assert result.stderr.splitlines() == [
        f"error: {tmp_path / 'gone.mp4'}: no such file",
        f"error: {tmp_path}: is a folder, not a media file",
    ]


def test_cli_json_names_a_missing_file_as_missing(tmp_path):
    result = run_cli("analyze", str(tmp_path / "gone.mp4"), "--json")
    assert result.returncode == 1
    assert json.loads(result.stdout)["error"] == {"code": "file_not_found", "message": "no such file"}


def test_cli_unknown_model(face_photo):
    result = run_cli("analyze", str(face_photo), "--model", "/no/such/folder")
    assert result.returncode == 1 and "Traceback" not in result.stderr and "no model called" in result.stderr


def test_inspect_keeps_key_frames_and_explains(detector, fake_video):
    analysis = detector.inspect(fake_video, frames=4, explain=True)
    report = analysis.report.to_dict()
    assert len(analysis.key_frames) == len(analysis.heatmaps) == 4
    assert analysis.report.to_dict() == report and report["media"]["frames_analyzed"] == 4
    for key_frame, heatmap, frame in zip(analysis.key_frames, analysis.heatmaps, report["frames"]):
        assert key_frame.index == frame["index"]
        assert heatmap.shape == key_frame.image.shape[:2] == (480, 640)
        assert 0.9 < heatmap.max() <= 1.0 and heatmap.min() == 0.0 and heatmap.std() > 0.01
        # the map lies on the face: its peak is inside the face box grown by the crop margin
        x, y, w, h = frame["faces"][0]["box"]
        py, px = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        assert x - w * 0.5 <= px <= x + w * 1.5 and y - h * 0.5 <= py <= y + h * 1.5


def test_rendering(detector, fake_video):
    from detector.render import draw_faces, encode_jpeg, overlay_heatmap, timeline_png

    analysis = detector.inspect(fake_video, frames=4, explain=True)
    report = analysis.report
    boxed = draw_faces(analysis.key_frames[0].image, report.frames[0], report)
    assert boxed.shape == (480, 640, 3) and not np.array_equal(boxed, analysis.key_frames[0].image)
    overlaid = overlay_heatmap(analysis.key_frames[0].image, analysis.heatmaps[0])
    assert overlaid.shape == (480, 640, 3)
    assert timeline_png(report)[:8] == b"\x89PNG\r\n\x1a\n"
    from detector import Report

    assert Report.from_dict(json.loads(report.to_json())) == report  # a stored report.json reads back typed
    assert encode_jpeg(boxed)[:2] == b"\xff\xd8"


def test_a_post_link_goes_from_url_to_report_in_the_core(detector, media_server):
    # The one path shared by the CLI, the server and the demo: fetched through the guarded fetcher, timed, analysed.
    from detector.fetching.urlguard import UrlPolicy
    from detector.pipeline import Pipeline

    url = media_server.url("/page/video.mp4")  # a post page whose og:video is the clip
    pipeline = Pipeline(UrlPolicy(allow_private=True))  # the media server is on loopback
    try:
        stages = []
        report = pipeline.run(detector, url, frames=4, progress=lambda stage, done, total: stages.append(stage)).report
    finally:
        pipeline.close()
    assert report.source == url and report.media.kind == "video" and report.media.frames_analyzed == 4
    assert report.timings_ms["fetch"] > 0
    assert report.timings_ms["total"] >= report.timings_ms["fetch"] + report.timings_ms["decode"]
    assert stages[0] == "fetch" and "model" in stages


def test_cli_analyzes_a_link_and_refuses_a_private_one_by_default(media_server):
    url = media_server.url("/files/video.mp4")
    refused = run_cli("analyze", url)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().startswith(f"error: {url}: ") and "private addresses are not allowed" in refused.stderr
    assert "--allow-private-urls" in refused.stderr and "DEEPFAKE_ALLOW_PRIVATE_URLS=1" in refused.stderr  # the switch
    allowed = run_cli("analyze", url, "--allow-private-urls", "--frames", "4", "--json")
    assert allowed.returncode == 0, allowed.stderr
    report = json.loads(allowed.stdout)
    assert report["source"] == url and report["timings_ms"]["fetch"] > 0 and report["verdict"] in ("real", "fake", "uncertain")


def test_the_report_marks_an_unfamiliar_face_and_every_shell_says_so(yunet_model, face_photo):
    from dataclasses import replace

    from detector import Detector
    from detector.cli import summary_line

    accurate = Detector.load("accurate", yunet_path=str(yunet_model))  # the view that carries a familiarity check
    familiar = accurate.analyze(face_photo)
    assert familiar.unfamiliar is False and not any(t.unfamiliar for t in familiar.tracks)
    # A limit below every distance: the real photo's face now counts as unlike the training faces.
    accurate.config = replace(accurate.config, decision=replace(accurate.config.decision, unfamiliar_above=-1.0))
    report = accurate.analyze(face_photo)
    assert report.unfamiliar is True and all(t.unfamiliar for t in report.tracks) and report.verdict == "uncertain"
    assert report.to_dict()["schema_version"] == "1.1"
    line = summary_line(report)
    assert "UNCERTAIN (UNFAMILIAR FACE) — fake probability " in line and "unlike the faces the model learned from" in line
