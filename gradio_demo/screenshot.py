"""Take the README's screenshot from the real app analysing a video: starts `python -m gradio_demo.app` on a free
port of 127.0.0.1, opens it in headless Chromium (Playwright), uploads the video, clicks Analyze and saves the page.
A maintainer's script run from the checkout's root (it uses bench/, which is not installed):

    .venv/bin/python -m gradio_demo.screenshot                      # the FaceForensics++ video of the shared data
    .venv/bin/python -m gradio_demo.screenshot --video clip.mp4 --out docs/gradio_demo.png

The key frames of a third-party video must not end up in the repository, so the gallery's pictures are blurred
in the screenshot unless `--no-blur` is given (for media you have the rights to).
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
MAX_BYTES = 1_000_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_up(url: str, process: subprocess.Popen, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the app exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the app did not answer at {url} within {timeout_s:.0f} s")


def shoot(url: str, video: Path, out: Path, blur: bool, width: int, frames: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        from bench.browser import CHROMIUM_ARGS  # the one list of flags for headless Chromium on a closed network

        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": width, "height": 900})
        page.goto(url)
        page.get_by_role("button", name="Analyze file").wait_for()
        page.locator("#frames input[type=number]").fill(str(frames))
        page.locator("#frames input[type=number]").press("Enter")
        page.locator("#upload input[type=file]").set_input_files(str(video))
        page.get_by_text(video.name).first.wait_for(timeout=60_000)  # uploaded
        page.get_by_role("button", name="Analyze file").click()
        page.locator("#key-frames img").first.wait_for(timeout=180_000)
        page.locator("#timeline img").first.wait_for(timeout=60_000)
        if blur:
            page.add_style_tag(content="#key-frames img { filter: blur(12px); }")
        page.wait_for_timeout(1500)  # let images and the plot finish drawing
        picture = page.screenshot(full_page=True)
        browser.close()
    save_small_png(picture, out)


def save_small_png(picture: bytes, out: Path) -> None:
    """Save as PNG under MAX_BYTES: palette colours first, then smaller if still needed."""
    from PIL import Image

    image = Image.open(io.BytesIO(picture)).convert("RGB")
    out.parent.mkdir(parents=True, exist_ok=True)
    while True:
        buffer = io.BytesIO()
        image.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
            buffer, format="PNG", optimize=True
        )
        if buffer.tell() <= MAX_BYTES or image.width < 800:
            break
        image = image.resize((round(image.width * 0.85), round(image.height * 0.85)), Image.Resampling.LANCZOS)
    out.write_bytes(buffer.getvalue())
    print(f"{out}: {image.width}×{image.height}, {buffer.tell() / 1000:.0f} kB")


def main(argv: list[str] | None = None) -> int:
    from detector.settings import CoreSettings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, default=CoreSettings.from_env().shared_folder() / "data/media/videos/fake_ffpp_000_003.mp4")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "gradio_demo.png")
    parser.add_argument("--frames", type=int, default=8, help="key frames to analyse (the gallery shows them all)")
    parser.add_argument("--width", type=int, default=1280, help="browser window width")
    parser.add_argument("--no-blur", dest="blur", action="store_false", help="do not blur the key frames")
    args = parser.parse_args(argv)

    port = free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    app = subprocess.Popen([sys.executable, "-m", "gradio_demo.app"], cwd=ROOT, env=env)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until_up(url, app)
        shoot(url, args.video, args.out, args.blur, args.width, args.frames)
    finally:
        app.terminate()
        app.wait(timeout=30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
