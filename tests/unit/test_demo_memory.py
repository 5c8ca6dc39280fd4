"""The demo's memory (gradio_demo/memory.py) on a real SQLite file: nothing matched at first, a rescaled copy
matched with the earlier verdict and counted once per earlier analysis, unrelated pictures not matched, a face
close-up's share read from the Report's boxes (a whole-frame stand-in does not count), and a file that cannot be
opened costing the visitor nothing. Through the real app: tests/integration/test_gradio_memory.py."""

from __future__ import annotations

import cv2
import numpy as np

from detector.memory import CLOSE_UP_SHARE, face_shares
from detector.report import FaceResult, FrameResult, MediaInfo, ModelInfo, Report
from gradio_demo.memory import DemoMemory


def report_of(verdict: str, boxes: list[list[float]], whole_frame: bool = False) -> Report:
    faces = [FaceResult(n, box, 0.9, 0.5, whole_frame) for n, box in enumerate(boxes)]
    media = MediaInfo("image", "png", None, 200, 100, 0.0, None, 1, 0, 1000, frames_analyzed=1)
    frame = FrameResult(0, 0.0, 0.5, 0.5, faces)
    return Report("x", verdict, 0.5, 0.5, 0.5, [0.4, 0.6], media, [frame], [], ModelInfo("test", None, "m"), {})


def picture(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 255, (6, 12, 3)).astype(np.uint8)
    return cv2.resize(coarse, (200, 100), interpolation=cv2.INTER_CUBIC)


def test_face_shares_come_from_the_largest_real_face():
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    assert face_shares(report_of("real", [[0, 0, 20, 10], [10, 10, 50, 80]]), [image]) == [0.2]
    assert face_shares(report_of("real", [[0, 0, 200, 100]], whole_frame=True), [image]) == [0.0]
    assert 0.2 >= CLOSE_UP_SHARE


def test_a_copy_is_recalled_with_the_earlier_verdict_and_unrelated_pictures_are_not(tmp_path):
    memory = DemoMemory(tmp_path / "demo" / "memory.sqlite")
    try:
        original = picture(1)
        assert memory.recall_and_remember(report_of("fake", [[50, 10, 100, 80]]), [original]) == []
        for n in range(2, 12):  # unrelated pictures: stored, matched with nothing
            assert memory.recall_and_remember(report_of("real", []), [picture(n)]) == []
        copy = cv2.resize(original, (100, 50), interpolation=cv2.INTER_AREA)
        found = memory.recall_and_remember(report_of("real", [[25, 5, 50, 40]]), [copy])
        assert [(m.verdict, m.times_seen) for m in found] == [("fake", 1)] and found[0].similarity > 0.8
        again = memory.recall_and_remember(report_of("real", []), [original])
        assert sorted(m.verdict for m in again) == ["fake", "real"]  # the original and its copy, each once
    finally:
        memory.close()


def test_a_memory_that_cannot_be_opened_answers_nothing(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    memory = DemoMemory(tmp_path / "a-file" / "memory.sqlite")
    assert memory.recall_and_remember(report_of("fake", []), [picture(1)]) == []
