"""Evaluate a checkpoint on a labelled dataset: `python -m detector evaluate --data PATH [--split val] ...`.

Every file goes through the same `Detector.analyze` path users get (a file without a detected face is scored
on the whole image and counted in `no_face_rate`). Fake is the positive class. `--perturb` re-encodes or
rescales each image first, to measure robustness to what social platforms do to uploads.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from ..analyzer import Detector
from ..errors import DetectorError, MediaError
from ..progress import ProgressLine
from .datasets import Sample, read_dataset
from .metrics import (
    answers_of,
    decided_right,
    group_indices,
    interval_verdict,
    paired_auc_difference,
    paired_mean_decided_difference,
    report_metrics,
    roc_auc,
)

SCORES_FILE = "scores.csv"  # per-file scores beside metrics.json (the model card reads it for bootstrap intervals)


def perturb_image(path: Path, perturbation: str, target: Path) -> Path:
    """Write `path` re-encoded as JPEG (`jpeg:QUALITY`) or rescaled (`scale:FACTOR`) to `target`."""
    kind, _, value = perturbation.partition(":")
    with Image.open(path) as im:
        im = im.convert("RGB")
        if kind == "jpeg":
            buffer = io.BytesIO()
            im.save(buffer, format="JPEG", quality=int(value))
            target.write_bytes(buffer.getvalue())
            return target
        if kind == "scale":
            factor = float(value)
            size = (max(1, round(im.width * factor)), max(1, round(im.height * factor)))
            im.resize(size, Image.Resampling.BOX if factor < 1 else Image.Resampling.BICUBIC).save(target, format="PNG")
            return target
    raise ValueError(f"unknown perturbation {perturbation!r}: use jpeg:QUALITY or scale:FACTOR")


def score_samples(detector: Detector, samples: list[Sample], perturb: str | None = None, progress: bool = True) -> list[dict]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp, ProgressLine("evaluate", len(samples), "file", quiet=not progress) as bar:
        for sample in samples:
            bar.update()
            path = sample.path
            try:
                if perturb:
                    if sample.is_video:
                        raise MediaError("perturbations apply to images only")
                    path = perturb_image(sample.path, perturb, Path(tmp) / f"perturbed{sample.path.suffix}.png")
                report = detector.analyze(path, source_name=str(sample.path), whole_image_fallback=True)
            except DetectorError as exc:
                print(f"warning: {sample.path}: {exc.message} (left out)", file=sys.stderr)
                continue
            rows.append(
                {
                    "path": str(sample.path),
                    "label": sample.label,
                    "source": sample.source,
                    "method": sample.method,
                    "fake_probability": report.fake_probability,
                    "verdict": report.verdict,
                    "no_face": any("no face found" in w for w in report.warnings),
                }
            )
    return rows


def evaluate(
    detector: Detector, samples: list[Sample], perturb: str | None = None, progress: bool = True
) -> tuple[dict, list[dict]]:
    rows = score_samples(detector, samples, perturb, progress)
    if not rows:
        raise DetectorError("no file of the dataset could be analysed")
    metrics = report_metrics(
        [r["label"] for r in rows],
        [r["fake_probability"] for r in rows],
        detector.config.decision.threshold,
        [r["source"] for r in rows],
        [r["method"] for r in rows],
        [r["no_face"] for r in rows],
        [r["verdict"] for r in rows],
    )
    return metrics, rows


def write_outputs(out: Path, metrics: dict, rows: list[dict], decision) -> None:
    """Per-file scores (CSV), the metrics (JSON) and PNG plots: ROC, confusion matrix, reliability, histograms."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from sklearn.metrics import roc_curve

    out.mkdir(parents=True, exist_ok=True)
    with open(out / SCORES_FILE, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    labels = np.array([r["label"] for r in rows])
    probs = np.array([r["fake_probability"] for r in rows])

    fig, ax = plt.subplots(figsize=(5, 5))
    if metrics["roc_auc"] is not None:
        fpr, tpr, _ = roc_curve(labels, probs)
        ax.plot(fpr, tpr, label=f"all (AUC {metrics['roc_auc']:.3f})", lw=2)
    for source, stats in metrics["per_source"].items():
        chosen = np.array([r["source"] == source for r in rows])
        if stats["roc_auc"] is not None:
            fpr, tpr, _ = roc_curve(labels[chosen], probs[chosen])
            ax.plot(fpr, tpr, label=f"{source} ({stats['roc_auc']:.3f})", lw=1)
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.set(xlabel="false positive rate (real called fake)", ylabel="true positive rate (fake caught)", title="ROC")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "roc.png", dpi=120)
    plt.close(fig)

    c = metrics["confusion"]
    fig, ax = plt.subplots(figsize=(4, 4))
    grid = np.array([[c["tn"], c["fp"]], [c["fn"], c["tp"]]])
    ax.imshow(grid, cmap="Blues")
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, str(v), ha="center", va="center", color="black", fontsize=14)
    ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=["real", "fake"], yticklabels=["real", "fake"])
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion at threshold {metrics['threshold']:.3f}")
    fig.tight_layout()
    fig.savefig(out / "confusion.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    edges = np.linspace(0, 1, 11)
    index = np.clip(np.digitize(probs, edges[1:-1]), 0, 9)
    centers, rates, counts = [], [], []
    for b in range(10):
        chosen = index == b
        if chosen.any():
            centers.append(probs[chosen].mean())
            rates.append(labels[chosen].mean())
            counts.append(int(chosen.sum()))
    ax.plot([0, 1], [0, 1], "k:", lw=0.8)
    ax.plot(centers, rates, "o-")
    for x, y, n in zip(centers, rates, counts):
        ax.annotate(str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
    ax.set(xlabel="predicted fake probability", ylabel="observed share of fakes", title=f"reliability (ECE {metrics['ece']:.3f})")
    fig.tight_layout()
    fig.savefig(out / "reliability.png", dpi=120)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    bins = np.linspace(0, 1, 41)
    ax.hist(probs[labels == 0], bins=bins, alpha=0.6, label="real", color="tab:green")
    ax.hist(probs[labels == 1], bins=bins, alpha=0.6, label="fake", color="tab:red")
    ax.axvline(metrics["threshold"], color="k", lw=1, label="threshold")
    ax.axvspan(*decision.uncertain_band, color="grey", alpha=0.15, label="uncertain band")
    ax.set(xlabel="fake probability", ylabel="files", title="scores per class")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "histogram.png", dpi=120)
    plt.close(fig)


def format_table(metrics: dict) -> str:
    lines = [
        f"n {metrics['n']}  accuracy {metrics['accuracy']:.4f}  precision {metrics['precision']:.4f}  recall {metrics['recall']:.4f}  "
        f"f1 {metrics['f1']:.4f}  roc_auc {_fmt(metrics['roc_auc'])}  eer {_fmt(metrics['eer'])}  ece {metrics['ece']:.4f}",
        f"threshold {metrics['threshold']:.4f}  no_face_rate {metrics['no_face_rate']:.4f}  confusion {metrics['confusion']}",
    ]
    if "decided_right" in metrics:
        lines.append(f"what users are told: {_told(metrics)}")
    for key in ("per_source", "per_method"):
        lines.append(f"{key}:")
        for name, stats in metrics[key].items():
            told = f"  {_told(stats)}" if "decided_right" in stats else ""
            lines.append(
                f"  {name:<24} n {stats['n']:>5}  accuracy {stats['accuracy']:.4f}  roc_auc {_fmt(stats['roc_auc'])}{told}"
            )
    return "\n".join(lines)


def _told(stats: dict) -> str:
    """Fakes labelled fake / real / uncertain, reals labelled real / fake / uncertain, and decided right."""
    parts = []
    for name, order in (("fakes", ("fake", "real", "uncertain")), ("reals", ("real", "fake", "uncertain"))):
        if stats.get(name):
            parts.append(f"{name} → {' / '.join(order)} {' / '.join(f'{stats[name][k]:.1%}' for k in order)}")
    return "  ".join(parts) + f"  decided right {_fmt(stats['decided_right'])}"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def register(commands, add_model_options) -> None:
    from ..backends import BACKENDS
    from ..config import FACE_DETECTORS

    p = commands.add_parser("evaluate", help="measure a checkpoint on a labelled dataset")
    p.add_argument("--data", required=True, help="dataset folder: manifest.csv, real/ + fake/, or Train|Validation|Test")
    p.add_argument("--split", default=None, help="only this split (manifest column, or train/val/test of the Kaggle layout)")
    add_model_options(p)
    p.add_argument("--faces", choices=FACE_DETECTORS, default=None)
    p.add_argument("--perturb", default=None, help="jpeg:QUALITY or scale:FACTOR applied to each image first")
    p.add_argument("--backend", choices=BACKENDS, default=None,
                   help="inference backend (default: $DEEPFAKE_BACKEND or auto)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="print one JSON object with the metrics")
    p.add_argument("--out", default=None, help="also write scores.csv, metrics.json and PNG plots here")
    p.set_defaults(run=run_evaluate)
    register_compare(commands)


def register_compare(commands) -> None:
    p = commands.add_parser(
        "compare", help="is checkpoint B better than A? paired bootstrap of the ROC-AUC on the same evaluated files"
    )
    p.add_argument("a", help="evaluate --out folder (or its scores.csv) of the baseline")
    p.add_argument("b", help="evaluate --out folder (or its scores.csv) of the candidate")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(run=run_compare)


def read_scores(path: str | Path) -> list[tuple[str, int, float, str, str]]:
    """(file, label, fake probability, source, method) per row of the scores.csv of an evaluate --out folder."""
    path = Path(path)
    if path.is_dir():
        path = path / SCORES_FILE
    try:
        with open(path, newline="") as handle:
            return [
                (r["path"], int(r["label"]), float(r["fake_probability"]), r["source"], r["method"])
                for r in csv.DictReader(handle)
            ]
    except FileNotFoundError:
        raise DetectorError(f"{path}: no such file (write it with python -m detector evaluate ... --out DIR)") from None
    except (OSError, KeyError, ValueError, UnicodeDecodeError) as exc:
        raise DetectorError(f"{path}: not the per-file scores of python -m detector evaluate ({exc})") from None


def read_verdicts(path: str | Path) -> dict[str, str]:
    """{file: verdict} of the scores.csv of an evaluate --out folder (what users were told)."""
    path = Path(path)
    with open(path / SCORES_FILE if path.is_dir() else path, newline="") as handle:
        return {r["path"]: r["verdict"] for r in csv.DictReader(handle)}


def compare_scores(rows_a: list[tuple], rows_b: list[tuple], verdicts: tuple[dict, dict] | None = None) -> dict:
    """Per group (all files, then each source): n, ROC-AUC of A and B, B - A and its 95% paired bootstrap interval,
    and a verdict: `better` / `worse` when the interval excludes 0, else `no clear difference`. With the two
    evaluations' `verdicts`, the same for decided right ((fakes labelled fake + reals labelled real) / 2)."""
    a, b = {r[0]: r for r in rows_a}, {r[0]: r for r in rows_b}
    if set(a) != set(b):
        only = sorted(set(a) ^ set(b))
        raise DetectorError(f"the two evaluations scored different files ({len(only)} in one only, e.g. {only[0]})")
    files = sorted(a)
    labels = [a[f][1] for f in files]
    probs_a, probs_b = [a[f][2] for f in files], [b[f][2] for f in files]
    groups = {"all": list(range(len(files))), **group_indices([a[f][3] for f in files])}
    result = {}
    for name, idx in groups.items():
        members = [labels[i] for i in idx]
        diff = paired_auc_difference(members, [probs_a[i] for i in idx], [probs_b[i] for i in idx])
        row: dict = {"n": len(idx), "roc_auc_a": None, "roc_auc_b": None, "difference": None, "interval": None, "verdict": None}
        if diff is not None:
            delta, low, high = diff
            row.update(
                roc_auc_a=roc_auc(members, [probs_a[i] for i in idx]),
                roc_auc_b=roc_auc(members, [probs_b[i] for i in idx]),
                difference=delta,
                interval=[low, high],
                verdict=interval_verdict(low, high),
            )
        if verdicts is not None:
            told_a, told_b = ([answers_of([v[files[i]] for i in idx])] for v in verdicts)
            delta, low, high = paired_mean_decided_difference([(members, told_a[0], told_b[0])])
            row["decided_right"] = {
                "a": decided_right(np.array(members), told_a[0]),
                "b": decided_right(np.array(members), told_b[0]),
                "difference": delta,
                "interval": [low, high],
                "verdict": interval_verdict(low, high),
            }
        result[name] = row
    return result


def run_compare(args: argparse.Namespace) -> int:
    result = compare_scores(read_scores(args.a), read_scores(args.b), (read_verdicts(args.a), read_verdicts(args.b)))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"ROC-AUC of B ({args.b}) against A ({args.a}), 95% paired bootstrap interval of B - A")
    for name, row in result.items():
        if row["difference"] is None:
            print(f"  {name:<10} n {row['n']:>5}  one class only")
            continue
        low, high = row["interval"]
        print(
            f"  {name:<10} n {row['n']:>5}  A {row['roc_auc_a']:.4f}  B {row['roc_auc_b']:.4f}  "
            f"B-A {row['difference']:+.4f}  [{low:+.4f}, {high:+.4f}]  {row['verdict']}"
        )
    print("Decided right ((fakes labelled fake + reals labelled real) / 2) of B against A, 95% paired bootstrap interval")
    for name, row in result.items():
        d = row["decided_right"]
        low, high = d["interval"]
        print(
            f"  {name:<10} n {row['n']:>5}  A {d['a']:.4f}  B {d['b']:.4f}  B-A {d['difference']:+.4f}  [{low:+.4f}, {high:+.4f}]  {d['verdict']}"
        )
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from ..analyzer import AnalysisOptions
    from ..env import set_threads
    from ..settings import CoreSettings

    settings = CoreSettings.from_env()  # read once, at the command's start
    set_threads(args.threads, settings.threads)
    options = AnalysisOptions(face_detector=args.faces)
    detector = Detector.load(args.model, options=options, backend=args.backend, settings=settings)
    samples = read_dataset(args.data, args.split)
    metrics, rows = evaluate(detector, samples, args.perturb, progress=not getattr(args, "quiet", False))
    if args.out:
        write_outputs(Path(args.out), metrics, rows, detector.config.decision)
    print(json.dumps(metrics, indent=2) if args.json else format_table(metrics))
    return 0
