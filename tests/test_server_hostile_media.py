"""The backend against hostile media and hostile clients, round three (issue 25): pictures that grow mid-stream,
images that cost far more memory than their bytes, verdicts laundered through the URL cache, slow clients.
Real server on 127.0.0.1 over real HTTP, media made here with Pillow, PyAV and ffmpeg; everything stays on
loopback and every loop is bounded.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.liveserver import assert_error
from tests.mediafactory import concatenated_ts, mjpeg_avi


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
