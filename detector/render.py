"""Pictures of a Report for people: key frames with face boxes, heatmap overlays and the timeline plot.

Shared by the server's HTML report and the Gradio demo so both show the same thing.
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass

import cv2
import numpy as np

from .config import DecisionConfig
from .decision import decide
from .provenance import describe
from .report import FrameResult, Report

# What every page that shows a Report tells its reader (the demo and the server's HTML report).
CAVEAT = (
    "A screening aid, not proof: the fake probability is calibrated on the sources the model learned from; expect "
    "mistakes on manipulation methods, faces and image qualities it was not trained on. \"Uncertain\" means the score "
    "is too close to call, or the face is unlike the faces the model learned from."
)
READING_GUIDE = (
    "How to read it: the verdict uses the fake probability of the most suspicious face over all its frames (the "
    "solid horizontal line) and the verdict rule (grey: uncertain band; dashed: threshold). Dots are each frame's own "
    "score (frame score), the red line their moving average: they show when a face looks suspicious, and may differ "
    "from the verdict's score. Key frames: boxes mark the analysed faces with their frame score; the colours over a "
    "face show where the model looked (Grad-CAM)."
)

# ------------------------------------------------------------------------------------------------------ words
# Every verdict and number a person reads, worded once: the CLI, the demo, the server's HTML report and the
# downloaded report call these (the extension's lib/labels.js says the same in its own words). Probabilities are
# whole percentages everywhere; "fake probability" is always the Report's (the most suspicious face track, judged
# over all its frames), a key frame's own score is always called "frame score".

VERDICT_NAMES = {"real": "real", "fake": "fake", "uncertain": "uncertain", "no_face": "no face"}


def percent(value: float | None) -> str:
    """A probability as people read it here: a whole percentage ("" when there is none)."""
    return "" if value is None else f"{value:.0%}"


def verdict_name(report: Report) -> str:
    """The verdict's name, with what weakens it: "uncertain (unfamiliar face)", "real (untrained model)"."""
    name = VERDICT_NAMES.get(report.verdict, report.verdict)
    if not report.model.trained:
        return f"{name} (untrained model)"
    if report.unfamiliar and report.verdict != "no_face":
        return f"{name} (unfamiliar face)"
    return name


def verdict_words(report: Report) -> str:
    """One sentence after the verdict's name: the fake probability, and why it is not called where it is not. No
    "confidence": in an uncertain answer it reads as nonsense, and beside a fake probability it says nothing more."""
    probability = report.fake_probability
    if probability is None:
        return "no face was found, so nothing was judged"
    words = f"fake probability {percent(probability)}"
    if not report.model.trained:
        return f"{words}, from a model never trained for this task: it means nothing"
    if report.unfamiliar:
        return f"{words}, but the face is unlike the faces the model learned from: not called real or fake"
    if report.verdict == "uncertain":
        return f"{words}: too close to call"
    return f"{words}, a screening score, not proof: media unlike the model's training data can fool it"


def rule_words(threshold: float, band: list[float]) -> str:
    """The verdict rule, in percentages."""
    low, high = band
    return f"uncertain between {percent(low)} and {percent(high)}, otherwise fake from {percent(threshold)} up"


def faces_words(report: Report) -> str:
    """How many faces were judged, and which one decides."""
    count = len(report.tracks)
    if count == 0:
        return "no face"
    if count == 1:
        return "1 face"
    return f"{count} faces (the most suspicious decides)"

NO_PROVENANCE = "Content Credentials: none found (many platforms strip them)"


@dataclass
class Summary:
    """A Report in words, in pieces every shell puts together its own way (a CLI line, the demo's Markdown)."""

    verdict: str  # verdict_name
    words: str  # verdict_words
    analysed: str  # "4 key frames of a 640×480 video (3.0 s)", "a 640×480 image"
    faces: str  # faces_words
    model: str  # the model's id
    seconds: float  # the whole analysis, fetch included
    rule: str | None  # the verdict rule; None when nothing was judged
    provenance: str  # what the file says about itself, or that it says nothing
    warnings: list[str]


def summary(report: Report) -> Summary:
    media = report.media
    shape = f"{media.width}×{media.height}"
    analysed = (
        f"{media.frames_analyzed} key frames of a {shape} video ({media.duration_s:.1f} s)"
        if media.kind == "video"
        else f"a {shape} image"
    )
    return Summary(
        verdict=verdict_name(report),
        words=verdict_words(report),
        analysed=analysed,
        faces=faces_words(report),
        model=report.model.id,
        seconds=report.timings_ms.get("total", 0.0) / 1000,
        rule=rule_words(report.threshold, report.uncertain_band) if report.fake_probability is not None else None,
        provenance=describe(report.provenance) or NO_PROVENANCE,
        warnings=list(report.warnings),
    )


# pyplot keeps global state: one figure is made, drawn or closed at a time, whichever thread of a shell asks.
_PYPLOT = threading.RLock()

VERDICT_COLORS = {"real": (46, 160, 67), "fake": (218, 54, 51), "uncertain": (210, 153, 34), "no_face": (110, 118, 129)}


def color_for(probability: float | None, threshold: float, band: list[float]) -> tuple[int, int, int]:
    """The colour of the verdict `decision.decide` gives this probability under this rule."""
    verdict, _ = decide(probability, DecisionConfig(threshold=threshold, uncertain_band=list(band)))
    return VERDICT_COLORS[verdict]


def draw_faces(image: np.ndarray, frame: FrameResult, report: Report) -> np.ndarray:
    """A copy of the RGB frame with each analysed face boxed and labelled with its fake probability."""
    out = image.copy()
    thickness = max(2, round(max(out.shape[:2]) / 400))
    for face in frame.faces:
        x, y, w, h = (int(round(v)) for v in face.box)
        color = color_for(face.fake_probability, report.threshold, report.uncertain_band)
        cv2.rectangle(out, (x, y), (x + w, y + h), color, thickness)
        label = f"frame {percent(face.fake_probability)}"
        scale = max(0.5, max(out.shape[:2]) / 1400)
        (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(0, y - th - 8)
        cv2.rectangle(out, (x, top), (x + tw + 8, top + th + 8), color, -1)
        cv2.putText(out, label, (x + 4, top + th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def overlay_heatmap(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """The frame with a JET-coloured heatmap laid over it where the map is above zero."""
    colored = cv2.applyColorMap((np.clip(heatmap, 0, 1) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    colored = cv2.cvtColor(colored, cv2.COLOR_BGR2RGB)
    weight = (alpha * np.clip(heatmap, 0, 1))[..., None]
    return (image * (1 - weight) + colored * weight).astype(np.uint8)


def timeline_figure(report: Report):
    """Raw and smoothed per-frame fake probability over time, with the threshold and the uncertain band. The legend
    sits under the axes (never over points near 1.0); the page around the plot gives its title. An image has one
    frame, so no time axis; with no face there is nothing to plot, and the figure says so. The figure is closed in
    pyplot (which forgets it) and still draws: savefig, Gradio's Plot. Safe to call from several threads."""
    with _PYPLOT:
        return _timeline_figure(report)


def _timeline_figure(report: Report):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frames = [f for f in report.frames if f.fake_probability is not None]
    video = report.media.kind == "video"
    fig, ax = plt.subplots(figsize=(8, 3.6))
    # The band and threshold drawn are the Report's rule, the one its verdict applies to its fake probability (the
    # solid line); the dots are the frames' own scores, another head of the model, so they are named apart.
    low, high = report.uncertain_band
    ax.axhspan(low, high, color="grey", alpha=0.15, label=f"uncertain band ({percent(low)}–{percent(high)})")
    ax.axhline(report.threshold, color="black", lw=1, ls="--", label=f"threshold ({percent(report.threshold)})")
    if report.fake_probability is not None:
        ax.axhline(
            report.fake_probability, color="black", lw=2, label=f"fake probability, the verdict's ({percent(report.fake_probability)})"
        )
    ax.set(ylim=(-0.02, 1.02), ylabel="fake probability")
    ax.yaxis.set_major_formatter(lambda value, _: percent(value))
    if frames and video:
        times = [f.timestamp_s for f in frames]
        ax.plot(times, [f.fake_probability for f in frames], "o", ms=4, color="tab:red", alpha=0.6, label="frame score")
        ax.plot(times, [f.smoothed_probability for f in frames], "-", lw=2, color="tab:red", label="frame score, smoothed")
        ax.set(xlim=(0, max(report.media.duration_s or 0.0, times[-1], 0.1)), xlabel="time (s)")
    elif frames:  # an image: one frame, one score per face
        ax.plot([0.0] * len(frames), [f.fake_probability for f in frames], "o", ms=7, color="tab:red", label="frame score")
        ax.set(xlim=(-1, 1), xticks=[], xlabel="an image has a single frame")
    else:
        ax.set(xticks=[], xlabel="")
        ax.text(0.5, 0.5, "no face found: nothing to plot", transform=ax.transAxes, ha="center", va="center", color="0.35")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2 if video else -0.14), fontsize=8, ncol=3, frameon=False)
    fig.tight_layout()
    plt.close(fig)
    return fig


def timeline_png(report: Report) -> bytes:
    return figure_png(timeline_figure(report))


def figure_png(figure) -> bytes:
    """A figure of `timeline_figure` as PNG bytes (one drawing at a time, as for making figures)."""
    buffer = io.BytesIO()
    with _PYPLOT:
        figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def encode_jpeg(image: np.ndarray, quality: int = 85, max_side: int | None = 960) -> bytes:
    """RGB array -> JPEG bytes (downscaled so the longer side is at most `max_side`)."""
    if max_side and max(image.shape[:2]) > max_side:
        scale = max_side / max(image.shape[:2])
        image = cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return data.tobytes()
