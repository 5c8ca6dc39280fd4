"""What the demo does with an upload or a list of links, without any widget: fetch (for links) with the server's
fetcher and URL-safety rules, analyse with the core (`Detector.inspect`, Grad-CAM included), and turn the
`Analysis` into what the page shows. No detection logic lives here and no Gradio: `app.py` wires these to widgets.

Progress is reported as `progress(fraction, text)`; errors are `DetectorError`s with a message for the visitor.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from detector import Detector, DetectorError
from detector.errors import MediaTooLargeError
from detector.fetching.fetch import MediaFetcher
from detector.paths import human_size
from detector.pool import ModelPool
from detector.provenance import describe
from detector.render import faces_words, percent, rule_words, timeline_figure, verdict_name, verdict_words

from .downloads import file_stem, write_result_files
from .settings import DemoSettings

log = logging.getLogger(__name__)

# progress(fraction in [0, 1], what is happening)
DemoProgress = Callable[[float, str], None]


class InputError(DetectorError):
    """What the visitor gave cannot be used (nothing uploaded, no links, a model that is not offered...)."""

    code = "bad_input"


# ------------------------------------------------------------------------------------------------- detectors


def model_pool(settings: DemoSettings, preloaded: dict[str, Detector] | None = None) -> ModelPool:
    """The demo's models: the offered names, Hub ids when allowed, at most `max_loaded_models` in memory."""
    return ModelPool(
        settings.model,
        settings.models,
        allow_hub_ids=settings.allow_hub_models,
        capacity=settings.max_loaded_models,
        face_detector=settings.face_detector,
        preloaded=preloaded,
        settings=settings,  # a CoreSettings: read once at start-up
    )


# --------------------------------------------------------------------------------------------------- results


@dataclass
class DemoResult:
    """One analysed upload or link, as the page shows it."""

    report: dict
    verdict: str  # a .json file with `verdict_label`, the value of a gr.Label
    summary: str  # Markdown
    timeline: object  # a matplotlib Figure (already closed: pyplot forgets it, Gradio still draws it)
    gallery: list[tuple[str, str]]
    downloads: list[str]


@dataclass
class LinksResult:
    rows: list[list]  # one per link: LINK_COLUMNS
    reports: list[dict]  # a Report per link, or {"source", "error": {code, message}} for a link that failed
    detail: DemoResult | None  # the first link that was analysed, for the verdict, timeline and gallery
    downloads: list[str] = field(default_factory=list)
    errors: list[DetectorError] = field(default_factory=list)


# What the links' table shows: words and percentages for people (each link's Report, numbers included, is in the
# `reports` output and the downloads).
LINK_COLUMNS = ["link", "verdict", "fake probability", "frames", "error"]


def verdict_label(report: dict) -> dict:
    """What the gr.Label shows: the verdict as the heading, and the calibrated probabilities of fake and real.

    gr.Label makes its heading the most probable class of a plain dict, which is not the verdict when the
    threshold is not 0.5 or the answer is "uncertain"; given as a {label, confidences} JSON file it shows them as
    they are (`DemoResult.verdict`)."""
    probability = report["fake_probability"]
    if probability is None:
        return {"label": "no face"}
    return {
        "label": verdict_name(report),
        "confidences": [
            {"label": "fake", "confidence": probability},
            {"label": "real", "confidence": round(1.0 - probability, 6)},
        ],
    }


def summary_markdown(report: dict) -> str:
    """The verdict in words (detector.render's, as every shell says it), what was analysed, and the rule."""
    media, timings = report["media"], report["timings_ms"]
    head = f"**{verdict_name(report)}**: {verdict_words(report)}"
    shape = f"{media['width']}×{media['height']}"
    what = (
        f"{media['frames_analyzed']} key frames of a {shape} video ({media['duration_s']:.1f} s)"
        if media["kind"] == "video"
        else f"a {shape} image"
    )
    seconds = timings.get("total", 0.0) / 1000
    lines = [head, f"{what} · {faces_words(report)} · model `{report['model']['id']}` · {seconds:.2f} s"]
    if report["fake_probability"] is not None:
        lines.append(f"Verdict rule: {rule_words(report['threshold'], report['uncertain_band'])}.")
    lines.append(describe(report.get("provenance")) or "Content Credentials: none found (many platforms strip them)")
    lines += [f"⚠️ {warning}" for warning in report["warnings"]]
    return "\n\n".join(lines)


# --------------------------------------------------------------------------------------------------- analyzer


class DemoAnalyzer:
    """Holds what lives as long as the app: the loaded detectors, the fetcher and a folder for result files."""

    def __init__(self, settings: DemoSettings, detectors: ModelPool | None = None, work_dir: Path | None = None):
        self.settings = settings
        self.detectors = detectors or model_pool(settings)
        self.fetcher = MediaFetcher(settings.url_policy, settings.fetch_limits)
        self._work_dir = work_dir
        self._own_work_dir = work_dir is None
        self._work_lock = threading.Lock()

    @property
    def work_dir(self) -> Path:
        with self._work_lock:
            if self._work_dir is None:
                self._work_dir = Path(tempfile.mkdtemp(prefix="deepfake-demo-"))
            return self._work_dir

    def close(self) -> None:
        self.fetcher.close()
        if self._own_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    # ---------------------------------------------------------------------------------------------- inputs

    def check_frames(self, frames) -> int:
        try:
            value = int(frames)
        except (TypeError, ValueError):
            raise InputError(f"frames must be a whole number, not {frames!r}") from None
        if not 1 <= value <= self.settings.max_frames:
            raise InputError(f"frames must be between 1 and {self.settings.max_frames}")
        return value

    def parse_links(self, text: str | None) -> list[str]:
        """One link per line; blank lines and lines starting with # are skipped, repeats dropped."""
        lines = [line.strip() for line in (text or "").splitlines()]
        links = list(dict.fromkeys(line for line in lines if line and not line.startswith("#")))
        if not links:
            raise InputError("paste at least one link (one per line)")
        if len(links) > self.settings.max_links:
            raise InputError(f"{len(links)} links: at most {self.settings.max_links} at a time")
        return links

    # --------------------------------------------------------------------------------------------- analyse

    def analyze_file(self, path: str | os.PathLike | None, model: str | None, frames, progress: DemoProgress | None = None):
        """An uploaded image or video -> DemoResult; a DetectorError the visitor can act on otherwise."""
        if not path:
            raise InputError("upload an image or a video first")
        path = Path(path)
        frames = self.check_frames(frames)
        size = path.stat().st_size
        if size > self.settings.max_upload_bytes:
            raise MediaTooLargeError(
                f"the file is {human_size(size)}, over the {human_size(self.settings.max_upload_bytes)} limit"
            )
        detector = self.detectors.get(model)
        return self._analyze(detector, path, path.name, frames, self.settings.max_upload_bytes, StageProgress(progress))

    def analyze_links(self, text: str | None, model: str | None, frames, progress: DemoProgress | None = None) -> LinksResult:
        """Each link fetched and analysed in turn; a link that fails gets its error in its row, not an exception.
        Bad input (no links, too many, a model that is not offered, bad frames) raises."""
        links = self.parse_links(text)
        frames = self.check_frames(frames)
        detector = self.detectors.get(model)
        result = LinksResult([], [], None)
        for number, url in enumerate(links):
            prefix = f"link {number + 1}/{len(links)}: " if len(links) > 1 else ""
            stage = StageProgress(progress, number / len(links), (number + 1) / len(links), prefix, fetching=True)
            try:
                with self.fetcher.fetch(url, progress=stage) as fetched:
                    done = self._analyze(
                        detector, fetched.path, url, frames, self.settings.max_fetch_bytes, stage, fetched.fetch_ms
                    )
            except DetectorError as exc:
                result.errors.append(exc)
                result.rows.append([url, "", "", None, exc.message])
                result.reports.append({"source": url, "error": exc.to_dict()})
                continue
            except Exception:  # a bug must not lose the other links' results, nor show a traceback
                log.exception("analysing %s failed", url)
                error = DetectorError("the analysis failed unexpectedly (the details are in the app's log)")
                result.errors.append(error)
                result.rows.append([url, "", "", None, error.message])
                result.reports.append({"source": url, "error": error.to_dict()})
                continue
            report = done.report
            result.rows.append(
                [url, verdict_name(report), percent(report["fake_probability"]), report["media"]["frames_analyzed"], ""]
            )
            result.reports.append(report)
            result.downloads += done.downloads
            result.detail = result.detail or done
        if len(links) > 1:  # every Report (and every error) in one file, first in the list
            reports = self._result_folder() / "links-reports.json"
            reports.write_text(json.dumps(result.reports, indent=2))
            result.downloads.insert(0, str(reports))
        return result

    def _analyze(
        self,
        detector: Detector,
        path: Path,
        source: str,
        frames: int,
        max_bytes: int,
        progress: StageProgress,
        fetch_ms: float | None = None,
    ) -> DemoResult:
        analysis = detector.inspect(
            path,
            explain=True,
            frames=frames,
            source_name=source,
            progress=progress,
            limits=self.settings.media_limits(max_bytes),
            fetch_ms=fetch_ms,
        )
        report = analysis.report
        progress("render", 0, 1)
        data = report.to_dict()
        figure = timeline_figure(report)
        folder = self._result_folder()
        files = write_result_files(folder, analysis, figure, file_stem(source))
        label = folder / "verdict.json"
        label.write_text(json.dumps(verdict_label(data)))
        progress("render", 1, 1)
        return DemoResult(
            report=data,
            verdict=str(label),
            summary=summary_markdown(data),
            timeline=figure,
            gallery=files.gallery,
            downloads=[str(files.report_json), str(files.report_zip)],
        )

    def _result_folder(self) -> Path:
        """A fresh folder for one result; folders older than `keep_results_s` are removed on the way (Gradio
        copies what it shows into its own cache, so these are only needed until the answer is sent)."""
        root = self.work_dir
        cutoff = time.time() - self.settings.keep_results_s
        for old in root.iterdir():
            try:
                if old.is_dir() and old.stat().st_mtime < cutoff:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass
        folder = root / uuid.uuid4().hex
        folder.mkdir()
        return folder


class StageProgress:
    """Maps the core's `progress(stage, done, total)` (fetch, decode, faces, model, and our render) onto one
    fraction of [start, end] with a sentence for the visitor."""

    STAGES = {"fetch": (0.0, 0.3), "decode": (0.3, 0.6), "faces": (0.6, 0.8), "model": (0.8, 0.92), "render": (0.92, 1.0)}
    NO_FETCH = {"decode": (0.0, 0.45), "faces": (0.45, 0.75), "model": (0.75, 0.9), "render": (0.9, 1.0)}
    TEXT = {
        "fetch": "fetching the media",
        "decode": "decoding key frames",
        "faces": "finding faces",
        "model": "running the model",
        "render": "drawing the report",
    }

    def __init__(self, report: DemoProgress | None, start: float = 0.0, end: float = 1.0, prefix: str = "", fetching=False):
        self.report, self.start, self.end, self.prefix = report, start, end, prefix
        self.stages = self.STAGES if fetching else self.NO_FETCH

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.report is None or stage not in self.stages:
            return
        low, high = self.stages[stage]
        part = min(1.0, done / total) if total else 0.0
        fraction = self.start + (self.end - self.start) * (low + (high - low) * part)
        if stage == "fetch":
            detail = f" ({human_size(done)}{f' of {human_size(total)}' if total else ''})"
        elif stage == "render" or not total:
            detail = ""
        else:
            detail = f" ({done}/{total})"
        self.report(round(fraction, 4), f"{self.prefix}{self.TEXT[stage]}{detail}")
