"""Fetching media from URLs with yt-dlp and plain HTTP, against a real HTTP server on 127.0.0.1 serving real media.

Every request goes to 127.0.0.1. Tests of the safety rules use two servers: `media_server` is made "public" for
the fetch with a trusted endpoint, `forbidden` is an ordinary loopback server the fetch must never reach.
"""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from detector.errors import (
    DetectorError,
    FetchError,
    FetchTimeoutError,
    MediaTooLargeError,
    MediaTooLongError,
    NoMediaFoundError,
    UnsafeUrlError,
    UnsupportedUrlSchemeError,
)
from detector.fetching.fetch import FetchLimits, MediaFetcher
from detector.fetching.urlguard import UrlPolicy
from detector.media import open_media
from server.statuses import http_status
from tests.support.hostile import HostileSource
from tests.support.mediaserver import MediaServer


@pytest.fixture
def fetcher(tmp_path):
    fetcher = MediaFetcher(UrlPolicy(allow_private=True), FetchLimits(timeout_s=60), temp_dir=tmp_path)
    yield fetcher
    fetcher.close()


def failed_fetch(url: str, limits: FetchLimits, temp_dir, expected: type[DetectorError]) -> DetectorError:
    """The `expected` error a fetch of `url` under `limits` ends with, by a fetcher of its own (closed after)."""
    fetcher = MediaFetcher(UrlPolicy(allow_private=True), limits, temp_dir=temp_dir)
    try:
        with pytest.raises(expected) as caught:
            with fetcher.fetch(url):
                pass
    finally:
        fetcher.close()
    return caught.value


@pytest.fixture
def forbidden(media_root):
    with MediaServer(media_root) as server:
        yield server


@pytest.fixture
def guarded(media_server, tmp_path):
    """A fetcher that treats `media_server` (and nothing else on this machine) as a public site."""
    policy = UrlPolicy(trusted_endpoints=frozenset({("127.0.0.1", media_server.port)}))
    fetcher = MediaFetcher(policy, FetchLimits(timeout_s=60), temp_dir=tmp_path)
    yield fetcher
    fetcher.close()


def test_direct_video_file(fetcher, media_server, media_root, tmp_path):
    seen = []
    with fetcher.fetch(media_server.url("/files/video.mp4"), progress=lambda *a: seen.append(a)) as media:
        assert media.path.read_bytes() == (media_root / "video.mp4").read_bytes()
        assert media.method == "http" and media.final_url == media_server.url("/files/video.mp4")
        assert media.size_bytes == (media_root / "video.mp4").stat().st_size and media.fetch_ms > 0
        folder = media.path.parent
    assert not folder.exists() and list(tmp_path.iterdir()) == []  # the per-fetch folder is always removed
    assert seen and seen[-1][0] == "fetch" and seen[-1][1] == media.size_bytes


def test_hls_playlist_made_with_ffmpeg(fetcher, media_server):
    with fetcher.fetch(media_server.url("/files/hls/index.m3u8")) as media:
        assert media.duration_s == pytest.approx(15.8, abs=1.0)  # yt-dlp rounds playlist durations
        with open_media(media.path) as video:
            assert video.kind == "video" and video.info.duration_s == pytest.approx(15.8, abs=0.3)
    assert any(path.endswith(".ts") for path in media_server.requests)


@pytest.mark.parametrize("page", ["/page/video.mp4", "/video-tag/video.mp4"])
def test_post_page_with_og_video_or_video_tag(fetcher, media_server, media_root, page):
    with fetcher.fetch(media_server.url(page)) as media:
        assert media.path.read_bytes() == (media_root / "video.mp4").read_bytes()
        assert media.page_url == media_server.url(page) and media.title


def test_chunked_video_without_length(fetcher, media_server, media_root):
    with fetcher.fetch(media_server.url("/chunked/video.mp4")) as media:
        assert media.size_bytes == (media_root / "video.mp4").stat().st_size


@pytest.mark.parametrize("path", ["/files/photo.jpg", "/files/photo.bin", "/redirect?to=/files/photo.jpg"])
def test_image_url_with_plain_http(fetcher, media_server, media_root, path):
    with fetcher.fetch(media_server.url(path)) as media:
        assert media.method == "http" and media.path.read_bytes() == (media_root / "photo.jpg").read_bytes()
        assert media.final_url == media_server.url(path.replace("/redirect?to=", ""))


def test_page_with_only_og_image(fetcher, media_server, media_root):
    with fetcher.fetch(media_server.url("/image-page/photo.jpg")) as media:
        assert media.path.read_bytes() == (media_root / "photo.jpg").read_bytes()
        assert media.page_url == media_server.url("/image-page/photo.jpg")


def test_page_without_media(fetcher, media_server):
    with pytest.raises(NoMediaFoundError) as caught:
        with fetcher.fetch(media_server.url("/files/empty.html")):
            pass
    assert http_status(caught.value) == 422


def test_other_files_are_fetched_and_left_to_the_core_to_judge_by_content(fetcher, media_server):
    # yt-dlp takes any non-HTML answer as a direct file; what it is gets decided when it is opened.
    with fetcher.fetch(media_server.url("/files/notes.txt")) as media:
        assert media.path.read_text().startswith("not media")


@pytest.mark.parametrize("path", ["/files/missing.mp4", "/status/500"])
def test_source_errors_are_502(fetcher, media_server, path):
    with pytest.raises(FetchError, match="HTTP") as caught:
        with fetcher.fetch(media_server.url(path)):
            pass
    assert http_status(caught.value) == 502


def test_unreachable_source(fetcher, forbidden):
    port = forbidden.port
    forbidden.__exit__(None, None, None)  # nothing listens there any more
    with pytest.raises(FetchError) as caught:
        with fetcher.fetch(f"http://127.0.0.1:{port}/files/video.mp4"):
            pass
    assert http_status(caught.value) == 502


# ------------------------------------------------------------------------------------------------------ limits


@pytest.mark.parametrize(
    "path", ["/files/video.mp4", "/chunked/video.mp4", "/page/video.mp4", "/files/photo.jpg", "/chunked/photo.jpg"]
)
def test_byte_limit_with_and_without_declared_size(media_server, tmp_path, path):
    limit = 5_000 if "photo" in path else 300_000
    error = failed_fetch(media_server.url(path), FetchLimits(max_bytes=limit), tmp_path, MediaTooLargeError)
    assert http_status(error) == 413
    assert list(tmp_path.iterdir()) == []


def test_duration_limit_from_metadata_before_download(media_server, tmp_path):
    error = failed_fetch(media_server.url("/files/hls/index.m3u8"), FetchLimits(max_duration_s=5), tmp_path, MediaTooLongError)
    assert "15 s" in str(error)
    assert not any(path.endswith(".ts") for path in media_server.requests)  # refused before downloading


@pytest.mark.slow
def test_time_limit_on_a_stalling_source(media_server, tmp_path):
    error = failed_fetch(media_server.url("/slow/video.mp4"), FetchLimits(timeout_s=2), tmp_path, FetchTimeoutError)
    assert http_status(error) == 504 and list(tmp_path.iterdir()) == []


def test_a_silent_source_ends_at_the_fetch_deadline_as_a_timeout(tmp_path):
    with HostileSource("silent") as source:
        started = time.monotonic()
        error = failed_fetch(source.url("/video.mp4"), FetchLimits(timeout_s=2), tmp_path, FetchTimeoutError)
        elapsed = time.monotonic() - started
    # One deadline for the whole fetch, not a socket timeout per step (a silent server made it a 502 after 31 s).
    assert http_status(error) == 504 and "2 s" in error.message
    assert elapsed < 2 + 3, elapsed


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_dribbling_sources_leave_no_thread_or_descriptor_behind(tmp_path):
    """A response head sent one byte a second used to hold a proxy thread and two sockets for hours."""
    fetcher = MediaFetcher(UrlPolicy(allow_private=True), FetchLimits(timeout_s=1.5), temp_dir=tmp_path)

    def fetch_one(n: int) -> None:
        with pytest.raises(FetchTimeoutError):
            with fetcher.fetch(source.url(f"/video{n}.mp4")):
                pass

    with HostileSource("dribble") as source:
        try:
            fetch_one(0)  # the proxy's own threads start on first use
            time.sleep(0.5)
            threads, descriptors = threading.active_count(), open_descriptors()
            with ThreadPoolExecutor(max_workers=10) as pool:
                list(pool.map(fetch_one, range(1, 11)))
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and (threading.active_count() > threads or open_descriptors() > descriptors):
                time.sleep(0.1)
            assert threading.active_count() <= threads, [t.name for t in threading.enumerate()]
            assert open_descriptors() <= descriptors
        finally:
            fetcher.close()


# ------------------------------------------------------------------------------------------------ URL safety


def test_forbidden_address_refused_up_front(guarded, forbidden):
    with pytest.raises(UnsafeUrlError, match="loopback"):
        with guarded.fetch(forbidden.url("/files/photo.jpg")):
            pass
    assert forbidden.requests == []


def test_allowed_host_works_with_the_guard(guarded, media_server):
    with guarded.fetch(media_server.url("/page/video.mp4")) as media:
        assert media.size_bytes > 0


@pytest.mark.parametrize(
    "route",
    [
        "/redirect?to={forbidden}/files/video.mp4",  # a redirect from the allowed host to 127.0.0.1
        "/redirect?to={forbidden}/files/photo.jpg",
        "/page/video.mp4?src={forbidden}/files/video.mp4",  # og:video on another (forbidden) host
        "/video-tag/video.mp4?src={forbidden}/files/video.mp4",
        "/image-page/photo.jpg?src={forbidden}/files/photo.jpg",
        "/files/hls/evil.m3u8",  # an HLS playlist whose segments live on the forbidden host
        "/redirect?to=http://169.254.169.254/latest/meta-data/",  # the cloud metadata endpoint: never connected to
        "/redirect?to=http://[::ffff:127.0.0.1]:{forbidden_port}/files/video.mp4",
    ],
)
def test_every_connection_of_a_fetch_is_checked(guarded, media_server, media_root, forbidden, route):
    playlist = (media_root / "hls" / "index.m3u8").read_text()
    (media_root / "hls" / "evil.m3u8").write_text(playlist.replace("seg0", forbidden.url("/files/hls/seg0")))
    url = media_server.url(route.format(forbidden=forbidden.url(""), forbidden_port=forbidden.port))
    with pytest.raises(UnsafeUrlError) as caught:
        with guarded.fetch(url):
            pass
    assert http_status(caught.value) == 400
    assert forbidden.requests == []


def test_redirect_to_another_scheme(guarded, media_server):
    with pytest.raises(UnsupportedUrlSchemeError):
        with guarded.fetch(media_server.url("/redirect?to=file:///etc/passwd")):
            pass
