"""The backend's rules as pure functions: settings from the environment, URLs as stored (normalised, credentials
redacted), the alert rule, the contract's names taken from the core, and the settings tables of the READMEs."""

from __future__ import annotations

import pytest

from server.alerts import should_alert
from server.config import ConfigError, settings_from_env
from server.urls import normalize_url, redact_url, url_key
from tests.support.documentation import documented_variables


def test_settings_from_env():
    settings = settings_from_env(
        {
            "DEEPFAKE_PORT": "9000",
            "DEEPFAKE_ALLOW_PRIVATE_URLS": "1",
            "DEEPFAKE_CORS_ORIGINS": "chrome-extension://abc, http://127.0.0.1:7860",
            "DEEPFAKE_MAX_DURATION_S": "30",
            "DEEPFAKE_FACES": "dlib",
            "UNRELATED": "x",
        }
    )
    assert settings == {
        "PORT": 9000,
        "ALLOW_PRIVATE_URLS": True,
        "CORS_ORIGINS": ("chrome-extension://abc", "http://127.0.0.1:7860"),
        "MAX_DURATION_S": 30.0,
        "FACE_DETECTOR": "dlib",
    }
    with pytest.raises(ConfigError, match="DEEPFAKE_PORT"):
        settings_from_env({"DEEPFAKE_PORT": "eighty"})
    with pytest.raises(ConfigError, match="DEEPFAKE_ALLOW_PRIVATE_URLS"):
        settings_from_env({"DEEPFAKE_ALLOW_PRIVATE_URLS": "maybe"})


def test_normalize_url():
    assert normalize_url("HTTPS://Example.com:443/p/1?b=2&a=1&utm_source=x&fbclid=y#frag") == "https://example.com/p/1?a=1&b=2"
    assert normalize_url("http://example.com") == "http://example.com/"
    assert normalize_url("http://example.com:8080/v?id=1") == "http://example.com:8080/v?id=1"


def test_stored_urls_keep_no_credentials():
    signed = "https://cdn.example.com/fake.jpg?signature=SECRET-TOKEN&w=640"
    assert redact_url(signed) == "https://cdn.example.com/fake.jpg?signature=REDACTED&w=640"
    assert redact_url("https://s3.example.com/b/k.mp4?X-Amz-Credential=AKIA&X-Amz-Signature=ab12&X-Amz-Expires=60&v=2") == (
        "https://s3.example.com/b/k.mp4?X-Amz-Credential=REDACTED&X-Amz-Signature=REDACTED&X-Amz-Expires=REDACTED&v=2"
    )
    assert redact_url("https://scontent.example.net/v/t1.mp4?_nc_cat=1&oh=00_AbC&oe=65F0") == (
        "https://scontent.example.net/v/t1.mp4?_nc_cat=1&oh=REDACTED&oe=65F0"
    )
    assert redact_url("https://user:pass@example.com:8443/p?access_token=x&api_key=y&monkey=z#t=3") == (
        "https://example.com:8443/p?access_token=REDACTED&api_key=REDACTED&monkey=z#t=3"
    )
    assert redact_url("https://www.example.com/watch?v=abc123&t=42") == "https://www.example.com/watch?v=abc123&t=42"
    assert redact_url("holiday.jpg") == "holiday.jpg"  # an upload's file name
    # The cache key is a digest: the signed link itself is not what the history stores.
    assert url_key(signed) == url_key("https://CDN.example.com:443/fake.jpg?w=640&signature=SECRET-TOKEN#x")
    assert "SECRET" not in url_key(signed) and len(url_key(signed)) == 64


def test_alert_rule():
    from detector.report import MediaInfo, ModelInfo, Report

    def judged(verdict, probability):
        media = MediaInfo("image", "png", None, 64, 48, 0.0, None, 1, 0, 1000, frames_analyzed=1)
        return Report("x", verdict, probability, None, 0.5, [0.4, 0.6], media, [], [], ModelInfo("m", None, "a"), {})

    assert should_alert(judged("fake", 0.9), ["fake"], 0.8)
    assert not should_alert(judged("fake", 0.7), ["fake"], 0.8)
    assert not should_alert(judged("real", 0.1), ["fake"], 0.0)
    assert not should_alert(judged("no_face", None), ["no_face"], 0.0)


def test_the_contract_comes_from_the_core():
    # Verdict names and progress stages are defined once, in detector.report: the API, its OpenAPI document and the
    # job progress use them rather than copies.
    from detector.report import PROGRESS_STAGES, VERDICTS
    from server.jobs import STAGES
    from server.openapi import openapi_document

    assert set(PROGRESS_STAGES) <= set(STAGES)
    enums = []

    def walk(node):
        if isinstance(node, dict):
            if "verdict" in node and isinstance(node["verdict"], dict) and "enum" in node["verdict"]:
                enums.append(node["verdict"]["enum"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(openapi_document())
    assert enums and all(enum == list(VERDICTS) for enum in enums)


def test_the_readmes_document_every_setting_and_no_other():
    # The tables of environment variables are hand-written pages: this keeps them true to the settings classes.
    from detector.settings import CoreSettings, environment
    from gradio_demo.settings import DemoSettings
    from server.config import ENVIRONMENT
    from tests.conftest import ROOT

    readme = (ROOT / "README.md").read_text()
    server = set(ENVIRONMENT) | {"DEEPFAKE_HTTP_THREADS"}  # the last: gunicorn.conf.py
    documented = documented_variables((ROOT / "docs" / "server.md").read_text(), "## Configuration", "## API keys")
    assert documented == server, (sorted(server - documented), sorted(documented - server))
    core = set(environment(CoreSettings))
    documented = documented_variables(readme, "What the core reads from the environment", "## Python API")
    assert documented == core, (sorted(core - documented), sorted(documented - core))
    demo = set(environment(DemoSettings))
    documented = documented_variables((ROOT / "gradio_demo" / "README.md").read_text(), "## Settings", "This Space is assembled")
    assert documented == demo, (sorted(demo - documented), sorted(documented - demo))
