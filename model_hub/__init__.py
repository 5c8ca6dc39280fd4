"""Checkpoints: the embedded default (`model_hub/default/`) and Hugging Face Hub pull/push, cards and checks.

Loading by name (`default`, a folder, `org/name[@revision]`) is the core's job (`detector.load`); the Hub I/O
itself lives in `detector.hub`. This package is the maintainers' side: `python -m model_hub pull|push|card|ls|check`,
the model card generator (`model_hub.card`) and the folder check (`model_hub.check`). Import from those modules:
the card generator reads evaluation files with the `train` extra, which pulling a checkpoint does not need.
"""
