"""What a visitor of the Gradio demo sees, in Debian's Chromium driven by Playwright: the real app on 127.0.0.1.

Each test leaves a screenshot of the page it judged under test-artifacts/demo/ (ignored by git) so a person can
look at what the assertions read.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.test_gradio_demo import launched_demo

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "test-artifacts" / "demo"
FRAMES = 4
WAIT_MS = 180_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def demo_url(detector, tmp_path_factory):
    with launched_demo(detector, tmp_path_factory.mktemp("results"), FRAMES, allow_private_urls=False) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    from bench.browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser, demo_url):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.goto(demo_url)
    try:
        yield page
    finally:
        page.close()


def shoot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def analyse_upload(page, path: Path) -> None:
    page.locator("#upload").wait_for(timeout=60_000)
    if page.locator("#upload input[type=file]").count() == 0:  # the previous file is still there: remove it
        page.locator("#upload button[aria-label='Clear']").dispatch_event("click")
    page.locator("#upload input[type=file]").set_input_files(str(path))
    page.locator("#upload").get_by_text(path.stem).first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Analyze file").click()


def summary_text(page) -> str:
    return page.locator("#summary").inner_text()


def wait_for_summary(page, words: str) -> None:
    page.locator("#summary").get_by_text(words).first.wait_for(timeout=WAIT_MS)


def test_an_error_after_a_verdict_replaces_every_output(page, face_photo, tmp_path):
    analyse_upload(page, face_photo)
    wait_for_summary(page, "fake probability")
    page.locator("#key-frames img").first.wait_for(timeout=WAIT_MS)
    verdict_before = summary_text(page)

    notes = tmp_path / "notes.jpg"  # named like a picture, and text inside
    notes.write_text("not media\n" * 100)
    analyse_upload(page, notes)
    wait_for_summary(page, "Cannot analyse this")
    page.wait_for_timeout(500)
    shot = shoot(page, "1-error-after-verdict-file")
    summary = summary_text(page)
    assert "notes.jpg" in summary and " not " in summary, (summary, shot)
    assert "fake probability" not in summary and verdict_before not in summary, shot
    assert page.locator("#key-frames img").count() == 0, shot
    assert page.locator("#timeline img").count() == 0, shot
    assert "%" not in page.locator("#verdict").inner_text(), shot


def test_a_link_error_after_a_verdict_replaces_every_output(page, face_photo):
    analyse_upload(page, face_photo)
    wait_for_summary(page, "fake probability")
    page.locator("#key-frames img").first.wait_for(timeout=WAIT_MS)

    page.get_by_role("tab", name="Paste links").click()
    page.get_by_label("Links, one per line").fill("http://127.0.0.1:9/video.mp4")
    page.get_by_role("button", name="Analyze links").click()
    wait_for_summary(page, "This link cannot be analysed")
    page.wait_for_timeout(500)
    shot = shoot(page, "1-error-after-verdict-link")
    summary = summary_text(page)
    assert "private" in summary and "DEEPFAKE_ALLOW_PRIVATE_URLS" in summary, (summary, shot)
    assert "fake probability" not in summary, shot
    assert page.locator("#key-frames img").count() == 0, shot
    assert page.locator("#timeline img").count() == 0, shot


def test_the_links_table_shows_each_error_whole_and_in_view(page):
    page.get_by_role("tab", name="Paste links").click()
    page.get_by_label("Links, one per line").fill("http://127.0.0.1:9/video.mp4\nhttp://no-such-host.invalid/clip.mp4")
    page.get_by_role("button", name="Analyze links").click()
    wait_for_summary(page, "None of the links could be analysed")
    table = page.locator("#links-table")
    table.wait_for(state="visible", timeout=WAIT_MS)
    page.wait_for_timeout(1000)
    shot = shoot(page, "2-links-errors")
    box = table.bounding_box()
    assert box["y"] < 900, ("the table starts below the fold", box, shot)
    # Headers read as words (not a letter per line), and every message is whole: wrapped, not cut.
    for header in page.locator("#links-table [role=columnheader]").all():
        if header.is_visible():
            assert header.bounding_box()["width"] >= 50, (header.inner_text(), shot)
    cells = [cell for cell in page.locator("#links-table [role=gridcell]").all() if cell.is_visible()]
    texts = [cell.inner_text() for cell in cells]
    assert any("DEEPFAKE_ALLOW_PRIVATE_URLS" in t for t in texts), (texts, shot)
    assert any("looking up the host no-such-host.invalid failed" in t for t in texts), (texts, shot)
    clipped = [
        cell.evaluate("cell => cell.scrollWidth > cell.clientWidth + 1 || cell.scrollHeight > cell.clientHeight + 1")
        for cell in cells
    ]
    assert not any(clipped), (texts, shot)


def test_the_numbers_shown_agree_and_say_which_score_they_are(page):
    from tests.conftest import shared_file

    two_faces = shared_file("data/media/seed/real-2.jpg")  # a portrait with a second, half-cut face at the edge
    analyse_upload(page, two_faces)
    wait_for_summary(page, "fake probability")
    page.locator("#key-frames img").first.wait_for(timeout=WAIT_MS)
    page.wait_for_timeout(500)
    shot = shoot(page, "3-numbers-two-faces")
    summary = summary_text(page)
    assert "confidence" not in summary, (summary, shot)
    assert "2 faces (the most suspicious decides)" in summary, (summary, shot)
    assert "Verdict rule: uncertain between" in summary and "." not in summary.split("Verdict rule:")[1].split("%")[0]
    if "uncertain" in summary.split(":")[0]:
        assert "too close to call" in summary, (summary, shot)
    caption = page.locator("#key-frames").inner_text()
    assert "frame score" in caption, (caption, shot)


def test_an_image_key_frame_is_shown_at_a_columns_width_not_blown_up(page, face_photo):
    # Gradio's gallery widens a lone item to the whole row unless fit_columns=False: a 256-px photo became a
    # 1196-px crop with its chin and heatmap cut off. In real Chromium: the whole picture, at about its own size.
    page.locator("#upload input[type=file]").set_input_files(str(face_photo))
    page.get_by_text(face_photo.name).first.wait_for(timeout=60_000)
    page.get_by_role("button", name="Analyze file").click()
    picture = page.locator("#key-frames img").first
    picture.wait_for(timeout=120_000)
    page.wait_for_timeout(500)
    shown = picture.bounding_box()
    gallery = page.locator("#key-frames").bounding_box()
    natural = picture.evaluate("img => [img.naturalWidth, img.naturalHeight]")
    fit = picture.evaluate("img => getComputedStyle(img).objectFit")
    assert natural == [256, 256] and fit == "contain"  # the whole picture, letterboxed rather than cropped
    assert shown["width"] <= gallery["width"] / 3 and shown["width"] <= 1.5 * natural[0], (shown, gallery)
