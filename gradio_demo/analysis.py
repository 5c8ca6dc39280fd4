"""What the demo does with an upload or a list of links, without any widget: the core's pipeline fetches (links,
with the server's URL-safety rules) and analyses (Grad-CAM included), and the `Analysis` becomes what the page
shows. No detection logic lives here and no Gradio: `app.py` wires these to widgets.

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

from detector import Detector, DetectorError, Report
from detector.errors import MediaTooLargeError
from detector.memory import Match, seen_before
from detector.paths import human_size
from detector.pipeline import STAGE_WORDS, STAGES, Pipeline, frame_count, stage_fraction
from detector.pool import ModelPool
from detector.render import percent, summary, timeline_figure, verdict_name

from .downloads import file_stem, write_result_files
from .memory import DemoMemory
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

    report: Report
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


def verdict_label(report: Report) -> dict:
    """What the gr.Label shows: the verdict as the heading, and the calibrated probabilities of fake and real.

    gr.Label makes its heading the most probable class of a plain dict, which is not the verdict when the
    threshold is not 0.5 or the answer is "uncertain"; given as a {label, confidences} JSON file it shows them as
    they are (`DemoResult.verdict`)."""
    probability = report.fake_probability
    if probability is None:
        return {"label": "no face"}
    return {
        "label": verdict_name(report),
        "confidences": [
            {"label": "fake", "confidence": probability},
            {"label": "real", "confidence": round(1.0 - probability, 6)},
        ],
    }


def summary_markdown(report: Report, matches: list[Match] | None = None) -> str:
    """The verdict in words (detector.render's, as every shell says it), what was analysed, the rule, and whether
    the demo saw the same media before (`matches`, gradio_demo/memory.py)."""
    said = summary(report)
    lines = [f"**{said.verdict}**: {said.words}", f"{said.analysed} · {said.faces} · model `{said.model}` · {said.seconds:.2f} s"]
    if seen := seen_before(matches or []):
        lines.append(f"🔁 {seen}.")
    if said.rule is not None:
        lines.append(f"Verdict rule: {said.rule}.")
    lines.append(said.provenance)
    lines += [f"⚠️ {warning}" for warning in said.warnings]
    return "\n\n".join(lines)


# --------------------------------------------------------------------------------------------------- analyzer


class DemoAnalyzer:
    """Holds what lives as long as the app: the loaded detectors, the fetcher and a folder for result files."""

    def __init__(self, settings: DemoSettings, detectors: ModelPool | None = None, work_dir: Path | None = None):
        self.settings = settings
        self.detectors = detectors or model_pool(settings)
        self.pipeline = Pipeline(settings.url_policy, settings.fetch_limits)
        self.memory = DemoMemory(settings.memory_path())
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
        self.pipeline.close()
        self.memory.close()
        if self._own_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    # ---------------------------------------------------------------------------------------------- inputs

    def check_frames(self, frames) -> int:
        """The slider's frame count (0 when none: the model's own)."""
        return frame_count(frames, self.settings.max_frames)

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
                done = self._analyze(detector, url, url, frames, self.settings.max_fetch_bytes, stage)
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
            result.rows.append([url, verdict_name(report), percent(report.fake_probability), report.media.frames_analyzed, ""])
            result.reports.append(report.to_dict())
            result.downloads += done.downloads
            result.detail = result.detail or done
        if len(links) > 1:  # every Report (and every error) in one file, first in the list
            reports = self._result_folder() / "links-reports.json"
            reports.write_text(json.dumps(result.reports, indent=2))
            result.downloads.insert(0, str(reports))
        return result

    def _analyze(
        self, detector: Detector, source: str | Path, name: str, frames: int, max_bytes: int, progress: StageProgress
    ) -> DemoResult:
        """A file or a link through the core's pipeline, then the page's pieces: the verdict label, the summary,
        the timeline, the gallery and the downloads."""
        analysis = self.pipeline.run(
            detector,
            source,
            source_name=name,
            progress=progress,
            explain=True,
            frames=frames,
            limits=self.settings.media_limits(max_bytes),
        )
        report = analysis.report
        progress("render", 0, 1)
        matches = self.memory.recall_and_remember(report, [key_frame.image for key_frame in analysis.key_frames])
        folder = self._result_folder()
        files = write_result_files(folder, analysis, file_stem(name))
        label = folder / "verdict.json"
        label.write_text(json.dumps(verdict_label(report)))
        progress("render", 1, 1)
        return DemoResult(
            report=report,
            verdict=str(label),
            summary=summary_markdown(report, matches),
            timeline=timeline_figure(report),
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
    """Maps the core's `progress(stage, done, total)` onto the fraction [start, end] of the page's bar (the stage
    table every shell shares, `detector.pipeline.STAGES`) with a sentence for the visitor."""

    def __init__(self, report: DemoProgress | None, start: float = 0.0, end: float = 1.0, prefix: str = "", fetching=False):
        self.report, self.start, self.end, self.prefix, self.fetching = report, start, end, prefix, fetching

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.report is None or stage not in STAGES:
            return
        fraction = self.start + (self.end - self.start) * stage_fraction(stage, done, total, self.fetching)
        if stage == "fetch":
            detail = f" ({human_size(done)}{f' of {human_size(total)}' if total else ''})"
        elif stage == "render" or not total:
            detail = ""
        else:
            detail = f" ({done}/{total})"
        self.report(round(fraction, 4), f"{self.prefix}{STAGE_WORDS[stage]}{detail}")
