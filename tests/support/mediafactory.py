"""Make test media from real media: re-encode real frames into other containers and codecs, cut files short."""

from __future__ import annotations

import shutil
import subprocess
from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def read_frames(path: Path, limit: int | None = None) -> list[np.ndarray]:
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if limit and len(frames) >= limit:
                break
    return frames


def write_video(
    path: Path,
    frames: list[np.ndarray],
    fps: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rotation: int | None = None,
    options: dict | None = None,
) -> Path:
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = pix_fmt
        if options:
            stream.options = options
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def truncate(source: Path, target: Path, fraction: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def ffmpeg(*args: str) -> None:
    if not shutil.which("ffmpeg"):
        raise RuntimeError("ffmpeg is not installed: run scripts/setup --dev")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def mjpeg_avi(path: Path, sizes: list[tuple[int, int]], fps: int = 10) -> Path:
    """An AVI of MJPEG frames coded at `sizes` one after the other: the container declares only the first size,
    as a file whose picture grows mid-stream does."""
    import io

    from PIL import Image

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=Fraction(fps))
        stream.width, stream.height = sizes[0]
        stream.pix_fmt = "yuvj420p"
        for index, size in enumerate(sizes):
            coded = io.BytesIO()
            Image.new("RGB", size, (40 * index % 256, 120, 90)).save(coded, "JPEG", quality=40)
            packet = av.Packet(coded.getvalue())
            packet.stream, packet.pts, packet.dts = stream, index, index
            packet.time_base, packet.is_keyframe = Fraction(1, fps), True
            container.mux(packet)
    return path


def concatenated_ts(path: Path, source: Path, sizes: list[tuple[int, int]], frames_each: int = 25) -> Path:
    """MPEG-TS parts of `source`'s first frames, each scaled to one of `sizes`, joined byte for byte (`cat a.ts
    b.ts`): one stream whose picture size changes where a part ends."""
    frames = read_frames(source, frames_each)
    parts = []
    for number, (width, height) in enumerate(sizes):
        scaled = [np.asarray(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(width, height).to_ndarray()) for f in frames]
        parts.append(write_video(path.with_name(f"{path.stem}-part{number}.ts"), scaled))
    path.write_bytes(b"".join(part.read_bytes() for part in parts))
    return path
