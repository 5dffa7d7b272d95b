"""`yollava chat`: the terminal chat, on the tiny model."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import make_concept, make_photo
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
        timeout=300,
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
        timeout=300,
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
        timeout=300,
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
        timeout=300,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_teach_and_list_concepts_from_the_command_line(tmp_path: Path) -> None:
    photos = []
    for i in range(3):
        photos.append(tmp_path / f"bo{i}.png")
        make_photo((220, 40 + 30 * i, 30)).save(photos[-1])
    pool = tmp_path / "pool"
    pool.mkdir()
    for i in range(12):
        make_photo((20 * i, 200 - 10 * i, 90), size=(40 + i, 40)).save(pool / f"other{i}.png")
    out = tmp_path / "concepts"

    taught = _yollava(
        "teach", "bo", *map(str, photos), "--model", "tiny", "--negatives", str(pool),
        "--clip-model", "tiny", "--clip-pretrained", "none", "--epochs", "2", "--batch-size", "8",
        "--out", str(out),
    )
    assert taught.returncode == 0, taught.stderr
    assert "Taught 'bo' (version 1)" in taught.stdout
    assert "teach bo" in taught.stderr and "epoch" in taught.stderr  # the tqdm bar
    assert (out / "bo" / "concept.safetensors").is_file()

    listed = _yollava("concepts", "--dir", str(out))
    assert listed.returncode == 0
    assert listed.stdout.startswith("bo\ttrained\tversion 1\tbase tiny")


def test_teach_refuses_bad_input_with_the_value(tmp_path: Path) -> None:
    bad_name = _yollava("teach", "a/b", str(tmp_path / "x.png"), "--model", "tiny")
    assert bad_name.returncode == 1
    assert "yollava: Concept name 'a/b' is not a safe identifier" in bad_name.stderr

    missing = _yollava("teach", "bo", str(tmp_path / "ghost.png"), "--model", "tiny", "--out", str(tmp_path / "c"))
    assert missing.returncode == 1
    assert "ghost.png' does not exist" in missing.stderr
    assert not (tmp_path / "c" / "bo").exists()


def test_concepts_on_an_empty_folder_says_how_to_teach(tmp_path: Path) -> None:
    listed = _yollava("concepts", "--dir", str(tmp_path))
    assert listed.returncode == 0
    assert "No concepts in" in listed.stdout and "yollava teach NAME PHOTO" in listed.stdout
