"""Checkpoints on the Hugging Face Hub: the real huggingface_hub client against a local Hub on 127.0.0.1.

`hub_env` sets what a user would (HF_ENDPOINT at the local Hub, a private HF_HOME, online); tests that need the
network-free path turn HF_HUB_OFFLINE back on. Pull, load by name, pinned revisions, the typed errors, the cache
in offline mode, push with a regenerated model card, and `python -m model_hub` / `python -m detector` end to end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")  # the `train` extra: a serving install runs the other tiers
from huggingface_hub import ModelCard, constants
from safetensors.torch import load_file, save_file

from detector import Detector
from detector.checkpoint import build_untrained, load_checkpoint, save_checkpoint
from detector.config import ModelConfig
from detector.errors import (
    ModelFileMissingError,
    ModelFormatError,
    ModelNotFoundError,
    ModelOfflineError,
    ModelUploadError,
)
from detector.hub import upload_checkpoint
from model_hub.card import EvaluationReportError, build_card, load_report
from model_hub.check import check_folder
from model_hub.cli import main as model_hub_main
from tests.conftest import shared_file
from tests.support.hubserver import LocalHub, model_index_problems

ROOT = Path(__file__).resolve().parents[2]
WRITE_TOKEN = "hf_local_write_token"
REPO = "deepfake-checker/mnv3-lstm"
TRAINING = {
    "data": "../shared/data/faces",
    "command": "python -m detector train --data ../shared/data/faces --out runs/hub-test --epochs 3",
    "options": {
        "train_split": "train",
        "val_split": "val",
        "max_sequence": 8,
        "backbone_weights": "shared",
        "augment": {"crop_scale": [0.7, 1.0], "flip": 0.5, "color": 0.0, "smooth": 0.2, "jpeg": 0.5, "jpeg_quality": [30, 95]},
    },
    "train_samples": 120,
    "val_samples": 40,
    "best_epoch": 2,
    "epochs_run": 3,
    "minutes": 1.5,
    "device": "cpu",
}


def make_checkpoint(folder: Path, seed: int, yunet: Path | None = None, trained: bool = True) -> Path:
    """A small real checkpoint: ImageNet backbone, heads initialised from `seed` (different seeds, different weights)."""
    torch.manual_seed(seed)
    config = ModelConfig()
    config.preprocessing.input_size = 112
    config.preprocessing.frames = 4
    config.trained = trained
    config.training = dict(TRAINING) if trained else {}
    checkpoint = build_untrained(config)
    save_checkpoint(folder, checkpoint.model, config)
    if yunet is not None:
        shutil.copy(yunet, folder / yunet.name)
    return folder


def evaluation_report(accuracy: float = 0.8125) -> dict:
    group = lambda n, acc, auc: {"n": n, "accuracy": acc, "roc_auc": auc}  # noqa: E731
    return {
        "n": 40,
        "accuracy": accuracy,
        "precision": 0.8,
        "recall": 0.75,
        "f1": 0.7742,
        "roc_auc": 0.8731,
        "eer": 0.2,
        "ece": 0.061,
        "threshold": 0.47,
        "no_face_rate": 0.025,
        "confusion": {"tp": 12, "fp": 3, "tn": 21, "fn": 4},
        "per_source": {"ffpp": group(16, 0.75, 0.81), "lfw": group(14, 0.8571, 0.9), "utkface": group(10, 0.9, None)},
        "per_method": {"-": group(24, 0.875, None), "deepfakes": group(8, 0.75, None), "face2face": group(8, 0.625, None)},
    }


@pytest.fixture(scope="module")
def checkpoint_a(tmp_path_factory, yunet_model) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("checkpoint-a"), seed=1, yunet=yunet_model)


@pytest.fixture(scope="module")
def checkpoint_b(tmp_path_factory) -> Path:
    return make_checkpoint(tmp_path_factory.mktemp("checkpoint-b"), seed=2)


@pytest.fixture
def hub():
    with LocalHub(tokens=(WRITE_TOKEN,)) as hub:
        yield hub


def set_offline(monkeypatch, offline: bool) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1" if offline else "0")
    # The client reads HF_HUB_OFFLINE once, when it is imported; a user sets it before starting Python.
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline)


@pytest.fixture
def hub_env(hub, tmp_path, monkeypatch) -> LocalHub:
    """What a user sets to work with `hub`: HF_ENDPOINT, their own HF_HOME, no token, online."""
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    set_offline(monkeypatch, False)
    return hub


def weights_of(checkpoint) -> dict[str, torch.Tensor]:
    return checkpoint.model.state_dict()


def comparable(report) -> dict:
    """A Report without what legitimately differs between two loads of the same weights."""
    data = report.to_dict()
    data.pop("timings_ms")
    data["model"] = {k: v for k, v in data["model"].items() if k not in ("id", "revision")}
    return data


# ---------------------------------------------------------------------------------------------- pull and load


def test_pull_then_analyze_gives_the_same_report_as_the_local_folder(hub_env, checkpoint_a, face_photo, tmp_path):
    commit = hub_env.add_folder(REPO, checkpoint_a)

    pulled = Detector.load(REPO)
    local = Detector.load(str(checkpoint_a))

    assert pulled.checkpoint.id == REPO and pulled.checkpoint.revision == commit
    assert pulled.checkpoint.path.is_relative_to(tmp_path / "hf-home" / "hub")
    assert sorted(p.name for p in pulled.checkpoint.path.iterdir()) == sorted(p.name for p in checkpoint_a.iterdir())
    from_hub, from_folder = pulled.analyze(face_photo, face_detector="yunet"), local.analyze(face_photo, face_detector="yunet")
    assert from_hub.verdict != "no_face" and from_hub.fake_probability is not None
    assert comparable(from_hub) == comparable(from_folder)
    assert from_hub.model.id == REPO and from_hub.model.revision == commit
    # The large files came from the "CDN" the Hub redirects to, which never sees the user's token.
    assert {path.rsplit("/", 1)[0] for _, path, _ in hub_env.cdn_requests} == {"/lfs"}
    assert not any(has_token for _, _, has_token in hub_env.cdn_requests)


def test_pull_command_prints_path_and_commit_and_ls_lists_the_cache(hub_env, checkpoint_a, tmp_path, monkeypatch, capsys):
    commit = hub_env.add_folder(REPO, checkpoint_a)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "elsewhere"))  # HF_HUB_CACHE wins over HF_HOME

    assert model_hub_main(["pull", REPO]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{REPO}@main: commit {commit}"
    assert Path(out[1]) == tmp_path / "elsewhere" / "models--deepfake-checker--mnv3-lstm" / "snapshots" / commit
    assert (Path(out[1]) / "model.safetensors").is_file()

    assert model_hub_main(["ls", "--json"]) == 0
    listed = {row["id"]: row for row in json.loads(capsys.readouterr().out)}
    assert listed[REPO]["revision"] == commit and listed[REPO]["refs"] == ["main"]
    assert listed["default"]["refs"] == listed["accurate"]["refs"] == ["embedded"]  # both ship in the repository
    assert listed[REPO]["size_bytes"] == sum(p.stat().st_size for p in checkpoint_a.iterdir())
    assert model_hub_main(["ls"]) == 0
    table = capsys.readouterr().out
    assert REPO in table and commit[:12] in table and "MB" in table


def test_a_pinned_revision_is_honoured(hub_env, checkpoint_a, checkpoint_b):
    first = hub_env.add_folder(REPO, checkpoint_a, message="v1")
    hub_env.tag(REPO, "v1")
    latest = hub_env.add_folder(REPO, checkpoint_b, message="v2")
    weights_a, weights_b = load_file(str(checkpoint_a / "model.safetensors")), load_file(str(checkpoint_b / "model.safetensors"))
    assert not torch.equal(weights_a["clip_head.1.weight"], weights_b["clip_head.1.weight"])

    for name, revision, expected in [
        (REPO, None, (latest, weights_b)),
        (f"{REPO}@v1", None, (first, weights_a)),
        (f"{REPO}@{first}", None, (first, weights_a)),
        (REPO, first, (first, weights_a)),
        (f"{REPO}@main", None, (latest, weights_b)),
    ]:
        checkpoint = load_checkpoint(name, revision)
        assert checkpoint.revision == expected[0], name
        loaded = weights_of(checkpoint)
        assert all(torch.equal(loaded[key], tensor) for key, tensor in expected[1].items()), name


def test_offline_a_pulled_model_loads_and_an_unpulled_one_fails_at_once(hub_env, checkpoint_a, monkeypatch):
    commit = hub_env.add_folder(REPO, checkpoint_a)
    hub_env.add_folder("deepfake-checker/never-pulled", checkpoint_a)
    load_checkpoint(REPO)

    set_offline(monkeypatch, True)
    seen = len(hub_env.requests)
    assert load_checkpoint(REPO).revision == commit
    assert load_checkpoint(f"{REPO}@{commit}").revision == commit
    with pytest.raises(ModelOfflineError, match="not in the local cache.*HF_HUB_OFFLINE"):
        load_checkpoint("deepfake-checker/never-pulled")
    with pytest.raises(ModelOfflineError):
        load_checkpoint(f"{REPO}@v2")  # a revision never pulled
    # Nothing was asked of the Hub: offline means no request at all, hence no waiting on one.
    assert len(hub_env.requests) == seen and hub_env.cdn_requests


def test_unreachable_hub_without_a_cached_copy_is_an_offline_error(hub_env, monkeypatch):
    hub_env.stop()  # nothing listens on that port any more
    with pytest.raises(ModelOfflineError, match="cannot be reached"):
        load_checkpoint(REPO)


def test_unknown_repository_revision_and_missing_file_are_typed_errors(hub_env, checkpoint_a):
    hub_env.add_folder(REPO, checkpoint_a)
    hub_env.add_commit("deepfake-checker/config-only", {"config.json": (checkpoint_a / "config.json").read_bytes()})

    with pytest.raises(ModelNotFoundError, match="no such model repository"):
        load_checkpoint("deepfake-checker/does-not-exist")
    with pytest.raises(ModelNotFoundError, match="no such revision"):
        load_checkpoint(f"{REPO}@no-such-branch")
    with pytest.raises(ModelFileMissingError, match="has no model.safetensors"):
        load_checkpoint("deepfake-checker/config-only")
    assert issubclass(ModelFileMissingError, ModelFormatError)


def test_architecture_and_format_mismatches_on_the_hub_are_refused(hub_env, checkpoint_a):
    config = json.loads((checkpoint_a / "config.json").read_text())
    weights = (checkpoint_a / "model.safetensors").read_bytes()
    smaller = json.loads(json.dumps(config))
    smaller["architecture"]["lstm_hidden"] = 64
    newer = dict(config, format_version=99)
    hub_env.add_commit("deepfake-checker/mismatch", {"config.json": json.dumps(smaller).encode(), "model.safetensors": weights})
    hub_env.add_commit("deepfake-checker/future", {"config.json": json.dumps(newer).encode(), "model.safetensors": weights})

    with pytest.raises(ModelFormatError, match=r"deepfake-checker/mismatch@\w{12}: .*do not match.*wrong shape"):
        load_checkpoint("deepfake-checker/mismatch")
    with pytest.raises(ModelFormatError, match="format version 99"):
        load_checkpoint("deepfake-checker/future")


def test_a_private_repository_needs_hf_token(hub_env, checkpoint_a, monkeypatch):
    commit = hub_env.add_folder("deepfake-checker/private", checkpoint_a, private=True)

    with pytest.raises(ModelNotFoundError, match="private: set HF_TOKEN"):
        load_checkpoint("deepfake-checker/private")
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
    assert load_checkpoint("deepfake-checker/private").revision == commit


# ---------------------------------------------------------------------------------------------- check


def test_check_accepts_a_checkpoint_and_rejects_mismatched_weights(checkpoint_b, tmp_path, capsys):
    assert model_hub_main(["check", str(checkpoint_b)]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {checkpoint_b}: mobilenetv3-lstm/mobilenet_v3_small")

    broken = shutil.copytree(checkpoint_b, tmp_path / "broken")
    state = load_file(str(broken / "model.safetensors"))
    state["lstm.weight_hh_l0"] = state["lstm.weight_hh_l0"][:, :64].contiguous()
    del state["clip_head.1.bias"]
    save_file(state, str(broken / "model.safetensors"))
    assert model_hub_main(["check", str(broken)]) == 1
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert "weights do not match" in errors[0] and "clip_head.1.bias" in errors[0] and "lstm.weight_hh_l0" in errors[0]
    assert "Traceback" not in errors[0]


def test_check_names_every_problem_of_a_folder(tmp_path, checkpoint_b):
    folder = shutil.copytree(checkpoint_b, tmp_path / "folder")
    (folder / "model.safetensors").unlink()
    (folder / "pytorch_model.bin").write_bytes(b"pickle")
    data = json.loads((folder / "config.json").read_text())
    data["decision"]["threshold"] = 2.0
    (folder / "config.json").write_text(json.dumps(data))

    result = check_folder(folder)
    assert not result.ok
    assert any("model.safetensors is missing" in p for p in result.problems)
    assert any("pickle" in p and "pytorch_model.bin" in p for p in result.problems)
    assert any("uncertain_band" in p for p in result.problems)
    assert any("no model card" in w for w in result.warnings)


# ---------------------------------------------------------------------------------------------- cards


def test_the_card_tells_the_truth_about_data_training_and_metrics(checkpoint_b, tmp_path):
    folder = shutil.copytree(checkpoint_b, tmp_path / "card")
    (tmp_path / "metrics.json").write_text(json.dumps(evaluation_report()))
    (tmp_path / "jpeg40.json").write_text(json.dumps(evaluation_report(accuracy=0.7)))
    report = load_report(tmp_path / "metrics.json", {"jpeg:40": tmp_path / "jpeg40.json"})

    card = build_card(folder, report, repo_id=REPO)
    meta = card.data.to_dict()
    assert (
        meta["license"] == "apache-2.0" and meta["library_name"] == "pytorch" and meta["pipeline_tag"] == "image-classification"
    )
    assert {"deepfake-detection", "mobilenetv3", "lstm"} <= set(meta["tags"])
    assert meta["datasets"] == ["FaceForensics++", "LFW", "UTKFace"]
    assert model_index_problems(meta["model-index"]) == []
    results = {(r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results if r.dataset_split == "val"}
    assert results[("all", "accuracy")] == 0.8125 and results[("all", "roc_auc")] == 0.8731
    assert results[("ffpp", "roc_auc")] == 0.81 and results[("lfw", "accuracy")] == 0.8571
    assert ("utkface", "roc_auc") not in results  # undefined for a source of real faces only: left out, not 0
    assert results[("all+jpeg:40", "accuracy")] == 0.7

    text = card.text
    assert TRAINING["command"] in text
    augment = next(line for line in text.splitlines() if line.startswith("- augmentation"))
    assert "JPEG re-encoding (quality 30–95) 50%" in augment and "edge-preserving (beauty-filter) smoothing 20%" in augment
    assert "mirroring 50%" in augment and "random crops of 70%–100% of the area" in augment and "colour" not in augment
    assert "| `ffpp` | 16 | 0.7500 | 0.8100 |" in text and "| `face2face` | 8 | 0.6250 | n/a |" in text
    assert "re-encoded as JPEG quality 40 | 0.7000" in text
    assert "diffusion models" in text and "Lip-sync" in text  # not in this training data
    assert "ImageNet-pretrained" in text and "v3-small_224_1.0_uint8" in text and "Apache-2.0" in text
    assert "UNTRAINED" not in text
    assert f"python -m model_hub pull {REPO}" in text


def test_the_card_gives_bootstrap_intervals_when_the_per_file_scores_are_beside_the_report(checkpoint_b, tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps(evaluation_report()))
    rows = ["path,label,source,method,fake_probability,verdict,no_face"]
    # ffpp: 4 fakes, 4 reals, one pair out of order (AUC 15/16); lfw: perfectly separated; utkface: reals only
    for i, (label, p) in enumerate([(1, 0.9), (1, 0.8), (1, 0.7), (1, 0.35), (0, 0.1), (0, 0.2), (0, 0.3), (0, 0.4)]):
        rows.append(f"f{i}.jpg,{label},ffpp,deepfakes,{p},x,False")
    rows += [f"l{i}.jpg,{i % 2},lfw,,{0.2 + 0.6 * (i % 2)},x,False" for i in range(6)]
    rows += ["u.jpg,0,utkface,,0.1,x,False"]
    (tmp_path / "scores.csv").write_text("\n".join(rows) + "\n")

    report = load_report(tmp_path / "metrics.json")
    assert report["intervals"]["per_source"]["lfw"] == [1.0, 1.0] and report["intervals"]["per_source"]["utkface"] is None
    low, high = report["intervals"]["per_source"]["ffpp"]
    assert low < 15 / 16 <= high
    text = build_card(shutil.copytree(checkpoint_b, tmp_path / "card"), report).text
    assert "| source | files | accuracy | ROC AUC | 95% interval |" in text
    assert (
        f"| `ffpp` | 16 | 0.7500 | 0.8100 | {low:.2f}–{high:.2f} |" in text and "| `utkface` | 10 | 0.9000 | n/a | n/a |" in text
    )
    assert "bootstrap" in text

    (tmp_path / "scores.csv").write_text("not,the,scores\n1,2,3\n")
    with pytest.raises(EvaluationReportError, match="scores.csv: not the per-file scores"):
        load_report(tmp_path / "metrics.json")


def test_the_card_names_an_onnx_export_as_such_and_a_face_detector_as_such(checkpoint_b, tmp_path):
    from detector.training.export import export_onnx

    folder = shutil.copytree(checkpoint_b, tmp_path / "exported")
    export_onnx(load_checkpoint(str(folder)), folder)
    shutil.copy(shared_file("models/face_detection_yunet.onnx"), folder / "face_detection_yunet.onnx")
    files_row = next(line for line in build_card(folder).text.splitlines() if line.startswith("| files |"))
    assert "`encoder.onnx`, `sequence.onnx` (ONNX export of these weights, `onnx.json`)" in files_row
    assert "`face_detection_yunet.onnx` (face detector)" in files_row
    assert "`encoder.onnx` (face detector)" not in files_row
    assert not any("onnx" in w for w in check_folder(folder).warnings)

    # new weights in the folder, the old export left behind: the card and check say the export is stale
    state = load_file(str(folder / "model.safetensors"))
    state["clip_head.1.bias"] = state["clip_head.1.bias"] + 1.0
    save_file(state, str(folder / "model.safetensors"))
    files_row = next(line for line in build_card(folder).text.splitlines() if line.startswith("| files |"))
    assert "ONNX export of these weights" not in files_row
    assert "`encoder.onnx`, `sequence.onnx` (**stale** ONNX export of other weights" in files_row
    assert any("onnx.json: the ONNX export was made from other weights" in w for w in check_folder(folder).warnings)


def test_an_untrained_checkpoint_says_so_and_claims_no_figures(tmp_path):
    folder = make_checkpoint(tmp_path / "untrained", seed=3, trained=False)
    card = build_card(folder)
    assert "untrained" in card.data.tags and "model-index" not in card.data.to_dict()
    assert "**UNTRAINED.**" in card.text and "no measured figures" in card.text
    assert "Not recorded" in card.text and "Calibration" not in card.text


def test_a_file_that_is_not_an_evaluation_report_is_refused(tmp_path, checkpoint_b, capsys):
    (tmp_path / "scores.json").write_text(json.dumps({"accuracy": 0.9}))
    with pytest.raises(EvaluationReportError, match="missing n, precision"):
        load_report(tmp_path / "scores.json")
    assert model_hub_main(["card", str(checkpoint_b), "--report", str(tmp_path / "nope.json")]) == 1
    assert capsys.readouterr().err.strip().endswith("no such evaluation report")


# ---------------------------------------------------------------------------------------------- push


def test_push_creates_a_repository_that_pull_restores_and_check_accepts(hub_env, checkpoint_a, tmp_path, monkeypatch, capsys):
    folder = shutil.copytree(checkpoint_a, tmp_path / "to-publish")
    (tmp_path / "metrics.json").write_text(json.dumps(evaluation_report()))
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)

    code = model_hub_main(["push", str(folder), REPO, "--private", "--report", str(tmp_path / "metrics.json")])
    assert code == 0, capsys.readouterr().err
    first_line = capsys.readouterr().out.splitlines()[0]
    commit = hub_env.repos[REPO].refs["main"]
    assert first_line == f"{REPO}@main: commit {commit}" and hub_env.repos[REPO].private
    assert set(hub_env.files(REPO)) == {
        ".gitattributes",
        "config.json",
        "model.safetensors",
        "README.md",
        "face_detection_yunet.onnx",
    }

    monkeypatch.setenv("HF_HOME", str(tmp_path / "another-machine"))
    pulled = load_checkpoint(REPO)
    assert pulled.revision == commit
    for name in ("config.json", "model.safetensors", "README.md", "face_detection_yunet.onnx"):
        assert (pulled.path / name).read_bytes() == (folder / name).read_bytes(), name
    result = check_folder(pulled.path)
    assert result.ok and result.warnings == []
    card = ModelCard.load(pulled.path / "README.md")
    assert {(r.dataset_config, r.metric_type): r.metric_value for r in card.data.eval_results}[("all", "accuracy")] == 0.8125
    assert f"--model {REPO} --json" in card.text


def test_a_checkpoint_pushed_with_its_export_is_served_without_building_the_network(hub_env, checkpoint_a, tmp_path, monkeypatch):
    from detector import Detector
    from detector.training.export import export_onnx

    folder = shutil.copytree(checkpoint_a, tmp_path / "exported")
    export_onnx(load_checkpoint(str(folder)), folder)
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
    assert model_hub_main(["push", str(folder), REPO]) == 0
    assert {"encoder.onnx", "sequence.onnx", "onnx.json"} <= set(hub_env.files(REPO))

    monkeypatch.setenv("HF_HOME", str(tmp_path / "another-machine"))
    monkeypatch.setenv("DEEPFAKE_CACHE_DIR", str(tmp_path / "no-cached-exports"))
    pulled = load_checkpoint(REPO)
    detector = Detector(pulled, backend="onnx")
    assert detector.backend.folder == pulled.path  # the pulled export, not one made into the cache
    assert pulled._model is None  # PyTorch's network was never built: a serving install has no PyTorch
    assert not (tmp_path / "no-cached-exports").exists()


def test_push_to_a_branch_leaves_main_alone_and_drops_stale_files(
    hub_env, checkpoint_a, checkpoint_b, tmp_path, monkeypatch, capsys
):
    monkeypatch.setenv("HF_TOKEN", WRITE_TOKEN)
    main_commit = hub_env.add_folder(REPO, checkpoint_a)  # holds a face detector file
    folder = shutil.copytree(checkpoint_b, tmp_path / "candidate")

    assert model_hub_main(["push", str(folder), REPO, "--revision", "candidate"]) == 0
    assert "no --report" in capsys.readouterr().err
    assert hub_env.repos[REPO].refs["main"] == main_commit
    branch_files = hub_env.files(REPO, "candidate")
    assert "face_detection_yunet.onnx" not in branch_files and ".gitattributes" in branch_files
    assert branch_files["model.safetensors"] == (checkpoint_b / "model.safetensors").read_bytes()
    assert load_checkpoint(f"{REPO}@candidate").revision == hub_env.repos[REPO].refs["candidate"]


def test_push_needs_a_write_token_and_a_valid_folder(hub_env, checkpoint_b, tmp_path, capsys):
    folder = shutil.copytree(checkpoint_b, tmp_path / "folder")
    assert model_hub_main(["push", str(folder), REPO]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"error: {REPO}: the Hub refused the upload (HTTP 401): set HF_TOKEN to a token with write access"
    assert REPO not in hub_env.repos

    (folder / "model.safetensors").unlink()
    assert model_hub_main(["push", str(folder), REPO]) == 1
    assert "model.safetensors is missing" in capsys.readouterr().err
    with pytest.raises(ModelUploadError):
        upload_checkpoint(checkpoint_b, REPO)


# ---------------------------------------------------------------------------------------------- end to end


@pytest.mark.slow
def test_detector_cli_analyzes_with_a_hub_model_online_then_offline(hub, checkpoint_a, face_photo, tmp_path):
    commit = hub.add_folder(REPO, checkpoint_a)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(tmp_path / "hf"), HF_HUB_DISABLE_TELEMETRY="1", DEEPFAKE_THREADS="1")

    def analyze(model: str, offline: bool) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "detector", "analyze", str(face_photo), "--model", model, "--faces", "yunet", "--json"]
        return subprocess.run(
            command, cwd=ROOT, env={**env, "HF_HUB_OFFLINE": "1" if offline else "0"}, capture_output=True, text=True, timeout=300
        )

    online = analyze(REPO, offline=False)
    assert online.returncode == 0, online.stderr
    report = json.loads(online.stdout)
    assert report["model"]["id"] == REPO and report["model"]["revision"] == commit
    assert report["verdict"] in ("real", "fake", "uncertain")

    hub.stop()  # from now on only the cache can answer
    offline = analyze(REPO, offline=True)
    assert offline.returncode == 0, offline.stderr
    assert json.loads(offline.stdout)["fake_probability"] == report["fake_probability"]

    missing = analyze("deepfake-checker/never-pulled", offline=True)
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip().startswith("error: model deepfake-checker/never-pulled:")
    assert "not in the local cache" in missing.stderr and "HF_HUB_OFFLINE" in missing.stderr
    assert "Traceback" not in missing.stderr
