"""The files of a cross-source run (`crossval --out`): results.json, the per-fold score files, and the out-of-source
rule fitted on their held-out scores (what a checkpoint of a recipe ships with, training/rule.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

from .rule import fit_rule


def _rule_folds(folds: list[str]) -> list[str]:
    """The folds a rule is fitted on: the source folds (each file in one of them), or every fold when there are none."""
    sources = [f for f in folds if "/" not in f]
    return sources or folds


def out_of_source_decision(out: Path, recipe: str) -> dict:
    """The out-of-source rule of `recipe` fitted on the held-out scores of every fold in a crossval --out folder:
    the rule a checkpoint of that recipe ships with."""
    from ..errors import DetectorError

    results = _read_results(out)
    folds = _rule_folds([f for f in results.get("folds", []) if f in results.get("rows", {}).get(recipe, {})])
    if len(folds) < 2:
        raise DetectorError(
            f"{out} holds no cross-source scores of {recipe}: run python -m detector crossval --recipes {recipe} first"
        )
    return _fit_on_held_out({fold: list(_score_rows(_scores_file(out, recipe, fold)).values()) for fold in folds})


def _fit_on_held_out(tables: dict[str, list[dict]]) -> dict:
    """The out-of-source rule fitted on the held-out rows of each fold's scores, every fold its own group."""
    fitting = [(r, fold) for fold, rows in tables.items() for r in rows if r["part"] == "held_out"]
    return fit_rule(
        np.array([float(r["logit"]) for r, _ in fitting]),
        np.array([int(r["label"]) for r, _ in fitting]),
        np.array([fold for _, fold in fitting]),
    )


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
    """{"part|item": its row} of a scores file written by `_write_scores`."""
    with open(path, newline="") as handle:
        return {f"{row.get('part', 'held_out')}|{row['item']}": row for row in csv.DictReader(handle)}


def _read_scores(path: Path) -> list[tuple[str, int, float, str]]:
    """(item, label, logit, told) of the left-out files of a fold, sorted by item."""
    try:
        rows = _score_rows(path)
    except OSError:
        return []
    held = [r for r in rows.values() if r.get("part", "held_out") == "held_out"]
    return sorted((r["item"], int(r["label"]), float(r["logit"]), r.get("told", "")) for r in held)
