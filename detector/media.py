"""Open an image or video file, read its metadata, and decode frames at chosen times.

What a file is gets decided by its content, never by its name: Pillow identifies images (JPEG, PNG, WebP, BMP,
first frame of GIF), FFmpeg (through PyAV) identifies videos (mp4/mov, webm/mkv, avi, MPEG-TS...). Anything
else, empty or damaged files, and files over the configured limits raise a typed `MediaError`.
"""

from __future__ import annotations

import bisect
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import (
    CorruptMediaError,
    EmptyMediaError,
    MediaTooLargeError,
    MediaTooLongError,
    UnsupportedMediaError,
)
from .paths import human_size
from .report import MediaInfo  # what a file is, as the Report states it

IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "AVIF")  # JPEG covers MPO (phone photos)
# FFmpeg demuxer names we accept as video containers (a container may list several names, e.g. "mov,mp4,...").
VIDEO_CONTAINERS = {"mov", "mp4", "matroska", "webm", "avi", "mpegts", "flv", "mpeg", "ogg", "asf", "3gp"}
EXIF_ROTATION = {3: 180, 4: 180, 5: 90, 6: 90, 7: 270, 8: 270}


@dataclass(frozen=True)
class MediaLimits:
    """Explicit limits on what we agree to decode; every front end may tighten them."""

    max_bytes: int = 2 * 1024**3
    max_pixels: int = 40_000_000  # per frame: 8K UHD is 33 MP
    max_duration_s: float = 3 * 3600.0
    # Memory, for shells that decode many files at once (None: no bound). A picture over `max_decoded_pixels`
    # is analysed scaled down (JPEG in the decoder itself); `max_decoded_bytes` bounds the RGB of all the frames
    # one analysis keeps, so a frame is scaled down further when many are asked for.
    max_decoded_pixels: int | None = None
    max_decoded_bytes: int | None = None

    def rgb_pixels(self, frames: int) -> int | None:
        """The most pixels one of `frames` kept pictures may have as RGB (None: no bound)."""
        bounds = [self.max_decoded_pixels] if self.max_decoded_pixels else []
        if self.max_decoded_bytes:
            bounds.append(max(1, self.max_decoded_bytes // (3 * max(1, frames))))
        return min(bounds) if bounds else None


@dataclass
class DecodedFrame:
    index: int
    timestamp_s: float
    frame: av.VideoFrame

    def thumbnail_gray(self, width: int = 64, height: int | None = None) -> np.ndarray:
        """A small grayscale copy for change detection, scaled in the decoder (cheap). Give `height` to get one
        shape for every frame of a stream whose picture size changes mid-way."""
        height = height or max(1, round(self.frame.height * width / self.frame.width))
        return self.frame.reformat(width=width, height=height, format="gray").to_ndarray()


def open_media(path: str | os.PathLike, limits: MediaLimits | None = None) -> ImageMedia | VideoMedia:
    """Identify `path` by content and open it as an image or a video; raise a MediaError otherwise."""
    limits = limits or MediaLimits()
    path = Path(path)
    size = _file_size(path, limits)
    image = ImageMedia.try_open(path, size, limits)
    if image is not None:
        return image
    return VideoMedia(path, size, limits)


def probe_media(path: str | os.PathLike, limits: MediaLimits | None = None) -> str:
    """The kind of media `path` holds ("image" or "video"), checked against `limits` without decoding an image's
    pixels: what a request thread may afford (a 131 KB PNG may decode to a gigabyte). A video is opened (its
    first frame decoded, within `max_pixels`). Raise a MediaError as `open_media` would, damaged pixels apart."""
    limits = limits or MediaLimits()
    path = Path(path)
    size = _file_size(path, limits)
    if ImageMedia.probe(path, limits):
        return "image"
    with VideoMedia(path, size, limits):
        return "video"


def _file_size(path: Path, limits: MediaLimits) -> int:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise UnsupportedMediaError(f"{path.name}: no such file") from None
    if path.is_dir():
        raise UnsupportedMediaError(f"{path.name}: is a folder, not a media file")
    if size == 0:
        raise EmptyMediaError(f"{path.name}: the file is empty")
    if size > limits.max_bytes:
        raise MediaTooLargeError(f"{path.name}: {human_size(size)} is over the {human_size(limits.max_bytes)} limit")
    return size


class ImageMedia:
    kind = "image"

    def __init__(self, path: Path, image: np.ndarray, info: MediaInfo):
        self.path = path
        self.image = image
        self.info = info

    @staticmethod
    def _open_checked(path: Path, limits: MediaLimits) -> Image.Image | None:
        """The image at `path`, its header read and its size checked, pixels not decoded; None if not an image."""
        try:
            im = Image.open(path, formats=IMAGE_FORMATS)
        except UnidentifiedImageError:
            return None
        except Image.DecompressionBombError:
            raise MediaTooLargeError(f"{path.name}: the image has too many pixels") from None
        except OSError as exc:
            raise CorruptMediaError(f"{path.name}: cannot read the image ({exc})") from None
        width, height = im.size
        if width * height > limits.max_pixels:
            im.close()
            raise MediaTooLargeError(f"{path.name}: {width}x{height} is over the {limits.max_pixels / 1e6:g} megapixel limit")
        return im

    @classmethod
    def probe(cls, path: Path, limits: MediaLimits) -> bool:
        """Whether `path` is an image within `limits`, from its header alone."""
        im = cls._open_checked(path, limits)
        if im is None:
            return False
        im.close()
        return True

    @classmethod
    def try_open(cls, path: Path, size: int, limits: MediaLimits) -> ImageMedia | None:
        im = cls._open_checked(path, limits)
        if im is None:
            return None
        with im:
            frame_count = getattr(im, "n_frames", 1)
            fmt = im.format
            try:
                im.seek(0)
                rotation = EXIF_ROTATION.get(im.getexif().get(0x0112, 1), 0)
                upright = ImageOps.exif_transpose(_decoded_within(im, limits.rgb_pixels(1)))
                rgb = np.asarray(upright.convert("RGB"))
            except (OSError, SyntaxError, ValueError) as exc:
                raise CorruptMediaError(f"{path.name}: the image is truncated or damaged ({exc})") from None
        info = MediaInfo(
            kind="image",
            format=fmt.lower(),
            codec=None,
            width=rgb.shape[1],
            height=rgb.shape[0],
            duration_s=0.0,
            fps=None,
            frame_count=frame_count,
            rotation=rotation,
            size_bytes=size,
        )
        return cls(path, np.ascontiguousarray(rgb), info)

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _decoded_within(im: Image.Image, max_pixels: int | None) -> Image.Image:
    """`im` decoded, scaled down by a whole factor to at most `max_pixels` when it has more: a JPEG is decoded at
    1/2, 1/4 or 1/8 of its size by the decoder itself (`draft`), other formats are decoded, then reduced."""
    width, height = im.size
    if not max_pixels or width * height <= max_pixels:
        im.load()
        return im
    scale = math.sqrt(max_pixels / (width * height))
    im.draft("RGB", (max(1, int(width * scale)), max(1, int(height * scale))))  # a no-op but for JPEG
    im.load()
    width, height = im.size
    factor = math.ceil(math.sqrt(width * height / max_pixels))
    return im.reduce(factor) if factor > 1 else im


def _has_video_signature(path: Path) -> bool:
    """Whether the file starts like a video container (so a failure to open it means damage, not a wrong type)."""
    with open(path, "rb") as handle:
        head = handle.read(189)
    return (
        head[4:8] in (b"ftyp", b"moov", b"mdat", b"free", b"wide")  # ISO BMFF: mp4, mov, 3gp
        or head.startswith(b"\x1a\x45\xdf\xa3")  # EBML: mkv, webm
        or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")
        or head.startswith(b"FLV")
        or (len(head) == 189 and head[0] == head[188] == 0x47)  # MPEG-TS: a sync byte every 188 bytes
    )


class VideoMedia:
    kind = "video"

    def __init__(self, path: Path, size: int, limits: MediaLimits):
        self.path = path
        name = path.name
        try:
            self._container = av.open(str(path), metadata_errors="ignore")
        except av.error.FFmpegError:
            if _has_video_signature(path):
                raise CorruptMediaError(f"{name}: the video is truncated or damaged (its index cannot be read)") from None
            raise UnsupportedMediaError(f"{name}: not an image or video file we can read") from None
        try:
            self._open_stream(name, size, limits)
        except BaseException:
            self._container.close()
            raise

    def _open_stream(self, name: str, size: int, limits: MediaLimits) -> None:
        container = self._container
        demuxers = set(container.format.name.split(","))
        if not demuxers & VIDEO_CONTAINERS:
            # FFmpeg guesses a format for almost anything (plain text reads as "tty"): name none of them
            raise UnsupportedMediaError(f"{name}: not an image or video file we can read")
        if not container.streams.video:
            if not container.streams and _has_video_signature(self.path):
                # a video container whose track headers cannot be read at all: damage, not an audio-only file
                raise CorruptMediaError(f"{name}: the video is damaged (its track headers cannot be read)")
            raise UnsupportedMediaError(f"{name}: the file has no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        # FFmpeg refuses, before allocating it, any picture over the limit: the size read here is only the first
        # frame's, and a stream may change size mid-way (MJPEG in AVI, concatenated MPEG-TS).
        stream.codec_context.options = {"max_pixels": str(limits.max_pixels)}
        self._max_pixels = limits.max_pixels
        self._stream = stream
        self._time_base = float(stream.time_base) if stream.time_base else 1e-6
        self._start = float(stream.start_time * stream.time_base) if stream.start_time is not None else 0.0

        width, height = stream.codec_context.width, stream.codec_context.height
        if not width or not height:
            raise CorruptMediaError(f"{name}: the video stream has no picture size")
        if width * height > limits.max_pixels:
            raise MediaTooLargeError(f"{name}: {width}x{height} is over the {limits.max_pixels / 1e6:g} megapixel limit")
        self._stored_size = (width, height)  # every frame is scaled to this size, whatever it was coded at
        self.limits = limits

        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        fps = float(rate) if rate else 0.0
        if not (0.1 <= fps <= 1000):
            fps = 25.0
        duration = 0.0
        if stream.duration:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1e6
        if duration > limits.max_duration_s:
            raise MediaTooLongError(f"{name}: {duration:.1f} s is over the {limits.max_duration_s:g} s limit")

        # Decoding the first frame proves the codec works and reveals the display rotation.
        first = self._decode_first(name)
        rotation = (-int(round((first.frame.rotation or 0) / 90.0)) * 90) % 360
        if not duration:
            duration = self._scan_duration()
            if duration > limits.max_duration_s:
                raise MediaTooLongError(f"{name}: {duration:.1f} s is over the {limits.max_duration_s:g} s limit")
        frame_count = stream.frames or max(1, int(round(duration * fps)))
        if rotation in (90, 270):
            width, height = height, width
        self._rotation = rotation
        self._keyframes: list[float] | None = None
        self.frames_decoded = 0  # by frames_at: what "decode no more than needed" is measured by
        self.fps = fps
        self.info = MediaInfo(
            kind="video",
            format=_container_format(container),
            codec=stream.codec_context.name,
            width=width,
            height=height,
            duration_s=round(duration, 6),
            fps=round(fps, 6),
            frame_count=frame_count,
            rotation=rotation,
            size_bytes=size,
        )

    def _decode_first(self, name: str) -> DecodedFrame:
        try:
            for frame in self._container.decode(self._stream):
                self._check_size(frame)
                return DecodedFrame(0, 0.0, frame)
        except av.error.FFmpegError as exc:
            raise _decoding_error(name, exc, "cannot decode the video", self._max_pixels) from None
        raise CorruptMediaError(f"{name}: the video has no decodable frames")

    def _check_size(self, frame: av.VideoFrame) -> None:
        """Refuse a decoded frame over the pixel limit (FFmpeg's own check covers the decoders that honour it)."""
        if frame.width * frame.height > self._max_pixels:
            raise MediaTooLargeError(
                f"{self.path.name}: a frame of {frame.width}x{frame.height} is over the {self._max_pixels / 1e6:g} megapixel limit"
            )

    def _scan_duration(self) -> float:
        """Find the duration from packet timestamps when the container does not declare it."""
        last = 0.0
        self._container.seek(0)
        for packet in self._container.demux(self._stream):
            if packet.pts is not None:
                last = max(last, float((packet.pts + (packet.duration or 0)) * self._time_base) - self._start)
        return last

    def frame_time(self, frame: av.VideoFrame) -> float:
        pts = frame.pts if frame.pts is not None else frame.dts
        return float(pts) * self._time_base - self._start if pts is not None else 0.0

    def to_rgb(self, frame: av.VideoFrame, max_pixels: int | None = None) -> np.ndarray:
        """RGB of a decoded frame, turned upright, at the stream's first picture size (a frame coded at another
        size, after a size change mid-stream, is scaled to it), scaled down to at most `max_pixels`."""
        width, height = self._stored_size
        if max_pixels and width * height > max_pixels:
            scale = math.sqrt(max_pixels / (width * height))
            width, height = max(2, int(width * scale)) // 2 * 2, max(2, int(height * scale)) // 2 * 2
            # the Report's media size is the size analysed, as its face boxes are
            self.info.width, self.info.height = (height, width) if self._rotation in (90, 270) else (width, height)
        if (frame.width, frame.height) != (width, height):
            rgb = frame.reformat(width=width, height=height, format="rgb24").to_ndarray()
        else:
            rgb = frame.to_ndarray(format="rgb24")
        if self._rotation:
            rgb = np.ascontiguousarray(np.rot90(rgb, k=-self._rotation // 90))
        return rgb

    def thumbnail_gray(self, decoded: DecodedFrame, width: int = 64) -> np.ndarray:
        """`decoded`'s grayscale thumbnail, one shape for the whole stream whatever size each frame was coded at."""
        stored_width, stored_height = self._stored_size
        return decoded.thumbnail_gray(width, max(1, round(stored_height * width / stored_width)))

    def keyframe_times(self) -> list[float]:
        """Times of the key frames the container's index lists (all of them for MP4/MOV; cue points for
        Matroska/WebM; none when there is no index)."""
        if self._keyframes is None:
            try:
                entries = self._stream.index_entries
                times = sorted(
                    float(e.timestamp) * self._time_base - self._start
                    for e in entries
                    if e.is_keyframe and e.timestamp is not None
                )
            except (AttributeError, av.error.FFmpegError):
                times = []
            # Index timestamps are decode times; with B-frames they run a constant reorder delay ahead of the
            # presentation times we seek and report by (the first key frame is shown at 0, decoded before it).
            delay = -times[0] if times and times[0] < 0 else 0.0
            self._keyframes = [round(t + delay, 6) for t in times]
        return self._keyframes

    def frames_at(self, times: Sequence[float], skip: str = "DEFAULT", seek_gap_s: float = 2.0) -> Iterator[DecodedFrame]:
        """Yield the first decoded frame at or after each time in `times` (ascending), decoding no more than needed.

        With the container's key-frame index, a target is reached by seeking exactly when a key frame lies
        between the current position and the target (decoding from there costs less than decoding on);
        without an index, when the target is more than `seek_gap_s` ahead. `skip` tells the decoder which
        frames it may drop: "NONREF" (frames nothing depends on: about half of an H.264 stream, so twice as
        fast, at the price of landing a frame or two after a target) or "NONKEY" (key frames only). A file that
        ends well before its declared duration raises CorruptMediaError.
        """
        stream, name = self._stream, self.path.name
        stream.codec_context.skip_frame = skip
        # An index with a single key frame still says that seeking cannot help: every seek would land on it and
        # decode from the start again (quadratic in the clip's length), so the clip is decoded once, in order.
        keyframes = self.keyframe_times() or None
        tolerance = 0.5 / self.fps
        decoder = None
        position = -math.inf
        last_index = -1
        for target in times:
            if keyframes is not None:
                before = bisect.bisect_right(keyframes, target + tolerance) - 1
                jump = decoder is None or (before >= 0 and keyframes[before] > position + tolerance)
            else:
                jump = decoder is None or target - position > seek_gap_s
            if jump:
                offset = int(round((max(0.0, target) + self._start) / self._time_base))
                try:
                    self._container.seek(offset, stream=stream, backward=True, any_frame=False)
                except av.error.FFmpegError:
                    self._container.seek(0, stream=stream)
                decoder = self._container.decode(stream)
            found = None
            try:
                for frame in decoder:
                    self.frames_decoded += 1
                    self._check_size(frame)
                    position = self.frame_time(frame)
                    index = int(round(position * self.fps))
                    if position >= target - tolerance and index > last_index:
                        found = DecodedFrame(index, round(position, 6), frame)
                        break
            except av.error.FFmpegError as exc:
                raise _decoding_error(name, exc, "the video is damaged", self._max_pixels) from None
            if found is None:
                if target < self.info.duration_s - 2.0 / self.fps - 0.5:
                    stop, duration = max(position, 0.0), self.info.duration_s
                    raise CorruptMediaError(f"{name}: the video stops at {stop:.2f} s of {duration:.2f} s: truncated or damaged")
                return
            last_index = found.index
            yield found

    def close(self) -> None:
        self._container.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _decoding_error(name: str, exc: av.error.FFmpegError, what: str, max_pixels: int) -> CorruptMediaError | MediaTooLargeError:
    """The typed error of a failed decode. FFmpeg answers EINVAL (not "invalid data") when a picture is over its
    `max_pixels`: the size a frame declares, refused before its memory is taken."""
    if isinstance(exc, av.error.ArgumentError):
        return MediaTooLargeError(f"{name}: a frame's picture size is invalid or over the {max_pixels / 1e6:g} megapixel limit")
    return CorruptMediaError(f"{name}: {what} ({exc.strerror or exc})")


def _container_format(container) -> str:
    """FFmpeg's demuxer name, except that its one ISO-media demuxer ("mov,mp4,m4a,3gp,3g2,mj2") is told apart by
    the file's major brand: an .mp4 is "mp4", a QuickTime file "mov"."""
    names = container.format.name.split(",")
    if names[0] == "mov":
        brand = (container.metadata.get("major_brand") or "").strip().lower()
        if brand.startswith("qt") or not brand:
            return "mov"
        if brand.startswith("3g2"):
            return "3g2"
        if brand.startswith("3gp"):
            return "3gp"
        return "m4a" if brand.startswith("m4a") else "mp4"
    return names[0]

