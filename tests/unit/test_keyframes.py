"""Key frames: spread over the clip, after large changes, decoded without reading more than needed."""

from __future__ import annotations

import numpy as np

from detector.keyframes import plan_candidates, plan_decoding, select_key_frames
from detector.media import open_media
from tests.support.mediafactory import read_frames, write_video


def test_plan_spreads_over_the_clip():
    segments = plan_candidates(duration_s=60.0, fps=30.0, frame_count=1800, n=16)
    assert len(segments) == 16
    flat = [t for seg in segments for t in seg]
    assert flat == sorted(flat) and len(set(flat)) == len(flat)
    assert flat[0] < 60 / 16 and flat[-1] > 60 - 60 / 16
    # about 4 candidates per second of clip, at most 4 per segment
    assert all(1 <= len(seg) <= 4 for seg in segments)


def test_short_clip_uses_every_frame():
    assert plan_candidates(duration_s=0.4, fps=25.0, frame_count=10, n=16) == [[i / 25.0] for i in range(10)]


def test_key_frames_of_the_ffpp_video(fake_video):
    with open_media(fake_video) as media:
        frames = select_key_frames(media, 16)
        duration = media.info.duration_s
    assert len(frames) == 16
    times = [f.timestamp_s for f in frames]
    assert all(a < b for a, b in zip(times, times[1:]))
    assert 0 <= times[0] and times[-1] <= duration
    assert all(f.image.shape == (480, 640, 3) for f in frames)


def test_prefers_the_frame_after_a_cut(tmp_path, real_video, fake_video):
    # 4 s at 25 fps: the real face, then at frame 60 a cut to the other video's scene.
    first = read_frames(real_video, limit=100)
    second = [np.asarray(f[:244, :192]) for f in read_frames(fake_video, limit=100)]
    frames = first[:60] + second[60:100]
    path = write_video(tmp_path / "cut.mp4", frames, fps=25)
    with open_media(path) as media:
        chosen = select_key_frames(media, 4, candidate_rate=8.0)
    # the segment holding the cut (frames 50-74) keeps a frame from after the cut, with the largest change
    cut_segment = [f for f in chosen if 50 <= f.index < 75]
    assert len(cut_segment) == 1 and cut_segment[0].index >= 60
    assert cut_segment[0].change == max(f.change for f in chosen)


def test_plan_uses_key_frames_only_when_every_segment_has_one(tmp_path, real_video):
    frames = read_frames(real_video, limit=100)  # 4 s at 25 fps
    dense = write_video(tmp_path / "dense.mp4", frames, fps=25, options={"g": "10", "keyint_min": "10", "sc_threshold": "0"})
    sparse = write_video(tmp_path / "sparse.mp4", frames, fps=25, options={"g": "250"})
    with open_media(dense) as media:
        segments, skip = plan_decoding(media, 8)
        chosen = select_key_frames(media, 8)
        keyframes = media.keyframe_times()
        assert skip == "NONKEY" and len(keyframes) == 10
        assert all(f.timestamp_s in keyframes for f in chosen) and len(chosen) == 8
        assert media.frames_decoded <= len(keyframes)  # each candidate key frame decoded once, nothing else
    with open_media(sparse) as media:
        _, skip = plan_decoding(media, 8)
        assert skip == "NONREF"  # 100 frames to decode for 8 segments' candidates: skip the unreferenced ones
        chosen = select_key_frames(media, 8)
        assert len(chosen) == 8 and media.frames_decoded < 100


def test_seeking_skips_what_lies_between_key_frames(tmp_path, real_video):
    frames = read_frames(real_video, limit=100)
    path = write_video(tmp_path / "gop.mp4", frames, fps=25, options={"g": "25", "keyint_min": "25", "sc_threshold": "0"})
    with open_media(path) as media:
        got = list(media.frames_at([0.0, 3.0, 3.5]))
        assert [f.index for f in got] == [0, 75, 87]
        # frame 0, then a seek to the key frame at 3.0 s (frame 75) and 13 more: far fewer than the 88 in a row
        assert media.frames_decoded <= 20


def test_sparse_key_frames_plan_decodes_around_them(tmp_path, real_video):
    # 24 s at 25 fps with a key frame every 4 s: too few for one per segment, and the regular candidates would
    # mean decoding most of the stream, so each key frame and the frame after it are analysed instead.
    frames = read_frames(real_video, limit=300)
    path = write_video(
        tmp_path / "sparse.mp4", frames * 2, fps=25, options={"g": "100", "keyint_min": "100", "sc_threshold": "0"}
    )
    with open_media(path) as media:
        keyframes = media.keyframe_times()
        assert len(keyframes) == 6
        segments, skip = plan_decoding(media, 8)
        assert skip == "DEFAULT" and len(segments) == 8
        chosen = select_key_frames(media, 8)
        times = [f.timestamp_s for f in chosen]
        assert len(chosen) == 8 and all(a < b for a, b in zip(times, times[1:]))
        assert set(keyframes) <= set(times)  # every key frame is analysed: the plan still spans the clip
        assert media.frames_decoded <= 16  # against hundreds for the regular candidates


def test_key_frames_far_apart_keep_the_regular_plan(fake_video):
    # key frames at 0 s and 10 s of 15.8 s: frames around them would leave most of the clip unseen
    with open_media(fake_video) as media:
        assert plan_decoding(media, 4)[1] == "NONREF"
        assert plan_decoding(media, 8)[1] == "NONREF"
        times = [f.timestamp_s for f in select_key_frames(media, 8)]
    assert max(b - a for a, b in zip([0.0, *times], times)) < 4.0
