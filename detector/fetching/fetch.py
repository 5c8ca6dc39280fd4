"""Fetch the media behind a URL (a post page, a video link, an HLS playlist, an image) into a temporary file.

    fetcher = MediaFetcher(UrlPolicy(), FetchLimits(max_bytes=200_000_000, max_duration_s=600, timeout_s=60))
    with fetcher.fetch("https://example.com/post/123") as media:
        report = detector.analyze(media.path, source_name=media.url)
    # the temporary folder is gone here, whatever happened

How: the URL is checked (`urlguard.check_url`), then one GET tells what it is. An image or a video file in a
container the core reads (MP4/MOV, WebM/Matroska, AVI; judged by its first bytes, not its Content-Type) is streamed
to disk with plain HTTP: the browser extension mostly sends such direct links, and starting yt-dlp's process for
them cost ~0.6 s of a right-click on this machine. Anything else goes to yt-dlp, whose extractors cover post pages of many sites
and whose generic extractor covers other files, pages with `<video>` or `og:video`, and HLS playlists
(downloaded natively, not by ffmpeg). Only the first item of a playlist is taken.
When yt-dlp finds nothing on an HTML page that names an `og:image`, that image is fetched instead. yt-dlp runs in
a child process (`detector.fetching.extraction`), killed with anything it started at the fetch's deadline: its
regular expressions may spend minutes of CPU on a crafted page, and a thread cannot be stopped.

Safety and limits. Every connection of a fetch, whoever opens it (our GET, yt-dlp's page, redirect, playlist and
fragment requests), goes through the fetcher's forward proxy on 127.0.0.1 (`detector.fetching.guardproxy`): it resolves the
target, refuses it unless the `UrlPolicy` allows every address, connects to the checked address itself (so a DNS
answer cannot change between check and connect), and cuts every connection of the fetch off at its one deadline
(`FetchLimits.timeout_s`, for everything: connecting, pages, yt-dlp's extraction, the download) or when far more
bytes than the limit have gone through. Client libraries wait a little longer than the deadline, so a silent or
dribbling source ends as a `FetchTimeoutError` at the deadline, not as a socket timeout of their own. Sizes and durations known from metadata are checked before downloading; the
download is stopped as soon as it passes the byte limit (yt-dlp's own `max_filesize` alone skips silently and
misses unknown sizes), and the file is checked again at the end.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

from ..errors import (
    DetectorError,
    FetchError,
    FetchTimeoutError,
    MediaTooLargeError,
    NoMediaFoundError,
    UnsupportedUrlSchemeError,
    storage_error,
)
from ..paths import human_size
from .extraction import ExtractionDeadline, ExtractionRequest, FetchProgress, clean_message, extract_in_child, too_large
from .guardproxy import GuardProxy, ProxySession
from .urlguard import UrlPolicy, check_url

log = logging.getLogger(__name__)

URL_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(source) -> bool:
    """Whether a source names a URL (any scheme: those the fetcher does not take are refused by it, clearly) rather
    than a file."""
    return isinstance(source, str) and bool(URL_SCHEME.match(source))

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
# How much of an HTML page we read to look for og:image when yt-dlp finds no video.
PAGE_SNIFF_BYTES = 2 * 1024 * 1024


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int = 200 * 1024**2
    max_duration_s: float = 600.0
    timeout_s: float = 60.0  # the whole fetch: resolving, the page, every request, the download
    # An HTML page, counted as decoded (a gzip page of 261 KB may inflate to 256 MB): larger pages are refused
    # before yt-dlp reads them whole into memory.
    max_page_bytes: int = 8 * 1024**2


@dataclass
class FetchedMedia:
    path: Path  # the downloaded file, inside a temporary folder removed when the `fetch` block ends
    url: str  # as given
    final_url: str  # where the media itself came from, after redirects
    page_url: str | None  # the post page, when the media was found on one
    title: str | None
    uploader: str | None
    duration_s: float | None  # from metadata, when the source declares it
    size_bytes: int
    method: str  # "http" (plain image download) or "yt-dlp:<extractor>"
    fetch_ms: float

    def to_dict(self) -> dict:
        return {
            "url": self.url,
            "final_url": self.final_url,
            "page_url": self.page_url,
            "title": self.title,
            "uploader": self.uploader,
            "duration_s": self.duration_s,
            "size_bytes": self.size_bytes,
            "method": self.method,
            "fetch_ms": round(self.fetch_ms, 1),
        }


def fetch_folder_prefix(pid: int | None = None) -> str:
    """Fetch folders are named after the host and process that own them, so that a process starting can tell the
    folders of a process that died (kill -9 leaves them) from a live neighbour's in a shared folder."""
    host = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:64]
    return f"fetch-{host}-{os.getpid() if pid is None else pid}-"


def abandoned_fetch_folders(temp_dir: Path, older_than_s: float) -> list[Path]:
    """Fetch folders in `temp_dir` left by a process of this host that no longer runs, and any (another host's, or
    unnamed) older than `older_than_s`: no live fetch lasts that long."""
    found = []
    prefix = fetch_folder_prefix(0)[: -len("0-")]
    for folder in temp_dir.glob("fetch-*") if temp_dir.is_dir() else []:
        owner = folder.name[len(prefix) :].split("-", 1)[0] if folder.name.startswith(prefix) else ""
        if owner.isdigit() and int(owner) != os.getpid():
            try:
                os.kill(int(owner), 0)
            except ProcessLookupError:
                found.append(folder)
                continue
            except PermissionError:  # alive, another user's
                pass
        if time.time() - folder.stat().st_mtime > older_than_s:
            found.append(folder)
    return found


class MediaFetcher:
    """Fetches URLs under one policy and one set of limits; thread-safe, one proxy thread shared by all fetches."""

    def __init__(
        self,
        policy: UrlPolicy | None = None,
        limits: FetchLimits | None = None,
        user_agent: str = USER_AGENT,
        temp_dir: str | Path | None = None,
    ):
        self.policy = policy or UrlPolicy()
        self.limits = limits or FetchLimits()
        self.user_agent = user_agent
        self.temp_dir = temp_dir  # where per-fetch folders are made (default: the system's temporary folder)
        self._proxy = GuardProxy()

    def close(self) -> None:
        self._proxy.close()

    @contextlib.contextmanager
    def fetch(self, url: str, progress: FetchProgress | None = None, limits: FetchLimits | None = None) -> Iterator[FetchedMedia]:
        """Download the media behind `url` into a fresh temporary folder, yield it, then remove the folder."""
        limits = limits or self.limits
        started = time.monotonic()
        checked = check_url(url, self.policy)  # refuse bad URLs before any connection
        # Pages, playlists and probes add to the media bytes; the proxy's cap is a backstop, the exact limit is
        # enforced on the file by the fetcher.
        byte_cap = 2 * limits.max_bytes + 16 * 1024**2
        folder = Path(tempfile.mkdtemp(prefix=fetch_folder_prefix(), dir=self.temp_dir))
        try:
            with self._proxy.session(self.policy, limits.timeout_s, byte_cap, deadline=started + limits.timeout_s) as session:
                try:
                    media = _Fetch(self, checked.url, folder, session, limits, progress).run()
                except DetectorError:
                    raise
                except Exception as exc:  # anything unexpected from the network stack, yt-dlp or the disk
                    failure = storage_error(exc) or session.typed_error()
                    raise failure or FetchError(f"fetching the URL failed: {clean_message(str(exc))}") from None
            media.fetch_ms = (time.monotonic() - started) * 1000.0
            yield media
        finally:
            shutil.rmtree(folder, ignore_errors=True)


class _Fetch:
    """One fetch: the state shared by the plain-HTTP and the yt-dlp paths."""

    def __init__(self, fetcher: MediaFetcher, url: str, folder: Path, session: ProxySession, limits: FetchLimits, progress):
        self.fetcher, self.url, self.folder, self.session, self.limits = fetcher, url, folder, session, limits
        self.progress = progress

    def remaining(self) -> float:
        left = self.session.deadline - time.monotonic()
        if left <= 0:
            raise self.session.timeout_error()
        return left

    def client_timeout(self) -> float:
        """How long a client library may wait on one socket operation: a little past the fetch's deadline, so that
        the proxy, which enforces the deadline on every connection, is the one that ends a stalled fetch."""
        return self.remaining() + 1.0

    def run(self) -> FetchedMedia:
        page_html = None
        if not _has_site_extractor(self.url):
            probed = self.probe()
            if isinstance(probed, FetchedMedia):
                return probed
            page_html = probed
        try:
            return self.with_yt_dlp()
        except NoMediaFoundError:
            image_url = _og_image(page_html, self.url) if page_html else None
            if not image_url:
                raise
            check_url(image_url, self.fetcher.policy)
            found = self.probe(image_url, page_url=self.url)
            if isinstance(found, FetchedMedia):
                return found
            raise

    # ------------------------------------------------------------------------------------------ plain HTTP

    def http_session(self):
        import requests

        http = requests.Session()
        http.trust_env = False  # no proxies, .netrc or CA bundles from the environment: ours only
        http.proxies = {"http": self.session.proxy_url, "https": self.session.proxy_url}
        http.headers["User-Agent"] = self.fetcher.user_agent
        http.max_redirects = 10
        return http

    def probe(self, url: str | None = None, page_url: str | None = None) -> FetchedMedia | str | None:
        """GET the URL: download it when it is an image; otherwise return the start of an HTML page (or None)."""

        url = url or self.url
        with self.http_session() as http:
            return self._probe(http, url, page_url)

    def _probe(self, http, url: str, page_url: str | None) -> FetchedMedia | str | None:
        import requests

        try:
            response = http.get(url, stream=True, timeout=(self.client_timeout(), self.client_timeout()))
        except requests.exceptions.InvalidSchema:
            raise UnsupportedUrlSchemeError("the URL redirects to an address that is not http:// or https://") from None
        except requests.RequestException as exc:
            raise self.session.typed_error() or FetchError(f"cannot reach {_host(url)}: {_reason(exc)}") from None
        with response:
            error = self.session.typed_error()
            if error:
                raise error
            if response.status_code >= 400:
                return None  # maybe only browsers are welcome: let yt-dlp try with its own ways
            chunks = response.iter_content(64 * 1024)
            head = b""
            try:
                for chunk in chunks:
                    head += chunk
                    if len(head) >= 64:
                        break
            except requests.RequestException as exc:
                raise self.session.typed_error() or FetchError(f"reading {_host(url)} failed: {_reason(exc)}") from None
            extension = _media_extension(head)
            if extension:
                return self.save_file(response, head, chunks, extension, page_url)
            content_type = response.headers.get("Content-Type", "")
            if "html" in content_type or head.lstrip()[:1] == b"<":
                return self.read_page(head, chunks, url)
        return None

    def save_file(self, response, head: bytes, chunks, extension: str, page_url: str | None) -> FetchedMedia:
        """Stream an image or video file to disk within the byte limit (its duration is checked when opened)."""
        import requests

        max_bytes = self.limits.max_bytes
        declared = int(response.headers.get("Content-Length") or 0)
        if declared > max_bytes:
            raise MediaTooLargeError(too_large(declared, max_bytes))
        path = self.folder / f"media{extension}"
        size = len(head)
        if size > max_bytes:
            raise MediaTooLargeError(too_large(size, max_bytes, partial=True))
        try:
            with open(path, "wb") as out:
                out.write(head)
                for chunk in chunks:
                    size += len(chunk)
                    if size > max_bytes:
                        raise MediaTooLargeError(too_large(size, max_bytes, partial=True))
                    self.remaining()
                    out.write(chunk)
                    if self.progress:
                        self.progress("fetch", size, declared)
        except requests.RequestException as exc:
            raise self.session.typed_error() or FetchError(f"downloading the media failed: {_reason(exc)}") from None
        return FetchedMedia(path, self.url, response.url, page_url, None, None, None, size, "http", 0.0)

    def read_page(self, head: bytes, chunks, url: str) -> str:
        """The start of an HTML page (to look for og:image), once the whole page, as decoded from its
        Content-Encoding, proved to be within `max_page_bytes`: yt-dlp reads the same page whole."""
        import requests

        data, size, limit = head, len(head), self.limits.max_page_bytes
        try:
            for chunk in chunks:  # decoded by requests: these are the bytes a page costs in memory
                size += len(chunk)
                if size > limit:
                    raise MediaTooLargeError(f"the page at {_host(url)} is over the {human_size(limit)} limit for a page (decoded)")
                if len(data) < PAGE_SNIFF_BYTES:
                    data += chunk
                self.remaining()
        except requests.RequestException:
            pass  # the start of the page is enough to look for og:image
        return data[:PAGE_SNIFF_BYTES].decode("utf-8", errors="replace")

    # ---------------------------------------------------------------------------------------------- yt-dlp

    def with_yt_dlp(self) -> FetchedMedia:
        """yt-dlp's extraction and download, in a child process that the deadline kills (`extraction`)."""
        request = ExtractionRequest(
            url=self.url,
            folder=str(self.folder),
            proxy_url=self.session.proxy_url,
            user_agent=self.fetcher.user_agent,
            max_bytes=self.limits.max_bytes,
            max_duration_s=self.limits.max_duration_s,
            deadline=self.session.deadline,
            socket_timeout_s=self.client_timeout(),
        )
        try:
            found = extract_in_child(request, self.progress)
        except (ExtractionDeadline, FetchTimeoutError):
            raise self.session.timeout_error() from None
        except DetectorError as error:
            raise self.session.typed_error() or error from None
        path = Path(found["path"])
        if path.parent != self.folder or not path.is_file():
            raise FetchError("fetching the media failed: the extraction named no file of this fetch")
        return FetchedMedia(
            path=path,
            url=self.url,
            final_url=found["final_url"],
            page_url=found["page_url"],
            title=found["title"],
            uploader=found["uploader"],
            duration_s=found["duration_s"],
            size_bytes=path.stat().st_size,
            method=found["method"],
            fetch_ms=0.0,
        )


# --------------------------------------------------------------------------------------------------- helpers


def _media_extension(head: bytes) -> str | None:
    """The file extension of an image or video file the core reads, judged from its first bytes."""
    return _image_extension(head) or _video_extension(head)


def _video_extension(head: bytes) -> str | None:
    if head[4:8] == b"ftyp" and head[8:12] not in (b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"):
        return ".mov" if head[8:12] == b"qt  " else ".mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # EBML: WebM and Matroska
        return ".webm" if b"webm" in head[:64] else ".mkv"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return ".avi"
    return None


def _image_extension(head: bytes) -> str | None:
    """The file extension of an image format the core reads, judged from the first bytes."""
    if head.startswith(b"\xff\xd8\xff"):
        return ".jpg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return ".png"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return ".gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return ".webp"
    if head.startswith(b"BM") and len(head) >= 26:
        return ".bmp"
    if head[4:8] == b"ftyp" and head[8:12] in (b"avif", b"avis"):
        return ".avif"
    return None


class _OgImageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.image: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag != "meta" or self.image:
            return
        values = dict(attrs)
        if (values.get("property") or values.get("name") or "").lower() in ("og:image", "og:image:url", "twitter:image"):
            self.image = values.get("content") or None


def _og_image(html: str, base_url: str) -> str | None:
    parser = _OgImageParser()
    with contextlib.suppress(Exception):
        parser.feed(html)
    return urljoin(base_url, parser.image) if parser.image else None


_SITE_EXTRACTORS: list | None = None


def _has_site_extractor(url: str) -> bool:
    """Whether a yt-dlp extractor other than the generic one claims the URL (then no plain GET is tried first)."""
    global _SITE_EXTRACTORS
    if _SITE_EXTRACTORS is None:
        from yt_dlp.extractor import gen_extractor_classes

        _SITE_EXTRACTORS = [ie for ie in gen_extractor_classes() if ie.ie_key() != "Generic"]
    return any(ie.suitable(url) for ie in _SITE_EXTRACTORS)


def _host(url: str) -> str:
    return urlsplit(url).hostname or url


def _reason(exc: Exception) -> str:
    text = str(exc)
    match = re.search(r"(Connection refused|timed out|Name or service not known|reset by peer|Remote end closed[^'\")]*)", text)
    return match.group(1) if match else clean_message(text)


@contextlib.contextmanager
def fetch(url: str, policy: UrlPolicy | None = None, limits: FetchLimits | None = None) -> Iterator[FetchedMedia]:
    """One-shot convenience: `with fetch(url) as media: ...` (keep a MediaFetcher for many URLs)."""
    fetcher = MediaFetcher(policy, limits)
    try:
        with fetcher.fetch(url) as media:
            yield media
    finally:
        fetcher.close()
