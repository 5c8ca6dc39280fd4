"""The Gradio demo's memory of media judged (gradio_demo/memory.py), through the real app and gradio_client: a photo
analysed once is recognised when it comes back rescaled and re-encoded ("Seen before: 1 time since <date>, earlier
verdict …" in the summary), an unrelated photo is not, and the memory outlives the app (a SQLite file)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.conftest import shared_file
from tests.integration.test_gradio_demo import FRAMES, launched_demo


def analyse(client: Client, path) -> tuple[dict, str]:
    report, _verdict, summary, _timeline, _frames, _downloads = client.predict(
        handle_file(str(path)), "default", FRAMES, api_name="/analyze_file"
    )
    return report, summary


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    return tmp_path_factory.mktemp("memory-results")


def test_a_rescaled_re_encoded_copy_is_seen_before_and_an_unrelated_photo_is_not(detector, face_photo, results, tmp_path):
    copy = tmp_path / "copy.jpg"
    with Image.open(face_photo) as image:
        image.convert("RGB").resize((image.width // 2, image.height // 2), Image.LANCZOS).save(copy, quality=40)
    unrelated = shared_file("data/media/seed/fake.jpg")
    with launched_demo(detector, results, FRAMES, allow_private_urls=False) as url:
        client = Client(url, verbose=False, analytics_enabled=False, download_files=tmp_path / "client")
        first, summary = analyse(client, face_photo)
        assert "Seen before" not in summary  # a fresh memory
        _, summary = analyse(client, copy)
        today = datetime.now(timezone.utc).date().isoformat()
        assert f"Seen before: 1 time since {today}, earlier verdict {first['verdict']}" in summary
        _, summary = analyse(client, unrelated)
        assert "Seen before" not in summary
    assert (results / "memory.sqlite").is_file()
    with launched_demo(detector, results, FRAMES, allow_private_urls=False) as url:  # a restarted demo remembers
        client = Client(url, verbose=False, analytics_enabled=False, download_files=tmp_path / "client2")
        _, summary = analyse(client, face_photo)
        assert f"Seen before: 2 times since {today}" in summary
