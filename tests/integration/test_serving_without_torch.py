"""The serving install has no PyTorch: the CLI, the server and the demo run on ONNX Runtime alone.

Each test runs a real process on a Python that cannot import torch, torchvision, scikit-learn, SciPy or onnx
(the `train` extra): the interpreter starts without site-packages (`-S`) and finds only a copy of this
environment's packages without those, as on a machine where `pip install .` installed no extras.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT
from tests.integration.test_server_process import ServerProcess, server_env

TRAIN_ONLY = ("torch", "torchvision", "torchgen", "functorch", "nvidia", "triton", "sklearn", "scikit_learn", "scipy", "onnx")


def training_only(entry: str) -> bool:
    """Whether a site-packages entry (module, package or its .dist-info / .libs folder) belongs to the train extra."""
    stem = entry.split("-", 1)[0].split(".", 1)[0].lower()
    return stem in TRAIN_ONLY or stem.startswith(("nvidia", "triton", "scipy"))


@pytest.fixture(scope="module")
def serving_python(tmp_path_factory) -> tuple[list[str], dict]:
    """(command, environment) of a Python whose only packages are this environment's serving ones."""
    site = Path(next(p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()))
    packages = tmp_path_factory.mktemp("serving-site-packages")
    for entry in site.iterdir():
        if not training_only(entry.name) and not entry.name.endswith(".pth"):
            (packages / entry.name).symlink_to(entry)
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{packages}", "HF_HUB_OFFLINE": "1"}
    return [sys.executable, "-S"], env


def run(serving_python, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    python, env = serving_python
    return subprocess.run([*python, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_that_python_has_no_torch_but_has_the_serving_packages(serving_python):
    for module in ("torch", "torchvision", "sklearn", "scipy", "onnx"):
        result = run(serving_python, "-c", f"import {module}")
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, module
    assert run(serving_python, "-c", "import onnxruntime, cv2, av, flask, gradio").returncode == 0


def test_cli_analyze_and_heatmaps_without_torch(serving_python, face_photo, fake_video, yunet_model):
    result = run(serving_python, "-m", "detector", "analyze", str(face_photo), str(fake_video), "--json")
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert reports[0]["verdict"] == "real" and reports[0]["model"]["backend"] == "onnxruntime"
    # the served pair scores the FF++ fake high (0.75 at 16 frames since the accurate view also learned from JPEG
    # copies; 0.95 before); its band's top may leave it "uncertain", never "real"
    assert reports[1]["verdict"] != "real" and reports[1]["fake_probability"] > 0.7
    script = (
        "import sys, detector\n"
        f"analysis = detector.load('default', yunet_path={str(yunet_model)!r}).inspect({str(fake_video)!r}, frames=4, explain=True)\n"
        "assert all(h is not None and h.max() > 0.9 for h in analysis.heatmaps), 'no heatmap'\n"
        "assert not any(m.split('.')[0] in ('torch', 'torchvision', 'sklearn', 'scipy') for m in sys.modules)\n"
        "print(analysis.report.verdict)\n"
    )
    result = run(serving_python, "-c", script)
    assert result.returncode == 0 and result.stdout.strip() == "fake", result.stderr


def test_a_checkpoint_without_its_export_says_what_to_install(serving_python, tmp_path, face_photo):
    folder = tmp_path / "no-export"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        (folder / name).write_bytes((ROOT / "model_hub" / "default" / name).read_bytes())
    result = run(serving_python, "-m", "detector", "analyze", str(face_photo), "--model", str(folder))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "deepfake-checker[train]" in result.stderr and "ONNX export" in result.stderr


def test_server_answers_an_upload_without_torch(serving_python, tmp_path, face_photo):
    python, env = serving_python
    command = [*python, "-m", "server", "--host", "127.0.0.1", "--port", "0"]
    server = ServerProcess(command, {**server_env(tmp_path / "data"), "PYTHONPATH": env["PYTHONPATH"]}, tmp_path / "server.log")
    try:
        server.wait_ready()
        with open(face_photo, "rb") as handle:
            response = requests.post(server.url("/api/v1/analyze?wait=60"), files={"file": handle}, timeout=120)
        assert response.status_code == 200, response.text
        report = response.json()["report"]
        assert report["verdict"] == "real" and report["model"]["backend"] == "onnxruntime"
    finally:
        assert server.stop() == 0


@pytest.mark.slow
def test_demo_answers_without_torch(serving_python, tmp_path, face_photo):
    from gradio_client import handle_file

    from tests.integration.test_gradio_demo import FRAMES, connect, free_port

    python, env = serving_python
    port = free_port()
    env = {**env, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "DEEPFAKE_THREADS": "1"}
    env["DEEPFAKE_DEMO_MEMORY_FILE"] = str(tmp_path / "memory.sqlite")  # the demo's memory, not in the user's cache
    with open(tmp_path / "demo.log", "w") as log:
        process = subprocess.Popen([*python, "-m", "gradio_demo.app"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        client = connect(process, port, tmp_path / "demo.log", tmp_path)
        report, verdict, *_ = client.predict(handle_file(str(face_photo)), "default", FRAMES, api_name="/analyze_file")
        assert report["verdict"] == "real" and verdict["label"] == "real" and report["model"]["backend"] == "onnxruntime"
    finally:
        process.terminate()
        process.wait(timeout=30)


SERVING_ENTRY_POINTS = (
    "detector",
    "detector.analyzer",
    "detector.ensemble",
    "detector.pool",
    "detector.cli",
    "server",
    "server.cli",
    "gradio_demo.app",
)


def test_the_serving_entry_points_never_import_training_or_torch():
    # In this environment PyTorch is installed (the train extra): importing the serving package, its command line
    # (parser included) and the shells must still reach none of the training modules, nor torch.
    probe = (
        "import importlib, json, sys\n"
        f"for name in {SERVING_ENTRY_POINTS!r}:\n"
        "    importlib.import_module(name)\n"
        "import detector.cli\n"
        "detector.cli.build_parser('analyze')\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert "detector.analyzer" in loaded and "server" in loaded  # the probe imported what it names
    training = [m for m in loaded if m.startswith("detector.training") or m.split(".")[0] in ("torch", "torchvision", "sklearn")]
    assert training == []
