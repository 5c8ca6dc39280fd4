"""Two views of the same faces, combined: the fast MobileNetV3-LSTM and the accurate CLIP-LSTM.

    det = Detector.load("default+runs/accurate")   # or --model default+FOLDER, DEEPFAKE_MODEL=default+FOLDER

Faces are found, tracked and cropped once; both models score every track. A track's fake probability is the mean
of the two calibrated probabilities. The verdict is the one both views give; where they disagree, or where the
accurate view finds a face unlike the faces it learned from, it is `uncertain`. A "fake" therefore needs both
views to say so: on real faces the pair labels fewer of them fake than either view alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .analyzer import Detector, TrackScores
from .decision import decide
from .errors import ModelFormatError


@dataclass
class PairedScores(TrackScores):
    fast: float = 0.0  # the fast view's calibrated probability
    accurate: float = 0.0  # the accurate view's


class CombinedDetector(Detector):
    def __init__(self, fast: Detector, accurate: Detector):
        mine, theirs = fast.config.preprocessing, accurate.config.preprocessing
        if (mine.input_size, mine.crop_margin) != (theirs.input_size, theirs.crop_margin):
            raise ModelFormatError("the two models crop faces differently (input size or margin): they cannot share crops")
        # The fast view's detector settings, crops and Grad-CAM; the accurate view rides on the same crops. The rule
        # reported (threshold, band) is the accurate view's: the fast view agrees with it or the answer is uncertain.
        self.__dict__.update(fast.__dict__)
        self.config = replace(fast.config, decision=accurate.config.decision)
        self.fast, self.accurate = fast, accurate

    @property
    def model_info(self) -> dict:
        fast, accurate = self.fast.model_info, self.accurate.model_info
        return {
            "id": f"{fast['id']}+{accurate['id']}",
            "revision": f"{fast['revision']}+{accurate['revision']}",
            "architecture": f"{fast['architecture']}+{accurate['architecture']}",
            "input_size": fast["input_size"],
            "trained": fast["trained"] and accurate["trained"],
            "backend": fast["backend"],
            "members": [fast, accurate],
        }

    def _score_tracks(self, tracks, crops, progress) -> list[TrackScores]:
        fast = self.fast._score_tracks(tracks, crops, progress)
        accurate = self.accurate._score_tracks(tracks, crops, None)
        paired = []
        for a, b in zip(fast, accurate):
            frames = {p: (a.frame_probabilities[p] + b.frame_probabilities[p]) / 2 for p in a.frame_probabilities}
            paired.append(PairedScores(a.track, frames, (a.probability + b.probability) / 2, b.unfamiliar, a.probability, b.probability))
        return paired

    def _decide(self, scores: list[TrackScores]) -> tuple[str, float | None, float | None]:
        if not scores:
            return "no_face", None, None
        worst = max(scores, key=lambda s: s.probability)
        fast, _ = decide(worst.fast, self.fast.config.decision)
        accurate, _ = decide(worst.accurate, self.accurate.config.decision)
        p = worst.probability
        if worst.unfamiliar or fast != accurate or fast == "uncertain":
            return "uncertain", p, max(p, 1.0 - p)
        return fast, p, p if fast == "fake" else 1.0 - p
