"""yt-dlp's extraction and download of one URL, run in a child process that the fetch's deadline kills.

    found = extract_in_child(ExtractionRequest(url, folder, proxy_url, ...), deadline, progress)
    # -> {"path", "final_url", "page_url", "title", "uploader", "duration_s", "method"}, or a typed DetectorError

Why a process: yt-dlp parses pages with regular expressions in Python, and some pages cost minutes of CPU (a page
of many thousand `<meta>` tags within the page cap takes the generic extractor ~20 s per 300 KB, growing
quadratically). A thread cannot be stopped; a process can. The child runs in a session of its own, so killing its
process group at the deadline also ends anything it started; the parent then reaps it, and the caller removes the
fetch folder. The child's address space is capped (`CHILD_MEMORY_BYTES`), and every connection it opens goes
through the fetch's guard proxy (`proxy_url`), exactly as before.

The parent sends the request as JSON on the child's stdin; the child answers JSON lines on its stdout:
`{"progress": [done, total]}` while downloading, then one `{"result": {...}}` or `{"error": {"type", "message"}}`.
Run as `python -m detector.fetching.extraction` (the parent does that).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import errors
from ..errors import DetectorError, FetchError, MediaTooLargeError, MediaTooLongError, NoMediaFoundError, storage_error
from ..paths import human_size

# The child's address space: yt-dlp and its extractors need ~150 MB; a page within the page cap, parsed, far less
# than this. Beyond it the child fails with a MemoryError instead of growing the server.
CHILD_MEMORY_BYTES = 1536 * 1024**2
# yt-dlp download protocols that go through our proxy (ffmpeg-driven ones, rtmp, ... would not).
NATIVE_PROTOCOLS = {"http", "https", "m3u8_native", "http_dash_segments", "f4m"}
# How yt-dlp words a write refused for want of space, when it keeps only the message (ENOSPC, EDQUOT, EFBIG).
STORAGE_MESSAGES = re.compile(r"No space left on device|Disk quota exceeded|File too large|\[Errno (28|122|27)\]")
# The longest line the child may send (a result is a few hundred bytes).
MAX_MESSAGE_BYTES = 1024 * 1024
PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the child imports this very copy of the package

log = logging.getLogger(__name__)


class ExtractionDeadline(Exception):
    """The fetch's deadline passed while the child was still working (it has been killed)."""


@dataclass(frozen=True)
class ExtractionRequest:
    url: str
    folder: str  # the fetch's own folder: the child writes the media there, the parent removes it
    proxy_url: str
    user_agent: str
    max_bytes: int
    max_duration_s: float
    deadline: float  # time.monotonic() of the parent: one clock for every process on the host
    socket_timeout_s: float


# progress(stage, done, total): stage "fetch", bytes so far and expected (0 when unknown)
FetchProgress = Callable[[str, int, int], None]


def extract_in_child(request: ExtractionRequest, progress: FetchProgress | None = None) -> dict:
    """Run yt-dlp for `request` in a child process; its result, or its typed error. At `request.deadline` the
    child and everything it started are killed and `ExtractionDeadline` is raised; the child is always reaped."""
    log_path = Path(request.folder) / "extraction.log"
    with open(log_path, "wb") as child_log:
        child = subprocess.Popen(
            [sys.executable, "-m", "detector.fetching.extraction"],
            cwd=PACKAGE_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=child_log,
            start_new_session=True,  # its own process group: killed as a whole
        )
    try:
        with contextlib.suppress(BrokenPipeError):
            child.stdin.write(json.dumps(asdict(request)).encode())
            child.stdin.close()
        for message in _messages(child, request.deadline):
            if "progress" in message and progress:
                progress("fetch", *message["progress"])
            elif "result" in message:
                return message["result"]
            elif "error" in message:
                raise _typed_error(message["error"])
        child.wait(timeout=max(0.0, request.deadline - time.monotonic()))
        tail = log_path.read_bytes()[-2000:].decode("utf-8", errors="replace").strip()
        log.warning("the yt-dlp child for %s stopped with status %s without an answer: %s", request.url, child.returncode, tail)
        raise FetchError(f"fetching the media failed: the extraction stopped unexpectedly (exit status {child.returncode})")
    except subprocess.TimeoutExpired:
        raise ExtractionDeadline() from None
    finally:
        # Killed even after a result: a process it started must not outlive the fetch. While unreaped, the child's
        # pid (its group's id) cannot be given to another process.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()
        child.stdout.close()


def _messages(child: subprocess.Popen, deadline: float):
    """The child's JSON lines as they come, until it closes its stdout; ExtractionDeadline at the deadline."""
    fd, pending = child.stdout.fileno(), b""
    readable = select.poll()  # not select(): a busy server's descriptors may number over 1024
    readable.register(fd, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ExtractionDeadline()
        if not readable.poll(left * 1000):
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            return
        pending += chunk
        while b"\n" in pending:
            line, _, pending = pending.partition(b"\n")
            yield json.loads(line)
        if len(pending) > MAX_MESSAGE_BYTES:
            raise FetchError("fetching the media failed: the extraction sent an unreadable answer")


def _typed_error(error: dict) -> DetectorError:
    kind = getattr(errors, str(error.get("type")), None)
    message = str(error.get("message") or "fetching the media failed")
    if isinstance(kind, type) and issubclass(kind, DetectorError):
        return kind(message)
    return FetchError(message)


# ---------------------------------------------------------------------------------------------- the child


class _Stop(Exception):
    """Raised from a yt-dlp progress hook to abort a download with a typed error."""

    def __init__(self, error: DetectorError):
        super().__init__(error.message)
        self.error = error


class _YtDlpLogger:
    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        print(f"yt-dlp: {msg}", file=sys.stderr)

    def error(self, msg: str) -> None:
        print(f"yt-dlp: {msg}", file=sys.stderr)


class _Extraction:
    """In the child: yt-dlp on one URL, with the fetch's limits."""

    def __init__(self, request: ExtractionRequest, send: Callable[[dict], None]):
        self.request, self.send = request, send
        self.folder = Path(request.folder)

    def options(self) -> dict:
        limit = self.request.max_bytes
        return {
            "quiet": True,
            "no_warnings": True,
            "noprogress": True,
            "logger": _YtDlpLogger(),
            "proxy": self.request.proxy_url,
            "socket_timeout": self.request.socket_timeout_s,
            "retries": 1,
            "fragment_retries": 1,
            "extractor_retries": 0,
            "file_access_retries": 0,
            "noplaylist": True,
            "playlist_items": "1",
            "hls_prefer_native": True,
            "concurrent_fragment_downloads": 1,
            # One file, no merging: a format with picture (sound is irrelevant), preferring ones that fit the limit.
            "format": f"b[height<=?1080][filesize<?{limit}]/bv*[height<=?1080][filesize<?{limit}]/b/bv*",
            "max_filesize": limit,
            "paths": {"home": str(self.folder), "temp": str(self.folder)},
            "outtmpl": "media.%(ext)s",
            "restrictfilenames": True,
            "overwrites": True,
            "fixup": "never",  # the core reads MPEG-TS from HLS as it is; no ffmpeg pass needed
            "cachedir": False,
            "writeinfojson": False,
            "updatetime": False,
            "http_headers": {"User-Agent": self.request.user_agent},
            "progress_hooks": [self.on_progress],
        }

    def run(self) -> dict:
        import yt_dlp
        from yt_dlp.utils import DownloadError

        try:
            with yt_dlp.YoutubeDL(self.options()) as ydl:
                info = ydl.extract_info(self.request.url, download=False)
                info = self.first_item(info)
                self.check_metadata(info)
                ydl.process_info(info)
        except _Stop as stop:
            raise stop.error from None
        except DownloadError as exc:
            raise self.yt_dlp_error(exc) from None
        path = self.downloaded_file(info)
        formats = info.get("requested_formats") or [info]
        return {
            "path": str(path),
            "final_url": formats[0].get("url") or self.request.url,
            "page_url": info.get("webpage_url") if info.get("webpage_url") != formats[0].get("url") else None,
            "title": info.get("title"),
            "uploader": info.get("uploader") or info.get("channel"),
            "duration_s": info.get("duration"),
            "method": f"yt-dlp:{info.get('extractor_key') or info.get('extractor') or 'generic'}",
        }

    def first_item(self, info: dict) -> dict:
        while info.get("_type") in ("playlist", "multi_video"):
            entries = [e for e in (info.get("entries") or []) if e]
            if not entries:
                raise NoMediaFoundError("the URL leads to an empty playlist")
            info = entries[0]
        if info.get("_type") == "url":
            raise NoMediaFoundError("the URL leads to another page that was not followed")
        return info

    def check_metadata(self, info: dict) -> None:
        max_bytes, max_duration_s = self.request.max_bytes, self.request.max_duration_s
        if info.get("is_live") or info.get("live_status") in ("is_live", "is_upcoming"):
            raise NoMediaFoundError("live streams cannot be analysed: wait until the recording is available")
        duration = info.get("duration")
        if duration and duration > max_duration_s:
            raise MediaTooLongError(f"the video lasts {duration:.0f} s, over the {max_duration_s:.0f} s limit")
        formats = info.get("requested_formats") or [info]
        size = sum(int(f.get("filesize") or f.get("filesize_approx") or 0) for f in formats)
        if size > max_bytes:
            raise MediaTooLargeError(too_large(size, max_bytes))
        for fmt in formats:
            protocol = str(fmt.get("protocol") or "https")
            if not all(p in NATIVE_PROTOCOLS for p in protocol.split("+")):
                raise NoMediaFoundError(f"the media is only offered over {protocol}, which is not supported")

    def on_progress(self, status: dict) -> None:
        """yt-dlp progress hook: stop the download at the byte limit or the deadline; tell the parent."""
        done = int(status.get("downloaded_bytes") or 0)
        total = int(status.get("total_bytes") or status.get("total_bytes_estimate") or 0)
        if done > self.request.max_bytes or total > self.request.max_bytes:
            raise _Stop(MediaTooLargeError(too_large(max(done, total), self.request.max_bytes, partial=not total)))
        if time.monotonic() > self.request.deadline:
            raise _Stop(errors.FetchTimeoutError("fetching the URL took longer than its limit"))
        if status.get("status") == "downloading":
            self.send({"progress": [done, total]})

    def downloaded_file(self, info: dict) -> Path:
        candidates = [Path(d["filepath"]) for d in info.get("requested_downloads") or [] if d.get("filepath")]
        candidates += sorted(p for p in self.folder.glob("media.*") if not p.name.endswith((".part", ".ytdl")))
        for path in candidates:
            if path.is_file() and path.stat().st_size > 0:
                if path.stat().st_size > self.request.max_bytes:
                    raise MediaTooLargeError(too_large(path.stat().st_size, self.request.max_bytes))
                return path
        # yt-dlp skips a download over `max_filesize` without an error: no file is the only sign.
        raise MediaTooLargeError(f"the media is over the {human_size(self.request.max_bytes)} limit")

    def yt_dlp_error(self, exc: Exception) -> DetectorError:
        from yt_dlp.networking.exceptions import HTTPError
        from yt_dlp.utils import UnsupportedError

        cause = exc.exc_info[1] if getattr(exc, "exc_info", None) else None
        if isinstance(cause, _Stop):
            return cause.error
        full = _storage_full(cause) or _storage_full(exc)
        if full:
            return full
        if isinstance(cause, UnsupportedError):
            return NoMediaFoundError("no video or image was found at this URL")
        for _ in range(5):  # ExtractorError.cause, exception chaining
            if cause is None or isinstance(cause, HTTPError):
                break
            cause = getattr(cause, "cause", None) or cause.__cause__ or cause.__context__
        if isinstance(cause, HTTPError):
            return FetchError(f"the source answered HTTP {cause.status} {cause.reason}".strip())
        match = re.search(r"HTTP Error (\d{3})[: ]*([^\n]*)", str(exc))
        if match:
            return FetchError(f"the source answered HTTP {match.group(1)} {match.group(2)}".strip())
        message = clean_message(str(exc))
        if "Unsupported URL" in message or "no video" in message.lower():
            return NoMediaFoundError("no video or image was found at this URL")
        return FetchError(f"fetching the media failed: {message}")


def _storage_full(exc: BaseException | None) -> errors.StorageFullError | None:
    """A write refused for want of space, as an exception or as yt-dlp's words for one."""
    if exc is not None and STORAGE_MESSAGES.search(str(exc)):
        return errors.StorageFullError()
    return storage_error(exc)


def too_large(size: int, limit: int, partial: bool = False) -> str:
    more = "more than " if partial else ""
    return f"the media is {more}{human_size(size)}, over the {human_size(limit)} limit"


def clean_message(message: str) -> str:
    message = re.sub(r"\x1b\[[0-9;]*m", "", message)
    return re.sub(r"^(ERROR:\s*)+", "", message).strip()[:300]


def _child_main() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (CHILD_MEMORY_BYTES, CHILD_MEMORY_BYTES))
    # The answers go on a private copy of stdout; whatever a library prints goes to the log instead.
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)

    def send(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")

    request = ExtractionRequest(**json.loads(sys.stdin.read()))
    try:
        send({"result": _Extraction(request, send).run()})
    except DetectorError as error:
        send({"error": {"type": type(error).__name__, "message": error.message}})
    except MemoryError:
        limit = human_size(CHILD_MEMORY_BYTES)
        send({"error": {"type": "FetchError", "message": f"fetching the media failed: the page needs more than {limit} to read"}})
    except Exception as exc:  # anything unexpected from the network stack, yt-dlp or the disk (full: not the source)
        error = _storage_full(exc) or FetchError(f"fetching the URL failed: {clean_message(str(exc))}")
        send({"error": {"type": type(error).__name__, "message": error.message}})
    channel.close()


if __name__ == "__main__":
    _child_main()
