"""What every command-line entry point shares: the model options, and running a parsed sub-command with one
`error:` line and an exit status for failures (`python -m detector`, `python -m detector.training`, `deepfake-hub`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from contextlib import nullcontext

from .errors import DetectorError
from .settings import ServingSettings, SettingsError, from_env

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        default=from_env(ServingSettings).model,
        help="'default' (fast), 'accurate' (CLIP-backed; needs `clip-fetch`), a checkpoint folder, a Hub id "
        "org/name[@revision], or two joined by '+' (default+accurate: both views) (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")


def add_quiet_option(commands: argparse._SubParsersAction) -> None:
    for sub in commands.choices.values():  # every command, wherever it is registered
        sub.add_argument("--quiet", action="store_true", help="no progress bar or progress lines on stderr")


def heartbeat(args: argparse.Namespace, stream=None):
    """"still running" about every 10 s for a command that cannot count its steps (it sets `heartbeat=True` as a
    parser default); commands with bars of their own (analyze, the training commands) do not."""
    from .progress import Heartbeat

    if not getattr(args, "heartbeat", False) or getattr(args, "quiet", False):
        return nullcontext()
    return Heartbeat(args.command, stream=stream if stream is not None else sys.stderr)


def run_command(parser: argparse.ArgumentParser, argv: list[str] | None = None) -> int:
    """Parse, run the chosen sub-command (`args.run`), and turn failures into one `error:` line and an exit status:
    the shared behaviour of every command-line entry point."""
    logging.basicConfig(level=logging.WARNING, format="warning: %(message)s", stream=sys.stderr)
    args = parser.parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        with heartbeat(args):
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


def main_of(build_parser: Callable[[str | None], argparse.ArgumentParser], argv: list[str] | None = None) -> int:
    """A command-line entry point: the parser for the command named in `argv` (settings it reads may be wrong: one
    `error:` line and the usage status), then `run_command`."""
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    try:
        parser = build_parser(command)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return run_command(parser, argv)
