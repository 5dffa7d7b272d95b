"""The app in a real browser: Debian's chromium driven by Playwright against 127.0.0.1.

Teach a concept with five photos (shown as thumbnails), watch its training progress reach ready,
ask about it in text (the answer visibly streams) and with a photo (the answer says it recognised
bo), reload the page while an answer streams (the question and the streamed part come back, and
the next question is answered), forget it while the page's timer polls, and reload: nothing of bo
is left. Each step leaves a screenshot in `test-output/browser/` (or
`$YOLLAVA_TEST_OUTPUT/browser/`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from tests.conftest import HANG_SECONDS, make_photo
from tests.ui.conftest import make_context
from yollava_agent.training.config import TrainingConfig
from yollava_agent.ui import AppContext, build_app
from yollava_agent.ui.app import launch_app

REPO = Path(__file__).resolve().parents[2]
OUTPUT = Path(os.environ.get("YOLLAVA_TEST_OUTPUT", REPO / "test-output")) / "browser"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
]
# Slow enough (batch 1, 12 epochs) that the progress bar is on screen for a few refreshes.
WAIT_MS = HANG_SECONDS * 1000
"""Playwright waits are bounds against hangs only (milliseconds)."""
VISIBLE_TRAINING = TrainingConfig(epochs=12, batch_size=1, warmup_epochs=2, turns_per_positive=8,
                                  attribute_answer_tokens=8)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, AppContext]]:
    """The app on a free port, and its context (the test sets how long answers are)."""
    ctx = make_context(tmp_path / "home", VISIBLE_TRAINING, notice="Running on the offline tiny model.")
    app = build_app(ctx, refresh_seconds=0.5)
    port = _free_port()
    launch_app(app, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/", ctx
    finally:
        app.close()
        ctx.queue.close()


def _answer_length(ctx: AppContext, tokens: int) -> None:
    ctx.chat_model = ctx.chat_model.model_copy(update={"max_new_tokens": tokens})


def _idle(page: Page) -> None:
    page.wait_for_function(
        "() => { const t = document.querySelector('#message textarea');"
        " return t && !t.disabled && t.value === '' && !document.querySelector('#chat .pending'); }",
        timeout=WAIT_MS,
    )


def _type(page: Page, text: str, files: list[str] = ()) -> None:
    """Type (and attach) and submit, without waiting for the answer."""
    box = page.locator("#message textarea")
    page.wait_for_function(
        "() => { const t = document.querySelector('#message textarea'); return t && !t.disabled; }",
        timeout=WAIT_MS,
    )
    if files:
        page.locator("#message input[type=file]").set_input_files(list(files))
        page.wait_for_function(
            "n => document.querySelectorAll('#message img').length >= n", arg=len(files), timeout=WAIT_MS
        )
    box.fill(text)
    box.press("Enter")
    _wait_text(page, "#chat", text)


def _send(page: Page, text: str, files: list[str] = ()) -> None:
    """Type (and attach), submit, and wait until the app has answered and takes input again."""
    _type(page, text, files)
    _idle(page)


def _wait_text(page: Page, selector: str, text: str) -> None:
    page.wait_for_function(
        "([s, t]) => (document.querySelector(s)?.innerText || '').includes(t)",
        arg=[selector, text], timeout=WAIT_MS,
    )


def _answers(page: Page) -> int:
    return page.locator("#chat .bot").count()


# Records the length of the newest answer each time the chat changes, to see it grow.
WATCH_ANSWER = """() => {
  window.answerLengths = [];
  const chat = document.querySelector('#chat');
  new MutationObserver(() => {
    const answers = chat.querySelectorAll('.bot');
    const last = answers[answers.length - 1];
    if (last) window.answerLengths.push(last.innerText.length);
  }).observe(chat, {subtree: true, childList: true, characterData: true});
}"""


def test_teach_watch_ask_reload_and_forget_in_a_browser(served, tmp_path: Path) -> None:
    url, ctx = served
    OUTPUT.mkdir(parents=True, exist_ok=True)
    for old in OUTPUT.glob("*.png"):
        old.unlink()
    photos = []
    for i in range(5):
        photos.append(str(tmp_path / f"bo{i}.png"))
        make_photo((220, 40 + 25 * i, 30), size=(320, 240)).save(photos[-1])

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(WAIT_MS)
        page.goto(url)
        _wait_text(page, "#notice", "offline tiny model")
        page.screenshot(path=OUTPUT / "0-start.png", full_page=True)

        _send(page, "/teach bo my red mug", photos)
        _wait_text(page, "#chat", "`/status bo`".strip("`"))
        thumbnails = page.eval_on_selector_all("#chat img", "imgs => imgs.map(i => i.getBoundingClientRect().height)")
        assert len(thumbnails) == 5 and max(thumbnails) <= 120, thumbnails
        _wait_text(page, "#progress", "epoch")
        page.screenshot(path=OUTPUT / "1-training-progress.png", full_page=True)

        _wait_text(page, "#cards", "bo · ready")
        _wait_text(page, "#progress", "No training running.")
        _wait_text(page, "#gallery", "bo · ready")
        page.screenshot(path=OUTPUT / "2-ready-gallery-card.png", full_page=True)

        # A streamed answer: the newest answer grows on screen before it is complete.
        _answer_length(ctx, 120)
        page.evaluate(WATCH_ANSWER)
        answered = _answers(page)
        _send(page, "What colour is bo?")
        assert _answers(page) > answered
        grew = page.evaluate("() => new Set(window.answerLengths.filter(n => n > 0)).size")
        assert grew >= 3, page.evaluate("() => window.answerLengths")
        _wait_text(page, "#chat", "used bo (trained tokens)")
        page.screenshot(path=OUTPUT / "3-streamed-answer.png", full_page=True)

        _answer_length(ctx, 8)
        _send(page, "What is this?", [photos[1]])
        _wait_text(page, "#chat", "recognised bo (trained tokens)")
        page.screenshot(path=OUTPUT / "4-recognised-in-a-photo.png", full_page=True)

        # Reload while an answer streams: the question and what was streamed come back, and the
        # next question is answered at once (the model was not left locked).
        _answer_length(ctx, 1500)
        _type(page, "Tell me a very long story.")
        page.wait_for_function(
            "() => { const a = document.querySelectorAll('#chat .bot');"
            " return a.length && a[a.length - 1].innerText.length > 20; }",
            timeout=WAIT_MS,
        )
        page.reload()
        _wait_text(page, "#chat", "Tell me a very long story.")
        _wait_text(page, "#cards", "bo · ready")
        _answer_length(ctx, 8)
        _send(page, "Are you still there?")
        page.reload()
        _wait_text(page, "#chat", "(stopped)")
        _wait_text(page, "#chat", "Are you still there?")
        page.screenshot(path=OUTPUT / "5-after-reload-mid-answer.png", full_page=True)

        # Forget while the page's timer keeps polling; a reload shows nothing of bo.
        _send(page, "/forget bo")
        _wait_text(page, "#cards", "No concepts yet")
        page.reload()
        _wait_text(page, "#chat", "gone from this conversation too")
        assert page.locator("#chat img").count() == 0
        assert "recognised bo" not in page.locator("#chat").inner_text()
        page.screenshot(path=OUTPUT / "6-forgotten-after-reload.png", full_page=True)
        browser.close()
    assert sorted(p.name for p in OUTPUT.glob("*.png")) == [
        "0-start.png", "1-training-progress.png", "2-ready-gallery-card.png",
        "3-streamed-answer.png", "4-recognised-in-a-photo.png", "5-after-reload-mid-answer.png",
        "6-forgotten-after-reload.png",
    ]
