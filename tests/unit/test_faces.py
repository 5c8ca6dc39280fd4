"""Face detection on real frames, track linking, and crops."""

from __future__ import annotations

import numpy as np
import pytest

from detector.errors import FaceDetectorError
from detector.faces import Face, create_face_detector, crop_face, crop_window, iou, link_tracks
from detector.media import open_media


@pytest.fixture(scope="module")
def frame(full_frame):
    with open_media(full_frame) as media:
        return media.image


@pytest.mark.parametrize("backend", ["dlib", "yunet"])
def test_finds_the_face_in_a_full_hd_frame(frame, backend, yunet_model):
    faces = create_face_detector(backend, yunet_path=str(yunet_model)).detect(frame)
    assert len(faces) == 1
    face = faces[0]
    h, w = frame.shape[:2]
    assert 0 <= face.x and face.x + face.w <= w and 0 <= face.y and face.y + face.h <= h
    # the person's face: around x 930-1110, y 135-360 in this 1920x1080 frame
    assert iou(face, Face(927, 136, 169, 222, 1.0)) > 0.5


def test_both_backends_frame_the_face_alike(frame, yunet_model):
    a = create_face_detector("dlib").detect(frame)[0]
    b = create_face_detector("yunet", yunet_path=str(yunet_model)).detect(frame)[0]
    assert iou(a, b) > 0.6


def test_noise_has_no_face(yunet_model):
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for backend in ("dlib", "yunet"):
        assert create_face_detector(backend, yunet_path=str(yunet_model)).detect(noise) == []


def test_auto_falls_back_to_dlib_without_a_yunet_file(tmp_path):
    from detector.settings import CoreSettings

    nowhere = CoreSettings(shared_dir=tmp_path)  # no YuNet file configured, none in the shared folder
    assert create_face_detector("auto", settings=nowhere).name == "dlib"
    with pytest.raises(FaceDetectorError, match="model file"):
        create_face_detector("yunet", settings=nowhere)
    with pytest.raises(FaceDetectorError, match="unknown face detector"):
        create_face_detector("mtcnn")


def test_none_backend_is_the_whole_frame(frame):
    faces = create_face_detector("none").detect(frame)
    assert len(faces) == 1 and faces[0].whole_frame and (faces[0].w, faces[0].h) == (1920, 1080)


def test_tracks_link_moving_faces_and_keep_the_largest():
    big = [Face(100 + 10 * i, 100, 200, 200, 0.9) for i in range(5)]
    small = [Face(600 - 5 * i, 50, 60, 60, 0.9) for i in range(5)]
    blip = Face(900, 900, 40, 40, 0.6)
    per_frame = [[small[i], big[i]] + ([blip] if i == 2 else []) for i in range(5)]
    tracks = link_tracks(per_frame, max_tracks=2)
    assert [len(t.faces) for t in tracks] == [5, 5]
    assert tracks[0].faces[4] is big[4] and tracks[1].faces[0] is small[0]
    assert len(link_tracks(per_frame, max_tracks=1)) == 1


def test_crop_is_square_and_stays_inside_the_frame():
    image = np.zeros((100, 200, 3), dtype=np.uint8)
    image[:, :100] = 255  # left half white
    # a face at the top-left corner: the 2x window (-25..75) moves inside the frame (0..100): all white, no padding
    crop = crop_face(image, Face(0, 0, 50, 50, 1.0), margin=2.0, size=64)
    assert crop.shape == (64, 64, 3) and crop.min() == 255
    # centred where there is room: a face at x 125..175 gives the window 100..200, all black
    assert crop_face(image, Face(125, 25, 50, 50, 1.0), margin=2.0, size=64).max() == 0
    # a window larger than the frame shrinks to the frame's shorter side
    assert crop_window(Face(50, 0, 100, 100, 1.0), 1.5, 200, 100) == (50, 0, 100)


def test_whole_frame_crop_is_padded_evenly():
    image = np.full((100, 200, 3), 255, dtype=np.uint8)
    crop = crop_face(image, create_face_detector("none").detect(image)[0], margin=1.3, size=64)
    assert crop[:15].max() == 0 and crop[-15:].max() == 0 and crop[20:44].min() == 255
