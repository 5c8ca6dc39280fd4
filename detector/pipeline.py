"""The one path from a file or a URL to a Report and its artefacts, shared by every shell: the CLI, the server (in its
own process and in Celery workers) and the Gradio demo. Shells translate requests and answers; they never fetch,
analyse or draw a report themselves.

    pipeline = Pipeline(url_policy, fetch_limits)        # one per shell: it owns the guarded fetcher
    analysis = pipeline.run(detector, "https://…/post")  # fetch (URLs), analyse: an Analysis (Report + key frames)
    files = pictures(analysis, max_side=640)             # key frames with boxes, heatmap overlays, the timeline
    page = report_html(analysis.report, link)            # the HTML report, from templates/report.html

A server that fetches and analyses in separate pools (fetch slots per client, analysis slots per model) calls the
two steps apart: `pipeline.fetched_media(url)` then `pipeline.analyse(detector, path, …)`. Progress is one table
for every shell (`STAGES`): the core reports `progress(stage, done, total)`, `stage_fraction` places it on one bar.
"""

from __future__ import annotations

import csv
import io
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .analyzer import Analysis, Detector, Progress
from .errors import DetectorError
from .fetching.fetch import FetchedMedia, FetchLimits, MediaFetcher, is_url
from .fetching.urlguard import UrlPolicy
from .media import MediaLimits
from .provenance import describe
from .render import (
    CAVEAT,
    NO_PROVENANCE,
    READING_GUIDE,
    draw_faces,
    encode_jpeg,
    faces_words,
    overlay_heatmap,
    percent,
    rule_words,
    timeline_png,
    verdict_name,
    verdict_words,
)
from .report import Report

# Where each stage sits on one progress bar (0-1): the core's stages (report.PROGRESS_STAGES), a server's queue
# ("queued", "fetched": downloaded and waiting for an analysis worker) and drawing the artefacts ("render").
STAGES = {
    "queued": (0.0, 0.0),
    "fetch": (0.0, 0.2),
    "fetched": (0.2, 0.2),
    "decode": (0.2, 0.5),
    "faces": (0.5, 0.75),
    "model": (0.75, 0.9),
    "render": (0.9, 1.0),
}
# What each stage is, for people watching the bar.
STAGE_WORDS = {
    "queued": "waiting for a worker",
    "fetch": "fetching the media",
    "fetched": "waiting for a worker",
    "decode": "decoding key frames",
    "faces": "finding faces",
    "model": "running the model",
    "render": "drawing the report",
}
FETCH_END = STAGES["fetched"][1]


def stage_fraction(stage: str, done: int, total: int, fetching: bool = True) -> float:
    """Where `done` of `total` in `stage` sits on the bar; without a fetch (a file, an upload shown on its own bar)
    the analysis stages fill the whole bar."""
    low, high = STAGES.get(stage, (0.0, 1.0))
    fraction = low + (high - low) * (min(done / total, 1.0) if total else 0.0)
    if not fetching:
        fraction = max(0.0, (fraction - FETCH_END) / (1.0 - FETCH_END))
    return round(fraction, 4)


class BadOptionError(DetectorError):
    """An option of a request is out of its bounds (a frame count of 0 or 1000, "many")."""

    code = "bad_option"


def frame_count(value: object, max_frames: int) -> int:
    """The key frames a request asks for: 0 (the checkpoint's default) when it names none, else a whole number from
    1 to `max_frames`. Takes what shells receive: 8, 8.0 (a slider), "8" (a form); refuses 1.5, true and "٣"."""
    if value is None or value == "":
        return 0
    number = value.strip() if isinstance(value, str) else value
    whole = isinstance(number, int) and not isinstance(number, bool)
    whole = whole or (isinstance(number, float) and number.is_integer())
    # int() also reads other scripts' digits ("٣") and underscores ("1_0"): only ASCII digits are a number here
    whole = whole or (isinstance(number, str) and number.lstrip("+-").isascii() and number.lstrip("+-").isdigit())
    if not whole:
        raise BadOptionError(f"frames must be a whole number, not {value!r}")
    if not 1 <= int(number) <= max_frames:
        raise BadOptionError(f"frames must be between 1 and {max_frames}")
    return int(number)


# ------------------------------------------------------------------------------------------------ the pipeline


class Pipeline:
    """Fetches URLs through one guarded fetcher (made on first use) and analyses files with a given `Detector`."""

    def __init__(
        self,
        url_policy: UrlPolicy | None = None,
        fetch_limits: FetchLimits | None = None,
        temp_dir: str | os.PathLike | None = None,
    ):
        self.url_policy, self.fetch_limits, self.temp_dir = url_policy, fetch_limits, temp_dir
        self._fetcher: MediaFetcher | None = None
        self._lock = threading.Lock()

    @property
    def fetcher(self) -> MediaFetcher:
        with self._lock:
            if self._fetcher is None:
                self._fetcher = MediaFetcher(self.url_policy, self.fetch_limits, temp_dir=self.temp_dir)
            return self._fetcher

    def close(self) -> None:
        """Ends running fetches at once (their callers get a FetchError) and the fetcher's guard proxy."""
        with self._lock:
            fetcher, self._fetcher = self._fetcher, None
        if fetcher is not None:
            fetcher.close()

    @contextmanager
    def fetched_media(self, url: str, progress: Progress | None = None) -> Iterator[FetchedMedia]:
        """Step 1, for URLs: the media behind `url` as a file, removed when the block ends (move it to keep it)."""
        with self.fetcher.fetch(url, progress=progress) as fetched:
            yield fetched

    def analyse(
        self,
        detector: Detector,
        path: str | os.PathLike,
        *,
        source: str | None = None,
        progress: Progress | None = None,
        explain: bool = False,
        frames: int = 0,
        limits: MediaLimits | None = None,
        fetch_ms: float | None = None,
    ) -> Analysis:
        """Step 2: a media file analysed. `source` is what the Report names (the URL, the upload's name);
        `frames` 0 is the checkpoint's count; `fetch_ms`, the time step 1 took, counts in the Report's total."""
        overrides = {"frames": frames} if frames else {}
        if limits is not None:
            overrides["limits"] = limits
        return detector.inspect(path, explain=explain, source_name=source, progress=progress, fetch_ms=fetch_ms, **overrides)

    def run(
        self,
        detector: Detector,
        source: str | os.PathLike,
        *,
        source_name: str | None = None,
        progress: Progress | None = None,
        explain: bool = False,
        frames: int = 0,
        limits: MediaLimits | None = None,
    ) -> Analysis:
        """Both steps: a file analysed, or the media behind an http(s) URL fetched, timed, analysed and removed."""
        if not is_url(source):
            return self.analyse(detector, source, source=source_name, progress=progress, explain=explain, frames=frames, limits=limits)
        with self.fetched_media(str(source), progress) as fetched:
            return self.analyse(
                detector,
                fetched.path,
                source=source_name or str(source),
                progress=progress,
                explain=explain,
                frames=frames,
                limits=limits,
                fetch_ms=fetched.fetch_ms,
            )


# ------------------------------------------------------------------------------------------------- artefacts


@dataclass
class Artefact:
    """One file of an analysis: named as the server stores and serves it (`frame_03.jpg`)."""

    name: str
    kind: str  # timeline, frame, heatmap, heatmap_raw, timeline_data, report
    data: bytes
    content_type: str
    position: int | None = None  # the key frame's position, for pictures of one key frame

    def entry(self) -> dict:
        """What a listing of the analysis's files says about this one."""
        entry: dict = {"name": self.name, "kind": self.kind}
        if self.position is not None:
            entry["position"] = self.position
        return entry


def pictures(analysis: Analysis, max_side: int | None, raw: bool = False) -> list[Artefact]:
    """The pictures of an analysis: the timeline plot (videos), each key frame with its faces boxed and, where a
    heatmap was made, the same frame with the heatmap laid over it; JPEGs at most `max_side` pixels long (None: as
    decoded). `raw` adds what a download keeps for reuse: each heatmap as an 8-bit grey PNG the size of its frame, and
    the timeline as CSV."""
    report = analysis.report
    files: list[Artefact] = []
    if report.media.kind == "video":
        files.append(Artefact("timeline.png", "timeline", timeline_png(report), "image/png"))
    if raw:
        files.append(Artefact("timeline.csv", "timeline_data", timeline_csv(report).encode(), "text/csv"))
    for position, (key_frame, frame, heatmap) in enumerate(zip(analysis.key_frames, report.frames, analysis.heatmaps)):
        boxed = encode_jpeg(draw_faces(key_frame.image, frame, report), max_side=max_side)
        files.append(Artefact(f"frame_{position:02d}.jpg", "frame", boxed, "image/jpeg", position))
        if heatmap is None or float(heatmap.max()) <= 0:
            continue
        overlay = encode_jpeg(draw_faces(overlay_heatmap(key_frame.image, heatmap), frame, report), max_side=max_side)
        files.append(Artefact(f"heatmap_{position:02d}.jpg", "heatmap", overlay, "image/jpeg", position))
        if raw:
            files.append(Artefact(f"heatmap_{position:02d}.png", "heatmap_raw", heatmap_png(heatmap), "image/png", position))
    return files


def report_json(report: Report) -> Artefact:
    """The Report as a file; stored last, its presence says the analysis is complete."""
    return Artefact("report.json", "report", report.to_json(indent=2).encode(), "application/json")


def heatmap_png(heatmap: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", np.round(np.clip(heatmap, 0, 1) * 255).astype(np.uint8))
    return data.tobytes()


def timeline_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "timestamp_s", "fake_probability", "smoothed_probability", "faces"])
    for frame in report.frames:
        writer.writerow([frame.index, frame.timestamp_s, frame.fake_probability, frame.smoothed_probability, len(frame.faces)])
    return out.getvalue()


# ------------------------------------------------------------------------------------------------ HTML report

_TEMPLATES = Path(__file__).parent / "templates"
_environment = None


def report_html(
    report: Report,
    link: Callable[[str], str | None],
    *,
    source_is_url: bool = False,
    created_at: str | None = None,
    fetch: dict | None = None,
    seen_before: str | None = None,
    matches: list[dict] = (),  # type: ignore[assignment]
) -> str:
    """The HTML report of one analysis (templates/report.html), the same wherever it is shown: `link(name)` is where
    the page finds an artefact by its name (`frame_00.jpg`, `report.json`), None when there is none; `fetch`, the
    fetch details of a URL (title, uploader, final_url, method); `seen_before`/`matches`, earlier analyses of the same
    media (a server's memory)."""
    global _environment
    if _environment is None:
        import jinja2

        loader = jinja2.FileSystemLoader(_TEMPLATES)
        _environment = jinja2.Environment(loader=loader, autoescape=True)
    provenance = report.provenance
    frames = [
        {"frame": frame, "image_url": link(f"frame_{p:02d}.jpg"), "heatmap_url": link(f"heatmap_{p:02d}.jpg")}
        for p, frame in enumerate(report.frames)
    ]
    return _environment.get_template("report.html").render(
        report=report,
        source_is_url=source_is_url,
        created_at=created_at,
        frames=frames,
        timeline_url=link("timeline.png"),
        json_url=link("report.json"),
        fetch=fetch,
        seen_before=seen_before,
        matches=list(matches),
        caveat=CAVEAT,
        reading_guide=READING_GUIDE,
        provenance=describe(provenance) or NO_PROVENANCE,
        provenance_codes=(provenance.c2pa.validation_codes if provenance and provenance.c2pa else []),
        verdict_name=verdict_name(report),
        verdict_words=verdict_words(report),
        faces_words=faces_words(report),
        rule_words=rule_words(report.threshold, report.uncertain_band),
        percent=percent,
    )


def analyze(source: str | os.PathLike, model: str | os.PathLike | None = "default", **options) -> Report:
    """One-shot convenience: load `model` and analyse a file or URL (`Pipeline.run` options). Keep a Detector and a
    Pipeline around for more than one."""
    pipeline = Pipeline()
    try:
        return pipeline.run(Detector.load(model), source, **options).report
    finally:
        pipeline.close()
