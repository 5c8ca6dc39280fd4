"""What the hand-written pages document: the environment variables named in one section of a README."""

from __future__ import annotations

import re


def documented_variables(text: str, start: str, end: str) -> set[str]:
    """The `DEEPFAKE_*` names quoted between the headings `start` and `end` of `text`."""
    section = text[text.index(start) : text.index(end)]
    return set(re.findall(r"`(DEEPFAKE_[A-Z0-9_]+)`", section))
