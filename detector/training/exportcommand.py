"""The `export-onnx` command: write a checkpoint's ONNX export beside its weights (or into the cache)."""

from __future__ import annotations

import os
from pathlib import Path

from ..backends import find_or_export
from ..checkpoint import load_checkpoint
from ..settings import CoreSettings
from .export import export_onnx


def register(commands, add_model_options) -> None:
    p = commands.add_parser("export-onnx", help="export a checkpoint to ONNX (frame encoder and sequence head)")
    add_model_options(p)
    p.add_argument("--out", default=None, help="output folder (default: beside the weights when writable, else the cache)")
    p.add_argument("--int8", action="store_true", help="also write a dynamically int8-quantised encoder")
    p.set_defaults(run=run_export, heartbeat=True)


def run_export(args) -> int:
    checkpoint = load_checkpoint(args.model)
    out = Path(args.out) if args.out else (checkpoint.path if checkpoint.path and os.access(checkpoint.path, os.W_OK) else None)
    folder = export_onnx(checkpoint, out, int8=args.int8) if out else find_or_export(checkpoint, CoreSettings.from_env().cache_folder("onnx"), args.int8)
    for name in sorted(p.name for p in folder.glob("*.onnx")):
        print(f"{folder / name}  {(folder / name).stat().st_size / 1e6:.1f} MB")
    return 0
