"""The app in a real browser: Debian's chromium driven by Playwright against 127.0.0.1.

Teach a concept with photos, watch its training progress reach ready, ask about it in text and
with a photo, forget it. Each step leaves a screenshot in `test-output/browser/` (or
`$YOLLAVA_TEST_OUTPUT/browser/`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.conftest import make_photo
from tests.ui.conftest import make_context
from yollava_agent.training.config import TrainingConfig
from yollava_agent.ui import build_app
from yollava_agent.ui.app import launch_app

REPO = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("YOLLAVA_TEST_OUTPUT", REPO / "test-output")) / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
# Slow enough (batch 1, 12 epochs) that the progress bar is on screen for a few refreshes.
VISIBLE_TRAINING = TrainingConfig(epochs=12, batch_size=1, warmup_epochs=2, turns_per_positive=8,
                                  attribute_answer_tokens=8)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def app_url(tmp_path: Path) -> Iterator[str]:
    ctx = make_context(tmp_path / "home", VISIBLE_TRAINING, notice="Running on the offline tiny model.")
    app = build_app(ctx, refresh_seconds=0.5)
    port = _free_port()
    launch_app(app, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        app.close()
        ctx.queue.close()


def _send(page: Page, text: str, files: list[str] = ()) -> None:
    """Type (and attach), submit, and wait until the app has answered and takes input again."""
    box = page.locator("#message textarea")
    page.wait_for_function("() => !document.querySelector('#message textarea').disabled")
    if files:
        page.locator("#message input[type=file]").set_input_files(list(files))
        page.wait_for_function(
            "n => document.querySelectorAll('#message img').length >= n", arg=len(files), timeout=20_000
        )
    box.fill(text)
    box.press("Enter")
    _wait_text(page, "#chat", text)
    page.wait_for_function(
        "() => { const t = document.querySelector('#message textarea');"
        " return !t.disabled && t.value === '' && !document.querySelector('#chat .pending'); }",
        timeout=120_000,
    )


def _wait_text(page: Page, selector: str, text: str, timeout: float = 60_000) -> None:
    page.wait_for_function(
        "([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)",
        arg=[selector, text], timeout=timeout,
    )


def _answers(page: Page) -> int:
    return page.locator("#chat .bot").count()


def test_teach_watch_ask_and_forget_in_a_browser(app_url: str, tmp_path: Path) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    photos = []
    for i in range(3):
        photos.append(str(tmp_path / f"bo{i}.png"))
        make_photo((220, 40 + 25 * i, 30), size=(96, 80)).save(photos[-1])

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(app_url)
        _wait_text(page, "#notice", "offline tiny model")
        page.screenshot(path=OUTPUT / "0-start.png", full_page=True)

        _send(page, "/teach bo my red mug", photos)
        _wait_text(page, "#progress", "epoch", timeout=60_000)
        page.screenshot(path=OUTPUT / "1-training-progress.png", full_page=True)

        _wait_text(page, "#cards", "bo · ready", timeout=180_000)
        _wait_text(page, "#progress", "No training running.")
        page.screenshot(path=OUTPUT / "2-ready-gallery-card.png", full_page=True)

        answered = _answers(page)
        _send(page, "What colour is bo?")
        assert _answers(page) > answered
        page.screenshot(path=OUTPUT / "3-asked-in-text.png", full_page=True)

        answered = _answers(page)
        _send(page, "Is this bo?", [photos[1]])
        assert _answers(page) > answered
        page.screenshot(path=OUTPUT / "4-asked-with-photo.png", full_page=True)

        _send(page, "/forget bo")
        _wait_text(page, "#cards", "No concepts yet")
        page.screenshot(path=OUTPUT / "5-forgotten.png", full_page=True)
        browser.close()
    assert sorted(p.name for p in OUTPUT.glob("*.png")) == [
        "0-start.png", "1-training-progress.png", "2-ready-gallery-card.png",
        "3-asked-in-text.png", "4-asked-with-photo.png", "5-forgotten.png",
    ]
