"""Files written for one analysis: the pictures the gallery shows, and what a visitor can download.

Downloads: the Report JSON, and a zip holding the same Report with an HTML page that shows it (`index.html`),
the timeline (`timeline.png`, `timeline.csv`), each key frame with its face boxes (`frames/`), with the Grad-CAM
overlay (`overlays/`) and the raw heatmap as an 8-bit grey PNG the size of the frame (`heatmaps/`). Pictures come
from `detector.render`, the same helpers the server's report uses.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from detector import Analysis, Report
from detector.render import (
    CAVEAT,
    READING_GUIDE,
    draw_faces,
    encode_jpeg,
    figure_png,
    overlay_heatmap,
    percent,
    rule_words,
    verdict_name,
    verdict_words,
)
from detector.report import FrameResult

GALLERY_SIDE = 960  # longer side of the pictures shown in the page; the zip keeps full size


@dataclass
class ResultFiles:
    gallery: list[tuple[str, str]]  # (picture path, caption), one per key frame
    report_json: Path
    report_zip: Path


def write_result_files(folder: Path, analysis: Analysis, timeline_figure, stem: str) -> ResultFiles:
    report = analysis.report
    folder.mkdir(parents=True, exist_ok=True)
    gallery: list[tuple[str, str]] = []
    entries: dict[str, bytes] = {}
    for position, (key_frame, frame, heatmap) in enumerate(zip(analysis.key_frames, report.frames, analysis.heatmaps)):
        boxed = draw_faces(key_frame.image, frame, report)
        explained = boxed
        if heatmap is not None:
            explained = draw_faces(overlay_heatmap(key_frame.image, heatmap), frame, report)
            entries[f"heatmaps/{position:02d}.png"] = heatmap_png(heatmap)
            entries[f"overlays/{position:02d}.jpg"] = encode_jpeg(explained, max_side=None)
        entries[f"frames/{position:02d}.jpg"] = encode_jpeg(boxed, max_side=None)
        picture = folder / f"keyframe-{position:02d}.jpg"
        picture.write_bytes(encode_jpeg(explained, max_side=GALLERY_SIDE))
        gallery.append((str(picture), frame_caption(frame, report)))

    entries["timeline.png"] = figure_png(timeline_figure)
    entries["timeline.csv"] = timeline_csv(report).encode()
    report_bytes = json.dumps(report.to_dict(), indent=2).encode()
    entries["report.json"] = report_bytes
    entries["index.html"] = report_html(report, sorted(entries)).encode()

    report_json = folder / f"{stem}-report.json"
    report_json.write_bytes(report_bytes)
    report_zip = folder / f"{stem}-report.zip"
    with zipfile.ZipFile(report_zip, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(entries):
            archive.writestr(f"{stem}-report/{name}", entries[name])
    return ResultFiles(gallery, report_json, report_zip)


def heatmap_png(heatmap: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".png", np.round(np.clip(heatmap, 0, 1) * 255).astype(np.uint8))
    return data.tobytes()


def frame_caption(frame: FrameResult, report: Report) -> str:
    where = f"{frame.timestamp_s:.2f} s" if report.media["kind"] == "video" else "image"
    probability = frame.fake_probability
    score = "no face" if probability is None else f"frame score {percent(probability)}"
    return f"frame {frame.index} · {where} · {score}"


def timeline_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["index", "timestamp_s", "fake_probability", "smoothed_probability", "faces"])
    for frame in report.frames:
        writer.writerow([frame.index, frame.timestamp_s, frame.fake_probability, frame.smoothed_probability, len(frame.faces)])
    return out.getvalue()


def file_stem(source: str) -> str:
    """A short, safe file name stem for a file name or URL: `clip.mp4` -> `clip`, `https://x.org/p/12` -> `x.org-12`."""
    if re.match(r"^https?://", source, re.IGNORECASE):
        host, _, path = source.split("://", 1)[1].partition("/")
        last = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        source = f"{host}-{last}" if last else host
    stem = Path(source).stem if "." in source[-6:] else source
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._-")
    return stem[:60] or "media"


def report_html(report: Report, files: list[str]) -> str:
    """A page that shows the Report with the pictures beside it in the zip (relative links, no scripts)."""
    esc = html.escape
    data = report.to_dict()
    summary = esc(verdict_words(data))
    warnings = "".join(f"<p class=warn>{esc(w)}</p>" for w in report.warnings)
    rows, figures = [], []
    for position, frame in enumerate(report.frames):
        p, s = frame.fake_probability, frame.smoothed_probability
        rows.append(
            f"<tr><td>{frame.index}</td><td>{frame.timestamp_s:.2f}</td><td>{percent(p)}</td>"
            f"<td>{percent(s)}</td><td>{len(frame.faces)}</td></tr>"
        )
        picture = f"overlays/{position:02d}.jpg" if f"overlays/{position:02d}.jpg" in files else f"frames/{position:02d}.jpg"
        figures.append(
            f'<figure><a href="{picture}"><img src="{picture}" alt=""></a>'
            f"<figcaption>{esc(frame_caption(frame, report))}</figcaption></figure>"
        )
    media = report.media
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Deepfake check: {esc(report.source)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
.verdict{{font-size:2em;font-weight:bold}} .warn{{color:#b35900}} img{{max-width:100%}}
figure{{display:inline-block;width:31%;margin:0 1% 1em 0;vertical-align:top}} figcaption{{font-size:.85em}}
table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}</style></head>
<body><h1>Deepfake check</h1>
<p>Source: <code>{esc(report.source)}</code></p>
<p class=verdict>{esc(verdict_name(data))}</p><p>{summary}</p>{warnings}
<p><small>{esc(CAVEAT)}</small></p>
<p>{esc(media["kind"])} {media["width"]}×{media["height"]}, {media["frames_analyzed"]} frame(s) analysed;
model <code>{esc(str(report.model["id"]))}</code> ({esc(str(report.model["revision"]))});
verdict rule: {esc(rule_words(report.threshold, report.uncertain_band))}.</p>
<h2>Timeline</h2><img src="timeline.png" alt="fake probability over time"><p><small>{esc(READING_GUIDE)}</small></p>
<table><tr><th>frame</th><th>time (s)</th><th>frame score</th><th>smoothed</th><th>faces</th></tr>{"".join(rows)}</table>
<h2>Key frames</h2>
{"".join(figures)}
<p>The full Report: <a href="report.json">report.json</a>; raw heatmaps in <code>heatmaps/</code>.</p>
</body></html>
"""
