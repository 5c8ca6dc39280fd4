"""The cross-source protocol: `python -m detector crossval --data DIR [--quick] [--recipes ...] [--out DIR]`.

Validation files come from the sources the model trained on, so val says little about what users meet. Here each
recipe is trained once per fold with one source (ffpp, ciplab, gan, lfw: its reals and fakes both), then one
FaceForensics++ manipulation method, left out of training and of model selection, and scored on every file of
what was left out. One table: per fold and recipe the ROC-AUC with its 95% bootstrap interval, and the share of the
left-out source's reals labelled fake by the recipe's own decision rule (fitted on the fold's validation files as a
shipped checkpoint's is: threshold, uncertain band, band's top raised to hold each source's FPR on val to 3%). On video groups (FF++) it also shows what the LSTM earns: the clip head's
ROC-AUC beside the mean of the per-frame scores. Recipes are compared by the mean ROC-AUC over folds with a paired
bootstrap interval of the difference (files resampled within each fold, the same resamples for both recipes).

Recipes (`RECIPES`): `clip-linear` (frozen CLIP + logistic regression, the baseline), `clip-lstm` (frozen CLIP +
the LSTM heads: the accurate checkpoint's recipe), `mobilenet` (the MobileNetV3-LSTM recipe of `train`),
`student` (the same, distilled from the CLIP teacher), `mobilenet-sbi` (real faces and pseudo-fakes only),
`mobilenet-pf80` (80% of the fakes drawn as pseudo-fakes instead of 50%). Two recipes joined by `+` (`mobilenet+clip-lstm`)
are the pair a combined checkpoint serves (`default+accurate`, detector/ensemble.py), scored from the two recipes'
fold scores: the mean of their calibrated probabilities, "fake" only where both views say fake, "uncertain" where they
disagree.
`--quick` gives the MobileNetV3 recipes a short schedule (3 epochs of 1,536 items), the same for each of them; the
CLIP recipes always train at the schedule that ships (they are cheap).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .datasets import Sample, read_dataset
from .embeddings import load_crops
from .metrics import (
    calibrated_probabilities,
    choose_decision,
    labelled_fake,
    labelled_real,
    paired_mean_auc_difference,
    roc_auc,
    roc_auc_interval,
)
from .train import Item, TrainOptions, blend, build_items

SOURCE_FOLDS = ("ffpp", "ciplab", "gan", "lfw")
QUICK_SCHEDULE = {"epochs": 3, "samples_per_epoch": 1536, "patience": 3, "warmup_epochs": 0.5}
# The CLIP heads train in about a minute a fold at their full schedule (the shipped `train-clip` defaults), so --quick
# leaves them at it: a shorter one measured 0.639 instead of 0.703 on the table, below the linear baseline.
HEAD_SCHEDULE: dict = {}


@dataclass(frozen=True)
class Fold:
    name: str  # "ffpp" or "ffpp/faceswap"
    held_out: Callable[[Sample], bool]


def folds_of(samples: list[Sample], only: list[str] | None = None) -> list[Fold]:
    sources = {s.source for s in samples}
    folds = [Fold(source, lambda s, source=source: s.source == source) for source in SOURCE_FOLDS if source in sources]
    methods = sorted({s.method for s in samples if s.source == "ffpp" and s.method})
    folds += [Fold(f"ffpp/{m}", lambda s, m=m: s.source == "ffpp" and s.method == m) for m in methods]
    return [f for f in folds if not only or f.name in only]


@dataclass
class FoldData:
    train_samples: list[Sample]
    val_samples: list[Sample]
    train: list[Item]
    val: list[Item]
    test: list[Item]


# ------------------------------------------------------------------------------------------------- recipes


@dataclass
class Fitted:
    score: Callable[[list[Item]], np.ndarray]  # items -> (N, 2) raw (clip logit, mean frame logit)
    clip_weight: float = 0.5


def fit_clip_linear(data: FoldData, workdir: Path, quick: bool, seed: int, log) -> Fitted:
    from .cliptrain import fit_linear

    score, _ = fit_linear(data.train, data.val)
    return Fitted(score, clip_weight=0.5)


def fit_clip_lstm(data: FoldData, workdir: Path, quick: bool, seed: int, log) -> Fitted:
    from .cliptrain import HeadOptions, fit_sequence_head

    options = HeadOptions(seed=seed, **HEAD_SCHEDULE)
    _, config, score = fit_sequence_head(data.train, data.val, options)
    return Fitted(score, config.decision.clip_weight)


TRAINED_MARK = "crossval-trained"  # written beside a fold model once its training has finished


def _mobilenet(**overrides) -> Callable:
    def fit(data: FoldData, workdir: Path, quick: bool, seed: int, log) -> Fitted:
        from ..checkpoint import load_checkpoint
        from .train import score_items, train

        trained = workdir / TRAINED_MARK
        if not trained.is_file():  # a fold model of an earlier run is scored again, not trained again
            options = TrainOptions(data="", out=str(workdir), seed=seed, **(QUICK_SCHEDULE if quick else {}), **overrides)
            train(options, data.train_samples + data.val_samples)
            trained.write_text("trained by python -m detector crossval\n")
        checkpoint = load_checkpoint(workdir)
        model, prep = checkpoint.model, checkpoint.config.preprocessing
        return Fitted(lambda items: score_items(model, items, prep), checkpoint.config.decision.clip_weight)

    return fit


RECIPES: dict[str, tuple[Callable, bool]] = {  # name -> (fit, needs CLIP embeddings)
    "clip-linear": (fit_clip_linear, True),
    "clip-lstm": (fit_clip_lstm, True),
    "mobilenet": (_mobilenet(), False),
    "student": (_mobilenet(distill=1.0), True),
    "mobilenet-sbi": (_mobilenet(real_only=True, pseudo_fakes=1.0), False),
    "mobilenet-pf80": (_mobilenet(pseudo_fakes=0.8), False),
}


# ------------------------------------------------------------------------------------------------- protocol


def fold_data(fold: Fold, samples: list[Sample], crops, embedded) -> FoldData:
    index = {id(s): i for i, s in enumerate(samples)}

    def items(chosen: list[Sample], group: bool) -> list[Item]:
        return build_items(
            chosen, [crops[index[id(s)]] for s in chosen], group, [embedded[index[id(s)]] for s in chosen] if embedded else None
        )

    kept = [s for s in samples if not fold.held_out(s)]
    train_samples = [s for s in kept if s.split == "train"]
    val_samples = [s for s in kept if s.split == "val"]
    test = [s for s in samples if fold.held_out(s)]
    return FoldData(train_samples, val_samples, items(train_samples, True), items(val_samples, False), items(test, True))


def fold_row(labels: np.ndarray, logits: np.ndarray, called_fake: np.ndarray, uncertain: np.ndarray) -> dict:
    """A fold's figures from its left-out files: ROC-AUC with its interval, and the verdicts users would see."""
    reals, fakes = labels == 0, labels == 1
    return {
        "n": len(labels),
        "n_real": int(reals.sum()),
        "n_fake": int(fakes.sum()),
        "roc_auc": roc_auc(labels, logits),
        "interval": roc_auc_interval(labels, logits),
        "fpr": float(called_fake[reals].mean()) if reals.any() else None,  # reals labelled fake
        "tpr": float(called_fake[fakes].mean()) if fakes.any() else None,  # fakes labelled fake
        "uncertain_real": float(uncertain[reals].mean()) if reals.any() else None,
    }


def evaluate_fold(fitted: Fitted, data: FoldData) -> tuple[dict, list[dict]]:
    """The fold's row for one recipe, and its per-item scores."""
    raw_val, raw_test = fitted.score(data.val), fitted.score(data.test)
    val_logits, test_logits = blend(raw_val, fitted.clip_weight), blend(raw_test, fitted.clip_weight)
    val_labels = np.array([item.label for item in data.val])
    decision = choose_decision(val_logits, val_labels, [item.source for item in data.val])
    probs = calibrated_probabilities(test_logits, decision)
    labels = np.array([item.label for item in data.test])
    uncertain = (probs > decision["uncertain_band"][0]) & (probs < decision["uncertain_band"][1])
    row = fold_row(labels, test_logits, labelled_fake(probs, decision), uncertain)
    row.update(threshold=decision["threshold"], decision=decision)
    videos = np.array([len(item.crops) > 1 for item in data.test])
    if videos.sum() >= 4 and len(set(labels[videos])) == 2:
        row["videos"] = {
            "n": int(videos.sum()),
            "clip_head_roc_auc": roc_auc(labels[videos], raw_test[videos, 0]),
            "mean_frames_roc_auc": roc_auc(labels[videos], raw_test[videos, 1]),
        }
    scores = [
        {"item": item.paths[0], "label": int(item.label), "logit": float(z), "probability": float(p)}
        for item, z, p in zip(data.test, test_logits, probs)
    ]
    return row, scores


def run(
    data: str,
    recipes: list[str],
    out: Path,
    quick: bool = False,
    folds: list[str] | None = None,
    seed: int = 0,
    log=None,
    rescore: bool = False,
) -> dict:
    """Train and score each recipe on each fold into `out` (results.json, table.md, scores/, models/). Rows already
    in out/results.json are kept; with `rescore`, they are computed again from the fold models kept in out/models
    (after a change of the decision rule, say), training only what is missing."""
    log = log or (lambda message: print(message, file=sys.stderr, flush=True))
    samples = read_dataset(data)
    chosen = folds_of(samples, folds)
    crops, embedded = load_crops(samples, any(RECIPES[r][1] for r in recipes), log=log)
    out.mkdir(parents=True, exist_ok=True)
    results = _read_results(out)
    if rescore:
        for recipe in recipes:
            results.get("rows", {}).pop(recipe, None)
    results.update({"data": data, "quick": quick, "seed": seed, "folds": [f.name for f in chosen]})
    for fold in chosen:
        fold_set = fold_data(fold, samples, crops, embedded)
        for recipe in recipes:
            done = results.setdefault("rows", {}).setdefault(recipe, {})
            if fold.name in done:
                continue  # kept from an earlier run into the same folder
            if "+" in recipe:
                row, scores = pair_fold(out, results, recipe, fold.name)
                done[fold.name] = row
                _write_scores(_scores_file(out, recipe, fold.name), scores)
                continue
            started = time.time()
            fit, _ = RECIPES[recipe]
            fitted = fit(fold_set, out / "models" / recipe / fold.name.replace("/", "-"), quick, seed, log)
            row, scores = evaluate_fold(fitted, fold_set)
            row["minutes"] = round((time.time() - started) / 60, 2)
            done[fold.name] = row
            _write_scores(_scores_file(out, recipe, fold.name), scores)
            log(f"{recipe} without {fold.name}: ROC-AUC {_f(row['roc_auc'])} FPR {_f(row['fpr'])} ({row['minutes']} min)")
            (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    results["comparisons"] = compare_recipes(out, recipes, [f.name for f in chosen])
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "table.md").write_text(format_table(results, recipes) + "\n")
    return results


def pair_fold(out: Path, results: dict, recipe: str, fold: str) -> tuple[dict, list[dict]]:
    """The row and scores of a pair `a+b` on a fold, from the fold scores and decisions of `a` and `b`: the mean of the
    two calibrated probabilities; "fake" where both views label it fake; "uncertain" where they disagree."""
    from ..errors import DetectorError

    names = recipe.split("+")
    rows = [results["rows"].get(name, {}).get(fold) for name in names]
    if any(row is None or "decision" not in row for row in rows):
        raise DetectorError(f"{recipe}: score {' and '.join(names)} on {fold} first (list them before the pair)")
    tables = [_score_rows(_scores_file(out, name, fold)) for name in names]
    items = sorted(tables[0])
    if sorted(tables[1]) != items:
        raise DetectorError(f"{recipe}: {names[0]} and {names[1]} scored different files on {fold}")
    labels = np.array([int(tables[0][i]["label"]) for i in items])
    views = np.array([[float(table[i]["probability"]) for i in items] for table in tables])
    probs = views.mean(axis=0)
    fake = [labelled_fake(view, row["decision"]) for view, row in zip(views, rows)]
    real = [labelled_real(view, row["decision"]) for view, row in zip(views, rows)]
    called_fake = fake[0] & fake[1]
    uncertain = ~called_fake & ~(real[0] & real[1])
    logits = np.log(np.clip(probs, 1e-12, 1)) - np.log(np.clip(1 - probs, 1e-12, 1))
    row = {**fold_row(labels, logits, called_fake, uncertain), "minutes": 0.0}
    scores = [
        {"item": i, "label": int(y), "logit": float(z), "probability": float(p)}
        for i, y, z, p in zip(items, labels, logits, probs)
    ]
    return row, scores


def compare_recipes(out: Path, recipes: list[str], folds: list[str]) -> dict:
    """Mean ROC-AUC over folds of each recipe against the first (the baseline), with a paired bootstrap interval."""
    baseline = recipes[0]
    comparisons = {}
    for recipe in recipes[1:]:
        groups = []
        for fold in folds:
            a = _read_scores(_scores_file(out, baseline, fold))
            b = _read_scores(_scores_file(out, recipe, fold))
            if a and b and [r[0] for r in a] == [r[0] for r in b]:
                groups.append(([r[1] for r in a], [r[2] for r in a], [r[2] for r in b]))
        found = paired_mean_auc_difference(groups) if groups else None
        if found:
            delta, low, high = found
            verdict = "better" if low > 0 else "worse" if high < 0 else "no clear difference"
            comparisons[recipe] = {"against": baseline, "difference": delta, "interval": [low, high], "verdict": verdict}
    return comparisons


def format_table(results: dict, recipes: list[str]) -> str:
    folds = results["folds"]
    head = "| left out | " + " | ".join(recipes) + " |"
    lines = [
        f"Cross-source ROC-AUC [95% interval] and FPR (reals labelled fake by the recipe's decision rule) on what each fold "
        f"left out of training{' (quick schedule)' if results.get('quick') else ''}.",
        "",
        head,
        "|" + "---|" * (len(recipes) + 1),
    ]
    for fold in folds:
        cells = []
        for recipe in recipes:
            row = results["rows"].get(recipe, {}).get(fold)
            if row is None:
                cells.append("")
                continue
            low, high = row["interval"] or (None, None)
            interval = f" [{low:.2f}, {high:.2f}]" if low is not None else ""
            cells.append(f"{_f(row['roc_auc'])}{interval}, FPR {_pct(row['fpr'])}")
        n = next((results["rows"][r][fold]["n"] for r in recipes if fold in results["rows"].get(r, {})), "")
        lines.append(f"| {fold} ({n}) | " + " | ".join(cells) + " |")
    means = []
    for recipe in recipes:
        rows = [results["rows"].get(recipe, {}).get(f) for f in folds]
        values = [r["roc_auc"] for r in rows if r and r["roc_auc"] is not None]
        means.append(f"{np.mean(values):.3f}" if values else "")
    lines.append("| **mean** | " + " | ".join(means) + " |")
    comparisons = results.get("comparisons") or {}
    if comparisons:
        lines.append("")
        for recipe, c in comparisons.items():
            low, high = c["interval"]
            lines.append(
                f"- {recipe} − {c['against']}: mean ROC-AUC {c['difference']:+.3f} [{low:+.3f}, {high:+.3f}] ({c['verdict']})"
            )
    videos = [
        (recipe, fold, row["videos"])
        for recipe in recipes
        for fold, row in results["rows"].get(recipe, {}).items()
        if row.get("videos")
    ]
    if videos:
        lines += ["", "What the LSTM earns on video groups (left-out FF++ videos): clip head vs mean of per-frame scores", ""]
        for recipe, fold, v in videos:
            lines.append(
                f"- {recipe}, without {fold} ({v['n']} videos): clip head {_f(v['clip_head_roc_auc'])}, "
                f"mean of frames {_f(v['mean_frames_roc_auc'])}"
            )
    return "\n".join(lines)


def _read_results(out: Path) -> dict:
    try:
        return json.loads((out / "results.json").read_text())
    except (OSError, ValueError):
        return {}


def _write_scores(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _scores_file(out: Path, recipe: str, fold: str) -> Path:
    return out / "scores" / recipe / f"{fold.replace('/', '-')}.csv"


def _score_rows(path: Path) -> dict[str, dict]:
    """{item: its row} of a scores file written by `_write_scores`."""
    with open(path, newline="") as handle:
        return {row["item"]: row for row in csv.DictReader(handle)}


def _read_scores(path: Path) -> list[tuple[str, int, float]]:
    try:
        rows = _score_rows(path)
    except OSError:
        return []
    return sorted((item, int(r["label"]), float(r["logit"])) for item, r in rows.items())


def _f(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


# ------------------------------------------------------------------------------------------------------ CLI


def register(commands, add_model_options) -> None:
    p = commands.add_parser("crossval", help="train and score each recipe with one source or method left out")
    p.add_argument("--data", required=True, help="dataset folder with manifest.csv (sources, methods, splits)")
    p.add_argument("--recipes", default="clip-linear,clip-lstm,mobilenet,student",
                   help=f"comma-separated, the first is the baseline of the comparisons; from {', '.join(RECIPES)}; "
                        "A+B: the pair of two recipes listed before it")  # fmt: skip
    p.add_argument("--folds", default=None, help="comma-separated fold names (default: all), e.g. gan,ffpp/faceswap")
    p.add_argument("--quick", action="store_true", help="short schedules for the MobileNetV3 recipes (the whole table in under an hour here)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rescore", action="store_true", help="score the kept fold models again instead of keeping stored rows")
    p.add_argument("--out", default="runs/crossval", help="results.json, table.md, per-item scores and the fold models")
    p.set_defaults(run=run_crossval)


def run_crossval(args: argparse.Namespace) -> int:
    from ..errors import DetectorError

    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [part for r in recipes for part in r.split("+") if part not in RECIPES]
    if unknown:
        raise DetectorError(f"unknown recipe {unknown[0]!r}; choose from {', '.join(RECIPES)}")
    folds = [f.strip() for f in args.folds.split(",")] if args.folds else None
    results = run(args.data, recipes, Path(args.out), args.quick, folds, args.seed, rescore=args.rescore)
    print(format_table(results, recipes))
    return 0
