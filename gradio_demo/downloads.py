"""Files written for one analysis: the pictures the gallery shows, and what a visitor can download.

Downloads: the Report JSON, and a zip holding the same Report with the HTML report that shows it (`index.html`,
the template every shell uses), the timeline (`timeline.png` for videos, `timeline.csv`), each key frame with its
face boxes (`frame_NN.jpg`), with the Grad-CAM overlay (`heatmap_NN.jpg`) and the raw heatmap as an 8-bit grey PNG
the size of the frame (`heatmap_NN.png`). Every file comes from `detector.pipeline`, as the server's do.
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

from detector import Analysis, Report
from detector.pipeline import pictures, report_html, report_json
from detector.render import percent
from detector.report import FrameResult


@dataclass
class ResultFiles:
    gallery: list[tuple[str, str]]  # (picture path, caption), one per key frame
    report_json: Path
    report_zip: Path


def write_result_files(folder: Path, analysis: Analysis, stem: str) -> ResultFiles:
    """The gallery's pictures (each key frame with its heatmap when there is one) and the downloads, in `folder`."""
    report = analysis.report
    folder.mkdir(parents=True, exist_ok=True)
    files = [*pictures(analysis, max_side=None, raw=True), report_json(report)]
    entries = {artefact.name: artefact.data for artefact in files}
    entries["index.html"] = report_html(report, lambda name: name if name in entries else None).encode()
    gallery: list[tuple[str, str]] = []
    for position, frame in enumerate(report.frames):
        name = f"heatmap_{position:02d}.jpg" if f"heatmap_{position:02d}.jpg" in entries else f"frame_{position:02d}.jpg"
        picture = folder / f"keyframe-{name}"
        picture.write_bytes(entries[name])
        gallery.append((str(picture), frame_caption(frame, report)))

    report_file = folder / f"{stem}-report.json"
    report_file.write_bytes(entries["report.json"])
    report_zip = folder / f"{stem}-report.zip"
    with zipfile.ZipFile(report_zip, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            archive.writestr(f"{stem}-report/{name}", entries[name])
    return ResultFiles(gallery, report_file, report_zip)


def frame_caption(frame: FrameResult, report: Report) -> str:
    where = f"{frame.timestamp_s:.2f} s" if report.media.kind == "video" else "image"
    probability = frame.fake_probability
    score = "no face" if probability is None else f"frame score {percent(probability)}"
    return f"frame {frame.index} · {where} · {score}"


def file_stem(source: str) -> str:
    """A short, safe file name stem for a file name or URL: `clip.mp4` -> `clip`, `https://x.org/p/12` -> `x.org-12`."""
    if re.match(r"^https?://", source, re.IGNORECASE):
        host, _, path = source.split("://", 1)[1].partition("/")
        last = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        source = f"{host}-{last}" if last else host
    stem = Path(source).stem if "." in source[-6:] else source
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")
    return stem[:60] or "media"
