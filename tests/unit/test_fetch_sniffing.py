"""What a fetch downloads with plain HTTP: images and video files known by their first bytes, nothing else."""

from __future__ import annotations

import pytest
from PIL import Image

from detector.fetching.fetch import _media_extension
from detector.media import open_media
from tests.support.mediafactory import ffmpeg


@pytest.mark.parametrize(
    "name,options,suffix",
    [
        ("clip.mp4", ["-c:v", "libx264", "-pix_fmt", "yuv420p"], ".mp4"),
        ("clip.mov", ["-c:v", "libx264", "-pix_fmt", "yuv420p"], ".mov"),
        ("clip.webm", ["-c:v", "libvpx", "-b:v", "200k"], ".webm"),
        ("clip.mkv", ["-c:v", "libx264", "-pix_fmt", "yuv420p"], ".mkv"),
        ("clip.avi", ["-c:v", "mjpeg"], ".avi"),
    ],
)
def test_video_files_are_known_by_their_first_bytes(tmp_path, name, options, suffix):
    made = tmp_path / name
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=1", *options, str(made))
    assert _media_extension(made.read_bytes()[:64]) == suffix
    renamed = made.rename(tmp_path / f"fetched{suffix}")  # the name the fetch gives it opens as the video it is
    with open_media(renamed) as media:
        assert media.kind == "video"


@pytest.mark.parametrize("fmt,suffix", [("JPEG", ".jpg"), ("PNG", ".png"), ("WEBP", ".webp")])
def test_images_are_known_by_their_first_bytes(tmp_path, fmt, suffix):
    target = tmp_path / "picture"
    Image.new("RGB", (32, 32), (200, 120, 40)).save(target, format=fmt)
    assert _media_extension(target.read_bytes()[:64]) == suffix


@pytest.mark.parametrize(
    "head,expected",
    [
        (b"<!doctype html><html><head><title>a post</title></head>", None),
        (b"#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:2\n", None),  # HLS: left to yt-dlp
        (b"not media at all, just some words in a text file......", None),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", ".avif"),  # an image, not an MP4
    ],
)
def test_pages_playlists_and_other_files_are_left_to_yt_dlp(head, expected):
    assert _media_extension(head) == expected
