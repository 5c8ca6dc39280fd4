"""Opening media: formats decided by content, metadata, rotation, and typed refusals of bad input."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
from PIL import Image

from detector.errors import (
    CorruptMediaError,
    EmptyMediaError,
    MediaTooLargeError,
    MediaTooLongError,
    UnsupportedMediaError,
)
from detector.media import MediaLimits, open_media
from tests.support.mediafactory import ffmpeg, read_frames, truncate, write_video


@pytest.fixture(scope="module")
def real_frames(real_video):
    return read_frames(real_video, limit=50)  # 192x244, 30 fps, a real face


@pytest.mark.parametrize("fmt,ext", [("JPEG", "jpg"), ("PNG", "png"), ("WEBP", "webp"), ("BMP", "bmp")])
def test_images_open_by_content(tmp_path, face_photo, fmt, ext):
    target = tmp_path / f"photo.{ext}"
    Image.open(face_photo).save(target, format=fmt)
    with open_media(target) as media:
        assert media.kind == "image"
        assert media.info.format == fmt.lower()
        assert media.image.shape == (256, 256, 3) and media.image.dtype == np.uint8


def test_name_does_not_decide_the_type(tmp_path, face_photo):
    disguised = tmp_path / "photo.mp4"
    disguised.write_bytes(face_photo.read_bytes())
    with open_media(disguised) as media:
        assert media.kind == "image" and media.info.format == "jpeg"


def test_iso_media_files_are_named_by_their_brand_not_as_mov(tmp_path, real_frames):
    # FFmpeg has one demuxer for the whole family ("mov,mp4,m4a,3gp,3g2,mj2"); users know their .mp4 as mp4.
    source = write_video(tmp_path / "clip.mp4", real_frames[:10])
    ffmpeg("-i", str(source), "-c", "copy", "-f", "mov", str(tmp_path / "clip.mov"))
    ffmpeg("-i", str(source), "-c", "copy", "-f", "3gp", str(tmp_path / "clip.3gp"))
    formats = {}
    for name in ("clip.mp4", "clip.mov", "clip.3gp"):
        with open_media(tmp_path / name) as media:
            formats[name] = media.info.format
    assert formats == {"clip.mp4": "mp4", "clip.mov": "mov", "clip.3gp": "3gp"}


def test_gif_gives_its_first_frame(tmp_path, face_photo):
    first = Image.open(face_photo).convert("RGB")
    second = Image.new("RGB", first.size, (255, 0, 0))
    target = tmp_path / "anim.gif"
    first.save(target, save_all=True, append_images=[second], duration=100)
    with open_media(target) as media:
        assert media.info.frame_count == 2
        # the first frame is the face, not the red frame
        assert abs(int(media.image[..., 0].mean()) - 255) > 50


def test_exif_rotation_is_applied(tmp_path, full_frame):
    image = Image.open(full_frame).convert("RGB").resize((480, 270))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored sideways: rotate 90 degrees clockwise to display
    target = tmp_path / "rotated.jpg"
    image.save(target, exif=exif)
    with open_media(target) as media:
        assert media.info.rotation == 90
        assert (media.info.width, media.info.height) == (270, 480)


@pytest.mark.parametrize(
    "name,codec,pix_fmt,options",
    [
        ("clip.mp4", "libx264", "yuv420p", None),
        ("clip.mov", "libx264", "yuv420p", None),
        ("clip.mkv", "libx264", "yuv420p", None),
        ("clip.webm", "libvpx-vp9", "yuv420p", {"deadline": "realtime", "cpu-used": "8"}),
        ("clip.avi", "mpeg4", "yuv420p", None),
    ],
)
def test_video_containers_and_codecs(tmp_path, real_frames, name, codec, pix_fmt, options):
    path = write_video(tmp_path / name, real_frames, fps=25, codec=codec, pix_fmt=pix_fmt, options=options)
    with open_media(path) as media:
        info = media.info
        assert media.kind == "video"
        assert (info.width, info.height) == (192, 244)
        assert info.fps == pytest.approx(25, rel=0.01)
        assert info.duration_s == pytest.approx(2.0, abs=0.1)
        frames = list(media.frames_at([0.0, 1.0, 1.8]))
        assert [f.index for f in frames] == [0, 25, 45]
        assert media.to_rgb(frames[1].frame).shape == (244, 192, 3)


def test_video_rotation_matches_ffmpeg(tmp_path, real_frames):
    path = write_video(tmp_path / "portrait.mp4", real_frames[:10], fps=25, rotation=90)
    upright = tmp_path / "upright.png"
    ffmpeg("-i", str(path), "-frames:v", "1", str(upright))  # ffmpeg applies the display matrix itself
    expected = np.asarray(Image.open(upright).convert("RGB")).astype(int)
    with open_media(path) as media:
        assert media.info.rotation in (90, 270)
        assert (media.info.width, media.info.height) == (244, 192)
        ours = media.to_rgb(next(media.frames_at([0.0])).frame).astype(int)
    assert ours.shape == expected.shape
    assert np.abs(ours - expected).mean() < 3


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(EmptyMediaError):
        open_media(empty)


def test_text_named_mp4(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    with pytest.raises(UnsupportedMediaError):
        open_media(text)


def test_truncated_mp4_without_index(tmp_path, fake_video):
    # the index (moov) of this file sits at its end: half a file has none
    with pytest.raises(CorruptMediaError):
        open_media(truncate(fake_video, tmp_path / "cut.mp4", 0.5))


def test_truncated_mp4_with_index_first(tmp_path, fake_video):
    faststart = tmp_path / "faststart.mp4"
    ffmpeg("-i", str(fake_video), "-c", "copy", "-movflags", "+faststart", str(faststart))
    cut = truncate(faststart, tmp_path / "cut.mp4", 0.6)
    with pytest.raises(CorruptMediaError, match="truncated"):
        with open_media(cut) as media:
            list(media.frames_at([t * 1.0 for t in range(int(media.info.duration_s))]))


def test_truncated_jpeg(tmp_path, face_photo):
    with pytest.raises(CorruptMediaError):
        open_media(truncate(face_photo, tmp_path / "cut.jpg", 0.5))


def test_limits(tmp_path, full_frame, fake_video):
    with pytest.raises(MediaTooLargeError, match="megapixel"):
        open_media(full_frame, MediaLimits(max_pixels=1_000_000))
    with pytest.raises(MediaTooLargeError, match="kB is over the 100 kB limit"):
        open_media(fake_video, MediaLimits(max_bytes=100_000))  # "892 kB is over the 100 kB limit"
    with pytest.raises(MediaTooLongError):
        open_media(fake_video, MediaLimits(max_duration_s=5))


def test_audio_only_is_refused(tmp_path):
    audio = tmp_path / "sound.mp4"
    ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=1", "-c:a", "aac", str(audio))
    with pytest.raises(UnsupportedMediaError, match="no video"):
        open_media(audio)


def test_ffmpeg_is_available():
    # the fetcher and the fixtures above rely on it; setup installs it
    assert subprocess.run(["ffmpeg", "-version"], capture_output=True).returncode == 0
