"""Two views of the same faces, combined: the fast MobileNetV3-LSTM and the accurate CLIP-LSTM.

    det = Detector.load("default+runs/accurate")   # or --model default+FOLDER, DEEPFAKE_MODEL=default+FOLDER

`PairedViews` is the `TrackScorer` (detector/scoring.py) such a detector takes: two `SingleView`s. Faces are found,
tracked and cropped once; both models score every track. A track's fake probability is the mean of the two
calibrated probabilities (the stacked one under `stack`). A "fake" needs two opinions to agree: on real
faces the pair labels fewer of them fake than either view alone. How it answers is the accurate view's `pair` section (config.json, `PairConfig`):
- `agree` (the rule until December 2026): the verdict both views give, else `uncertain`;
- `veto`: "fake" where both say fake; "real" where one view says real and the other does not say fake; `uncertain`
  where one says fake and the other does not, or where neither decides;
- `stack`: one probability learned from both views' calibrated logits on validation (training/rule.py), judged by
  its own threshold and band, and a "fake" still needs two opinions (alone, the stacked rule labelled up to 8% of the
  reals of sources it never saw fake): the accurate view's heads, and the fast view or the accurate view's linear
  probe (where it has one, `ArchitectureConfig.probe`); the timeline's frame scores are stacked the same way, so the
  probability a user reads is the one the verdict's band applies to. Fitted with one fast view: with another, the
  pair falls back to `agree`.
Where the accurate view finds a face unlike the faces it learned from (a checkpoint with `unfamiliar_above`), the
answer is `uncertain`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

from .config import PairConfig
from .decision import calibrated, decide
from .errors import ModelFormatError
from .report import ModelInfo
from .scoring import SingleView, TrackScores

log = logging.getLogger(__name__)


@dataclass
class PairedScores(TrackScores):
    fast: float = 0.0  # the fast view's calibrated probability
    accurate: float = 0.0  # the accurate view's


class PairedViews:
    """The fast and the accurate view over the same crops: a `TrackScorer`."""

    def __init__(self, fast: SingleView, accurate: SingleView):
        mine, theirs = fast.config.preprocessing, accurate.config.preprocessing
        if (mine.input_size, mine.crop_margin) != (theirs.input_size, theirs.crop_margin):
            raise ModelFormatError("the two models crop faces differently (input size or margin): they cannot share crops")
        self.fast, self.accurate = fast, accurate
        # The fast view's detector settings, crops, backend and Grad-CAM; the accurate view rides on the same crops.
        self.checkpoint, self.backend = fast.checkpoint, fast.backend
        self.pair = self._rule(accurate.config.pair, fast)
        # The rule reported (threshold, band) is the stacked one, or the accurate view's (the fast view can only
        # withhold).
        decision = accurate.config.decision
        if self.pair.rule == "stack":
            decision = replace(
                decision,
                threshold=self.pair.threshold,
                uncertain_band=list(self.pair.uncertain_band),
                unfamiliar_above=None,
            )
        self.config = replace(fast.config, decision=decision)

    @staticmethod
    def _rule(pair: PairConfig, fast: SingleView) -> PairConfig:
        if pair.rule == "stack" and pair.fast_revision != fast.checkpoint.revision:
            log.warning("the stacked rule was fitted with another fast view (%s): the views must agree instead", pair.fast_revision)
            return PairConfig(rule="agree")
        return pair

    @property
    def model_info(self) -> ModelInfo:
        fast, accurate = self.fast.model_info, self.accurate.model_info
        return ModelInfo(
            id=f"{fast.id}+{accurate.id}",
            revision=f"{fast.revision}+{accurate.revision}",
            architecture=f"{fast.architecture}+{accurate.architecture}",
            input_size=fast.input_size,
            trained=fast.trained and accurate.trained,
            backend=fast.backend,
            members=[fast, accurate],
        )

    def score(self, tracks, crops, progress) -> list[TrackScores]:
        fast = self.fast.score(tracks, crops, progress)
        accurate = self.accurate.score(tracks, crops, None)
        paired = []
        combine = self._stacked if self.pair.rule == "stack" else lambda p, q: (p + q) / 2
        for a, b in zip(fast, accurate):
            frames = {p: combine(a.frame_probabilities[p], b.frame_probabilities[p]) for p in a.frame_probabilities}
            probability = combine(a.probability, b.probability)
            paired.append(
                PairedScores(a.track, frames, probability, b.unfamiliar, b.probe_fake, fast=a.probability, accurate=b.probability)
            )
        return paired

    def _stacked(self, fast: float, accurate: float) -> float:
        """The stacked pair's calibrated probability from the two views' calibrated probabilities."""
        w_fast, w_accurate, intercept = self.pair.weights
        z = w_fast * _logit(fast) + w_accurate * _logit(accurate) + intercept
        return calibrated(z, self.pair.temperature, self.pair.bias)

    def decide(self, scores: list[TrackScores]) -> tuple[str, float | None, float | None]:
        if not scores:
            return "no_face", None, None
        worst = max(scores, key=lambda s: s.probability)
        if self.pair.rule == "stack":
            verdict, confidence = decide(worst.probability, self.config.decision)
            # A "fake" needs two opinions: the stack alone labelled unseen reals fake. Beside the accurate view's heads,
            # the second is the fast view or the accurate view's probe (the fast view scores sources it never saw at
            # chance: alone as the second, it withheld every fake of theirs).
            second = bool(worst.probe_fake) or decide(worst.fast, self.fast.config.decision)[0] == "fake"
            both_fake = second and decide(worst.accurate, self.accurate.config.decision)[0] == "fake"
            if verdict == "fake" and not both_fake:
                return "uncertain", worst.probability, max(worst.probability, 1.0 - worst.probability)
            return verdict, worst.probability, confidence
        fast, _ = decide(worst.fast, self.fast.config.decision)
        accurate, _ = decide(worst.accurate, self.accurate.config.decision)
        p = worst.probability
        verdict = pair_verdict(fast, accurate, self.pair.rule)
        if worst.unfamiliar or verdict == "uncertain":
            return "uncertain", p, max(p, 1.0 - p)
        return verdict, p, p if verdict == "fake" else 1.0 - p

    def heatmaps(self, key_frames, found, scores):
        """The fast view's Grad-CAM maps, towards the side of the pair's threshold each track is on."""
        return self.fast.heatmaps(key_frames, found, scores, self.config.decision.threshold)


def pair_verdict(fast: str, accurate: str, rule: str) -> str:
    """The pair's answer from the two views' answers (fake / real / uncertain) under `rule` (see the module's doc)."""
    if fast == accurate:
        return fast
    if rule == "veto" and "fake" not in (fast, accurate):
        return "real"  # one view says real, the other cannot tell
    return "uncertain"


def _logit(p: float) -> float:
    p = min(max(p, 1e-7), 1 - 1e-7)
    return math.log(p) - math.log1p(-p)
