"""ONNX Runtime session options every session of the engine shares."""

from __future__ import annotations


def spin_within_runs(options) -> None:
    """Let a session's threads spin between the operators of one run, and stop as soon as the run returns.

    Spinning hands work between a ViT's many small operators without waking sleeping threads (the CLIP tower: 41 ->
    34 ms per crop on 2 cores), but threads left spinning after a run take the cores from whatever runs next (face
    detection, the other view's encoder: 2.5x the CLIP tower's own time inside the pipeline). `force_spinning_stop`
    gives the first without the second: the served pair's image p50 went 63.9 -> 55.3 ms (`python -m bench`).
    """
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
