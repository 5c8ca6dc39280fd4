"""Command line: `python -m model_hub pull|push|card|ls|check`.

Errors print one `error:` line on stderr and exit with status 1 (2 for bad usage); a traceback only with --debug.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from detector.cli import run_command
from detector.paths import human_size

EXIT_OK, EXIT_FAILED = 0, 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m model_hub",
        description="Pull, publish, describe and check MobileNetV3-LSTM checkpoints (Hugging Face Hub).",
        epilog="Environment: HF_ENDPOINT, HF_HOME / HF_HUB_CACHE, HF_TOKEN, HF_HUB_OFFLINE (see README).",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of unexpected errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    pull = commands.add_parser("pull", help="download a checkpoint into the Hugging Face cache; print its path and commit")
    pull.add_argument("repo", metavar="REPO_ID[@REV]", help="e.g. org/name or org/name@v1 (branch, tag or commit)")
    pull.add_argument("--json", action="store_true", help="print one JSON object")
    pull.set_defaults(run=run_pull)

    push = commands.add_parser("push", help="check a checkpoint folder, regenerate its card, upload it in one commit")
    push.add_argument("folder", metavar="DIR")
    push.add_argument("repo", metavar="REPO_ID")
    push.add_argument("--private", action="store_true", help="create the repository as private (if it does not exist)")
    push.add_argument("--revision", default=None, metavar="BRANCH", help="commit to this branch (created if needed)")
    push.add_argument("--message", default=None, help="commit message")
    _add_card_options(push)
    push.set_defaults(run=run_push)

    card = commands.add_parser("card", help="write the model card (README.md) of a checkpoint folder")
    card.add_argument("folder", metavar="DIR")
    card.add_argument("--repo-id", default=None, help="the Hub id the card's usage examples name")
    _add_card_options(card)
    card.set_defaults(run=run_card)

    ls = commands.add_parser("ls", help="list the embedded checkpoint and the checkpoints in the Hub cache")
    ls.add_argument("--json", action="store_true", help="print one JSON list")
    ls.set_defaults(run=run_ls)

    check = commands.add_parser("check", help="validate a checkpoint folder: files, config schema, weights")
    check.add_argument("folder", metavar="DIR")
    check.set_defaults(run=run_check)
    return parser


def _add_card_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", default=None, metavar="EVAL.json", help="metrics.json of `python -m detector evaluate --out`")
    parser.add_argument(
        "--robustness",
        action="append",
        default=[],
        metavar="PERTURBATION=EVAL.json",
        help="metrics of an `evaluate --perturb` run, e.g. jpeg:40=runs/jpeg40/metrics.json (repeatable)",
    )
    parser.add_argument("--split", default=None, help="the split the report measured (default: from the report or 'val')")
    parser.add_argument("--license", default="apache-2.0", help="licence id for the card metadata (default: %(default)s)")
    parser.add_argument("--crossval", default=None, metavar="RESULTS.json", help="results.json of `python -m detector crossval`")


def _card_report(args: argparse.Namespace) -> dict | None:
    from .card import EvaluationReportError, load_report

    robustness = {}
    for item in args.robustness:
        name, sep, file = item.partition("=")
        if not sep or not name or not file:
            raise EvaluationReportError(f"--robustness {item!r}: expected PERTURBATION=EVAL.json, e.g. jpeg:40=metrics.json")
        robustness[name] = file
    if args.report is None:
        if robustness:
            raise EvaluationReportError("--robustness needs --report (the metrics of the unperturbed run)")
        return None
    return load_report(args.report, robustness)


def run_pull(args: argparse.Namespace) -> int:
    from detector.checkpoint import HUB_ID, split_model_name
    from detector.hub import download_checkpoint

    from .check import check_folder

    if not HUB_ID.match(args.repo):
        print(f"error: {args.repo!r} is not a Hub id: expected org/name or org/name@revision", file=sys.stderr)
        return EXIT_FAILED
    repo_id, revision = split_model_name(args.repo)
    folder, commit = download_checkpoint(repo_id, revision)
    result = check_folder(folder)
    if args.json:
        print(
            json.dumps(
                {"repo_id": repo_id, "revision": revision or "main", "commit": commit, "path": str(folder), "ok": result.ok}
            )
        )
    else:
        print(f"{repo_id}@{revision or 'main'}: commit {commit}")
        print(folder)
    return _report_problems(args.repo, result)


def run_push(args: argparse.Namespace) -> int:
    from detector.hub import upload_checkpoint

    from .card import CARD_FILE, write_card
    from .check import check_folder

    folder = Path(args.folder)
    result = check_folder(folder)
    if not result.ok:
        return _report_problems(str(folder), result)
    report = _card_report(args)
    if report is not None or not (folder / CARD_FILE).is_file():
        path = write_card(folder, report, repo_id=args.repo, license=args.license, split=args.split, crossval=args.crossval)
        print(f"wrote {path}" + ("" if report else " (no --report: the card says no figures were measured)"), file=sys.stderr)
    upload = upload_checkpoint(folder, args.repo, private=args.private, branch=args.revision, message=args.message)
    print(f"{upload.repo_id}@{upload.branch}: commit {upload.commit}")
    print(upload.url)
    return EXIT_OK


def run_card(args: argparse.Namespace) -> int:
    from .card import write_card

    if not Path(args.folder, "config.json").is_file():
        print(f"error: {args.folder}: not a checkpoint folder (config.json is missing)", file=sys.stderr)
        return EXIT_FAILED
    path = write_card(
        args.folder, _card_report(args), repo_id=args.repo_id, license=args.license, split=args.split, crossval=args.crossval
    )
    print(path)
    return EXIT_OK


def run_ls(args: argparse.Namespace) -> int:
    from detector.checkpoint import CONFIG_FILE, weights_digest
    from detector.hub import cached_checkpoints
    from detector.paths import EMBEDDED_CHECKPOINTS

    rows = []
    for name, folder in EMBEDDED_CHECKPOINTS.items():
        if (folder / CONFIG_FILE).is_file():
            size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
            revision = weights_digest(folder) if (folder / "model.safetensors").is_file() else "-"
            rows.append({"id": name, "revision": revision, "refs": ["embedded"], "size_bytes": size, "path": str(folder)})
    for cached in cached_checkpoints():
        rows.append(
            {
                "id": cached.repo_id,
                "revision": cached.commit,
                "refs": list(cached.refs),
                "size_bytes": cached.size_bytes,
                "path": str(cached.path),
            }
        )
    if args.json:
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    if not rows:
        print("no checkpoints: no embedded default and nothing in the Hub cache", file=sys.stderr)
        return EXIT_OK
    table = [("ID", "REVISION", "REFS", "SIZE", "PATH")]
    table += [(r["id"], r["revision"][:12], ",".join(r["refs"]) or "-", human_size(r["size_bytes"]), r["path"]) for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[4])
    return EXIT_OK


def run_check(args: argparse.Namespace) -> int:
    from .check import check_folder

    result = check_folder(args.folder)
    if result.ok:
        config = result.config
        print(
            f"ok: {args.folder}: {config.architecture.name}/{config.architecture.backbone}, "
            f"{result.parameters / 1e6:.2f} M parameters, {'trained' if config.trained else 'UNTRAINED'}"
        )
    return _report_problems(args.folder, result)


def _report_problems(where: str, result) -> int:
    for warning in result.warnings:
        print(f"warning: {where}: {warning}", file=sys.stderr)
    for problem in result.problems:
        print(f"error: {where}: {problem}", file=sys.stderr)
    return EXIT_OK if result.ok else EXIT_FAILED


def main(argv: list[str] | None = None) -> int:
    return run_command(build_parser(), argv)
