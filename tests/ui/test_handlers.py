"""The app's handlers called directly: commands, streamed answers, history, progress, gallery."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from tests.conftest import make_photo
from tests.ui.conftest import make_context
from yollava_agent.ui import (
    HELP,
    build_app,
    concept_gallery,
    load_conversation,
    loss_curves,
    respond,
    run_command,
    training_progress,
)


def _photos(folder: Path, count: int = 3) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"bo{i}.png"
        make_photo((220, 40 + 25 * i, 30)).save(path)
        paths.append(str(path))
    return paths


def _last(updates) -> list[dict]:
    *_, final = updates
    return final


def _teach_and_wait(ctx, tmp_path: Path, user: str = "local") -> None:
    reply = run_command(ctx, user, "/teach bo my red mug", _photos(tmp_path / "photos"))
    assert "bo" in reply
    job = ctx.queue.job(user, "bo")
    assert job is not None and job.finished.wait(120), "training did not finish"
    assert ctx.store.get_concept(user, "bo").status == "ready"


def test_help_and_unknown_commands(ctx) -> None:
    assert run_command(ctx, "local", "/help", []) == HELP
    unknown = run_command(ctx, "local", "/dance now", [])
    assert unknown.startswith("Unknown command `/dance`") and HELP in unknown


def test_teach_needs_a_name_and_photos(ctx) -> None:
    assert "Say which name to teach" in run_command(ctx, "local", "/teach", [])
    assert "Attach 3 to 10 photos of bo" in run_command(ctx, "local", "/teach bo", [])
    assert ctx.store.list_concepts("local") == []


def test_teach_a_bad_name_or_a_non_image_answers_in_the_chat(ctx, tmp_path: Path) -> None:
    bad_name = run_command(ctx, "local", "/teach ../bo", _photos(tmp_path / "p"))
    assert "'../bo' is not a safe identifier" in bad_name
    # Gradio hands over its own temporary copy, under the name the user attached.
    upload = tmp_path / "gradio" / "5f2c9a" / "notes.txt"
    upload.parent.mkdir(parents=True)
    upload.write_text("not a photo")
    message = {"text": "/teach bo", "files": [*_photos(tmp_path / "p")[:2], str(upload)]}
    reply = _last(respond(ctx, "local", message, []))[-1]["content"]
    assert reply.startswith("'notes.txt' cannot be used: 'notes.txt' is not an image")
    assert "5f2c9a" not in reply and "uploads" not in reply
    assert not ctx.uploads.exists()  # nothing of a refused submission is kept
    assert ctx.store.list_concepts("local") == []
    assert "'notes.txt' cannot be used" in load_conversation(ctx, "local")[-1]["content"]


def test_teach_trains_in_the_background_and_fills_the_gallery(ctx, tmp_path: Path) -> None:
    _teach_and_wait(ctx, tmp_path)
    status = run_command(ctx, "local", "/status bo", [])
    assert "ready" in status
    items, cards = concept_gallery(ctx, "local")
    assert [caption for _, caption in items] == ["bo · ready"]
    assert Path(items[0][0]).is_file()
    assert "### bo · ready" in cards and "my red mug" in cards
    curves = loss_curves(ctx, "local")
    assert list(curves["epoch"]) == [1, 2, 3] and set(curves["concept"]) == {"bo"}
    assert training_progress(ctx, "local") == "No training running."


def test_progress_shows_epoch_loss_and_time_left(ctx, tmp_path: Path) -> None:
    from yollava_agent.memory.jobs import JobRecord
    from yollava_agent.training.trainer import TrainingEvent

    run_command(ctx, "local", "/teach bo", _photos(tmp_path / "photos"))
    job = ctx.queue.job("local", "bo")
    job.finished.wait(120)
    # A job caught mid-epoch by another replica on the same store, as the timer sees it there.
    record = ctx.store.get_concept("local", "bo")
    progress = TrainingEvent(2, 3, 5, 10, 0.4321, 0.75, 3.0, 12.0)
    ctx.store.jobs.put(JobRecord("local", "bo", "job-b", record.uid, "running", "replica-b", progress=progress))
    text = training_progress(ctx, "local")
    assert "<progress value='15' max='30'></progress>" in text
    assert "epoch 2/3 · loss 0.432 · accuracy 0.75 · about 12 s left" in text


def test_facts_and_forget_through_commands(ctx, tmp_path: Path) -> None:
    _teach_and_wait(ctx, tmp_path)
    assert "Say the concept and the fact" in run_command(ctx, "local", "/fact bo", [])
    run_command(ctx, "local", "/fact bo bo was a gift from Ana", [])
    assert "bo was a gift from Ana" in concept_gallery(ctx, "local")[1]
    forgot = run_command(ctx, "local", "/forget bo", [])
    assert "bo" in forgot
    assert ctx.store.list_concepts("local") == []
    assert concept_gallery(ctx, "local") == ([], "No concepts yet: `/teach NAME` with photos.")


def test_answers_stream_and_the_conversation_survives_a_restart(ctx, tmp_path: Path) -> None:
    updates = list(respond(ctx, "local", {"text": "Hello there", "files": []}, []))
    assert len(updates) >= 2
    final = updates[-1]
    assert final[0] == {"role": "user", "content": "Hello there"}
    assert final[-1]["role"] == "assistant"

    photo = _photos(tmp_path / "q", 1)[0]
    with_photo = _last(respond(ctx, "local", {"text": "What is this?", "files": [photo]}, final))
    kept = with_photo[len(final)]["content"]["path"]
    assert kept.startswith(str(ctx.uploads)) and Path(kept).is_file()

    ctx.queue.close()
    restarted = make_context(ctx.store.home)
    try:
        history = load_conversation(restarted, "local")
        assert [m["role"] for m in history] == ["user", "assistant", "user", "user", "assistant"]
        assert history[0]["content"] == "Hello there"
        assert history[2]["content"] == {"path": kept}
        assert load_conversation(restarted, "someone-else") == []
        assert _last(respond(restarted, "local", {"text": "/clear", "files": []}, history))[0]["content"].startswith("Started a new")
        assert load_conversation(restarted, "local") == []
    finally:
        restarted.queue.close()


def test_a_non_image_attachment_gets_an_answer_not_a_crash(ctx, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    final = _last(respond(ctx, "local", {"text": "What is this?", "files": [str(notes)]}, []))
    assert final[-1]["role"] == "assistant"
    assert "not an image" in final[-1]["content"] and "Attach photos" in final[-1]["content"]


def test_each_user_sees_only_their_concepts(ctx, tmp_path: Path) -> None:
    _teach_and_wait(ctx, tmp_path, user="alice")
    assert concept_gallery(ctx, "bob") == ([], "No concepts yet: `/teach NAME` with photos.")
    assert "bo" not in run_command(ctx, "bob", "/concepts", []).replace("bob", "")
    assert "Unknown concept 'bo'" in run_command(ctx, "bob", "/forget bo", [])
    assert ctx.store.get_concept("alice", "bo").status == "ready"


def test_build_app_shows_the_notice(tmp_path: Path) -> None:
    context = make_context(tmp_path / "home", notice="Running on the offline tiny model.")
    try:
        app = build_app(context)
        assert isinstance(app, gr.Blocks)
        notices = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == "notice"]
        assert notices and "offline tiny model" in notices[0].value
    finally:
        context.queue.close()


def test_the_signed_in_user_is_the_user_id() -> None:
    from types import SimpleNamespace

    from yollava_agent.ui.app import LOCAL_USER, user_of

    assert user_of(SimpleNamespace(username="alice")) == "alice"
    assert user_of(SimpleNamespace(username=None)) == LOCAL_USER == user_of(None)


def test_auth_pairs_must_be_user_colon_password() -> None:
    import argparse

    import pytest

    from yollava_agent.ui.launch import serve

    with pytest.raises(ValueError, match=r"--auth 'alice' must be USER:PASSWORD"):
        serve(argparse.Namespace(auth=["alice"]))


def test_the_teach_reply_says_how_to_see_progress_in_the_app(ctx, tmp_path: Path) -> None:
    reply = _last(respond(ctx, "local", {"text": "/teach bo", "files": _photos(tmp_path / "p")}, []))
    assert "(`/status bo` shows progress)" in reply[-1]["content"]
    assert "concept_status" not in reply[-1]["content"]
    ctx.queue.job("local", "bo").finished.wait(120)


def test_commands_and_failed_questions_come_back_after_a_reload(ctx, tmp_path: Path) -> None:
    chat = _last(respond(ctx, "local", {"text": "/help", "files": []}, []))
    chat = _last(respond(ctx, "local", {"text": "/concepts", "files": []}, chat))
    chat = _last(respond(ctx, "local", {"text": "Hello", "files": []}, chat))
    too_long = "word " * 5000
    failed = _last(respond(ctx, "local", {"text": too_long, "files": []}, chat))
    assert failed[-1]["content"].startswith("Sorry, I could not answer: This turn's prompt is")

    reloaded = load_conversation(ctx, "local")
    assert [m["content"] for m in reloaded][:4] == ["/help", HELP, "/concepts", reloaded[3]["content"]]
    assert "no concepts yet" in reloaded[3]["content"]
    assert reloaded[-2]["content"] == too_long.strip()
    assert reloaded[-1]["content"] == failed[-1]["content"]
    # Only the answered question goes back to the model as an earlier turn.
    turns = ctx.conversations.model_turns("local")
    assert [m.text for m in turns][0] == "Hello" and len(turns) == 2


def test_a_page_closed_mid_answer_keeps_what_was_streamed_and_frees_the_model(ctx) -> None:
    ctx.chat_model = ctx.chat_model.model_copy(update={"max_new_tokens": 300})
    updates = respond(ctx, "local", {"text": "Tell me a long story.", "files": []}, [])
    partial = [next(updates) for _ in range(3)][-1][-1]["content"]
    updates.close()  # Gradio drops the handler when the page reloads
    kept = load_conversation(ctx, "local")
    assert kept[0]["content"] == "Tell me a long story."
    assert kept[1]["content"].startswith(partial) and kept[1]["content"].endswith("(stopped)")
    ctx.chat_model = ctx.chat_model.model_copy(update={"max_new_tokens": 4})
    answered = _last(respond(ctx, "local", {"text": "Hello again", "files": []}, kept))
    assert answered[-1]["role"] == "assistant" and answered[-1]["content"]


def test_an_answer_says_which_concept_it_recognised(ctx, tmp_path: Path) -> None:
    photos = _photos(tmp_path / "p")
    run_command(ctx, "local", "/teach bo my red mug", photos)
    ctx.queue.cancel("local", "bo")  # the instant tier is enough here
    answered = _last(respond(ctx, "local", {"text": "What is this?", "files": [photos[1]]}, []))
    assert answered[-1]["content"].endswith("*recognised bo (description and facts)*")
    assert load_conversation(ctx, "local")[-1]["content"] == answered[-1]["content"]
    plain = _last(respond(ctx, "local", {"text": "Hello", "files": []}, []))
    assert "recognised" not in plain[-1]["content"]
