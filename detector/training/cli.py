"""Command line of the training shell: `python -m detector.training COMMAND` (or `deepfake-train COMMAND`).

    train        train a MobileNetV3-LSTM checkpoint          (detector/training/train.py)
    evaluate     score a checkpoint on a labelled dataset     (detector/training/evaluate.py)
    compare      compare checkpoints on one dataset           (detector/training/evaluate.py)
    crossval     the cross-source protocol                    (detector/training/crossval.py)
    train-clip   the CLIP-backed "accurate" heads             (detector/training/cliptrain.py)
    export-onnx  the ONNX export serving runs                 (detector/training/export.py)

`python -m detector COMMAND` forwards here for these commands. Only the module of the command about to run is
imported (each pulls in PyTorch).
"""

from __future__ import annotations

import argparse
from importlib import import_module

from ..commandline import add_model_options, add_quiet_option, main_of

# command -> the module (in this package) that registers and runs it; a module registers all of its commands
COMMANDS: dict[str, str] = {
    "train": "train",
    "evaluate": "evaluate",
    "compare": "evaluate",
    "crossval": "crossval",
    "train-clip": "cliptrain",
    "export-onnx": "exportcommand",
}


def register_commands(commands: argparse._SubParsersAction, add_model_options, command: str | None = None) -> None:
    """Add the training commands to `commands`: the one about to run (`command`), or all of them."""
    modules = dict.fromkeys(COMMANDS.values()) if command not in COMMANDS else {COMMANDS[command]: None}
    for module in modules:
        import_module(f".{module}", __package__).register(commands, add_model_options)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m detector.training", description="Train, evaluate and export deepfake detection checkpoints."
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register_commands(commands, add_model_options, command)
    add_quiet_option(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    return main_of(build_parser, argv)
