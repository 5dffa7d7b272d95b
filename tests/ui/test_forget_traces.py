"""`/forget` in the app, while the page's timer polls: nothing of the concept stays anywhere.

A browser run found every uploaded copy left in `uploads/`, the teach photos and the facts still in
the saved conversation, and the fact's text still in Chroma's database file; and forgetting while
the timer read the store corrupted it. Here the app's own handlers teach, remember, ask and forget
while two threads call what the timer calls, then every file under the data folder is scanned.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import traceback
from pathlib import Path

from tests.conftest import HANG_SECONDS, make_photo
from yollava_agent.ui import concept_gallery, load_conversation, loss_curves, respond, training_progress

REPO = Path(__file__).resolve().parents[2]


def _attached(folder: Path, colours: list[tuple[int, int, int]], prefix: str) -> list[str]:
    """Photos as Gradio hands them over: its temporary copies, under the names the user gave."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, colour in enumerate(colours):
        path = folder / f"{prefix}{i}.png"
        make_photo(colour, size=(64, 52)).save(path)
        paths.append(str(path))
    return paths


def _send(ctx, text: str, files: list[str] = ()) -> str:
    *_, final = respond(ctx, "local", {"text": text, "files": list(files)}, [])
    return final[-1]["content"]


def test_forget_while_the_timer_polls_leaves_nothing_of_the_concept(ctx, tmp_path: Path) -> None:
    bo = _attached(tmp_path / "gradio" / "a", [(220, 40 + 25 * i, 30) for i in range(3)], "bo")
    question = _attached(tmp_path / "gradio" / "b", [(225, 60, 35)], "kitchen")
    kiwi = _attached(tmp_path / "gradio" / "c", [(30, 200 + 10 * i, 40) for i in range(3)], "kiwi")
    assert _send(ctx, "/teach bo SECRET-DESCRIPTION of a mug", bo).startswith("Taught 'bo'")
    assert _send(ctx, "/teach kiwi a green parrot", kiwi).startswith("Taught 'kiwi'")
    for name in ("bo", "kiwi"):
        assert ctx.queue.job("local", name).finished.wait(120)
    _send(ctx, "/fact bo SECRET-FACT bo was a gift")
    _send(ctx, "/fact kiwi kiwi whistles at dawn")
    _send(ctx, "Is bo in this photo?", question)
    _send(ctx, "What is the weather like?")

    stop, failures = threading.Event(), []

    def poll_like_the_page_timer() -> None:
        while not stop.is_set():
            try:
                training_progress(ctx, "local")
                concept_gallery(ctx, "local")
                loss_curves(ctx, "local")
            except BaseException:  # noqa: BLE001 - any failure of the timer fails the test
                failures.append(traceback.format_exc())
                return

    pollers = [threading.Thread(target=poll_like_the_page_timer) for _ in range(2)]
    for poller in pollers:
        poller.start()
    try:
        reply = _send(ctx, "/forget bo")
    finally:
        stop.set()
        for poller in pollers:
            poller.join(timeout=HANG_SECONDS)
    assert failures == []
    assert reply.startswith("Forgot 'bo'") and "gone from this conversation too" in reply

    home = ctx.store.home
    markers = {"description": b"SECRET-DESCRIPTION", "fact": b"SECRET-FACT"}
    markers |= {Path(p).name: Path(p).read_bytes() for p in [*bo, *question]}
    traces = [
        (path.relative_to(home).as_posix(), what)
        for path in home.rglob("*")
        if path.is_file()
        for what, marker in markers.items()
        if marker in path.read_bytes()
    ]
    assert traces == []

    # Everything else is still there: kiwi, its fact and photos, the unrelated question.
    items, cards = concept_gallery(ctx, "local")
    assert [caption for _, caption in items] == ["kiwi · ready"]
    assert "kiwi whistles at dawn" in cards
    texts = [m["content"] for m in load_conversation(ctx, "local") if isinstance(m["content"], str)]
    assert "What is the weather like?" in texts and "/fact kiwi kiwi whistles at dawn" in texts
    assert [t for t in texts if "bo" in t.replace("'", " ").split()] == texts[-2:]  # /forget bo, its reply
    kept_photos = [Path(m["content"]["path"]) for m in load_conversation(ctx, "local") if isinstance(m["content"], dict)]
    assert len(kept_photos) == 3 and all(p.is_file() for p in kept_photos)

    integrity = subprocess.run(
        [sys.executable, "-c", "import sqlite3, sys; print(sqlite3.connect(sys.argv[1]).execute('PRAGMA integrity_check').fetchone()[0])",
         str(home / "chroma" / "chroma.sqlite3")],
        capture_output=True, text=True, timeout=HANG_SECONDS, cwd=REPO, check=False,
    )
    assert integrity.stdout.strip() == "ok", integrity.stderr
