"""The demo's wiring without a running app: its settings from the environment, its progress stages against the
core's, and the Hugging Face Space folder that gradio_demo/build_space.py assembles (the launcher `app.py` and
what it imports, the generated requirements, no third-party media)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_settings_come_from_the_servers_environment_variables():
    from gradio_demo.settings import DemoSettings

    settings = DemoSettings.from_env(
        {"DEEPFAKE_ALLOW_PRIVATE_URLS": "1", "DEEPFAKE_MODELS": "org/a, org/b@v2", "DEEPFAKE_MAX_FRAMES": "32"}
    )
    assert settings.url_policy.allow_private and settings.models == ("org/a", "org/b@v2") and settings.max_frames == 32
    assert not DemoSettings.from_env({}).url_policy.allow_private
    with pytest.raises(ValueError, match="DEEPFAKE_ALLOW_PRIVATE_URLS"):
        DemoSettings.from_env({"DEEPFAKE_ALLOW_PRIVATE_URLS": "perhaps"})


def test_the_space_folder_holds_the_app_and_what_it_imports(tmp_path):
    import gradio
    import yaml

    from gradio_demo.build_space import build_space

    space = build_space(tmp_path / "space", allow_untrained=True)
    card = (space / "README.md").read_text()
    meta = yaml.safe_load(card.split("---")[1])
    assert meta["sdk"] == "gradio" and meta["sdk_version"] == gradio.__version__
    assert (space / meta["app_file"]).is_file() and meta["app_file"] == "app.py"
    assert "from gradio_demo.app import main" in (space / "app.py").read_text()  # the package, as it lies beside it
    assert not [path for path in space.rglob("*.py") if "sys.path" in path.read_text()]
    assert len(meta["short_description"]) <= 60
    assert (space / "detector" / "__init__.py").is_file()
    requirements = [line for line in (space / "requirements.txt").read_text().splitlines() if not line.startswith("#")]
    assert "onnxruntime>=1.18" in requirements and "yt-dlp>=2024.8.6" in requirements  # from pyproject.toml
    assert not [r for r in requirements if r.startswith(("flask", "gunicorn", "boto3", "sqlalchemy", "psycopg", "gradio>"))]
    assert not list(space.rglob("*.mp4")) and not list(space.rglob("__pycache__"))
    if (ROOT / "model_hub" / "default" / "config.json").is_file():
        assert (space / "model_hub" / "default" / "model.safetensors").is_file()


def test_the_demo_progress_maps_every_stage_the_core_reports():
    from detector.pipeline import STAGES
    from detector.report import PROGRESS_STAGES
    from gradio_demo.analysis import StageProgress

    assert set(PROGRESS_STAGES) <= set(STAGES)  # the one stage table every shell shares
    seen = []
    for fetching in (True, False):
        progress = StageProgress(lambda fraction, text: seen.append((fraction, text)), fetching=fetching)
        for stage in [*(PROGRESS_STAGES if fetching else PROGRESS_STAGES[1:]), "render"]:
            progress(stage, 1, 2)
            progress(stage, 2, 2)
        fractions = [fraction for fraction, _ in seen]
        assert fractions == sorted(fractions) and fractions[-1] == 1.0 and 0 <= fractions[0] < 0.2
        seen.clear()


def test_no_module_edits_sys_path():
    """Everything imports as installed packages (or, in the Space, as packages beside the launcher)."""
    import re

    edits = re.compile(r"sys\.path\.(insert|append|extend)|sys\.path\s*\+?=")
    folders = ("detector", "server", "gradio_demo", "model_hub", "bench", "tests", "experiments")
    sources = [ROOT / "app.py", *(path for folder in folders for path in (ROOT / folder).rglob("*.py"))]
    assert len(sources) > 50
    assert [str(path.relative_to(ROOT)) for path in sources if edits.search(path.read_text())] == []
