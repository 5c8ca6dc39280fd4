"""The cross-source protocol: `python -m detector crossval --data DIR [--quick] [--recipes ...] [--out DIR]`.

Validation files come from the sources the model trained on, so val says little about what users meet. Here each
recipe is trained once per fold with one source (ffpp, ciplab, gan, lfw, modern: its reals and fakes both), then one
FaceForensics++ manipulation method, left out of training and of model selection, and scored on every file of what
was left out. `wild` (real photos as people post them) is left out of every fold and its reals are scored in each.

Per fold and recipe: ROC-AUC with its 95% bootstrap interval, and **what users are told** by the recipe's own
decision rule (fitted on the fold's validation files as a shipped checkpoint's is): fakes labelled fake / real /
uncertain, reals labelled real / fake / uncertain, and `decided right` = (fakes labelled fake + reals labelled
real) / 2. Recipes are chosen by the mean over folds of decided right, **subject to** at most 3% reals labelled fake
on every fold (the wild reals included), with the mean ROC-AUC as the tie-breaker; recipes are compared with the
first (the baseline) by paired bootstrap intervals of both means (files resampled within each fold and class, the
same resamples for both recipes). On video groups (FF++) it also shows what the LSTM earns: the clip head's
ROC-AUC beside the mean of the per-frame scores.

Recipes (`RECIPES`): `clip-linear` (frozen CLIP + logistic regression, the baseline), `clip-lstm` (frozen CLIP + the
LSTM heads), `clip-deep-lstm` (the same heads on several depths of the tower: the class tokens of blocks
`DEEP_LAYERS` beside the final embedding, RINE), `clip-deep-linear` (logistic regression on those), `clip-lstm-jpeg`
(`clip-lstm` trained on the training files twice: as they are and re-encoded as JPEG at quality 30-90),
`clip-lstm-jpeg-sb` (the same with every source's reals and fakes shown alike, `balance_within_source`),
`clip-lstm-jpeg-sb-probe` (the same keeping a linear probe whose agreement a "fake" needs, `train-clip --probe`),
`clip-lstm-sb` and `clip-deep-lstm-sb` (the sampler without JPEG copies, on the final embedding or on depth), `mobilenet`
(the MobileNetV3-LSTM recipe of `train`), `student` (the same, distilled from the CLIP teacher), `mobilenet-sbi`
(real faces and pseudo-fakes only), `mobilenet-pf80` (80% of the fakes drawn as pseudo-fakes instead of 50%),
`mobilenet-sb` (every source's reals and fakes shown alike).
Two recipes joined by `+` (`mobilenet+clip-lstm`) are the pair `default+accurate` served until December 2026
(detector/ensemble.py), scored from the two recipes' fold scores: the mean of their calibrated probabilities, "fake"
only where both views say fake, "uncertain" where they disagree; `&` and `*` are the veto and stacked rules
(`pair_fold`).
`--quick` gives the MobileNetV3 recipes a short schedule (3 epochs of 1,536 items), the same for each of them; the
CLIP recipes always train at the schedule that ships (they are cheap).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .datasets import Sample, read_dataset
from .embeddings import load_crops
from .foldscores import (
    _fit_on_held_out,
    _read_results,
    _read_scores,
    _rule_folds,
    _score_rows,
    _scores_file,
    _write_scores,
)
from .items import Item, build_items
from .metrics import (
    MAX_FALSE_POSITIVE_RATE,
    calibrated_probabilities,
    choose_decision,
    interval_verdict,
    labelled_fake,
    labelled_real,
    paired_mean_auc_difference,
    paired_mean_decided_difference,
    roc_auc,
    roc_auc_interval,
    told,
    told_shares,
)
from .options import TrainOptions
from .rule import SUFFIX, fit_pair_stack, logit, pair_stack_logits
from .validation import blend

SOURCE_FOLDS = ("ffpp", "ciplab", "gan", "lfw", "modern")
WILD = "wild"  # real photos as people post them: never trained on in a fold, their reals scored in every fold
DEEP_LAYERS = (3, 5, 7, 9, 11)  # the blocks whose class tokens clip-deep-* read
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
    wild: list[Item]  # the wild reals, scored in every fold beside what the fold left out
    pseudo: list[Item] = field(default_factory=list)  # pseudo-fakes blended from the fold's training reals
    compressed: list[Item] = field(default_factory=list)  # the training items again, from JPEG-compressed crops


# ------------------------------------------------------------------------------------------------- recipes


@dataclass
class Fitted:
    score: Callable[[list[Item]], np.ndarray]  # items -> (N, 2) raw (clip logit, mean frame logit)
    clip_weight: float = 0.5
    # the view's linear probe: items -> (N,) logits, and the cut at or above which it says fake (None: no probe)
    probe: Callable[[list[Item]], np.ndarray] | None = None
    probe_cut: float = 0.0


def _clip_linear(layers: tuple[int, ...] = ()) -> Callable:
    def fit(data: FoldData, workdir: Path, quick: bool, seed: int, log) -> Fitted:
        from .cliptrain import standardized, with_layers
        from .probe import fit_linear

        train, val = with_layers(data.train, layers), with_layers(data.val, layers)
        if layers:  # class tokens of several depths: standardised with the training frames' statistics
            train, val, scale = standardized(train, val)
            score, _ = fit_linear(train, val)
            return Fitted(lambda items: score(scale(with_layers(items, layers))), clip_weight=0.5)
        score, _ = fit_linear(train, val)
        return Fitted(lambda items: score(with_layers(items, layers)), clip_weight=0.5)

    return fit


def _clip_lstm(
    layers: tuple[int, ...] = (), pseudo: bool = False, compressed: bool = False, probe: bool | str = False, **overrides
) -> Callable:
    def fit(data: FoldData, workdir: Path, quick: bool, seed: int, log) -> Fitted:
        from .cliptrain import HeadOptions, fit_sequence_head, with_layers
        from .probe import fit_probe

        options = HeadOptions(seed=seed, clip_layers=layers, **HEAD_SCHEDULE, **overrides)
        train = data.train + (data.pseudo if pseudo else []) + (data.compressed if compressed else [])
        _, config, score = fit_sequence_head(with_layers(train, layers), with_layers(data.val, layers), options)
        fitted = Fitted(lambda items: score(with_layers(items, layers)), config.decision.clip_weight)
        if probe:  # fitted on the training files as `train-clip --probe` fits it (not their JPEG copies)
            _, fitted.probe_cut, fitted.probe = fit_probe(data.train + (data.compressed if probe == "copies" else []), data.val)
        return fitted

    return fit


TRAINED_MARK = "crossval-trained"  # written beside a fold model once its training has finished


def _mobilenet(**overrides) -> Callable:
    def fit(data: FoldData, workdir: Path, quick: bool, seed: int, log) -> Fitted:
        from ..checkpoint import load_checkpoint
        from .train import train
        from .validation import score_items

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
    "clip-linear": (_clip_linear(), True),
    "clip-lstm": (_clip_lstm(), True),
    "clip-deep-linear": (_clip_linear(DEEP_LAYERS), True),
    "clip-deep-lstm": (_clip_lstm(DEEP_LAYERS), True),
    "clip-deep-lstm-sbi": (_clip_lstm(DEEP_LAYERS, pseudo=True), True),
    "clip-lstm-jpeg": (_clip_lstm(compressed=True), True),
    "clip-lstm-jpeg-sb": (_clip_lstm(compressed=True, balance_within_source=True), True),
    "clip-lstm-jpeg-sb-probe": (_clip_lstm(compressed=True, probe=True, balance_within_source=True), True),
    "clip-lstm-jpeg-sb-probej": (_clip_lstm(compressed=True, probe="copies", balance_within_source=True), True),
    "clip-lstm-sb": (_clip_lstm(balance_within_source=True), True),
    "clip-deep-lstm-sb": (_clip_lstm(DEEP_LAYERS, balance_within_source=True), True),
    "mobilenet": (_mobilenet(), False),
    "student": (_mobilenet(distill=1.0), True),
    "mobilenet-sbi": (_mobilenet(real_only=True, pseudo_fakes=1.0), False),
    "mobilenet-pf80": (_mobilenet(pseudo_fakes=0.8), False),
    "mobilenet-sb": (_mobilenet(balance_within_source=True), False),
}


# ------------------------------------------------------------------------------------------------- protocol


PSEUDO_RECIPES = ("clip-deep-lstm-sbi",)  # recipes that train with pseudo-fakes on CLIP features
# recipes that also train on JPEG-compressed copies of the training files
COMPRESSED_RECIPES = ("clip-lstm-jpeg", "clip-lstm-jpeg-sb", "clip-lstm-jpeg-sb-probe", "clip-lstm-jpeg-sb-probej")


def fold_data(fold: Fold, samples: list[Sample], crops, embedded, pseudo=None, compressed=None) -> FoldData:
    index = {id(s): i for i, s in enumerate(samples)}

    def items(chosen: list[Sample], group: bool, features=embedded) -> list[Item]:
        return build_items(
            chosen, [crops[index[id(s)]] for s in chosen], group, [features[index[id(s)]] for s in chosen] if features else None
        )

    kept = [s for s in samples if not fold.held_out(s) and s.source != WILD]
    train_samples = [s for s in kept if s.split == "train"]
    val_samples = [s for s in kept if s.split == "val"]
    test = [s for s in samples if fold.held_out(s)]
    wild = [s for s in samples if s.source == WILD and s.label == 0]
    blended = []
    if pseudo is not None:  # a pseudo-fake of a training real: a fake of a source of its own, one file a sequence
        made = [(s, pseudo[index[id(s)]]) for s in train_samples if pseudo[index[id(s)]] is not None]
        blended = [
            replace(item, label=1, source="pseudo", method="self-blend", embeddings=e)
            for (s, e), item in zip(made, items([s for s, _ in made], False))
        ]
    return FoldData(
        train_samples,
        val_samples,
        items(train_samples, True),
        items(val_samples, False),
        items(test, True),
        items(wild, False),
        blended,
        items(train_samples, True, compressed) if compressed is not None else [],
    )


def familiarity(data: FoldData) -> tuple[dict[str, np.ndarray], float]:
    """Each left-out and wild item's unfamiliarity (detector/familiarity.py: its frames' mean distance to a sample of
    the fold's training embeddings), and the limit a checkpoint trained on the fold would use (val's 99th centile)."""
    from ..clip import EMBEDDING_DIM
    from ..familiarity import choose_limit, choose_reference, unfamiliarity
    from .cliptrain import REFERENCE_SIZE

    reference = choose_reference(np.concatenate([i.embeddings[:, :EMBEDDING_DIM] for i in data.train]), REFERENCE_SIZE)
    limit = choose_limit(np.concatenate([i.embeddings[:, :EMBEDDING_DIM] for i in data.val]), reference)

    def distances(items: list[Item]) -> np.ndarray:
        return np.array([unfamiliarity(i.embeddings[:, :EMBEDDING_DIM], reference).mean() for i in items])

    return {"held_out": distances(data.test), WILD: distances(data.wild)}, float(limit)


def fold_row(labels: np.ndarray, logits: np.ndarray, answers: np.ndarray, wild: np.ndarray | None = None) -> dict:
    """A fold's figures from its left-out files: ROC-AUC with its interval, and what users would be told (and, in
    `wild`, what the wild reals would be told)."""
    reals, fakes = labels == 0, labels == 1
    shares = told_shares(labels, answers)
    row = {
        "n": len(labels),
        "n_real": int(reals.sum()),
        "n_fake": int(fakes.sum()),
        "roc_auc": roc_auc(labels, logits),
        "interval": roc_auc_interval(labels, logits),
        **shares,
        "fpr": shares["reals"]["fake"] if shares["reals"] else None,  # reals labelled fake
        "tpr": shares["fakes"]["fake"] if shares["fakes"] else None,  # fakes labelled fake
    }
    if wild is not None and len(wild):
        row["wild"] = {"n": len(wild), **told_shares(np.zeros(len(wild), dtype=int), wild)["reals"]}
    return row


def evaluate_fold(fitted: Fitted, data: FoldData, gate: bool = False) -> tuple[dict, list[dict]]:
    """The fold's row for one recipe, and its per-item scores (the left-out files, then the wild reals)."""
    raw_val, raw_test = fitted.score(data.val), fitted.score(data.test)
    val_logits, test_logits = blend(raw_val, fitted.clip_weight), blend(raw_test, fitted.clip_weight)
    wild_logits = blend(fitted.score(data.wild), fitted.clip_weight) if data.wild else np.zeros(0)
    val_labels = np.array([item.label for item in data.val])
    decision = choose_decision(val_logits, val_labels, [item.source for item in data.val])
    probs, wild_probs = calibrated_probabilities(test_logits, decision), calibrated_probabilities(wild_logits, decision)
    labels = np.array([item.label for item in data.test])
    answers, wild_answers = told(probs, decision), told(wild_probs, decision)
    val_probs = calibrated_probabilities(val_logits, decision)
    val_answers = told(val_probs, decision)
    probe_fake = {}
    if fitted.probe is not None:  # a "fake" needs the probe to agree
        for part, items, said in (("held_out", data.test, answers), (WILD, data.wild, wild_answers), ("val", data.val, val_answers)):
            probe_fake[part] = fitted.probe(items) >= fitted.probe_cut if items else np.zeros(0, bool)
            said[(said == "fake") & ~probe_fake[part]] = "uncertain"
    row = fold_row(labels, test_logits, answers, wild_answers)
    row.update(threshold=decision["threshold"], decision=decision)
    if fitted.probe is not None:
        row["probe_cut"] = fitted.probe_cut
    distances = {}
    if gate:  # what the familiarity gate of a CLIP view costs
        distances, limit = familiarity(data)
        gated = [told(p, decision, distances[part] > limit) for part, p in (("held_out", probs), (WILD, wild_probs))]
        for part, said in zip(("held_out", WILD), gated):
            if part in probe_fake:
                said[(said == "fake") & ~probe_fake[part]] = "uncertain"
        row["familiarity_gate"] = {
            "limit": limit,
            "unfamiliar": float(np.mean(distances["held_out"] > limit)),
            "wild_unfamiliar": float(np.mean(distances[WILD] > limit)) if len(wild_probs) else None,
            **{
                k: v
                for k, v in fold_row(labels, test_logits, gated[0], gated[1]).items()
                if k in ("fakes", "reals", "decided_right", "wild")
            },
        }
    videos = np.array([len(item.crops) > 1 for item in data.test])
    if videos.sum() >= 4 and len(set(labels[videos])) == 2:
        row["videos"] = {
            "n": int(videos.sum()),
            "clip_head_roc_auc": roc_auc(labels[videos], raw_test[videos, 0]),
            "mean_frames_roc_auc": roc_auc(labels[videos], raw_test[videos, 1]),
        }
    # the fold's val files too: a rule fitted on val (a stacked pair's, say) can be fitted again from the scores alone
    parts = (
        ("held_out", data.test, test_logits, probs, answers),
        (WILD, data.wild, wild_logits, wild_probs, wild_answers),
        ("val", data.val, val_logits, val_probs, val_answers),
    )
    scores = [
        {
            "item": item.paths[0],
            "label": int(item.label),
            "part": part,
            "source": item.source,
            "logit": float(z),
            "probability": float(p),
            "told": a,
            "unfamiliarity": float(distances[part][i]) if part in distances else "",
            "probe_fake": int(probe_fake[part][i]) if part in probe_fake else "",
        }
        for part, items, logits, ps, told_ in parts
        for i, (item, z, p, a) in enumerate(zip(items, logits, ps, told_))
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
    clip = any(RECIPES[_base(part)][1] for r in recipes for part in _members(r))
    crops, embedded = load_crops(samples, clip, log=log, deep=True)
    pseudo = None
    if any(_base(part) in PSEUDO_RECIPES for r in recipes for part in _members(r)):
        from .embeddings import pseudo_fake_embeddings

        pseudo = pseudo_fake_embeddings(samples, crops, seed=seed, log=log)
    compressed = None
    if any(_base(part) in COMPRESSED_RECIPES for r in recipes for part in _members(r)):
        from .embeddings import compressed_embeddings

        compressed = compressed_embeddings(samples, crops, log=log)
    out.mkdir(parents=True, exist_ok=True)
    results = _read_results(out)
    if rescore:
        for recipe in recipes:
            results.get("rows", {}).pop(recipe, None)
    results.update({"data": data, "quick": quick, "seed": seed, "folds": [f.name for f in chosen]})
    for fold in chosen:
        fold_set = fold_data(fold, samples, crops, embedded, pseudo, compressed)
        for recipe in recipes:
            done = results.setdefault("rows", {}).setdefault(recipe, {})
            if fold.name in done or SUFFIX in recipe:
                continue  # kept from an earlier run into the same folder; the out-of-source rule comes after every fold
            if _is_pair(recipe):
                row, scores = pair_fold(out, results, recipe, fold.name)
                done[fold.name] = row
                _write_scores(_scores_file(out, recipe, fold.name), scores)
                continue
            started = time.time()
            fit, clip_view = RECIPES[recipe]
            fitted = fit(fold_set, out / "models" / recipe / fold.name.replace("/", "-"), quick, seed, log)
            row, scores = evaluate_fold(fitted, fold_set, gate=clip_view and recipe != "student")
            row["minutes"] = round((time.time() - started) / 60, 2)
            done[fold.name] = row
            _write_scores(_scores_file(out, recipe, fold.name), scores)
            log(
                f"{recipe} without {fold.name}: decided right {_f(row['decided_right'])} ROC-AUC {_f(row['roc_auc'])} "
                f"FPR {_pct(row['fpr'])} wild FPR {_pct(row.get('wild', {}).get('fake'))} ({row['minutes']} min)"
            )
            (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    for recipe in recipes:
        if recipe.endswith(SUFFIX) and not _is_pair(recipe):
            results["rows"][recipe] = out_of_source_folds(out, results, recipe, [f.name for f in chosen])
    for recipe in recipes:  # pairs of out-of-source rules, now that those are scored
        if _is_pair(recipe) and SUFFIX in recipe:
            results["rows"][recipe] = {}
            for fold in chosen:
                row, scores = pair_fold(out, results, recipe, fold.name)
                results["rows"][recipe][fold.name] = row
                _write_scores(_scores_file(out, recipe, fold.name), scores)
    results["comparisons"] = compare_recipes(out, recipes, [f.name for f in chosen])
    results = json.loads(json.dumps(results))  # what is returned is what is stored (lists, not tuples)
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out / "table.md").write_text(format_table(results, recipes) + "\n")
    return results


def _members(recipe: str) -> list[str]:
    """The views of a pair: A+B agree (served until December 2026), A&B veto, A*B stacked on val (`pair_fold`)."""
    return re.split(r"[+&*]", recipe)


def _is_pair(recipe: str) -> bool:
    return len(_members(recipe)) == 2


def _base(recipe: str) -> str:
    return recipe.removesuffix(SUFFIX)


def out_of_source_folds(out: Path, results: dict, recipe: str, folds: list[str]) -> dict:
    """The rows of `R@oos`: R's fold scores under the out-of-source rule (detector/training/rule.py), fitted for each
    fold on the other folds' held-out scores only (never on the fold's own files, nor on the wild reals)."""
    from ..errors import DetectorError

    base = _base(recipe)
    missing = [f for f in folds if f not in results["rows"].get(base, {})]
    if missing or len(_rule_folds(folds)) < 2:
        raise DetectorError(f"{recipe}: score {base} on every fold first (missing: {', '.join(missing) or 'a second fold'})")
    tables = {fold: list(_score_rows(_scores_file(out, base, fold)).values()) for fold in folds}
    rows = {}
    for fold in folds:
        # the other source folds: each file once, and none of the fold's own (an FF++ method's fold is within ffpp's)
        others = [f for f in _rule_folds(folds) if f != fold.split("/")[0]]
        decision = _fit_on_held_out({other: tables[other] for other in others})
        mine = tables[fold]
        logits = np.array([float(r["logit"]) for r in mine])
        labels = np.array([int(r["label"]) for r in mine])
        held = np.array([r["part"] == "held_out" for r in mine])
        wild = np.array([r["part"] == WILD for r in mine])
        probs = calibrated_probabilities(logits, decision)
        answers = told(probs, decision)
        row = fold_row(labels[held], logits[held], answers[held], answers[wild])
        row.update(threshold=decision["threshold"], decision=decision, minutes=0.0)
        if "videos" in results["rows"][base][fold]:
            row["videos"] = results["rows"][base][fold]["videos"]
        rows[fold] = row
        scores = [
            {**{k: r[k] for k in ("item", "label", "part", "logit")}, "probability": float(p), "told": a}
            for r, p, a in zip(mine, probs, answers)
        ]
        _write_scores(_scores_file(out, recipe, fold), scores)
    return rows


def pair_fold(out: Path, results: dict, recipe: str, fold: str) -> tuple[dict, list[dict]]:
    """The row and scores of a pair on a fold, from the fold scores and decisions of its two views: the mean of the
    two calibrated probabilities; "fake" where both views label it fake. `a+b` (the pair served until December 2026):
    "real" where both label it real, "uncertain" otherwise. `a&b` (served since): "real" where one view labels it real
    and the other does not label it fake, "uncertain" otherwise: either view vetoes a "fake", neither alone can
    make one, and "uncertain" is left for real conflicts and for faces neither view can place. `a*b`: one probability
    stacked from both views' calibrated logits, with its rule fitted on the fold's val files (training/rule.py); a
    "fake" still needs two opinions (the stacked rule alone labelled up to 8% of unseen reals fake): the second view,
    and the first view or the second view's probe (where it has one, `clip-lstm-jpeg-sb-probe`)."""
    from ..errors import DetectorError

    names = _members(recipe)
    rows = [results["rows"].get(name, {}).get(fold) for name in names]
    if any(row is None or "decision" not in row for row in rows):
        raise DetectorError(f"{recipe}: score {' and '.join(names)} on {fold} first (list them before the pair)")
    tables = [_score_rows(_scores_file(out, name, fold)) for name in names]
    keys = sorted(tables[0])
    if sorted(tables[1]) != keys:
        raise DetectorError(f"{recipe}: {names[0]} and {names[1]} scored different files on {fold}")
    labels = np.array([int(tables[0][k]["label"]) for k in keys])
    parts = np.array([tables[0][k].get("part", "held_out") for k in keys])
    views = np.array([[float(table[k]["probability"]) for k in keys] for table in tables])
    extra = {}
    if "*" in recipe:  # stacked: one logit learned from both views on the fold's val files
        val = parts == "val"
        if not val.any():
            raise DetectorError(f"{recipe}: the scores of {fold} hold no val files; score the views again (--rescore)")
        sources = np.array([tables[0][k].get("source", "") for k in keys])
        stack = fit_pair_stack(logit(views.T[val]), labels[val], sources[val])
        probs = calibrated_probabilities(pair_stack_logits(logit(views.T), stack), stack)
        # a fake still needs two opinions: the second view, and the first view or the second view's probe
        probe = np.array([tables[1][k].get("probe_fake", "") == "1" for k in keys])
        both_fake = (labelled_fake(views[0], rows[0]["decision"]) | probe) & labelled_fake(views[1], rows[1]["decision"])
        answers = told(probs, stack)
        answers[(answers == "fake") & ~both_fake] = "uncertain"
        extra = {"decision": stack, "threshold": stack["threshold"]}
    else:
        probs = views.mean(axis=0)
        fake = [labelled_fake(view, row["decision"]) for view, row in zip(views, rows)]
        real = [labelled_real(view, row["decision"]) for view, row in zip(views, rows)]
        # "+": real only where both views say real; "&": real where one says real and the other does not say fake
        said_real = real[0] & real[1] if "+" in recipe else (real[0] | real[1]) & ~fake[0] & ~fake[1]
        answers = np.where(fake[0] & fake[1], "fake", np.where(said_real, "real", "uncertain")).astype(object)
    logits = logit(probs)
    held = parts == "held_out"
    row = {**fold_row(labels[held], logits[held], answers[held], answers[parts == WILD]), "minutes": 0.0, **extra}
    scores = [
        {"item": k.split("|", 1)[1], "label": int(y), "part": part, "logit": float(z), "probability": float(p), "told": a}
        for k, y, part, z, p, a in zip(keys, labels, parts, logits, probs, answers)
    ]
    return row, scores


def compare_recipes(out: Path, recipes: list[str], folds: list[str]) -> dict:
    """Each recipe against the first (the baseline): the mean over folds of decided right and of ROC-AUC, each with
    a paired bootstrap interval of the difference."""
    baseline = recipes[0]
    comparisons = {}
    for recipe in recipes[1:]:
        aucs, decided = [], []
        for fold in folds:
            a = _read_scores(_scores_file(out, baseline, fold))
            b = _read_scores(_scores_file(out, recipe, fold))
            if a and b and [r[0] for r in a] == [r[0] for r in b]:
                aucs.append(([r[1] for r in a], [r[2] for r in a], [r[2] for r in b]))
                decided.append(([r[1] for r in a], [r[3] for r in a], [r[3] for r in b]))
        entry = {"against": baseline}
        for key, found in (("roc_auc", paired_mean_auc_difference(aucs) if aucs else None),
                           ("decided_right", paired_mean_decided_difference(decided) if decided else None)):  # fmt: skip
            if found:
                delta, low, high = found
                entry[key] = {"difference": delta, "interval": [low, high], "verdict": interval_verdict(low, high)}
        if len(entry) > 1:
            comparisons[recipe] = entry
    return comparisons


def summary(results: dict, recipe: str) -> dict | None:
    """A recipe's figures over the folds: mean decided right, mean ROC-AUC, the most reals labelled fake on any fold
    (the wild reals included) and whether that keeps within the limit (`eligible`), and the wild reals' answers."""
    rows = [results["rows"].get(recipe, {}).get(f) for f in results["folds"]]
    rows = [r for r in rows if r and "decided_right" in r]
    if not rows:
        return None
    fprs = [r["fpr"] for r in rows if r["fpr"] is not None] + [r["wild"]["fake"] for r in rows if r.get("wild")]
    wild = [r["wild"] for r in rows if r.get("wild")]
    return {
        "folds": len(rows),
        "decided_right": float(np.mean([r["decided_right"] for r in rows])),
        "roc_auc": float(np.mean([r["roc_auc"] for r in rows if r["roc_auc"] is not None])),
        "max_fpr": max(fprs) if fprs else None,
        "eligible": bool(fprs) and max(fprs) <= MAX_FALSE_POSITIVE_RATE + 1e-9,
        "fakes_fake": float(np.mean([r["fakes"]["fake"] for r in rows if r["fakes"]])),
        "fakes_real": float(np.mean([r["fakes"]["real"] for r in rows if r["fakes"]])),
        "reals_real": float(np.mean([r["reals"]["real"] for r in rows if r["reals"]])),
        "wild_real": float(np.mean([w["real"] for w in wild])) if wild else None,
    }


def format_table(results: dict, recipes: list[str]) -> str:
    folds = results["folds"]
    lines = [
        f"What users are told on what each fold left out of training{' (quick schedule)' if results.get('quick') else ''}: "
        "fakes labelled fake / real / uncertain, reals labelled real / fake / uncertain, decided right "
        "((fakes labelled fake + reals labelled real) / 2), ROC-AUC [95% interval]; the wild reals (never trained on) "
        "are scored in every fold.",
        "",
        "| recipe | mean decided right | eligible (≤ 3% reals labelled fake on every fold) | most reals labelled fake | "
        "mean ROC-AUC | fakes labelled fake | fakes labelled real | reals labelled real | wild reals labelled real |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    summaries = {r: summary(results, r) for r in recipes}
    ranked = sorted(
        (r for r in recipes if summaries[r]),
        key=lambda r: (not summaries[r]["eligible"], -summaries[r]["decided_right"], -summaries[r]["roc_auc"]),
    )
    for recipe in ranked:
        m = summaries[recipe]
        lines.append(
            f"| {recipe} | {m['decided_right']:.3f} | {'yes' if m['eligible'] else 'no'} | {_pct(m['max_fpr'])} | {m['roc_auc']:.3f} "
            f"| {_pct(m['fakes_fake'])} | {_pct(m['fakes_real'])} | {_pct(m['reals_real'])} | {_pct(m['wild_real'])} |"
        )
    for recipe in recipes:
        if not results["rows"].get(recipe):
            continue
        lines += ["", f"**{recipe}**", "", "| left out | fakes → fake / real / uncertain | reals → real / fake / uncertain | decided right | ROC-AUC |",
                  "|---|---|---|---|---|"]  # fmt: skip
        wild = []
        for fold in folds:
            row = results["rows"][recipe].get(fold)
            if row is None or "decided_right" not in row:
                continue
            low, high = row["interval"] or (None, None)
            interval = f" [{low:.2f}, {high:.2f}]" if low is not None else ""
            lines.append(
                f"| {fold} ({row['n_fake']} / {row['n_real']}) | {_told(row['fakes'], ('fake', 'real', 'uncertain'))} "
                f"| {_told(row['reals'], ('real', 'fake', 'uncertain'))} | {_f(row['decided_right'])} | {_f(row['roc_auc'])}{interval} |"
            )
            if row.get("wild"):
                wild.append(f"{fold}: {_told(row['wild'], ('real', 'fake', 'uncertain'))}")
        if wild:
            lines += [
                "",
                f"Wild reals ({results['rows'][recipe][folds[0]].get('wild', {}).get('n', '')}) → real / fake / uncertain, per fold: "
                + "; ".join(wild),
            ]
    gated = [(r, _gate_summary(results, r)) for r in recipes]
    gated = [(r, g) for r, g in gated if g]
    if gated:
        lines += ["", "What the familiarity gate (a face unlike the training faces is answered uncertain) would cost:", ""]
        for recipe, (plain, gate, wild_plain, wild_gate, flagged) in gated:
            lines.append(
                f"- {recipe}: mean decided right {plain:.3f} without it, {gate:.3f} with it; wild reals labelled real "
                f"{_pct(wild_plain)} without, {_pct(wild_gate)} with; {_pct(flagged)} of the left-out files flagged"
            )
    comparisons = results.get("comparisons") or {}
    if comparisons:
        lines.append("")
        for recipe, c in comparisons.items():
            for key, label in (("decided_right", "mean decided right"), ("roc_auc", "mean ROC-AUC")):
                if key in c:
                    low, high = c[key]["interval"]
                    lines.append(
                        f"- {recipe} − {c['against']}: {label} {c[key]['difference']:+.3f} [{low:+.3f}, {high:+.3f}] ({c[key]['verdict']})"
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


def _gate_summary(results: dict, recipe: str) -> tuple | None:
    rows = [results["rows"].get(recipe, {}).get(f) for f in results["folds"]]
    rows = [r for r in rows if r and r.get("familiarity_gate")]
    if not rows:
        return None
    gates = [r["familiarity_gate"] for r in rows]
    wild = [(r["wild"]["real"], g["wild"]["real"]) for r, g in zip(rows, gates) if r.get("wild") and g.get("wild")]
    return (
        float(np.mean([r["decided_right"] for r in rows])),
        float(np.mean([g["decided_right"] for g in gates])),
        float(np.mean([w[0] for w in wild])) if wild else None,
        float(np.mean([w[1] for w in wild])) if wild else None,
        float(np.mean([g["unfamiliar"] for g in gates])),
    )


def _told(shares: dict | None, order: tuple[str, ...]) -> str:
    return " / ".join(f"{shares[k]:.0%}" for k in order) if shares else "–"


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
    p.add_argument(
        "--quick", action="store_true", help="short schedules for the MobileNetV3 recipes (the whole table in under an hour here)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rescore", action="store_true", help="score the kept fold models again instead of keeping stored rows")
    p.add_argument("--out", default="runs/crossval", help="results.json, table.md, per-item scores and the fold models")
    p.set_defaults(run=run_crossval)


def run_crossval(args: argparse.Namespace) -> int:
    from ..errors import DetectorError

    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    unknown = [part for r in recipes for part in _members(r) if _base(part) not in RECIPES]
    if unknown:
        raise DetectorError(f"unknown recipe {unknown[0]!r}; choose from {', '.join(RECIPES)}")
    folds = [f.strip() for f in args.folds.split(",")] if args.folds else None
    results = run(args.data, recipes, Path(args.out), args.quick, folds, args.seed, rescore=args.rescore)
    print(format_table(results, recipes))
    return 0
