"""Debian's Chromium with the unpacked extension, driven by Playwright: shared by the extension's end-to-end test
and the click-to-label benchmark.

The native context menu cannot be automated, so a check right-clicks the element for real (the content script
records it) and then calls, in the extension's service worker, the handler its `chrome.contextMenus.onClicked`
listener calls, with the info object Chrome would pass.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
EXTENSION = ROOT / "extension"
# Headless and quiet: no first-run UI, and no background connections (this machine's network is closed).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MEDIA_MENU, LINK_MENU, PAGE_MENU = "deepfake-check-media", "deepfake-check-link", "deepfake-check-page"


class Browser:
    """Chromium with the unpacked extension, and ways to reach its service worker."""

    def __init__(self, context):
        self.context = context
        self.worker = (
            context.service_workers[0] if context.service_workers else context.wait_for_event("serviceworker", timeout=30000)
        )
        self.extension_id = self.worker.url.split("/")[2]

    def sw(self):
        """The extension's service worker, woken up if Chrome stopped it while idle."""
        live = [w for w in self.context.service_workers if w.url.startswith(f"chrome-extension://{self.extension_id}/")]
        if live:
            self.worker = live[0]
            return self.worker
        page = self.context.new_page()
        page.goto(f"chrome-extension://{self.extension_id}/options/options.html")
        with self.context.expect_event("serviceworker", timeout=30000) as event:
            page.evaluate("chrome.runtime.sendMessage({type: 'deepfake:hello'})")
        page.close()
        self.worker = event.value
        return self.worker

    def set_backend(self, url: str) -> None:
        self.sw().evaluate("(url) => chrome.storage.local.set({backendUrl: url})", url)

    def wait_for_menus(self, timeout_s: float = 15.0) -> None:
        """Until the extension's context-menu items exist (it creates them when installed, after it starts)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self.sw().evaluate(f"() => chrome.contextMenus.update({MEDIA_MENU!r}, {{}})")
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def menu_click(self, page, selector: str, menu_item: str = MEDIA_MENU) -> dict:
        """Right-click `selector` for real, then run the extension's menu handler as Chrome would; the final label."""
        page.bring_to_front()  # the person looks at this tab
        element = page.locator(selector)
        element.scroll_into_view_if_needed()
        element.click(button="right")
        info = page.evaluate(
            """([selector, menuItemId]) => {
                const el = document.querySelector(selector);
                const info = {menuItemId, pageUrl: location.href, frameId: 0, editable: false};
                if (menuItemId === "deepfake-check-media") Object.assign(info, {srcUrl: el.currentSrc || el.src, mediaType: el.tagName.toLowerCase() === "img" ? "image" : "video"});
                if (menuItemId === "deepfake-check-link") Object.assign(info, {linkUrl: el.href, linkText: el.textContent});
                return info;
            }""",
            [selector, menu_item],
        )
        return self.sw().evaluate(
            """async ([info, url]) => {
                const [tab] = await chrome.tabs.query({url});
                return self.deepfakeChecker.handleMenuClick(info, tab);
            }""",
            [info, page.url],
        )


def badges_on(page, selector: str) -> list[dict]:
    """The badges drawn over `selector`'s element: their attributes and text."""
    return page.evaluate(
        """(selector) => {
            const el = document.querySelector(selector);
            const r = el.getBoundingClientRect();
            // On the element: over it, or (small elements such as links) right beside it.
            const on = [...document.querySelectorAll("deepfake-badge[data-deepfake-verdict]")].filter((b) => {
                const s = b.getBoundingClientRect();
                return b.style.display !== "none" && s.width > 0 && s.left >= r.left - 8 && s.top >= r.top - 12
                    && s.left <= r.right + 8 && s.top <= r.bottom;
            });
            return on.map((b) => ({
                id: b.getAttribute("data-deepfake-badge"),
                verdict: b.getAttribute("data-deepfake-verdict"),
                probability: b.getAttribute("data-deepfake-probability"),
                text: b.shadowRoot.querySelector(".text").textContent,
                details: [...b.shadowRoot.querySelectorAll(".details li")].map((li) => li.textContent),
            }));
        }""",
        selector,
    )


@contextlib.contextmanager
def chromium_with_extension(backend_url: str, viewport: dict | None = None) -> Iterator[Browser]:
    """A fresh headless Chromium profile with the unpacked extension, pointed at `backend_url`."""
    if not CHROMIUM.exists():
        raise RuntimeError(f"{CHROMIUM} is missing: scripts/setup --dev installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    profile = tempfile.mkdtemp(prefix="deepfake-chromium-")
    args = [*CHROMIUM_ARGS, f"--disable-extensions-except={EXTENSION}", f"--load-extension={EXTENSION}"]
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=str(CHROMIUM),
                headless=True,
                args=args,
                viewport=viewport or {"width": 1240, "height": 980},
            )
            try:
                browser = Browser(context)
                browser.set_backend(backend_url)
                browser.wait_for_menus()
                yield browser
            finally:
                context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
