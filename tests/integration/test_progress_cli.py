"""Progress of the command line's long work: every command takes --quiet, and a command whose stderr is a pipe says
when it finished (the training and export commands pull in torch: the `train` extra)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytest.importorskip("torch")


def test_every_command_takes_quiet_and_a_piped_command_says_it_finished(tmp_path):
    from detector.cli import EXTRA_COMMANDS, build_parser

    for command in ["analyze", *EXTRA_COMMANDS]:
        assert "--quiet" in build_parser(command)._subparsers._group_actions[0].choices[command].format_help()
    # export-onnx of a folder that holds no checkpoint fails at once; stderr is a pipe, so the line says it ended.
    done = subprocess.run(
        [sys.executable, "-m", "detector", "export-onnx", "--model", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode != 0 and "export-onnx: done in" in done.stderr
    quiet = subprocess.run(
        [sys.executable, "-m", "detector", "export-onnx", "--model", str(tmp_path), "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "done in" not in quiet.stderr and quiet.stderr.startswith("error:")
