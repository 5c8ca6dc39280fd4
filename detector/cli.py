"""Command line: `python -m detector analyze PATH [PATH ...]` and the other sub-commands.

Errors the user can act on print one line on stderr and exit non-zero; a traceback only with --debug.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Callable

from .config import FACE_DETECTORS
from .errors import DetectorError, MissingMediaError, UnsupportedMediaError
from .report import Report
from .settings import ServingSettings, SettingsError, from_env

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=from_env(ServingSettings).model,
        help="'default' (fast), 'accurate' (CLIP-backed; needs `clip-fetch`), a checkpoint folder, a Hub id "
        "org/name[@revision], or two joined by '+' (default+accurate: both views) (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command; given the `command` about to run, only the module that implements it is
    imported (the training and evaluation modules pull in PyTorch, which `analyze` should not wait for to say that
    a file is missing)."""
    parser = argparse.ArgumentParser(prog="python -m detector", description="Deepfake detection for images and videos.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    analyze = commands.add_parser("analyze", help="analyse image or video files and print a verdict or Report JSON")
    analyze.add_argument("paths", nargs="+", metavar="PATH_OR_URL", help="files, or http(s) links to posts or media")
    _add_model_options(analyze)
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

    modules = dict.fromkeys(EXTRA_COMMANDS.values())
    if command == "analyze":
        modules = {}
    elif command in EXTRA_COMMANDS:
        modules = {EXTRA_COMMANDS[command]: None}
    for module in modules:  # a module registers all of its commands at once
        __import__(f"detector.{module}", fromlist=["register"]).register(commands, _add_model_options)
    for sub in commands.choices.values():  # every command, wherever it is registered
        sub.add_argument("--quiet", action="store_true", help="no progress bar or progress lines on stderr")
    return parser


# Commands that report their own progress (detector/training/*: a bar on a terminal, a line about every 10 s in a log,
# detector/progress.py); for the others the CLI prints "still running" about every 10 s so long work is never silent.
OWN_PROGRESS = {"train", "evaluate", "compare", "crossval", "train-clip"}


def _heartbeat(args: argparse.Namespace, stream=None):
    from contextlib import nullcontext

    from .progress import Heartbeat

    stream = stream if stream is not None else sys.stderr
    if getattr(args, "command", None) not in EXTRA_COMMANDS or getattr(args, "quiet", False):
        return nullcontext()  # analyze has its own bars; other programs sharing run_command (deepfake-hub) theirs
    if args.command in OWN_PROGRESS:
        return nullcontext()
    return Heartbeat(args.command, stream=stream)


# Sub-commands implemented in their own modules (registered lazily so `analyze` starts fast).
EXTRA_COMMANDS: dict[str, str] = {
    "train": "training.train",
    "evaluate": "training.evaluate",
    "compare": "training.evaluate",
    "export-onnx": "export",
    "crossval": "training.crossval",
    "clip-fetch": "clip",
    "train-clip": "training.cliptrain",
}


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

    set_threads(args.threads)
    options = AnalysisOptions(
        frames=args.frames,
        face_detector=args.faces,
        max_faces=args.max_faces,
        whole_image_fallback=args.whole_image_fallback,
    )
    try:  # a name, a folder, a Hub id, or two joined by "+" (the fast and the accurate view combined)
        detector = Detector.load(args.model, options=options, yunet_path=args.yunet_model)
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
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(command)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_command(parser, argv)


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse, run the chosen sub-command (`args.run`), and turn failures into one `error:` line and an exit status:
    the shared behaviour of every command-line entry point."""
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        with _heartbeat(args):
            return run(args)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except DetectorError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # an unexpected failure: one readable line, the traceback only on request
        if args.debug:
            raise
        print(f"error: unexpected {type(exc).__name__}: {exc} (run with --debug for details)", file=sys.stderr)
        return EXIT_FAILED
