"""`yollava chat`: the terminal chat, on the tiny model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import HANG_SECONDS, make_concept, make_photo
from yollava_agent import ChatYoLLaVA
from yollava_agent.cli import run_chat


def _run(chat: ChatYoLLaVA, lines: list[str]) -> str:
    pending = iter(lines)
    output: list[str] = []

    def read(prompt: str) -> str:
        output.append(prompt)
        try:
            return next(pending)
        except StopIteration:
            raise EOFError from None

    run_chat(chat, read, output.append)
    return "".join(output)


def test_chat_with_a_photo_and_a_concept_folder(runtime, tmp_path: Path) -> None:
    photo = tmp_path / "park.png"
    make_photo().save(photo)
    folder = make_concept(runtime, "bo").save_pretrained(tmp_path / "bo")
    chat = ChatYoLLaVA(model="tiny", max_tokens=6)
    transcript = _run(
        chat,
        [f"/concept {folder}", f"/image {photo}", "Is <bo> here?", "/image nowhere.png", "/dance", "/quit"],
    )
    assert "(concept 'bo' active: call it <bo>)" in transcript
    assert "(photo park.png attached to your next message)" in transcript
    assert transcript.count("yollava> ") == 1
    assert "No photo at 'nowhere.png'" in transcript
    assert "Unknown command '/dance'" in transcript
    assert list(runtime.injected) == ["bo"]


def test_chat_reports_a_bad_concept_folder_and_goes_on(tmp_path: Path) -> None:
    transcript = _run(ChatYoLLaVA(model="tiny", max_tokens=3), [f"/concept {tmp_path}", "Hi"])
    assert f"No concept at {tmp_path}" in transcript
    assert transcript.count("yollava> ") == 1


def test_console_script_falls_back_to_tiny_offline() -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "yollava_agent.ui.cli", "chat", "--max-tokens", "3"],
        input="Hello\n/quit\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=HANG_SECONDS,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert "Could not load the default model" in result.stdout
    assert "offline tiny model" in result.stdout and "meaningless" in result.stdout
    assert "hf download llava-hf/llava-1.5-7b-hf" in result.stdout
    assert "yollava> " in result.stdout


def test_console_script_fails_clearly_for_a_named_missing_model() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "yollava_agent.ui.cli", "chat", "--model", "acme/none"],
        input="/quit\n",
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=HANG_SECONDS,
    )
    assert result.returncode == 1
    assert "yollava: Could not load the LLaVA model 'acme/none'" in result.stderr


def test_example_runs_offline() -> None:
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, str(repo / "examples" / "chat_with_a_concept.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=HANG_SECONDS,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()


def _yollava(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "yollava_agent.ui.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
        timeout=HANG_SECONDS,
        cwd=Path(__file__).resolve().parents[2],
    )


def _photo_files(folder: Path, count: int = 3) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    photos = []
    for i in range(count):
        photos.append(folder / f"bo{i}.png")
        make_photo((220, 40 + 30 * i, 30)).save(photos[-1])
    return photos


TINY_CLIP = ["--clip-model", "tiny", "--clip-pretrained", "none"]


def test_teach_list_and_forget_from_the_command_line_share_the_apps_store(tmp_path: Path) -> None:
    from yollava_agent.memory import ConceptStore
    from yollava_agent.training.negatives import ClipConfig

    home = tmp_path / "home"
    photos = _photo_files(tmp_path / "in")
    pool = tmp_path / "pool"
    pool.mkdir()
    for i in range(12):
        make_photo((20 * i, 200 - 10 * i, 90), size=(40 + i, 40)).save(pool / f"other{i}.png")
    # A concept the app taught for its local user, in the same data folder.
    app_store = ConceptStore(home, clip=ClipConfig(model_name="tiny"))
    app_store.add_concept("local", "kiwi", _photo_files(tmp_path / "kiwi"), description="a parrot")
    app_store.remember("local", "kiwi", "kiwi whistles")
    del app_store

    taught = _yollava(
        "teach", "bo", *map(str, photos), "--model", "tiny", "--negatives", str(pool), *TINY_CLIP,
        "--epochs", "2", "--data", str(home),
    )
    assert taught.returncode == 0, taught.stderr
    assert "Taught 'bo' (version 1)" in taught.stdout
    assert "teach bo" in taught.stderr and "epoch" in taught.stderr  # the tqdm bar
    saved = Path(taught.stdout.strip().rsplit("saved to ", 1)[1])
    assert (saved / "concept.safetensors").is_file() and saved.is_relative_to(home / "users")

    listed = _yollava("concepts", "--data", str(home), *TINY_CLIP)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].startswith("bo\tready\t3 photos\t0 facts\tversion 1\tbase tiny")
    assert lines[1] == "kiwi\ttaught\t3 photos\t1 facts"
    other_user = _yollava("concepts", "--data", str(home), "--user", "bob", *TINY_CLIP)
    assert "No concepts for user 'bob'" in other_user.stdout

    forgot = _yollava("forget", "bo", "--data", str(home), *TINY_CLIP)
    assert forgot.returncode == 0, forgot.stderr
    assert forgot.stdout.startswith("Forgot 'bo': its 3 photos")
    assert not saved.exists()
    assert _yollava("concepts", "--data", str(home), *TINY_CLIP).stdout.startswith("kiwi\ttaught")


def test_teach_refuses_bad_input_before_loading_anything(
    tmp_path: Path, monkeypatch, capsys
) -> None:
    import yollava_agent.ui.commands as commands
    from yollava_agent.ui.cli import main

    def must_not_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("loaded a model or the store before checking the input")

    monkeypatch.setattr(commands, "load_llava", must_not_load)
    monkeypatch.setattr(commands, "ConceptStore", must_not_load)
    photos = [str(p) for p in _photo_files(tmp_path / "in")]
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("shopping list")
    cases = {
        ("a/b", *photos): "Concept name 'a/b' is not a safe identifier",
        ("bo_2", *photos): "Concept name 'bo_2' ends in '_' and digits",
        ("bo", photos[0]): "Teaching 'bo' needs 3 to 10 photos of it, and 1 was given",
        ("bo", *photos[:2], str(tmp_path / "ghost.png")): "ghost.png' does not exist",
        ("bo", *photos[:2], str(not_an_image)): f"{str(not_an_image)!r} is not an image PIL can read",
        ("bo", *photos, "--description", "x" * 501): "The description of 'bo' is 501 characters long; the limit is 500",
    }
    for arguments, message in cases.items():
        assert main(["teach", *arguments, "--model", "tiny", "--data", str(tmp_path / "home")]) == 1
        assert message in capsys.readouterr().err
    assert not (tmp_path / "home").exists()


def test_concepts_on_an_empty_data_folder_says_how_to_teach(tmp_path: Path) -> None:
    listed = _yollava("concepts", "--data", str(tmp_path), *TINY_CLIP)
    assert listed.returncode == 0, listed.stderr
    assert "No concepts for user 'local'" in listed.stdout
    assert "yollava teach NAME PHOTO" in listed.stdout
