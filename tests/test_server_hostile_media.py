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


# ---------------------------------------------------------------------------------- memory of decoding images


class RssWatch:
    """The highest resident memory of this process (the server's: tests/liveserver.py serves in it) above where it
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
