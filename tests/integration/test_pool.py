"""The one model pool the server and the demo share: offered names only, one load per name, failures remembered
and retried, the least recently used model dropped (never the default)."""

from __future__ import annotations

import pytest

from detector import ModelNotFoundError, ModelNotOfferedError
from detector.pool import ModelPool
from server.errors import http_status


def test_only_offered_names_load_and_failures_are_told(detector, tmp_path):
    missing = str(tmp_path / "no-such-checkpoint")
    pool = ModelPool("default", [missing], preloaded={"default": detector})
    assert pool.get(None) is detector and pool.get(" ") is detector and pool.is_ready()
    with pytest.raises(ModelNotOfferedError, match="not offered here") as refused:
        pool.get("someone/else")
    assert http_status(refused.value) == 400 and refused.value.code == "unknown_model"
    with pytest.raises(ModelNotFoundError):
        pool.get(missing)
    described = {entry["name"]: entry for entry in pool.describe()}
    assert described["default"]["loaded"] and described["default"]["id"] == "default"
    assert described[missing]["error"]["code"] == "model_not_found" and not described[missing]["loaded"]


def test_hub_ids_when_allowed_and_the_least_recently_used_goes(detector):
    loads = []

    def load(name):  # the real detector under every name: what is kept is the pool's bookkeeping
        loads.append(name)
        return detector

    pool = ModelPool("default", allow_hub_ids=True, capacity=2, preloaded={"default": detector}, loader=load)
    for name in ("org/a", "org/b", "org/a", "org/c"):
        assert pool.get(name) is detector
    assert loads == ["org/a", "org/b", "org/a", "org/c"]  # a was dropped for b (default kept), then b for a...
    assert [entry["name"] for entry in pool.describe()] == ["default"] and pool.is_ready()
    assert pool.check_name("org/c") == "org/c"
    with pytest.raises(ModelNotOfferedError):
        ModelPool("default").check_name("org/c")


def test_the_served_model_is_the_pair_only_where_the_clip_tower_is_installed(monkeypatch, tmp_path):
    from detector.settings import CoreSettings, ServingSettings, from_env

    installed = CoreSettings.from_env().clip_tower()
    assert installed is not None  # scripts/setup fetches it
    monkeypatch.setenv("DEEPFAKE_CLIP_ONNX", str(installed))
    settings = from_env(ServingSettings)
    assert settings.model == "default+accurate" and settings.models == ("default", "accurate", "default+accurate")
    monkeypatch.delenv("DEEPFAKE_CLIP_ONNX")
    monkeypatch.setenv("DEEPFAKE_CACHE_DIR", str(tmp_path))  # an install that never ran clip-fetch
    settings = from_env(ServingSettings)
    assert settings.model == "default" and settings.models == ("default",)
    monkeypatch.setenv("DEEPFAKE_MODEL", "accurate")  # what an operator sets still wins
    assert from_env(ServingSettings).model == "accurate"
