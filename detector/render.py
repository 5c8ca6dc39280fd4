"""Pictures of a Report for people: key frames with face boxes, heatmap overlays and the timeline plot.

Shared by the server's HTML report and the Gradio demo so both show the same thing.
"""

from __future__ import annotations

import io
import threading

import cv2
import numpy as np

from .config import DecisionConfig
from .decision import decide
from .report import FrameResult, Report

# What every page that shows a Report tells its reader (the demo and the server's HTML report).
CAVEAT = (
    "A screening aid, not proof: read the confidence, and expect mistakes on manipulation methods, faces and image "
    "qualities the model was not trained on. \"Uncertain\" means the score is too close to the threshold to call."
)
READING_GUIDE = (
    "How to read it: dots are each analysed frame's fake probability, the line their moving average; dashed, the "
    "decision threshold; grey, the uncertain band. Key frames: boxes mark the analysed faces, coloured by their "
    "score; the colours over a face show where the model looked (Grad-CAM)."
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
        label = f"fake {face.fake_probability:.0%}"
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
    video = report.media["kind"] == "video"
    fig, ax = plt.subplots(figsize=(8, 3.2))
    low, high = report.uncertain_band
    ax.axhspan(low, high, color="grey", alpha=0.15, label="uncertain band")
    ax.axhline(report.threshold, color="black", lw=1, ls="--", label="threshold")
    ax.set(ylim=(-0.02, 1.02), ylabel="fake probability")
    if frames and video:
        times = [f.timestamp_s for f in frames]
        ax.plot(times, [f.fake_probability for f in frames], "o", ms=4, color="tab:red", alpha=0.6, label="per frame")
        ax.plot(times, [f.smoothed_probability for f in frames], "-", lw=2, color="tab:red", label="smoothed")
        ax.set(xlim=(0, max(report.media["duration_s"] or 0.0, times[-1], 0.1)), xlabel="time (s)")
    elif frames:  # an image: one frame, one score per face
        ax.plot([0.0] * len(frames), [f.fake_probability for f in frames], "o", ms=7, color="tab:red", label="image")
        ax.set(xlim=(-1, 1), xticks=[], xlabel="an image has a single frame")
    else:
        ax.set(xticks=[], xlabel="")
        ax.text(0.5, 0.5, "no face found: nothing to plot", transform=ax.transAxes, ha="center", va="center", color="0.35")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2 if video else -0.14), fontsize=8, ncol=4, frameon=False)
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
