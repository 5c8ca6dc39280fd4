"""The model card (`README.md`) of a checkpoint, generated from its `config.json` and an evaluation report.

The card is Hub metadata (licence, tags, datasets, library, pipeline tag and the measured metrics in the
`model-index` form, built with huggingface_hub's ModelCardData/EvalResult) followed by a description that only
states what the checkpoint's files and the report say: the data and the training command recorded by training,
validation metrics overall, per source and per manipulation method, robustness when measured, the intended use
and what the model was not trained on. Same inputs, same card: nothing depends on the clock.

The report is the `metrics.json` written by `python -m detector evaluate --out DIR`; an optional `robustness`
object maps a perturbation (`jpeg:40`, `scale:0.5`, as given to `evaluate --perturb`) to the metrics.json of
that run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from detector.backends import MANIFEST_FILE as ONNX_MANIFEST
from detector.backends import export_is_current, read_manifest
from detector.checkpoint import CONFIG_FILE, WEIGHTS_FILE
from detector.config import ModelConfig
from detector.errors import DetectorError
from detector.paths import sha256_file
from detector.training.evaluate import SCORES_FILE, read_scores
from detector.training.metrics import MAX_FALSE_POSITIVE_RATE, group_indices, roc_auc_interval

from .check import CARD_FILE

REPORT_KEYS = (
    "n",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "roc_auc",
    "eer",
    "ece",
    "threshold",
    "no_face_rate",
    "confusion",
    "per_source",
    "per_method",
)
TASK = "image-classification"
TASK_NAME = "Deepfake detection (faces in images and videos)"
TAGS = [
    "deepfake-detection",
    "face-forgery-detection",
    "image-classification",
    "video-classification",
    "lstm",
    "pytorch",
    "safetensors",
]

# The labelled sources of the shared training data (see its README): dataset name for the metadata, description.
SOURCES: dict[str, tuple[str, str]] = {
    "ffpp": (
        "FaceForensics++",
        "FaceForensics++ face crops (Deepfakes, Face2Face, FaceSwap, NeuralTextures) and their "
        "real videos; short groups of consecutive frames, the only temporal data",
    ),
    "lfw": ("LFW", "Labeled Faces in the Wild portraits vs face swaps rendered with a 3D face model"),
    "ciplab": ("CIPLab real-and-fake-face-detection", "expert Photoshop edits of face parts (easy/mid/hard) vs real portraits"),
    "utkface": ("UTKFace", "aligned real faces of adults of many ages and ethnicities (no fakes)"),
    "gan": ("FFHQ", "whole-face GAN images (thispersondoesnotexist, StyleGAN2-ADA) vs FFHQ-style real photos"),
}

# Kinds of manipulation a deepfake checker meets on social media; listed as "not trained on" unless a source or a
# method name of the evaluation report shows the data covered them.
NOT_COVERED = [
    (
        ("diffusion", "stable-diffusion", "midjourney", "dalle", "flux"),
        "Images made or edited by diffusion models (Stable Diffusion, Midjourney, DALL·E, Flux, inpainting tools)",
    ),
    (("lipsync", "lip-sync", "wav2lip", "talking"), "Lip-sync and audio-driven talking-head fakes, which change only the mouth"),
    (("text-to-video", "t2v", "sora", "veo"), "Whole videos generated from text (Sora, Veo, Kling and the like)"),
    (("audio", "voice"), "Audio: the model never hears the sound, so a cloned voice over real footage goes unnoticed"),
]


class EvaluationReportError(DetectorError):
    code = "bad_evaluation_report"
    http_status = 422


def load_report(path: str | os.PathLike, robustness: dict[str, str | os.PathLike] | None = None) -> dict[str, Any]:
    """Read an evaluation report (metrics.json), optionally adding robustness runs given as {perturbation: file}."""
    report = _read_metrics(Path(path))
    extra = report.get("robustness") or {}
    if not isinstance(extra, dict):
        raise EvaluationReportError(f"{path}: 'robustness' must map a perturbation to its metrics")
    for name, metrics in extra.items():
        _check_metrics(metrics, f"{path}: robustness[{name!r}]")
    for name, file in (robustness or {}).items():
        extra[name] = _read_metrics(Path(file))
    if extra:
        report["robustness"] = extra
    scores = Path(path).with_name(SCORES_FILE)
    if scores.is_file() and "intervals" not in report:
        report["intervals"] = _auc_intervals(scores)
    return report


def _auc_intervals(scores: Path) -> dict[str, dict[str, list[float] | None]]:
    """95% bootstrap intervals of the per-source and per-method ROC-AUC, from the per-file scores evaluate wrote
    beside its metrics.json."""
    try:
        rows = read_scores(scores)
    except DetectorError as exc:
        raise EvaluationReportError(exc.message) from None
    labels, probs = [r[1] for r in rows], [r[2] for r in rows]
    intervals: dict[str, dict[str, list[float] | None]] = {}
    for key, column in (("per_source", 3), ("per_method", 4)):
        intervals[key] = {}
        for name, idx in group_indices([r[column] for r in rows]).items():
            interval = roc_auc_interval([labels[i] for i in idx], [probs[i] for i in idx])
            intervals[key][name] = [round(v, 4) for v in interval] if interval else None
    return intervals


def _read_metrics(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EvaluationReportError(f"{path}: no such evaluation report") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise EvaluationReportError(f"{path}: not valid JSON ({exc})") from None
    _check_metrics(data, str(path))
    return data


def _check_metrics(data: Any, where: str) -> None:
    missing = [key for key in REPORT_KEYS if not isinstance(data, dict) or key not in data]
    if missing:
        raise EvaluationReportError(
            f"{where}: not an evaluation report (missing {', '.join(missing)}); write one with "
            "python -m detector evaluate --data DATA --split val --model DIR --out OUT"
        )


def build_card(
    folder: str | os.PathLike,
    report: dict[str, Any] | None = None,
    repo_id: str | None = None,
    license: str = "apache-2.0",
    split: str | None = None,
    crossval: str | os.PathLike | None = None,
):
    """The card of the checkpoint in `folder` as a huggingface_hub ModelCard (str(card) is the README.md text)."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    config = ModelConfig.load(folder / CONFIG_FILE)
    training = config.training or {}
    split = split or (report or {}).get("split") or (training.get("options") or {}).get("val_split") or "val"
    sources = sorted((report or {}).get("per_source", {}))
    clip = config.architecture.frozen_encoder  # the accurate view: CLIP's image tower + the LSTM heads
    name = repo_id.split("/")[-1] if repo_id else ("clip-lstm" if clip else "mobilenetv3-lstm") + "-deepfake-detector"
    datasets = sorted({SOURCES[s][0] for s in sources if s in SOURCES}) or None
    data = ModelCardData(
        license=license,
        library_name="pytorch",
        pipeline_tag=TASK,
        tags=TAGS + (["clip"] if clip else ["mobilenetv3"]) + ([] if config.trained else ["untrained"]),
        datasets=datasets,
        metrics=["accuracy", "roc_auc", "f1", "precision", "recall"] if report else None,
        model_name=name if report else None,
        eval_results=_eval_results(report, split, config, sources) if report else None,
    )
    body = _body(folder, config, report, repo_id, name, split, license, _crossval_section(crossval))
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}")


def _pair_rows(pair) -> list[str]:
    """How the checkpoint decides beside the fast view (config.json's `pair`), when it says more than "agree"."""
    if pair.rule == "agree":
        return []
    if pair.rule == "veto":
        return ["| beside the fast view | fake where both views say fake; real where one says real and the other not fake |"]
    w_fast, w_accurate, intercept = pair.weights
    return [
        f"| beside the fast view (`default+…`) | stacked: p = sigmoid(({w_fast:.4f}·logit(p_fast) + {w_accurate:.4f}·"
        f"logit(p_this) + {intercept:.4f}) / {pair.temperature:.4f} + {pair.bias:.4f}), fake if p ≥ "
        f"{pair.uncertain_band[1]:.4f} and two opinions say fake (this view's heads, and the fast view or this view's "
        f"probe), real if p ≤ {pair.uncertain_band[0]:.4f}; fitted on val with the fast view "
        f"`{pair.fast_revision}` |"
    ]


def _probe_rows(config) -> list[str]:
    """The second opinion a "fake" needs, where the checkpoint keeps a linear probe (`architecture.probe`)."""
    if not config.architecture.probe:
        return []
    return [
        "| second opinion | a linear probe on CLIP's unit embedding (logistic regression, the `clip-linear` recipe); alone, "
        "a \"fake\" also needs its logit, averaged over the track's frames, ≥ "
        f"{config.decision.probe_fake_above:.4f} (beside the fast view: that, or the fast view saying fake) |"
    ]


def _crossval_section(results_file: str | os.PathLike | None) -> list[str]:
    """The cross-source table of `python -m detector crossval` (its results.json), which chooses recipes."""
    if results_file is None:
        return []
    from detector.training.crossval import format_table

    try:
        results = json.loads(Path(results_file).read_text())
        recipes = list(results["rows"])
    except (OSError, ValueError, KeyError) as exc:
        raise EvaluationReportError(f"{results_file}: not the results.json of python -m detector crossval ({exc})") from None
    return [
        "## Cross-source evaluation",
        "",
        "Validation files come from the sources the model trained on. This table is what chooses recipes: each recipe is",
        "trained once per row with that source (or FaceForensics++ method) left out of training and selection, and",
        "scored on every file of what was left out (`python -m detector crossval"
        + (" --quick" if results.get("quick") else "")
        + "`).",
        "",
        format_table(results, recipes),
        "",
    ]


def write_card(folder: str | os.PathLike, report: dict[str, Any] | None = None, **kwargs) -> Path:
    path = Path(folder) / CARD_FILE
    build_card(folder, report, **kwargs).save(path)
    return path


# ---------------------------------------------------------------------------------------------- metadata


def _eval_results(report: dict, split: str, config: ModelConfig, sources: list[str]) -> list:
    from huggingface_hub import EvalResult

    data_name = Path(str(config.training.get("data") or "faces")).name or "faces"
    dataset_name = f"Labelled faces ({', '.join(sources)})" if sources else "Labelled faces"

    def results(metrics: dict, keys: list[str], subset: str, label: str, args: dict | None = None) -> list:
        return [
            EvalResult(
                task_type=TASK,
                task_name=TASK_NAME,
                dataset_type=data_name,
                dataset_name=f"{dataset_name}: {label}",
                dataset_config=subset,
                dataset_split=split,
                dataset_args=args,
                metric_type=key,
                metric_name=METRIC_NAMES[key],
                metric_value=round(float(metrics[key]), 4),
            )
            for key in keys
            if metrics.get(key) is not None
        ]

    found = results(report, ["accuracy", "roc_auc", "f1", "precision", "recall", "eer", "ece"], "all", f"{split}, all sources")
    for source in sources:
        found += results(report["per_source"][source], ["accuracy", "roc_auc"], source, f"{split}, {source} only")
    for perturbation, metrics in sorted((report.get("robustness") or {}).items()):
        found += results(
            metrics,
            ["accuracy", "roc_auc", "f1"],
            f"all+{perturbation}",
            f"{split}, {describe_perturbation(perturbation)}",
            {"perturbation": perturbation},
        )
    return found


METRIC_NAMES = {
    "accuracy": "Accuracy",
    "roc_auc": "ROC AUC",
    "f1": "F1 (fake is positive)",
    "precision": "Precision (fake is positive)",
    "recall": "Recall (fakes caught)",
    "eer": "Equal error rate",
    "ece": "Expected calibration error",
}


def describe_perturbation(name: str) -> str:
    kind, _, value = name.partition(":")
    if kind == "jpeg":
        return f"re-encoded as JPEG quality {value}"
    if kind == "scale":
        return f"downscaled {value}×"
    return name


# ---------------------------------------------------------------------------------------------- text


AUGMENT_NAMES = {
    "jpeg": "JPEG re-encoding",
    "rescale": "down- and up-scaling",
    "color": "colour jitter",
    "flip": "mirroring",
    "blur": "blur",
    "smooth": "edge-preserving (beauty-filter) smoothing",
    "noise": "noise",
}


def _describe_augment(augment: dict) -> str:
    parts = []
    for key, name in AUGMENT_NAMES.items():
        share = augment.get(key)
        if isinstance(share, (int, float)) and share > 0:
            extra = ""
            if key == "jpeg" and isinstance(augment.get("jpeg_quality"), list):
                extra = " (quality {}–{})".format(*augment["jpeg_quality"])
            parts.append(f"{name}{extra} {share:.0%}")
    crop = augment.get("crop_scale")
    if isinstance(crop, list) and len(crop) == 2 and crop[0] < 1:
        parts.append(f"random crops of {crop[0]:.0%}–{crop[1]:.0%} of the area")
    return ", ".join(parts) or "none"


def _onnx_export_files(folder: Path) -> list[str]:
    """The files of the ONNX export (`python -m detector export-onnx`) the folder carries, from its manifest."""
    files = (read_manifest(folder) or {}).get("files", [])
    return [f for f in files if isinstance(f, str) and (folder / f).is_file()]


def _describe_export(folder: Path, exported: list[str]) -> str:
    if not exported:
        return ""
    names = ", ".join(f"`{f}`" for f in exported)
    if export_is_current(folder):
        return f", {names} (ONNX export of these weights, `{ONNX_MANIFEST}`)"
    return f", {names} (**stale** ONNX export of other weights, ignored by the ONNX backend: re-run export-onnx)"


def _body(
    folder: Path,
    config: ModelConfig,
    report: dict | None,
    repo_id: str | None,
    name: str,
    split: str,
    license: str,
    crossval: list[str] | None = None,
) -> str:
    arch = config.architecture
    training = config.training or {}
    options = training.get("options") or {}
    exported = _onnx_export_files(folder)
    detectors = sorted(p.name for p in folder.glob("*.onnx") if p.name not in exported)
    lines: list[str] = [f"# {name}", ""]
    lines += _description(config)
    lines += _facts_table(folder, config, detectors, exported)
    lines += _usage_section(repo_id or "ORG/NAME")
    lines += _training_section(training, options, report, config)
    lines += _evaluation_section(report, split, config.trained)
    lines += crossval or []
    lines += _limitations_section(config, report, options)
    lines += _credits_section(arch.backbone, options, detectors, license, report)
    return "\n".join(lines).rstrip() + "\n"


def _description(config: ModelConfig) -> list[str]:
    """The warning on untrained weights, then what the model is and how it reads a face track."""
    arch = config.architecture
    lines: list[str] = []
    if not config.trained:
        lines += [
            "> **UNTRAINED.** `config.json` says these weights were not trained for deepfake detection: the scores mean",
            "> nothing. Use this checkpoint only to test the software.",
            "",
        ]
    lstm = f"{'bidirectional ' if arch.bidirectional else ''}LSTM ({arch.lstm_layers}×{arch.lstm_hidden})"
    if arch.frozen_encoder:
        lines += [
            "Deepfake detector for faces in images and videos, made for checking social-media posts: the **accurate**",
            "view. OpenAI's CLIP ViT-B/16 image tower, frozen, embeds each face crop (512-d, unit length); a "
            f"{lstm} reads the embeddings of one face track in time order, a per-frame head scores each key frame and a",
            "clip head the whole track. This folder holds the heads only (and a sample of training embeddings that tells",
            "a face unlike all of them"
            + (", answered `uncertain`" if config.decision.unfamiliar_above is not None else ", kept but not used to answer")
            + "); the CLIP encoder is fetched into the cache with",
            "`python -m detector clip-fetch` (an int8 ONNX export of `openai/clip-vit-base-patch16`, MIT).",
            "",
        ]
    else:
        lines += [
            "Deepfake detector for faces in images and videos, made for checking social-media posts. A hybrid",
            f"**MobileNetV3-LSTM**: {arch.backbone} extracts features from each face crop, a {lstm} reads the crops of one",
            "face track in time order, a per-frame head scores each key frame (the timeline) and a clip head scores the",
            "whole track (the verdict). An image is a track of one frame.",
            "",
        ]
    return lines


def _facts_table(folder: Path, config: ModelConfig, detectors: list[str], exported: list[str]) -> list[str]:
    """The table of architecture, input, video sampling, decision rule, pair and files."""
    arch, prep, decision = config.architecture, config.preprocessing, config.decision
    weights = folder / WEIGHTS_FILE
    return [
        "| | |",
        "|---|---|",
        f"| architecture | `{arch.name}`, backbone `{arch.backbone}`, LSTM hidden {arch.lstm_hidden}, layers {arch.lstm_layers}, "
        f"{'bidirectional' if arch.bidirectional else 'unidirectional'} |",
        f"| input | square face crops at {prep.crop_margin}× the detected box, resized to {prep.input_size} px, "
        f"normalised with mean {prep.mean} and std {prep.std} |",
        f"| video | {prep.frames} key frames, up to {prep.max_faces} face tracks, faces under {prep.min_face_size} px ignored |",
        f"| decision | fake if calibrated probability ≥ {decision.threshold:.4f}; `uncertain` inside "
        f"[{decision.uncertain_band[0]:.4f}, {decision.uncertain_band[1]:.4f}]; Platt calibration "
        f"T = {decision.temperature:.4f}, b = {decision.bias:.4f} |",
        *_probe_rows(config),
        *_pair_rows(config.pair),
        f"| files | `{CONFIG_FILE}` (everything above), `{WEIGHTS_FILE}` ({_size(weights)}, sha256 `{_sha256(weights)[:16]}…`)"
        + "".join(f", `{d}` (face detector)" for d in detectors)
        + _describe_export(folder, exported)
        + " |",
        "",
    ]


def _usage_section(ref: str) -> list[str]:
    """How to use, intended use and out-of-scope use: the same for every checkpoint but for its Hub id `ref`."""
    return [
        "## How to use",
        "",
        "With the `detector` package of the deepfake-checker project:",
        "",
        "```bash",
        f"python -m model_hub pull {ref}            # into the Hugging Face cache; prints the path and the commit",
        f"python -m detector analyze clip.mp4 --model {ref} --json",
        f"python -m detector analyze photo.jpg --model {ref}@COMMIT   # pin a revision",
        "```",
        "",
        "```python",
        "import detector",
        "",
        f'det = detector.load("{ref}")',
        'report = det.analyze("clip.mp4")',
        "print(report.verdict, report.fake_probability, report.confidence)",
        "```",
        "",
        "The weights are plain safetensors with the key names of `detector.model.MobileNetLSTM`; `config.json` holds the",
        "preprocessing and decision rule the weights need.",
        "",
        "## Intended use",
        "",
        "- A first, fast signal on whether the faces in a photo or a short video posted on social media look manipulated,",
        "  shown to a person together with the per-frame timeline and the face boxes, as a reason to look closer.",
        "- Research and teaching about face manipulation detection.",
        "",
        "## Out-of-scope use",
        "",
        "- Proof that something is real or fake, in court, journalism or moderation, without a person checking the",
        "  media and its source: a `real` verdict only means this model found nothing it was trained to find.",
        "- Identifying, tracking or profiling people; the model says nothing about who a face belongs to.",
        "- Media without a visible human face (the answer is `no_face`).",
        "",
    ]


def _training_section(training: dict, options: dict, report: dict | None, config: ModelConfig) -> list[str]:
    lines = ["## Training data", ""]
    if not training:
        lines += ["Not recorded: `config.json` has no training provenance.", ""]
    else:
        lines += [
            f"- data: `{training.get('data', 'not recorded')}`, split `{options.get('train_split', 'train')}` for training "
            f"({training.get('train_samples', '?')} items) and `{options.get('val_split', 'val')}` for validation "
            f"({training.get('val_samples', '?')} items); an item is one image or one group of frames of a video.",
        ]
        if options.get("pseudo_fakes"):
            cross = options.get("cross_blend") or 0
            how = (
                f" ({1 - cross:.0%} blended from a jittered copy of the same face, {cross:.0%} from another real face "
                "aligned on the landmarks)"
                if cross
                else ""
            )
            lines.append(
                f"- {options['pseudo_fakes']:.0%} of the fake examples drawn in training were pseudo-fakes made from real "
                f"faces on the fly{how}, blended in through a soft mask of the whole face or of face parts."
            )
        augment = options.get("augment")
        if isinstance(augment, dict):
            lines.append(f"- augmentation, as the share of training examples that get each: {_describe_augment(augment)}.")
        lines.append("")
    sources = (report or {}).get("per_source", {})
    if sources:
        lines += ["Sources (as counted in the evaluation split):", "", "| source | what | files |", "|---|---|---|"]
        for source in sorted(sources):
            lines.append(f"| `{source}` | {SOURCES.get(source, (source, 'not described'))[1]} | {sources[source]['n']} |")
        known = sorted({SOURCES[s][0] for s in sources if s in SOURCES})
        if known:
            lines += ["", f"{', '.join(known)}: research datasets whose terms limit use to research and non-commercial purposes."]
        lines += ["", "Check the terms of every source before any commercial use of this checkpoint.", ""]
    lines += ["## Training procedure", ""]
    command = training.get("command")
    if command:
        lines += ["```bash", command, "```", ""]
    elif training:
        lines += ["The training command was not recorded.", ""]
    facts = [
        ("epochs run", training.get("epochs_run")),
        ("best epoch (on validation)", training.get("best_epoch")),
        ("minutes", training.get("minutes")),
        ("device", training.get("device")),
        ("torch", training.get("torch")),
    ]
    lines += [f"- {label}: {value}" for label, value in facts if value is not None]
    if options:
        lines += [
            "",
            "<details><summary>All training options</summary>",
            "",
            "```json",
            json.dumps(options, indent=2, sort_keys=True),
            "```",
            "",
            "</details>",
        ]
    if config.trained:
        lines += ["", "Calibration (temperatures, threshold, uncertain band) was fitted on the validation split after training."]
    return lines + [""]


def _evaluation_section(report: dict | None, split: str, trained: bool) -> list[str]:
    lines = ["## Evaluation", ""]
    if not report:
        return lines + ["No evaluation report was given when this card was written: no measured figures.", ""]
    c = report["confusion"]
    lines += [
        f"Measured with `python -m detector evaluate` on the `{split}` split ({report['n']} files), through the same",
        "analysis users get (face detection, cropping, the model, calibration). Fake is the positive class."
        + (
            " The same split chose the best epoch and fitted the calibration, so expect lower figures on data from elsewhere."
            if trained
            else ""
        ),
        "",
        "| accuracy | precision | recall | F1 | ROC AUC | EER | ECE | no face found |",
        "|---|---|---|---|---|---|---|---|",
        f"| {_f(report['accuracy'])} | {_f(report['precision'])} | {_f(report['recall'])} | {_f(report['f1'])} | "
        f"{_f(report['roc_auc'])} | {_f(report['eer'])} | {_f(report['ece'])} | {report['no_face_rate']:.1%} |",
        "",
        f"At threshold {report['threshold']:.4f}: {c['tp']} fakes at or above it, {c['fn']} below, {c['tn']} real files "
        f"below, {c['fp']} real files at or above it. Files without a detected face were scored on the whole image.",
        "",
    ]
    if report.get("fpr") is not None:
        lines += [
            f"The verdicts users see (a \"fake\" needs a probability at or above the uncertain band's top): "
            f"{report['fpr']:.1%} of the real files labelled fake, "
            f"{report['uncertain_real']:.1%} left uncertain. The band's top was raised on validation until no source's "
            f"reals were labelled fake more than {MAX_FALSE_POSITIVE_RATE:.0%} of the time.",
            "",
        ]
    intervals = report.get("intervals") or {}
    for key, title in (("per_source", "source"), ("per_method", "manipulation method")):
        groups = report.get(key) or {}
        ranges = intervals.get(key)
        if groups:
            fpr = any("fpr" in stats for stats in groups.values())
            header = f"| {title} | files | accuracy | ROC AUC |" + (" 95% interval |" if ranges else "")
            header += " reals called fake | reals left uncertain |" if fpr else ""
            lines += [f"Per {title}:", "", header, "|---|---|---|---|" + ("---|" if ranges else "") + ("---|---|" if fpr else "")]
            for group in sorted(groups):
                stats = groups[group]
                row = f"| `{group}` | {stats['n']} | {_f(stats['accuracy'])} | {_f(stats['roc_auc'])} |"
                if ranges:
                    interval = ranges.get(group)
                    row += f" {interval[0]:.2f}–{interval[1]:.2f} |" if interval else " n/a |"
                if fpr:
                    row += f" {_pct(stats.get('fpr'))} | {_pct(stats.get('uncertain_real'))} |"
                lines.append(row)
            lines.append("")
    lines.append("ROC AUC is n/a where a group holds one class only (e.g. a source of real faces only).")
    if intervals:
        lines.append(
            "The intervals are 95% bootstrap intervals of the ROC AUC (2,000 resamples of the fakes and the reals of each "
            "group): a group of a few dozen files pins its figure down only roughly."
        )
    lines.append("")
    robustness = report.get("robustness") or {}
    lines += ["### Robustness to what platforms do to uploads", ""]
    if robustness:
        lines += ["| images | accuracy | ROC AUC | F1 |", "|---|---|---|---|"]
        lines.append(f"| as they are | {_f(report['accuracy'])} | {_f(report['roc_auc'])} | {_f(report['f1'])} |")
        for perturbation in sorted(robustness):
            m = robustness[perturbation]
            lines.append(f"| {describe_perturbation(perturbation)} | {_f(m['accuracy'])} | {_f(m['roc_auc'])} | {_f(m['f1'])} |")
        lines.append("")
    else:
        lines += ["Not measured for this checkpoint (JPEG re-encoding, downscaling).", ""]
    return lines


def _limitations_section(config: ModelConfig, report: dict | None, options: dict) -> list[str]:
    covered = " ".join([*(report or {}).get("per_source", {}), *(report or {}).get("per_method", {})]).lower()
    lines = ["## Limitations: what this model was not trained on", ""]
    lines += [f"- {text}." for keywords, text in NOT_COVERED if not any(k in covered for k in keywords)]
    prep = config.preprocessing
    lines += [
        f"- Manipulations without a visible face: bodies, backgrounds, objects, whole scenes. Faces smaller than "
        f"{prep.min_face_size} px, in profile or largely hidden are often not detected, and then not judged.",
        f"- Long videos: a video is judged from {prep.frames} key frames and its {prep.max_faces} largest face tracks; "
        f"training sequences were at most {options.get('max_sequence', 'a few')} crops long, so artefacts that only "
        "show over seconds are out of reach.",
        "- Fairness: no evaluation per age, gender or skin tone was run.",
        "- New generators: detectors of this kind degrade on manipulation methods absent from their training data; "
        "treat a `real` verdict on content from a new tool with caution.",
    ]
    if not (report or {}).get("robustness"):
        lines.append("- Heavy re-compression and downscaling by platforms: robustness was not measured.")
    extra = [*((report or {}).get("limitations") or []), *(config.training.get("limitations") or [])]
    lines += [f"- {text}" for text in extra]
    return lines + [""]


def _credits_section(backbone: str, options: dict, detectors: list[str], license: str, report: dict | None) -> list[str]:
    lines = ["## Credits and licence", ""]
    if options.get("init_from"):
        lines.append(f"- Fine-tuned from the checkpoint `{options['init_from']}`.")
    if backbone == "clip_vit_b16":
        lines.append(
            "- Frame encoder: CLIP ViT-B/16 image tower (Radford et al., *Learning Transferable Visual Models From Natural "
            "Language Supervision*, 2021; `openai/clip-vit-base-patch16`), frozen, MIT; as a fake detector after Ojha et "
            "al., *Towards Universal Fake Image Detectors*, CVPR 2023."
        )
    elif backbone == "mobilenet_v3_small" and options.get("backbone_weights", "shared"):
        lines.append(
            "- Backbone: MobileNetV3-Small 1.0/224 (Howard et al., *Searching for MobileNetV3*, ICCV 2019), starting from "
            "the ImageNet-pretrained weights of the official TensorFlow-slim release `v3-small_224_1.0_uint8`, converted "
            "to torchvision's layout (dequantised, BatchNorm folded). Apache-2.0."
        )
    else:
        lines.append(f"- Backbone: {backbone} (torchvision's architecture, BSD-3-Clause), no ImageNet start recorded.")
    if backbone != "clip_vit_b16":
        lines.append("- Architecture code: torchvision's MobileNetV3 builder (BSD-3-Clause).")
    if options.get("distill"):
        lines.append("- Distilled from the frozen CLIP ViT-B/16 image tower (its embeddings and a linear classifier's soft labels).")
    for name in detectors:
        if "yunet" in name.lower():
            lines.append(f"- `{name}`: YuNet face detector from the OpenCV model zoo (MIT).")
    lines.append(f"- This checkpoint: `{license}`; the training data keeps its own terms (see Training data).")
    return lines + [""]


def _f(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 1e6:.1f} MB" if path.is_file() else "missing"


def _sha256(path: Path) -> str:
    if not path.is_file():
        return "missing"
    return sha256_file(path)
